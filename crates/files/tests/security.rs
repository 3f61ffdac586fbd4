//! Attacks and limits: paths that try to leave the root, roles, per-path
//! rules, quotas with rollback, upload size and transfers per connection.

mod common;

use backroom_api::files::{
    Algorithm, FindArgs, ListArgs, MoveArgs, ReadArgs, WriteArgs, WriteMode,
};
use backroom_files::rights::{Access, QuotaConfig, Rights, RuleConfig};
use backroom_frame::ErrorCode;
use bytes::Bytes;
use common::{TestServer, pattern, users};

/// The paths of the traversal test, plus a few more spellings. A
/// leading `/` is the root, so `/etc/passwd` is `etc/passwd` there (see
/// `symlinks_out_of_the_root_are_not_followed`).
const ESCAPES: [&str; 11] = [
    "../x",
    "a/../../b",
    "/../etc/passwd",
    "..",
    "./../secret.txt",
    "a\0b",
    "\\etc\\passwd",
    "/..",
    "/../secret.txt",
    "//a/../../secret.txt",
    "/./../root/../secret.txt",
];

/// Puts a secret beside the root, and symlinks inside the root that point at
/// it, at its directory and at /etc.
fn plant(server: &TestServer) -> std::path::PathBuf {
    let secret = server.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").expect("secret");
    std::fs::create_dir_all(&server.root).expect("root");
    std::os::unix::fs::symlink("/etc", server.root.join("etc")).expect("link");
    std::os::unix::fs::symlink(&secret, server.root.join("secret")).expect("link");
    std::os::unix::fs::symlink("..", server.root.join("up")).expect("link");
    secret
}

#[tokio::test]
async fn paths_that_leave_the_root_are_refused_for_every_method() {
    let server = TestServer::start().await;
    let secret = plant(&server);
    let c = server.client().await;
    for path in ESCAPES {
        let refused = |code: ErrorCode| {
            assert!(
                matches!(code, ErrorCode::Forbidden | ErrorCode::BadRequest),
                "{path:?} got {code}"
            );
        };
        refused(c.stat(path).await.expect_err(path).code);
        refused(c.read_all(path, 1 << 20).await.expect_err(path).code);
        refused(
            c.write_all(
                &WriteArgs::new(path, WriteMode::Overwrite),
                Bytes::from_static(b"pwned"),
            )
            .await
            .expect_err(path)
            .code,
        );
        refused(c.mkdir(path, true).await.expect_err(path).code);
        refused(c.remove(path, true).await.expect_err(path).code);
        refused(c.du(path).await.expect_err(path).code);
        let mv = MoveArgs {
            from: "x".into(),
            to: path.into(),
            overwrite: true,
        };
        refused(c.rename(&mv).await.expect_err(path).code);
        refused(c.copy(&mv).await.expect_err(path).code);
        refused(
            c.list(&ListArgs {
                path: path.into(),
                ..ListArgs::default()
            })
            .await
            .expect_err(path)
            .code,
        );
    }
    assert_eq!(
        std::fs::read_to_string(&secret).expect("intact"),
        "top secret"
    );
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_not_followed() {
    let server = TestServer::start().await;
    let secret = plant(&server);
    let c = server.client().await;
    for path in [
        "etc/passwd",
        "/etc/passwd",
        "secret",
        "/secret",
        "up/secret.txt",
        "/up/root/secret",
    ] {
        let err = c.read_all(path, 1 << 20).await.expect_err(path);
        assert_eq!(err.code, ErrorCode::Forbidden, "{path}: {err}");
        let err = c.checksum(path, Algorithm::Sha256).await.expect_err(path);
        assert_eq!(err.code, ErrorCode::Forbidden, "{path}: {err}");
    }
    for path in ["etc", "up"] {
        let err = c
            .list(&ListArgs {
                path: path.into(),
                ..ListArgs::default()
            })
            .await
            .expect_err(path);
        assert_eq!(err.code, ErrorCode::Forbidden, "{path}: {err}");
    }
    let err = c
        .write_all(
            &WriteArgs::new("up/evil.txt", WriteMode::CreateNew),
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("write through a link");
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert!(!server.dir.path().join("evil.txt").exists());

    // Overwriting the link replaces the link itself, never its target.
    c.write_all(
        &WriteArgs::new("secret", WriteMode::Overwrite),
        Bytes::from_static(b"mine"),
    )
    .await
    .expect("replace the link");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("intact"),
        "top secret"
    );
    // Removing a link removes the link, not what it points at.
    c.remove("etc", true).await.expect("remove the link");
    assert!(std::path::Path::new("/etc/passwd").exists());
    // A walk does not descend through links.
    let found = c
        .find(&FindArgs {
            path: "".into(),
            pattern: "passwd".into(),
            glob: false,
            limit: 0,
        })
        .await
        .expect("find");
    assert!(found.matches.is_empty());
}

#[tokio::test]
async fn symlinks_within_the_root_work() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.root.join("real")).expect("dir");
    std::fs::write(server.root.join("real/f"), "inside").expect("file");
    std::os::unix::fs::symlink("real", server.root.join("alias")).expect("link");
    let c = server.client().await;
    assert_eq!(c.read_all("alias/f", 100).await.expect("read"), b"inside");
}

#[tokio::test]
async fn a_leading_slash_names_the_served_root() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.mkdir("/docs", false).await.expect("mkdir /docs");
    c.write_all(
        &WriteArgs::new("/docs/a.txt", WriteMode::CreateNew),
        Bytes::from_static(b"rooted"),
    )
    .await
    .expect("write /docs/a.txt");
    assert_eq!(
        std::fs::read(server.root.join("docs/a.txt")).expect("on disk"),
        b"rooted"
    );
    assert_eq!(
        c.read_all("/docs/a.txt", 100).await.expect("read"),
        b"rooted"
    );
    assert_eq!(c.stat("/docs/a.txt").await.expect("stat").size, 6);
    let root = c
        .list(&ListArgs {
            path: "/".into(),
            ..ListArgs::default()
        })
        .await
        .expect("list /");
    let names: Vec<&str> = root.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["docs"]);
    let mv = MoveArgs {
        from: "/docs/a.txt".into(),
        to: "/b.txt".into(),
        overwrite: false,
    };
    c.rename(&mv).await.expect("rename between rooted paths");
    assert!(server.root.join("b.txt").exists());
}

#[tokio::test]
async fn an_absolute_symlink_is_refused_even_into_the_root() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.root.join("real")).expect("dir");
    std::fs::write(server.root.join("real/f"), "inside").expect("file");
    std::os::unix::fs::symlink(server.root.join("real"), server.root.join("absolute"))
        .expect("link");
    let c = server.client().await;
    let err = c
        .read_all("absolute/f", 100)
        .await
        .expect_err("an absolute link is not followed");
    assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
    let err = c
        .write_all(
            &WriteArgs::new("absolute/g", WriteMode::CreateNew),
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("nor written through");
    assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
    assert!(!server.root.join("real/g").exists());
    // The link itself is still there to see, and a relative one works.
    assert_eq!(
        c.stat("absolute").await.expect("stat").kind,
        backroom_api::files::Kind::Symlink
    );
    std::os::unix::fs::symlink("real", server.root.join("relative")).expect("link");
    assert_eq!(
        c.read_all("relative/f", 100).await.expect("read"),
        b"inside"
    );
}

#[tokio::test]
async fn an_encoded_slash_is_only_a_name() {
    let server = TestServer::start().await;
    let secret = plant(&server);
    let c = server.client().await;
    let err = c
        .read_all("..%2fsecret.txt", 100)
        .await
        .expect_err("no such file");
    assert_eq!(err.code, ErrorCode::NotFound);
    c.write_all(
        &WriteArgs::new("..%2fsecret.txt", WriteMode::CreateNew),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("a literal name inside the root");
    assert!(server.root.join("..%2fsecret.txt").exists());
    assert_eq!(
        std::fs::read_to_string(&secret).expect("intact"),
        "top secret"
    );
}

#[tokio::test]
async fn names_with_control_characters_are_refused_so_no_log_line_is_forged() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.write_all(
        &WriteArgs::new("plain.txt", WriteMode::CreateNew),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("a plain name");
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO backroom_files: wrote user=ann path=y";
    for name in [forged, "esc\x1b[31mred", "cr\rname"] {
        let err = c
            .write_all(
                &WriteArgs::new(name, WriteMode::CreateNew),
                Bytes::from_static(b"x"),
            )
            .await
            .expect_err(name);
        assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
        let err = c.mkdir(name, false).await.expect_err(name);
        assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
        for to_or_from in [(name, "plain.txt"), ("plain.txt", name)] {
            let mv = MoveArgs {
                from: to_or_from.0.into(),
                to: to_or_from.1.into(),
                overwrite: false,
            };
            let err = c.rename(&mv).await.expect_err(name);
            assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
            let err = c.copy(&mv).await.expect_err(name);
            assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
        }
    }
    let names: Vec<_> = std::fs::read_dir(&server.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["plain.txt"]);
}

#[tokio::test]
async fn the_servers_temp_names_are_out_of_reach() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let err = c
        .write_all(
            &WriteArgs::new(".backroom-part-n-00", WriteMode::CreateNew),
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("reserved");
    assert_eq!(err.code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_read_only_role_is_refused_every_write() {
    let server = TestServer::start_with(|c| c.frame.auth = users().into()).await;
    std::fs::write(server.root.join("f"), "data").expect("seed");
    let ro = server.client_as("ro").await;
    assert_eq!(ro.read_all("f", 100).await.expect("read"), b"data");
    let err = ro
        .write_all(
            &WriteArgs::new("g", WriteMode::CreateNew),
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("write");
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert!(err.message.contains("ro"), "{err}");
    assert_eq!(
        ro.mkdir("d", false).await.expect_err("mkdir").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ro.remove("f", false).await.expect_err("remove").code,
        ErrorCode::Forbidden
    );
    let mv = MoveArgs {
        from: "f".into(),
        to: "g".into(),
        overwrite: false,
    };
    assert_eq!(
        ro.rename(&mv).await.expect_err("rename").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ro.copy(&mv).await.expect_err("copy").code,
        ErrorCode::Forbidden
    );
    assert!(!server.root.join("g").exists());
    let rw = server.client_as("rw").await;
    rw.write_all(
        &WriteArgs::new("g", WriteMode::CreateNew),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("read-write may");
}

fn rule(path: &str, users: &[&str], access: Access) -> RuleConfig {
    RuleConfig {
        path: path.into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        access,
    }
}

#[tokio::test]
async fn per_path_rules_narrow_rights() {
    let rules = [
        rule("finance", &["*"], Access::None),
        rule("finance", &["ann"], Access::Write),
        rule("archive", &["rw"], Access::Read),
    ];
    let server = TestServer::start_with(|c| {
        c.frame.auth = users().into();
        c.rights = Rights::new(&rules, &[]).expect("rules");
    })
    .await;
    std::fs::create_dir_all(server.root.join("finance")).expect("dir");
    std::fs::create_dir_all(server.root.join("archive")).expect("dir");
    std::fs::write(server.root.join("finance/pay.csv"), "1").expect("seed");
    std::fs::write(server.root.join("archive/old.txt"), "old").expect("seed");

    let rw = server.client_as("rw").await;
    assert_eq!(
        rw.read_all("finance/pay.csv", 10)
            .await
            .expect_err("hidden")
            .code,
        ErrorCode::Forbidden
    );
    let root = rw.list(&ListArgs::default()).await.expect("list");
    let names: Vec<_> = root.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["archive"], "finance is hidden from rw");
    assert_eq!(
        rw.read_all("archive/old.txt", 10).await.expect("read"),
        b"old"
    );
    assert_eq!(
        rw.remove("archive/old.txt", false)
            .await
            .expect_err("read-only there")
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        rw.remove("", true)
            .await
            .expect_err("protected subtree")
            .code,
        ErrorCode::Forbidden
    );
    let loot = MoveArgs {
        from: "".into(),
        to: "loot".into(),
        overwrite: false,
    };
    assert_eq!(
        rw.copy(&loot)
            .await
            .expect_err("would copy finance out")
            .code,
        ErrorCode::Forbidden
    );
    let ann = server.client_as("ann").await;
    assert_eq!(
        ann.read_all("finance/pay.csv", 10).await.expect("ann"),
        b"1"
    );
}

#[tokio::test]
async fn going_over_quota_is_refused_and_the_partial_upload_rolled_back() {
    let quotas = [QuotaConfig {
        user: "rw".into(),
        path: "home".into(),
        bytes: 1 << 20,
    }];
    let server = TestServer::start_with(|c| {
        c.frame.auth = users().into();
        c.rights = Rights::new(&[], &quotas).expect("quotas");
    })
    .await;
    std::fs::create_dir_all(server.root.join("home")).expect("home");
    std::fs::write(server.root.join("home/old"), vec![0u8; 600_000]).expect("seed");
    let rw = server.client_as("rw").await;

    // Declared up front: refused before a byte moves.
    let mut declared = WriteArgs::new("home/big", WriteMode::CreateNew);
    declared.size = Some(2 << 20);
    let err = rw
        .write_all(&declared, Bytes::from_static(b"x"))
        .await
        .expect_err("declared too big");
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert!(err.message.starts_with("quota exceeded"), "{err}");

    // Not declared: refused mid-stream, and the resumable part is gone too.
    let mut args = WriteArgs::new("home/big", WriteMode::CreateNew);
    args.upload_id = Some("q".into());
    let mut upload = rw.write(&args).await.expect("start");
    let err = match upload.send(Bytes::from(pattern(2 << 20, 5))).await {
        Err(e) => e,
        Ok(()) => upload
            .finish::<backroom_api::files::Written>()
            .await
            .expect_err("over quota"),
    };
    assert_eq!(err.code, ErrorCode::TooLarge, "{err}");
    assert!(err.message.contains("quota"), "{err}");
    let left: Vec<_> = std::fs::read_dir(server.root.join("home"))
        .expect("home")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["old"], "rolled back");
    assert_eq!(
        rw.upload_status("home/big", "q", None)
            .await
            .expect_err("gone")
            .code,
        ErrorCode::NotFound
    );

    // Within the quota, and outside the quota's path, writes go through.
    rw.write_all(
        &WriteArgs::new("home/small", WriteMode::CreateNew),
        Bytes::from(vec![1u8; 400_000]),
    )
    .await
    .expect("fits");
    rw.write_all(
        &WriteArgs::new("elsewhere", WriteMode::CreateNew),
        Bytes::from(vec![1u8; 2 << 20]),
    )
    .await
    .expect("not under the quota");
    // Replacing a file only counts the difference.
    rw.write_all(
        &WriteArgs::new("home/old", WriteMode::Overwrite),
        Bytes::from(vec![1u8; 600_000]),
    )
    .await
    .expect("same size");
    // Copies and moves into the quota count too.
    let copy = MoveArgs {
        from: "elsewhere".into(),
        to: "home/copy".into(),
        overwrite: false,
    };
    let err = rw.copy(&copy).await.expect_err("copy over quota");
    assert_eq!(err.code, ErrorCode::TooLarge);
    let err = rw.rename(&copy).await.expect_err("move over quota");
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert!(server.root.join("elsewhere").exists());
}

#[tokio::test]
async fn uploads_over_the_size_limit_are_refused_and_removed() {
    let server = TestServer::start_with(|c| c.limits.max_upload_bytes = Some(100_000)).await;
    let c = server.client().await;
    let mut declared = WriteArgs::new("f", WriteMode::CreateNew);
    declared.size = Some(100_001);
    assert_eq!(
        c.write_all(&declared, Bytes::from_static(b"x"))
            .await
            .expect_err("declared")
            .code,
        ErrorCode::TooLarge
    );
    let err = c
        .write_all(
            &WriteArgs::new("f", WriteMode::CreateNew),
            Bytes::from(vec![0u8; 200_000]),
        )
        .await
        .expect_err("streamed");
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert_eq!(std::fs::read_dir(&server.root).expect("root").count(), 0);
    c.write_all(
        &WriteArgs::new("f", WriteMode::CreateNew),
        Bytes::from(vec![0u8; 100_000]),
    )
    .await
    .expect("at the limit");
}

#[tokio::test]
async fn transfers_per_connection_are_capped() {
    let server = TestServer::start_with(|c| c.limits.max_transfers_per_connection = 2).await;
    std::fs::create_dir_all(&server.root).expect("root");
    std::fs::write(server.root.join("big"), vec![0u8; 8 << 20]).expect("seed");
    let c = server.client().await;
    let args = ReadArgs {
        path: "big".into(),
        ..ReadArgs::default()
    };
    let (_, first) = c.read(&args).await.expect("first");
    let (_, second) = c.read(&args).await.expect("second");
    let err = c.read(&args).await.err().expect("third");
    assert_eq!(err.code, ErrorCode::Busy);
    let other = server.client().await;
    let (_, elsewhere) = other.read(&args).await.expect("another connection");
    drop(elsewhere);
    // Reading one to its end frees its slot.
    assert_eq!(first.collect(16 << 20).await.expect("all").len(), 8 << 20);
    let (_, third) = c.read(&args).await.expect("a slot is free again");
    drop((second, third));
}

/// Starts a resumable upload that declares `declared` bytes and ends after
/// `sent`: the server keeps exactly `sent` bytes for a resume.
async fn interrupted(
    c: &backroom_api::files::FilesClient,
    path: &str,
    id: &str,
    sent: usize,
    declared: u64,
) {
    let mut args = WriteArgs::new(path, WriteMode::CreateNew);
    args.upload_id = Some(id.into());
    args.size = Some(declared);
    let ended = c.write_all(&args, Bytes::from(pattern(sent, 3))).await;
    assert!(ended.is_err(), "ends short: {ended:?}");
}

#[tokio::test]
async fn users_list_and_abort_their_own_interrupted_uploads() {
    let server = TestServer::start_with(|c| c.frame.auth = users().into()).await;
    let (ann, rw, ro) = (
        server.client_as("ann").await,
        server.client_as("rw").await,
        server.client_as("ro").await,
    );
    interrupted(&rw, "/docs-of-rw.bin", "u1", 600, 1000).await;
    interrupted(&ann, "ann.bin", "u1", 100, 1000).await;

    let mine = rw.uploads().await.expect("uploads").uploads;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let upload = &mine[0];
    assert_eq!(
        (
            upload.path.as_str(),
            upload.upload_id.as_str(),
            upload.owner.as_str()
        ),
        ("docs-of-rw.bin", "u1", "rw")
    );
    assert_eq!((upload.received, upload.mode), (600, WriteMode::CreateNew));
    assert!(ro.uploads().await.expect("uploads").uploads.is_empty());
    assert_eq!(
        ann.uploads().await.expect("uploads").uploads.len(),
        2,
        "an admin sees all"
    );

    let anns = ann.uploads().await.expect("uploads").uploads;
    let anns = anns.iter().find(|u| u.owner == "ann").expect("ann's");
    let err = rw.abort_upload(&anns.id).await.expect_err("not rw's");
    assert_eq!(err.code, ErrorCode::Forbidden);
    let err = ro.abort_upload(&upload.id).await.expect_err("not ro's");
    assert_eq!(err.code, ErrorCode::Forbidden);

    rw.abort_upload(&upload.id).await.expect("abort");
    assert!(rw.uploads().await.expect("uploads").uploads.is_empty());
    let err = rw
        .upload_status("docs-of-rw.bin", "u1", None)
        .await
        .expect_err("gone");
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = rw.abort_upload(&upload.id).await.expect_err("twice");
    assert_eq!(err.code, ErrorCode::NotFound);

    // An upload resumed to its end leaves the list too.
    let resume = WriteArgs {
        path: "ann.bin".into(),
        mode: WriteMode::Resume,
        upload_id: Some("u1".into()),
        offset: 100,
        size: Some(1000),
    };
    ann.write_all(&resume, Bytes::from(vec![0; 900]))
        .await
        .expect("resumed");
    assert!(ann.uploads().await.expect("uploads").uploads.is_empty());
    let on_disk: Vec<_> = std::fs::read_dir(&server.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n != ".backroom-uploads")
        .collect();
    assert_eq!(on_disk, ["ann.bin"], "no part left behind");
}

#[tokio::test]
async fn interrupted_uploads_count_against_the_quota_until_aborted() {
    let quotas = [QuotaConfig {
        user: "rw".into(),
        path: "home".into(),
        bytes: 1000,
    }];
    let server = TestServer::start_with(|c| {
        c.frame.auth = users().into();
        c.rights = Rights::new(&[], &quotas).expect("quotas");
    })
    .await;
    std::fs::create_dir_all(server.root.join("home")).expect("home");
    let rw = server.client_as("rw").await;
    interrupted(&rw, "home/a.bin", "a", 800, 900).await;

    let small = WriteArgs::new("home/b.bin", WriteMode::CreateNew);
    let err = rw
        .write_all(&small, Bytes::from(vec![0; 300]))
        .await
        .expect_err("800 held + 300 > 1000");
    assert_eq!(err.code, ErrorCode::TooLarge, "{err}");
    assert!(err.message.starts_with("quota exceeded"), "{err}");

    let id = rw.uploads().await.expect("uploads").uploads[0].id.clone();
    rw.abort_upload(&id).await.expect("abort");
    rw.write_all(&small, Bytes::from(vec![0; 300]))
        .await
        .expect("fits once the part is gone");
}
