//! The HTTP face against the real binary, with curl as the client: ranges,
//! conditional requests, writes through the engine (rights, quotas, watch),
//! the traversal corpus, escaping and the cross-site check.

mod common;

use std::path::Path;
use std::time::Duration;

use backroom_api::files::{ChangeKind, FilesClient, Origin, vital};
use backroom_daemon::testing::{
    Daemon, assert_http_face_caps_each_address, assert_refuses_to_start,
};
use backroom_frame::auth::hash_token;
use tokio::process::Command;

/// A running binary with an HTTP listener, over `dir/root`.
struct Http {
    daemon: Daemon,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Http {
    /// Starts the binary; `config` is written as its config file.
    async fn start(config: &str) -> Http {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        std::fs::write(dir.path().join("secret.txt"), "outside the root").expect("secret");
        let config_path = dir.path().join("files.toml");
        std::fs::write(&config_path, config).expect("config");
        let mut files = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
        files
            .arg("--root")
            .arg(&root)
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .env("RUST_LOG", "warn");
        let daemon = Daemon::start(files, &["files", "http"]).await;
        Http {
            daemon,
            root,
            _dir: dir,
        }
    }

    async fn open() -> Http {
        Http::start("").await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.addr("http"))
    }

    async fn frame(&self, token: Option<&str>) -> FilesClient {
        FilesClient::connect(self.daemon.addr("files"), token.map(str::to_owned))
            .await
            .expect("connect")
    }
}

/// Users `ann` (admin), `ro` (read-only) and `bob` (read-write, with a
/// 1000-byte quota), whose tokens are `<name>-token`.
fn users(extra: &str) -> String {
    let user = |name: &str, role: &str| {
        format!(
            "[[users]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nrole = \"{role}\"\n",
            hash_token(&format!("{name}-token"))
        )
    };
    format!(
        "{extra}{}{}{}[[quotas]]\nuser = \"bob\"\nbytes = 1000\n",
        user("ann", "admin"),
        user("ro", "read-only"),
        user("bob", "read-write")
    )
}

/// What curl saw: the status, the response headers (lower-cased names) and
/// the body.
struct Seen {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl with `args` and the URL, and reads back what it saw.
async fn curl(args: &[&str], url: &str) -> Seen {
    let dir = tempfile::tempdir().expect("temp dir");
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let status = Command::new("curl")
        .args(["-s", "--path-as-is", "--max-time", "20", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    let code = String::from_utf8_lossy(&status.stdout).trim().to_owned();
    Seen {
        status: code
            .parse()
            .unwrap_or_else(|_| panic!("a status: {code:?}")),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn seed(root: &Path, name: &str, data: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, data).expect("seed");
}

#[tokio::test]
async fn a_range_request_gets_206_and_one_past_the_end_gets_416() {
    let http = Http::open().await;
    let data = common::pattern(100_000, 3);
    seed(&http.root, "data.bin", &data);
    let url = http.url("/data.bin");

    let part = curl(&["-r", "1000-1999"], &url).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, data[1000..2000]);
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 1000-1999/100000")
    );
    let tail = curl(&["-r", "-10"], &url).await;
    assert_eq!((tail.status, tail.body.as_slice()), (206, &data[99_990..]));

    let beyond = curl(&["-r", "100000-"], &url).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range").as_deref(),
        Some("bytes */100000")
    );
    let whole = curl(&[], &url).await;
    assert_eq!((whole.status, whole.body == data), (200, true));
    assert_eq!(
        whole.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn a_conditional_get_with_the_current_etag_gets_304() {
    let http = Http::open().await;
    seed(&http.root, "page.css", b"body{}");
    let url = http.url("/page.css");
    let first = curl(&[], &url).await;
    assert_eq!(first.header("content-type").as_deref(), Some("text/css"));
    let etag = first.header("etag").expect("an etag");
    let modified = first.header("last-modified").expect("last-modified");

    let again = curl(&["-H", &format!("If-None-Match: {etag}")], &url).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    let since = curl(&["-H", &format!("If-Modified-Since: {modified}")], &url).await;
    assert_eq!(since.status, 304);

    let put = curl(&["-T", "-", "-H", "If-Match: \"stale\""], &url).await;
    assert_eq!(put.status, 412);
    assert_eq!(
        std::fs::read(http.root.join("page.css")).expect("kept"),
        b"body{}"
    );
}

#[tokio::test]
async fn a_put_then_a_get_round_trips_and_watch_sees_a_server_change() {
    let http = Http::start(&users("")).await;
    let c = http.frame(Some("ann-token")).await;
    let (_, mut sub) = c.watch("").await.expect("watch");
    let dir = tempfile::tempdir().expect("temp dir");
    let upload = dir.path().join("up.txt");
    std::fs::write(&upload, "hello over http").expect("upload");

    let put = curl(
        &["-u", "bob:bob-token", "-T", upload.to_str().expect("utf-8")],
        &http.url("/notes/up.txt"),
    )
    .await;
    assert_eq!(put.status, 409, "the folder is missing: {}", put.text());
    std::fs::create_dir(http.root.join("notes")).expect("folder");
    let put = curl(
        &["-u", "bob:bob-token", "-T", upload.to_str().expect("utf-8")],
        &http.url("/notes/up.txt"),
    )
    .await;
    assert_eq!(put.status, 201, "{}", put.text());

    let get = curl(
        &["-H", "Authorization: Bearer ro-token"],
        &http.url("/notes/up.txt"),
    )
    .await;
    assert_eq!((get.status, get.text().as_str()), (200, "hello over http"));

    let change = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let change = sub.next().await.expect("open").expect("decodes");
            if change.path == "notes/up.txt" {
                return change;
            }
        }
    })
    .await
    .expect("the PUT is seen");
    assert_eq!(
        (change.kind, change.origin),
        (ChangeKind::Created, Origin::Server)
    );
}

#[tokio::test]
async fn writes_keep_to_roles_and_quotas_and_leave_no_temp_files() {
    let http = Http::start(&users("")).await;
    let url = http.url("/big.bin");
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 5000]).expect("big");
    let big = big.to_str().expect("utf-8");

    assert_eq!(curl(&["-T", big], &url).await.status, 401);
    assert_eq!(
        curl(&["-u", "ann:bob-token", "-T", big], &url).await.status,
        401
    );
    assert_eq!(
        curl(&["-u", "ro:ro-token", "-T", big], &url).await.status,
        403
    );
    let over = curl(&["-u", "bob:bob-token", "-T", big], &url).await;
    assert_eq!(over.status, 413, "{}", over.text());
    assert!(over.text().contains("quota"), "{}", over.text());
    let left: Vec<_> = std::fs::read_dir(&http.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        curl(&["-u", "ann:ann-token", "-T", big], &url).await.status,
        201
    );
}

#[tokio::test]
async fn mkcol_and_delete_change_the_tree() {
    let http = Http::open().await;
    let made = curl(&["-X", "MKCOL"], &http.url("/docs")).await;
    assert_eq!(made.status, 201);
    assert!(http.root.join("docs").is_dir());
    assert_eq!(curl(&["-X", "MKCOL"], &http.url("/docs")).await.status, 405);
    assert_eq!(curl(&["-X", "MKCOL"], &http.url("/a/b")).await.status, 409);
    seed(&http.root, "docs/x.txt", b"x");
    assert_eq!(
        curl(&["-X", "DELETE"], &http.url("/docs")).await.status,
        204
    );
    assert!(!http.root.join("docs").exists());
    assert_eq!(
        curl(&["-X", "DELETE"], &http.url("/docs")).await.status,
        404
    );
}

#[tokio::test]
async fn the_traversal_corpus_never_leaves_the_root() {
    let http = Http::open().await;
    seed(&http.root, "inside.txt", b"inside");
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/x/..%2f..%2fsecret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..%5c..%5csecret.txt",
        "/inside.txt%00.png",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%af../secret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/.backroom-uploads",
    ] {
        let seen = curl(&[], &http.url(path)).await;
        assert!(
            matches!(seen.status, 400 | 403 | 404),
            "{path}: {}",
            seen.status
        );
        assert!(!seen.text().contains("outside the root"), "{path}");
        // A double encoding is a literal name: it may be written, inside.
        let put = curl(&["-X", "PUT", "-d", "x"], &http.url(path)).await;
        assert!(
            matches!(put.status, 400 | 403 | 404 | 409) || path.contains("%25"),
            "{path}: {}",
            put.status
        );
    }
    let outside = http.root.parent().expect("the temp dir");
    let mut names: Vec<_> = std::fs::read_dir(outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["files.toml", "root", "secret.txt"]);
    let secret = std::fs::read(outside.join("secret.txt")).expect("secret");
    assert_eq!(secret, b"outside the root");
    let mut inside: Vec<_> = std::fs::read_dir(&http.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    inside.sort();
    assert_eq!(inside, ["%2e%2e%2fsecret.txt", "inside.txt"]);
}

#[tokio::test]
async fn a_script_file_name_is_listed_as_text() {
    let http = Http::open().await;
    let name = "<script>alert(1)<\\script><img src=x onerror=alert(2)>";
    seed(&http.root, name, b"x");
    let listing = curl(&[], &http.url("/")).await;
    assert_eq!(listing.status, 200);
    let page = listing.text();
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)"), "{page}");
    let json = curl(&[], &http.url("/?json")).await;
    let value: serde_json::Value = serde_json::from_slice(&json.body).expect("json");
    assert_eq!(value["entries"][0]["name"], name);
}

#[tokio::test]
async fn a_cross_site_request_may_not_change_files() {
    let http = Http::open().await;
    seed(&http.root, "keep.txt", b"keep");
    let evil = ["-H", "Origin: http://evil.example"];
    let delete = curl(
        &[&evil[..], &["-X", "DELETE"]].concat(),
        &http.url("/keep.txt"),
    )
    .await;
    assert_eq!(delete.status, 403);
    let post = curl(&[&evil[..], &["-d", "name=x"]].concat(), &http.url("/")).await;
    assert_eq!(post.status, 403);
    assert_eq!(
        std::fs::read(http.root.join("keep.txt")).expect("kept"),
        b"keep"
    );
    let same = format!("Origin: http://{}", http.daemon.addr("http"));
    let ok = curl(&["-H", &same, "-X", "DELETE"], &http.url("/keep.txt")).await;
    assert_eq!(ok.status, 204);
}

#[tokio::test]
async fn uploaded_html_is_sandboxed_outside_site_folders() {
    let http = Http::start("http_sites = [\"intranet\"]\n").await;
    seed(&http.root, "intranet/index.html", b"<h1>Intranet</h1>");
    seed(&http.root, "intranet/style.css", b"h1{}");
    seed(&http.root, "uploads/page.html", b"<h1>Upload</h1>");

    let site = curl(&["-L"], &http.url("/intranet")).await;
    assert_eq!(
        (site.status, site.text().as_str()),
        (200, "<h1>Intranet</h1>")
    );
    assert_eq!(site.header("content-security-policy"), None);
    assert_eq!(
        site.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );

    let upload = curl(&[], &http.url("/uploads/page.html")).await;
    assert_eq!(upload.status, 200);
    assert_eq!(
        upload.header("content-security-policy").as_deref(),
        Some("sandbox")
    );
    assert_eq!(
        upload.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

#[tokio::test]
async fn public_folders_are_readable_without_credentials_and_nothing_else_is() {
    let http = Http::start(&users("http_public = [\"pub\"]\n")).await;
    seed(&http.root, "pub/a.txt", b"public");
    seed(&http.root, "private/b.txt", b"private");
    let public = curl(&[], &http.url("/pub/a.txt")).await;
    assert_eq!((public.status, public.text().as_str()), (200, "public"));
    let private = curl(&[], &http.url("/private/b.txt")).await;
    assert_eq!(private.status, 401);
    assert!(private.header("www-authenticate").is_some());
    assert_eq!(
        curl(&["-X", "DELETE"], &http.url("/pub/a.txt"))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn an_http_listener_beyond_loopback_without_users_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
    files
        .arg("--root")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"]);
    let refusal = assert_refuses_to_start(files).await;
    assert!(refusal.stderr.contains("--insecure"), "{refusal:?}");
}

/// Reads lines of a running `curl -N` until one starts with `prefix`.
async fn line_starting(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    prefix: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines.next_line().await.expect("read").expect("open");
            if line.starts_with(prefix) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line starting {prefix:?}"))
}

/// Opens `url` as an event stream with curl, returning its lines once the
/// stream says it is open.
async fn event_stream(
    url: &str,
    last_event_id: Option<&str>,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut command = Command::new("curl");
    command.args(["-s", "-N", "--max-time", "30"]);
    if let Some(id) = last_event_id {
        command.args(["-H", &format!("Last-Event-ID: {id}")]);
    }
    let mut child = command
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    line_starting(&mut lines, ": open").await;
    (child, lines)
}

#[tokio::test]
async fn a_frame_change_reaches_an_open_event_stream_which_resumes_by_id() {
    let http = Http::open().await;
    std::fs::create_dir(http.root.join("live")).expect("folder");
    let c = http.frame(None).await;
    let (_first, mut lines) = event_stream(&http.url("/live/?events"), None).await;
    c.mkdir("live/a", false).await.expect("mkdir");
    let id = line_starting(&mut lines, "id: ").await;
    let data = line_starting(&mut lines, "data: ").await;
    assert!(data.contains("\"path\":\"live/a\""), "{data}");
    assert!(data.contains("\"kind\":\"created\""), "{data}");
    c.mkdir("elsewhere", false)
        .await
        .expect("outside the folder");
    c.mkdir("live/b", false).await.expect("mkdir");
    let data = line_starting(&mut lines, "data: ").await;
    assert!(data.contains("live/b"), "only the folder's changes: {data}");

    let id = id.trim_start_matches("id: ");
    let (_second, mut resumed) = event_stream(&http.url("/live/?events"), Some(id)).await;
    let data = line_starting(&mut resumed, "data: ").await;
    assert!(data.contains("live/b"), "resumes after {id}: {data}");
}

#[tokio::test]
async fn a_long_poll_returns_when_the_change_happens_not_at_its_timeout() {
    let http = Http::open().await;
    std::fs::create_dir(http.root.join("poll")).expect("folder");
    let start = curl(&[], &http.url("/poll/?changes")).await;
    let start: serde_json::Value = serde_json::from_slice(&start.body).expect("json");
    let next = start["next"].as_u64().expect("a cursor");
    let url = http.url(&format!("/poll/?changes&since={next}&wait=60"));
    let poll = tokio::spawn(async move {
        let began = std::time::Instant::now();
        (curl(&["--max-time", "90"], &url).await, began.elapsed())
    });
    let c = http.frame(None).await;
    c.mkdir("poll/new", false).await.expect("mkdir");
    let (seen, took) = poll.await.expect("poll");
    let value: serde_json::Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(value["changes"][0]["change"]["path"], "poll/new", "{value}");
    assert!(value["next"].as_u64().expect("next") > next);
    assert!(
        took < Duration::from_secs(50),
        "returned at once, not after 60 s: {took:?}"
    );
}

#[tokio::test]
async fn the_listing_forms_upload_files_and_make_folders_for_writers_only() {
    let http = Http::start(&users("")).await;
    let ann = ["-u", "ann:ann-token"];
    let page = curl(&ann, &http.url("/")).await;
    assert!(
        page.text().contains("multipart/form-data"),
        "{}",
        page.text()
    );
    let read_only = curl(&["-u", "ro:ro-token"], &http.url("/")).await;
    assert!(!read_only.text().contains("<form"), "{}", read_only.text());

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("report.txt");
    std::fs::write(&file, "quarterly").expect("file");
    let upload = format!("file=@{}", file.display());
    let posted = curl(&[&ann[..], &["-F", &upload]].concat(), &http.url("/")).await;
    assert_eq!(posted.status, 303, "{}", posted.text());
    assert_eq!(posted.header("location").as_deref(), Some("/"));
    assert_eq!(
        std::fs::read_to_string(http.root.join("report.txt")).expect("uploaded"),
        "quarterly"
    );
    let made = curl(
        &[&ann[..], &["-d", "folder=Q1+notes"]].concat(),
        &http.url("/"),
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.text());
    assert!(http.root.join("Q1 notes").is_dir());
    let refused = curl(&["-u", "ro:ro-token", "-d", "folder=x"], &http.url("/")).await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn webdav_speaks_classes_1_and_2_and_refuses_an_infinite_propfind() {
    let http = Http::open().await;
    seed(&http.root, "docs/a.txt", b"a");
    let options = curl(&["-X", "OPTIONS"], &http.url("/")).await;
    assert_eq!(options.header("dav").as_deref(), Some("1, 2"));
    assert!(options.header("allow").expect("allow").contains("PROPFIND"));

    let one = curl(&["-X", "PROPFIND", "-H", "Depth: 1"], &http.url("/docs/")).await;
    assert_eq!(one.status, 207, "{}", one.text());
    assert!(
        one.text().contains("<D:href>/docs/a.txt</D:href>"),
        "{}",
        one.text()
    );
    assert!(
        one.text().contains("<D:getcontentlength>1<"),
        "{}",
        one.text()
    );
    for depth in [&["-H", "Depth: infinity"][..], &[]] {
        let all = curl(&[&["-X", "PROPFIND"], depth].concat(), &http.url("/docs/")).await;
        assert_eq!(all.status, 403, "{}", all.text());
        assert!(
            all.text().contains("propfind-finite-depth"),
            "{}",
            all.text()
        );
    }
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused_and_the_server_serves_on() {
    let http = Http::open().await;
    seed(&http.root, "a.txt", b"a");
    let huge = format!("X-Filler: {}", "x".repeat(100 * 1024));
    let refused = curl(&["-H", &huge], &http.url("/a.txt")).await;
    assert_eq!(refused.status, 431);
    let next = curl(&[], &http.url("/a.txt")).await;
    assert_eq!((next.status, next.text().as_str()), (200, "a"));
}

#[tokio::test(start_paused = true)]
async fn a_request_head_that_never_ends_is_cut_off_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let prepared = backroom_files::prepare(backroom_files::Config::new(dir.path()))
        .await
        .expect("prepared");
    let frame = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = web.local_addr().expect("addr");
    tokio::spawn(prepared.serve_with_http(frame, Some(web), std::future::pending()));

    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("the head's start");
    let began = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), slow.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .expect("read");
    assert!(
        began.elapsed() >= Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    // hyper alone would wait 30 s; the face allows 10.
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// Waits until `done` holds for the names in `dir`: the server acts on a
/// cut connection in its own time. Fails after a generous bound.
async fn until_names(dir: &Path, done: impl Fn(&[String]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let names = names_in(dir);
        if done(&names) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_put_cut_off_midway_leaves_neither_the_target_nor_a_temp_file() {
    use tokio::io::AsyncWriteExt;
    let http = Http::open().await;
    seed(&http.root, "kept.txt", b"the old content");
    for path in ["/kept.txt", "/new.bin"] {
        let mut cut = tokio::net::TcpStream::connect(http.daemon.addr("http"))
            .await
            .expect("connect");
        let head = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
        cut.write_all(head.as_bytes()).await.expect("head");
        cut.write_all(&[7; 300_000])
            .await
            .expect("part of the body");
        // The upload is under way once its temp file exists.
        until_names(&http.root, |names| {
            names.iter().any(|n| n.starts_with(".backroom-tmp-"))
        })
        .await;
        drop(cut);
        until_names(&http.root, |names| names == ["kept.txt"]).await;
    }
    let kept = std::fs::read(http.root.join("kept.txt")).expect("kept");
    assert_eq!(kept, b"the old content");
}

/// Starts the binary with HTTP over an existing root.
async fn start_over(root: &Path) -> Daemon {
    let mut files = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
    files
        .arg("--root")
        .arg(root)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    Daemon::start(files, &["files", "http"]).await
}

#[tokio::test]
async fn sigkill_mid_put_leaves_the_target_as_it_was_after_a_restart() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    seed(&root, "report.txt", b"version 1");
    let daemon = start_over(&root).await;
    let mut put = tokio::net::TcpStream::connect(daemon.addr("http"))
        .await
        .expect("connect");
    put.write_all(b"PUT /report.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .expect("head");
    put.write_all(&[2; 300_000])
        .await
        .expect("part of version 2");
    until_names(&root, |names| {
        names.iter().any(|n| n.starts_with(".backroom-tmp-"))
    })
    .await;
    daemon.kill().await;

    let daemon = start_over(&root).await;
    assert_eq!(
        names_in(&root),
        ["report.txt"],
        "the restart swept the temp file"
    );
    let url = format!("http://{}/report.txt", daemon.addr("http"));
    let get = curl(&[], &url).await;
    assert_eq!((get.status, get.text().as_str()), (200, "version 1"));
}

#[tokio::test]
async fn with_the_servers_certificate_the_face_speaks_https() {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, identity.cert.pem()).expect("cert.pem");
    std::fs::write(&key, identity.signing_key.serialize_pem()).expect("key.pem");
    let http = Http::start(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .await;
    seed(&http.root, "secret.txt", b"over tls");
    let port = http
        .daemon
        .addr("http")
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let url = format!("https://localhost:{port}/secret.txt");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let cacert = cert.to_str().expect("utf-8");
    let get = curl(&["--resolve", &resolve, "--cacert", cacert], &url).await;
    assert_eq!((get.status, get.text().as_str()), (200, "over tls"));
    let plain = curl(&[], &format!("http://127.0.0.1:{port}/secret.txt")).await;
    assert_ne!(plain.status, 200, "plain HTTP gets nothing");
}

#[tokio::test]
async fn http_transfers_count_in_the_vital_signs() {
    let http = Http::open().await;
    let data = vec![b'x'; 50_000];
    seed(&http.root, "down.bin", &data);
    let frame = http.frame(None).await;
    let got = curl(&[], &http.url("/down.bin")).await;
    assert_eq!((got.status, got.body.len()), (200, data.len()));
    let info = frame.client().info().await.expect("info");
    let out = info.vital(vital::OUT).expect("out").value;
    assert!(out > 0.0, "the HTTP download counts: {out}");
    assert_eq!(info.vital(vital::IN).expect("in").value, 0.0);
    let file = http.root.join("down.bin");
    let put = curl(&["-T", &file.display().to_string()], &http.url("/up.bin")).await;
    assert!(put.status == 201 || put.status == 204, "{}", put.status);
    let info = frame.client().info().await.expect("info");
    assert!(
        info.vital(vital::IN).expect("in").value > 0.0,
        "the HTTP upload counts"
    );
}

#[tokio::test]
async fn an_address_over_its_connection_cap_is_refused_while_others_are_served() {
    let http = Http::start("max_connections_per_client = 2\n").await;
    let request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_http_face_caps_each_address(http.daemon.addr("http"), request).await;
}
