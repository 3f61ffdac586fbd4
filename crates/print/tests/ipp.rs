//! The IPP face of the real `backroom-print` binary, driven by CUPS's own
//! clients (`lp`, `lpstat`, `cancel`), its conformance tool `ipptool`, and
//! raw requests for what those clients never send.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use backroom_api::print::{JobState, ListArgs, PrintClient};
use backroom_daemon::testing::{Daemon, assert_http_face_caps_each_address};
use backroom_frame::auth::hash_token;
use common::{printed, printed_id, wait_for_state};
use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, IppVersion, Operation};
use ipp::parser::IppParser;
use ipp::reader::IppReader;
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// The binary with a `file:` printer `lp` writing to `<dir>/out`, its IPP
/// face on a free port, and `config` as its config file.
async fn start(dir: &Path, config: &str) -> Daemon {
    let file = dir.join("print.toml");
    std::fs::write(&file, format!("aging_secs = 0\n{config}")).expect("config");
    let mut print = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    print
        .arg("--spool")
        .arg(dir.join("spool"))
        .arg("--config")
        .arg(&file)
        .arg("--printer")
        .arg(format!("lp=file:{}", out(dir).display()))
        .args(["--listen", "127.0.0.1:0", "--ipp", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    Daemon::start(print, &["print", backroom_print::IPP_ANNOUNCE]).await
}

fn out(dir: &Path) -> PathBuf {
    dir.join("out")
}

fn ipp_addr(daemon: &Daemon) -> &str {
    daemon.addr(backroom_print::IPP_ANNOUNCE)
}

async fn client(daemon: &Daemon, token: Option<&str>) -> PrintClient {
    PrintClient::connect(daemon.addr("print"), token.map(str::to_owned))
        .await
        .expect("connect")
}

/// Runs one of CUPS's command-line tools and returns what it did.
async fn cups(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {tool} (apt-get install cups-client cups-ipp-utils): {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `lp`'s "request id is lp-7 (1 file(s))" as 7.
fn lp_job_id(output: &Output) -> u64 {
    assert!(
        output.status.success(),
        "lp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(output);
    text.split("lp-")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {text:?}"))
}

async fn lp(addr: &str, file: &Path, options: &[&str]) -> u64 {
    let mut args = vec!["-h", addr, "-d", "lp"];
    args.extend_from_slice(options);
    let file = file.to_str().expect("utf-8 path");
    args.push(file);
    lp_job_id(&cups("lp", &args).await)
}

fn document(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("document");
    path
}

async fn pending_order(c: &PrintClient) -> Vec<u64> {
    c.list(&ListArgs::default())
        .await
        .expect("list")
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Pending)
        .map(|j| j.id)
        .collect()
}

#[tokio::test]
async fn lp_queues_with_priority_and_lpstat_and_cancel_see_the_same_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon);
    let c = client(&daemon, None).await;
    c.pause("lp").await.expect("pause");
    let doc = document(dir.path(), "memo.txt", "hello from lp\n");
    let id = lp(addr, &doc, &["-o", "job-priority=90"]).await;
    let job = c.job(id).await.expect("the job is in the queue");
    assert_eq!((job.priority, job.state), (90, JobState::Pending));
    assert_eq!(job.name, "memo.txt");
    assert_eq!(job.size, 14);

    let jobs = stdout(&cups("lpstat", &["-h", addr, "-o"]).await);
    assert!(jobs.contains(&format!("lp-{id} ")), "lpstat -o: {jobs}");
    let printers = stdout(&cups("lpstat", &["-h", addr, "-p"]).await);
    assert!(printers.contains("printer lp "), "lpstat -p: {printers}");

    let cancelled = cups("cancel", &["-h", addr, &id.to_string()]).await;
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(c.job(id).await.expect("job").state, JobState::Cancelled);
    daemon.kill().await;
}

#[tokio::test]
async fn lp_q_on_a_pending_job_changes_the_dispatch_order_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon);
    let c = client(&daemon, None).await;
    c.pause("lp").await.expect("pause");
    let doc = document(dir.path(), "a.txt", "a");
    let low = lp(addr, &doc, &["-q", "10"]).await;
    let mid = lp(addr, &doc, &["-q", "50"]).await;
    assert_eq!(pending_order(&c).await, [mid, low]);
    let changed = cups("lp", &["-h", addr, "-i", &low.to_string(), "-q", "80"]).await;
    assert!(changed.status.success(), "{changed:?}");
    assert_eq!(c.job(low).await.expect("job").priority, 80);
    assert_eq!(pending_order(&c).await, [low, mid], "reordered at once");
    let (_, mut events) = c.watch().await.expect("watch");
    c.resume("lp").await.expect("resume");
    wait_for_state(&mut events, mid, JobState::Completed).await;
    let order: Vec<u64> = printed(&out(dir.path()))
        .iter()
        .map(|n| printed_id(n))
        .collect();
    assert_eq!(order, [low, mid]);
    daemon.kill().await;
}

#[tokio::test]
async fn five_ipp_jobs_to_a_paused_printer_print_in_priority_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon);
    let c = client(&daemon, None).await;
    // Paused and resumed over IPP, by a caller naming no user: the admin of
    // a server without users, as on the frame protocol.
    let pause = IppCall::new(Operation::PausePrinter, addr, "/printers/lp");
    assert_eq!(pause.send(addr).await.status, 0x0000);
    let doc = document(dir.path(), "page.txt", "page");
    let mut ids = Vec::new();
    for priority in [10, 90, 50, 90, 1] {
        ids.push(lp(addr, &doc, &["-q", &priority.to_string()]).await);
    }
    let (_, mut events) = c.watch().await.expect("watch");
    let resume = IppCall::new(Operation::ResumePrinter, addr, "/printers/lp");
    assert_eq!(resume.send(addr).await.status, 0x0000);
    wait_for_state(&mut events, ids[4], JobState::Completed).await;
    let order: Vec<u64> = printed(&out(dir.path()))
        .iter()
        .map(|n| printed_id(n))
        .collect();
    assert_eq!(order, [ids[1], ids[3], ids[2], ids[0], ids[4]]);
    daemon.kill().await;
}

/// Runs one of ipptool's standard test files against a fresh server and
/// returns its report when a test failed.
async fn ipptool(suite: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    // The suites name sample documents that Debian does not ship; the face
    // passes documents through unread, so placeholders print the same.
    let copy = dir.path().join(suite);
    std::fs::copy(Path::new("/usr/share/cups/ipptool").join(suite), &copy)
        .expect("ipptool's test files (apt-get install cups-ipp-utils)");
    if suite == "ipp-2.0.test" {
        let included = dir.path().join("ipp-1.1.test");
        std::fs::copy("/usr/share/cups/ipptool/ipp-1.1.test", included).expect("copy");
    }
    for sample in [
        "color.jpg",
        "gray.jpg",
        "document-a4.pdf",
        "document-a4.ps",
        "document-letter.pdf",
        "document-letter.ps",
    ] {
        document(dir.path(), sample, "placeholder");
    }
    let doc = document(dir.path(), "testfile.txt", "printed by ipptool\n");
    let uri = format!("ipp://{}/printers/lp", ipp_addr(&daemon));
    let output = cups(
        "ipptool",
        &[
            "-tI",
            "-f",
            doc.to_str().expect("utf-8"),
            &uri,
            copy.to_str().expect("utf-8"),
        ],
    )
    .await;
    daemon.kill().await;
    let report = stdout(&output);
    let failed = !output.status.success() || report.contains("[FAIL]");
    failed.then_some(report)
}

#[tokio::test]
async fn ipptool_get_printer_attributes_passes() {
    assert_eq!(ipptool("get-printer-attributes.test").await, None);
}

#[tokio::test]
async fn ipptool_print_job_passes() {
    assert_eq!(ipptool("print-job.test").await, None);
}

#[tokio::test]
async fn ipptool_ipp_1_1_passes() {
    assert_eq!(ipptool("ipp-1.1.test").await, None);
}

#[tokio::test]
async fn ipptool_ipp_2_0_passes() {
    assert_eq!(ipptool("ipp-2.0.test").await, None);
}

/// An IPP request built with the `ipp` crate, as a test sends it.
struct IppCall {
    request: IppRequestResponse,
    document: Vec<u8>,
    chunked: bool,
    basic: Option<String>,
}

/// What the face answered.
struct Answered {
    http: u16,
    status: u16,
    response: Option<IppRequestResponse>,
}

impl IppCall {
    fn new(operation: Operation, addr: &str, path: &str) -> IppCall {
        let uri = format!("ipp://{addr}{path}").parse().expect("uri");
        IppCall {
            request: IppRequestResponse::new(IppVersion::v1_1(), operation, Some(uri))
                .expect("request"),
            document: Vec::new(),
            chunked: false,
            basic: None,
        }
    }

    fn attr(mut self, tag: DelimiterTag, name: &str, value: IppValue) -> IppCall {
        let attribute = IppAttribute::with_name(name, value).expect("name");
        self.request.attributes_mut().add(tag, attribute);
        self
    }

    fn operation(self, name: &str, value: IppValue) -> IppCall {
        self.attr(DelimiterTag::OperationAttributes, name, value)
    }

    fn document(mut self, document: &[u8], chunked: bool) -> IppCall {
        self.document = document.to_vec();
        self.chunked = chunked;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.request.to_bytes().to_vec();
        bytes.extend_from_slice(&self.document);
        bytes
    }

    async fn send(&self, addr: &str) -> Answered {
        post(addr, &self.bytes(), self.chunked, self.basic.as_deref()).await
    }
}

/// POSTs `body` over a connection of its own and reads the whole answer.
async fn post(addr: &str, body: &[u8], chunked: bool, basic: Option<&str>) -> Answered {
    use base64::Engine;
    let mut head = format!(
        "POST /printers/lp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/ipp\r\n\
         Connection: close\r\n"
    );
    if let Some(credentials) = basic {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        head.push_str(&format!("Authorization: Basic {encoded}\r\n"));
    }
    let mut wire = Vec::new();
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        wire.extend_from_slice(head.as_bytes());
        for chunk in body.chunks(1000) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(body);
    }
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    // The face may answer before it has read everything; what it did not
    // read does not matter here.
    let _ = conn.write_all(&wire).await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
    let http: u16 = String::from_utf8_lossy(&answer[9..12])
        .parse()
        .expect("status");
    let body = answer[split + 4..].to_vec();
    if http != 200 {
        return Answered {
            http,
            status: 0xffff,
            response: None,
        };
    }
    let response = IppParser::new(IppReader::new(std::io::Cursor::new(body)))
        .parse()
        .expect("an IPP answer");
    Answered {
        http,
        status: response.header().operation_or_status as u16,
        response: Some(response),
    }
}

fn print_job(addr: &str, path: &str) -> IppCall {
    IppCall::new(Operation::PrintJob, addr, path)
        .operation(
            "requesting-user-name",
            IppValue::new_name_without_language("ann").expect("name"),
        )
        .operation(
            "job-name",
            IppValue::new_name_without_language("report").expect("name"),
        )
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_queues_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "ipp_max_document_bytes = 1000\n").await;
    let addr = ipp_addr(&daemon);
    let whole = print_job(addr, "/printers/lp")
        .document(b"ok", false)
        .bytes();

    let truncated = post(addr, &whole[..whole.len() / 2], false, None).await;
    assert_eq!(truncated.status, 0x0400, "client-error-bad-request");

    let mut wrong_version = whole.clone();
    wrong_version[0] = 9;
    let answered = post(addr, &wrong_version, false, None).await;
    assert_eq!(
        answered.status, 0x0503,
        "server-error-version-not-supported"
    );

    let mut unknown_operation = whole.clone();
    unknown_operation[2..4].copy_from_slice(&0x00ffu16.to_be_bytes());
    let answered = post(addr, &unknown_operation, false, None).await;
    assert_eq!(
        answered.status, 0x0501,
        "server-error-operation-not-supported"
    );

    let wrong_syntax = print_job(addr, "/printers/lp")
        .attr(
            DelimiterTag::JobAttributes,
            "job-priority",
            IppValue::new_keyword("high").expect("keyword"),
        )
        .document(b"ok", false);
    assert_eq!(wrong_syntax.send(addr).await.status, 0x0400);

    let out_of_range = print_job(addr, "/printers/lp")
        .attr(
            DelimiterTag::JobAttributes,
            "job-priority",
            IppValue::Integer(500),
        )
        .document(b"ok", false);
    let answered = out_of_range.send(addr).await;
    assert_eq!(
        answered.status, 0x040b,
        "attributes-or-values-not-supported"
    );
    let response = answered.response.expect("answer");
    let unsupported = response
        .attributes()
        .groups_of(DelimiterTag::UnsupportedAttributes)
        .next()
        .expect("the unsupported group");
    assert!(unsupported.get("job-priority").is_some());

    let long = vec![b'x'; 5000];
    for chunked in [false, true] {
        let too_long = print_job(addr, "/printers/lp").document(&long, chunked);
        let answered = too_long.send(addr).await;
        assert_eq!(answered.status, 0x0408, "too large, chunked: {chunked}");
    }

    let unknown_printer = print_job(addr, "/printers/nosuch").document(b"ok", false);
    assert_eq!(unknown_printer.send(addr).await.status, 0x0406);

    let unknown_format = print_job(addr, "/printers/lp")
        .operation(
            "document-format",
            IppValue::new_mime_media_type("image/x-nothing").expect("mime"),
        )
        .document(b"ok", false);
    assert_eq!(unknown_format.send(addr).await.status, 0x040a);

    let c = client(&daemon, None).await;
    let all = ListArgs {
        all: true,
        ..ListArgs::default()
    };
    assert_eq!(c.list(&all).await.expect("list").total, 0, "nothing queued");
    let docs = std::fs::read_dir(dir.path().join("spool/docs")).expect("docs");
    assert_eq!(docs.count(), 0, "no document left half-way");

    let fine = print_job(addr, "/ipp/print").document(&[b'y'; 1000], true);
    assert_eq!(fine.send(addr).await.status, 0x0000, "still serving");
    assert_eq!(c.list(&all).await.expect("list").total, 1);
    daemon.kill().await;
}

#[tokio::test]
async fn with_users_basic_auth_names_the_owner_and_rights_hold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = format!(
        "[[users]]\nname = \"ann\"\ntoken_sha256 = \"{}\"\nrole = \"read-write\"\n\
         [[users]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\nrole = \"read-write\"\n",
        hash_token("ann-token"),
        hash_token("bob-token")
    );
    let daemon = start(dir.path(), &users).await;
    let addr = ipp_addr(&daemon);

    let anonymous = print_job(addr, "/printers/lp").document(b"doc", false);
    assert_eq!(anonymous.send(addr).await.http, 401);
    let mut wrong = print_job(addr, "/printers/lp").document(b"doc", false);
    wrong.basic = Some("ann:bob-token".into());
    assert_eq!(
        wrong.send(addr).await.http,
        401,
        "a token is its user's only"
    );

    // requesting-user-name says ann; the token says bob, and wins.
    let mut as_bob = print_job(addr, "/printers/lp").document(b"doc", false);
    as_bob.basic = Some("bob:bob-token".into());
    let answered = as_bob.send(addr).await;
    assert_eq!(answered.status, 0x0000);
    let response = answered.response.expect("answer");
    let job_id = response
        .attributes()
        .groups_of(DelimiterTag::JobAttributes)
        .next()
        .and_then(|g| g.get("job-id"))
        .and_then(|a| a.value().as_integer().copied())
        .expect("job-id");
    let c = client(&daemon, Some("ann-token")).await;
    assert_eq!(c.job(job_id as u64).await.expect("job").owner, "bob");

    let mut cancel = IppCall::new(Operation::CancelJob, addr, &format!("/jobs/{job_id}"));
    cancel.basic = Some("ann:ann-token".into());
    assert_eq!(cancel.send(addr).await.status, 0x0403, "not ann's job");
    assert_ne!(
        c.job(job_id as u64).await.expect("job").state,
        JobState::Cancelled
    );
    daemon.kill().await;
}

/// A private cupsd with its own root, listening on `port`, killed on drop.
async fn private_cupsd(root: &Path, port: u16) -> tokio::process::Child {
    for folder in ["spool", "tmp", "cache", "state", "log"] {
        std::fs::create_dir_all(root.join(folder)).expect("cups folders");
    }
    let r = root.display();
    let files = format!(
        "ServerRoot {r}\nRequestRoot {r}/spool\nTempDir {r}/tmp\nCacheDir {r}/cache\n\
         StateDir {r}/state\nAccessLog {r}/log/access_log\nErrorLog {r}/log/error_log\n\
         PageLog {r}/log/page_log\nServerBin /usr/lib/cups\nDataDir /usr/share/cups\n\
         SystemGroup root\n"
    );
    // Anyone on loopback may do anything: this cupsd lives for one test.
    let conf = format!(
        "Listen 127.0.0.1:{port}\nLogLevel warn\nBrowsing No\nWebInterface No\n\
         <Location />\n  Order allow,deny\n  Allow all\n</Location>\n\
         <Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
    );
    std::fs::write(root.join("cups-files.conf"), files).expect("cups-files.conf");
    std::fs::write(root.join("cupsd.conf"), conf).expect("cupsd.conf");
    let child = Command::new("/usr/sbin/cupsd")
        .arg("-f")
        .arg("-c")
        .arg(root.join("cupsd.conf"))
        .arg("-s")
        .arg(root.join("cups-files.conf"))
        .kill_on_drop(true)
        .spawn()
        .expect("cupsd (apt-get install cups-daemon)");
    // cupsd -f announces nothing: it is ready when its port answers.
    let ready = async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), ready)
        .await
        .expect("cupsd listens in time");
    child
}

#[tokio::test]
async fn a_cups_queue_pointing_at_backroom_prints_through_its_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let c = client(&daemon, None).await;
    let (_, mut events) = c.watch().await.expect("watch");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let _cupsd = private_cupsd(&dir.path().join("cups"), port).await;
    let cups_addr = format!("127.0.0.1:{port}");
    let device = format!("ipp://{}/printers/lp", ipp_addr(&daemon));
    let added = cups(
        "lpadmin",
        &[
            "-h", &cups_addr, "-p", "office", "-E", "-v", &device, "-m", "raw",
        ],
    )
    .await;
    assert!(added.status.success(), "lpadmin: {added:?}");
    let doc = document(dir.path(), "letter.txt", "through the desktop path\n");
    let printed_through = cups(
        "lp",
        &[
            "-h",
            &cups_addr,
            "-d",
            "office",
            doc.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert!(printed_through.status.success(), "{printed_through:?}");
    // The first job of this backroom is 1, whoever sent it.
    wait_for_state(&mut events, 1, JobState::Completed).await;
    let names = printed(&out(dir.path()));
    assert_eq!(names.len(), 1);
    let body = std::fs::read(out(dir.path()).join(&names[0])).expect("printed");
    assert_eq!(body, b"through the desktop path\n");
    daemon.kill().await;
}

#[tokio::test]
async fn with_tls_the_face_speaks_ipps_to_ipptool() {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, identity.cert.pem()).expect("cert.pem");
    std::fs::write(&key, identity.signing_key.serialize_pem()).expect("key.pem");
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let daemon = start(dir.path(), &tls).await;
    let port = ipp_addr(&daemon)
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let uri = format!("ipps://localhost:{port}/printers/lp");
    // ipptool trusts a new self-signed certificate on first use, and keeps
    // what it trusts under $HOME: this test's own.
    let output = Command::new("ipptool")
        .args(["-tv", &uri, "get-printer-attributes.test"])
        .env("HOME", dir.path())
        .output()
        .await
        .expect("ipptool (apt-get install cups-ipp-utils)");
    let report = stdout(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(&format!("printer-uri-supported (uri) = {uri}")),
        "{report}"
    );
    assert!(report.contains("uri-security-supported (keyword) = tls"));
    daemon.kill().await;
}

fn user(name: &str) -> IppValue {
    IppValue::new_name_without_language(name).expect("name")
}

/// An operation on job `id` of printer lp, by `who`.
fn job_call(operation: Operation, addr: &str, id: u64, who: &str) -> IppCall {
    IppCall::new(operation, addr, "/printers/lp")
        .operation("job-id", IppValue::Integer(id as i32))
        .operation("requesting-user-name", user(who))
}

/// The job ids of an answer's job groups, in order.
fn job_ids(answered: &Answered) -> Vec<u64> {
    answered
        .response
        .as_ref()
        .expect("an IPP answer")
        .attributes()
        .groups_of(DelimiterTag::JobAttributes)
        .filter_map(|g| g.get("job-id"))
        .filter_map(|a| a.value().as_integer().map(|id| *id as u64))
        .collect()
}

async fn submit_as(addr: &str, who: &str) -> u64 {
    let answered = IppCall::new(Operation::PrintJob, addr, "/printers/lp")
        .operation("requesting-user-name", user(who))
        .document(b"page", false)
        .send(addr)
        .await;
    assert_eq!(answered.status, 0x0000);
    job_ids(&answered)[0]
}

async fn job_state(addr: &str, id: u64) -> i32 {
    let answered = job_call(Operation::GetJobAttributes, addr, id, "ann")
        .send(addr)
        .await;
    let response = answered.response.expect("answer");
    let group = response
        .attributes()
        .groups_of(DelimiterTag::JobAttributes)
        .next()
        .expect("job group");
    match group.get("job-state").map(|a| a.value()) {
        Some(IppValue::Enum(state)) => *state,
        other => panic!("no job-state: {other:?}"),
    }
}

#[tokio::test]
async fn get_jobs_filters_by_which_jobs_my_jobs_and_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon);
    client(&daemon, None)
        .await
        .pause("lp")
        .await
        .expect("pause");
    let first = submit_as(addr, "ann").await;
    let second = submit_as(addr, "ann").await;
    let bobs = submit_as(addr, "bob").await;
    let cancel = job_call(Operation::CancelJob, addr, first, "ann");
    assert_eq!(cancel.send(addr).await.status, 0x0000);

    let get_jobs = || {
        IppCall::new(Operation::GetJobs, addr, "/printers/lp")
            .operation("requesting-user-name", user("bob"))
    };
    let which = |w: &str| IppValue::new_keyword(w).expect("keyword");
    let default = get_jobs().send(addr).await;
    assert_eq!(job_ids(&default), [second, bobs]);
    let group = default.response.as_ref().expect("answer").attributes();
    let first_job = group
        .groups_of(DelimiterTag::JobAttributes)
        .next()
        .expect("a job");
    assert!(first_job.get("job-uri").is_some());
    assert!(
        first_job.get("job-name").is_none(),
        "only id and uri unless asked"
    );

    let completed = get_jobs().operation("which-jobs", which("completed"));
    assert_eq!(job_ids(&completed.send(addr).await), [first]);
    let all = get_jobs().operation("which-jobs", which("all"));
    assert_eq!(job_ids(&all.send(addr).await), [second, bobs, first]);
    let mine = get_jobs().operation("my-jobs", IppValue::Boolean(true));
    assert_eq!(job_ids(&mine.send(addr).await), [bobs]);
    let one = get_jobs().operation("limit", IppValue::Integer(1));
    assert_eq!(job_ids(&one.send(addr).await), [second]);
    daemon.kill().await;
}

#[tokio::test]
async fn hold_release_restart_and_set_job_attributes_change_the_shared_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon);
    let c = client(&daemon, None).await;
    c.pause("lp").await.expect("pause");
    let id = submit_as(addr, "ann").await;

    let hold = job_call(Operation::HoldJob, addr, id, "ann");
    assert_eq!(hold.send(addr).await.status, 0x0000);
    assert_eq!(job_state(addr, id).await, 4, "pending-held");
    assert_eq!(c.job(id).await.expect("job").state, JobState::Held);
    let release = job_call(Operation::ReleaseJob, addr, id, "ann");
    assert_eq!(release.send(addr).await.status, 0x0000);
    assert_eq!(job_state(addr, id).await, 3, "pending");

    let held = job_call(Operation::SetJobAttributes, addr, id, "ann")
        .attr(
            DelimiterTag::JobAttributes,
            "job-hold-until",
            IppValue::new_keyword("indefinite").expect("keyword"),
        )
        .attr(
            DelimiterTag::JobAttributes,
            "job-priority",
            IppValue::Integer(7),
        );
    assert_eq!(held.send(addr).await.status, 0x0000);
    let job = c.job(id).await.expect("job");
    assert_eq!((job.state, job.priority), (JobState::Held, 7));

    let not_bobs = job_call(Operation::SetJobAttributes, addr, id, "bob").attr(
        DelimiterTag::JobAttributes,
        "job-priority",
        IppValue::Integer(99),
    );
    assert_eq!(not_bobs.send(addr).await.status, 0x0403);
    assert_eq!(c.job(id).await.expect("job").priority, 7);

    c.cancel(id).await.expect("cancel");
    let restart = job_call(Operation::RestartJob, addr, id, "ann");
    assert_eq!(restart.send(addr).await.status, 0x0000);
    assert_eq!(c.job(id).await.expect("job").state, JobState::Pending);
    let again = job_call(Operation::SetJobAttributes, addr, 999, "ann").attr(
        DelimiterTag::JobAttributes,
        "job-priority",
        IppValue::Integer(5),
    );
    assert_eq!(again.send(addr).await.status, 0x0406, "no job 999");
    daemon.kill().await;
}

#[tokio::test]
async fn a_stalled_document_times_out_and_queues_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "idle_timeout_secs = 1\n").await;
    let addr = ipp_addr(&daemon);
    let head = print_job(addr, "/printers/lp")
        .document(b"the start", false)
        .bytes();
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /printers/lp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/ipp\r\n\
         Content-Length: {}\r\n\r\n",
        head.len() + 5000
    );
    conn.write_all(request.as_bytes()).await.expect("head");
    conn.write_all(&head)
        .await
        .expect("the start of the document");
    // And then nothing: the face gives up after the idle timeout and says so.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_to_end(&mut answer),
    );
    read.await.expect("answered in time").expect("read");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let body = &answer[split + 4..];
    assert_eq!(&body[2..4], &[0x04, 0x05], "client-error-timeout");
    let c = client(&daemon, None).await;
    let all = ListArgs {
        all: true,
        ..ListArgs::default()
    };
    assert_eq!(c.list(&all).await.expect("list").total, 0);
    let docs = std::fs::read_dir(dir.path().join("spool/docs")).expect("docs");
    assert_eq!(docs.count(), 0, "the partial document is gone");
    daemon.kill().await;
}

#[tokio::test]
async fn an_open_ipp_face_beyond_loopback_is_refused_before_it_is_announced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_backroom-print"))
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .args(["--listen", "127.0.0.1:0", "--ipp", "0.0.0.0:0"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(!stdout(&output).contains("listening ipp"), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
}

#[tokio::test]
async fn sigkill_keeps_every_acknowledged_ipp_job_and_drops_the_half_sent_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "").await;
    let addr = ipp_addr(&daemon).to_owned();
    client(&daemon, None)
        .await
        .pause("lp")
        .await
        .expect("pause");
    let doc = document(dir.path(), "kept.txt", "kept");
    let mut kept = Vec::new();
    for priority in [20, 80, 50] {
        kept.push(lp(&addr, &doc, &["-q", &priority.to_string()]).await);
    }
    // A fourth Print-Job whose document is still on its way.
    let head = print_job(&addr, "/printers/lp")
        .document(b"half", false)
        .bytes();
    let mut conn = TcpStream::connect(&addr).await.expect("connect");
    let request = format!(
        "POST /printers/lp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/ipp\r\n\
         Content-Length: {}\r\n\r\n",
        head.len() + 100_000
    );
    conn.write_all(request.as_bytes()).await.expect("head");
    conn.write_all(&head)
        .await
        .expect("the start of the document");
    // Killed once that document is in the spool, so that the restart has a
    // half-written file to clean up.
    let docs = dir.path().join("spool/docs");
    let spooling = async {
        while std::fs::read_dir(&docs).map_or(0, Iterator::count) < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), spooling)
        .await
        .expect("the fourth document is being spooled");
    daemon.kill().await;
    drop(conn);

    let daemon = start(dir.path(), "").await;
    let c = client(&daemon, None).await;
    let pending = pending_order(&c).await;
    assert_eq!(
        pending,
        [kept[1], kept[2], kept[0]],
        "kept, in priority order"
    );
    let docs = std::fs::read_dir(dir.path().join("spool/docs")).expect("docs");
    assert_eq!(
        docs.count(),
        3,
        "the half-sent document was removed at start"
    );
    let listed = stdout(&cups("lpstat", &["-h", ipp_addr(&daemon), "-o"]).await);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    daemon.kill().await;
}

#[tokio::test]
async fn an_address_over_its_connection_cap_is_refused_while_others_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start(dir.path(), "max_connections_per_client = 2\n").await;
    let request = "GET /printers/lp HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_http_face_caps_each_address(ipp_addr(&daemon), request).await;
}
