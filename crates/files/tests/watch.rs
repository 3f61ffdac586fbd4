//! `watch`: changes made through the server and by other programs on disk.

mod common;

use std::time::Duration;

use backroom_api::files::{Change, ChangeKind, MoveArgs, Origin, WriteArgs, WriteMode};
use backroom_frame::ErrorCode;
use backroom_frame::client::Subscription;
use bytes::Bytes;
use common::TestServer;

/// The next change of `kind`, skipping others; fails after a generous bound
/// so a missing event fails the test instead of hanging it.
async fn next_of(sub: &mut Subscription<Change>, kind: ChangeKind) -> Change {
    let wait = async {
        loop {
            let change = sub.next().await.expect("open").expect("decodes");
            if change.kind == kind {
                return change;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind:?} event"))
}

#[tokio::test]
async fn watch_sees_changes_made_through_the_server() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.mkdir("w", false).await.expect("dir");
    let (head, mut sub) = c.watch("w").await.expect("watch");
    assert_eq!(head.path, "w");

    c.write_all(
        &WriteArgs::new("w/a.txt", WriteMode::CreateNew),
        Bytes::from_static(b"a"),
    )
    .await
    .expect("write");
    let created = next_of(&mut sub, ChangeKind::Created).await;
    assert_eq!(
        (created.path.as_str(), created.origin),
        ("w/a.txt", Origin::Server)
    );

    c.rename(&MoveArgs {
        from: "w/a.txt".into(),
        to: "w/b.txt".into(),
        overwrite: false,
    })
    .await
    .expect("rename");
    let renamed = next_of(&mut sub, ChangeKind::Renamed).await;
    assert_eq!(renamed.path, "w/a.txt");
    assert_eq!(renamed.to.as_deref(), Some("w/b.txt"));

    // Changes outside the watched path are not reported.
    c.mkdir("elsewhere", false).await.expect("other dir");
    c.remove("w/b.txt", false).await.expect("remove");
    let removed = next_of(&mut sub, ChangeKind::Removed).await;
    assert_eq!(removed.path, "w/b.txt");
}

#[tokio::test]
async fn watch_sees_an_external_touch_and_rm() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (head, mut sub) = c.watch("").await.expect("watch");
    assert!(head.disk, "the disk watcher could not start");
    let file = server.root.join("touched.txt");
    std::fs::File::create(&file).expect("touch");
    let created = next_of(&mut sub, ChangeKind::Created).await;
    assert_eq!(
        (created.path.as_str(), created.origin),
        ("touched.txt", Origin::Disk)
    );
    std::fs::remove_file(&file).expect("rm");
    let removed = next_of(&mut sub, ChangeKind::Removed).await;
    assert_eq!(
        (removed.path.as_str(), removed.origin),
        ("touched.txt", Origin::Disk)
    );
}

#[tokio::test]
async fn the_servers_temp_files_never_show_in_a_watch() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (_, mut sub) = c.watch("").await.expect("watch");
    c.write_all(
        &WriteArgs::new("up.bin", WriteMode::CreateNew),
        Bytes::from(vec![7u8; 300_000]),
    )
    .await
    .expect("write");
    // An external marker after the upload: every event before it is the
    // upload's, and none may name a temp file.
    std::fs::create_dir(server.root.join("marker")).expect("marker");
    loop {
        let change = next_of_any(&mut sub).await;
        assert!(!change.path.contains(".backroom-"), "{change:?}");
        if change.path == "marker" {
            break;
        }
    }
}

async fn next_of_any(sub: &mut Subscription<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("an event in time")
        .expect("open")
        .expect("decodes")
}

#[tokio::test]
async fn watching_a_missing_or_escaping_path_is_refused() {
    let server = TestServer::start().await;
    let c = server.client().await;
    assert_eq!(
        c.watch("nope").await.err().expect("missing").code,
        ErrorCode::NotFound
    );
    assert_eq!(
        c.watch("../").await.err().expect("escape").code,
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn a_watch_does_not_follow_a_symlink_out_of_the_root() {
    let server = TestServer::start().await;
    let outside = server.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    std::os::unix::fs::symlink(&outside, server.root.join("link")).expect("link");
    let c = server.client().await;
    let (_, mut sub) = c.watch("").await.expect("watch");
    std::fs::write(outside.join("private.txt"), "x").expect("outside write");
    std::fs::create_dir(server.root.join("marker")).expect("marker");
    loop {
        let change = next_of_any(&mut sub).await;
        assert!(!change.path.starts_with("link/"), "{change:?}");
        if change.path == "marker" {
            break;
        }
    }
}

#[tokio::test]
async fn a_watch_hides_what_the_watcher_may_not_read() {
    use backroom_files::rights::{Access, Rights, RuleConfig};
    let rules = [RuleConfig {
        path: "private".into(),
        users: vec!["rw".into()],
        access: Access::None,
    }];
    let server = TestServer::start_with(|c| {
        c.frame.auth = common::users().into();
        c.rights = Rights::new(&rules, &[]).expect("rules");
    })
    .await;
    std::fs::create_dir(server.root.join("private")).expect("dir");
    let rw = server.client_as("rw").await;
    let ann = server.client_as("ann").await;
    let (_, mut sub) = rw.watch("").await.expect("watch");
    ann.write_all(
        &WriteArgs::new("private/salaries", WriteMode::CreateNew),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("ann writes");
    ann.mkdir("public", false).await.expect("marker");
    let change = next_of_any(&mut sub).await;
    assert_eq!(change.path, "public", "{change:?}");
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_the_server_returns() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (_, mut sub) = c.watch("").await.expect("watch");
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("the server drains in time");
    let end = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("the watch ends");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
}

#[tokio::test]
async fn each_server_change_is_reported_once_with_no_disk_echo() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (head, mut sub) = c.watch("").await.expect("watch");
    assert!(head.disk, "the disk watcher could not start");
    c.mkdir("newdir", false).await.expect("mkdir");
    c.write_all(
        &WriteArgs::new("newdir/r2.pdf", WriteMode::CreateNew),
        Bytes::from(vec![1u8; 200_000]),
    )
    .await
    .expect("write");
    c.mkdir("gone/deep", true).await.expect("mkdir -p");
    c.write_all(
        &WriteArgs::new("gone/deep/x.txt", WriteMode::CreateNew),
        Bytes::from_static(b"x"),
    )
    .await
    .expect("write");
    c.remove("gone", true).await.expect("rm -r");
    // Every echo of the server's changes comes before this marker's event.
    std::fs::create_dir(server.root.join("marker")).expect("marker");
    let mut seen = Vec::new();
    loop {
        let change = next_of_any(&mut sub).await;
        if change.path == "marker" {
            break;
        }
        seen.push(change);
    }
    let from_disk: Vec<&Change> = seen
        .iter()
        .filter(|change| change.origin == Origin::Disk)
        .collect();
    assert!(from_disk.is_empty(), "echoes: {from_disk:?}");
    let kinds: Vec<(ChangeKind, &str)> = seen
        .iter()
        .filter(|change| change.origin == Origin::Server)
        .map(|change| (change.kind, change.path.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Created, "newdir"),
            (ChangeKind::Created, "newdir/r2.pdf"),
            (ChangeKind::Created, "gone"),
            (ChangeKind::Created, "gone/deep"),
            (ChangeKind::Created, "gone/deep/x.txt"),
            (ChangeKind::Removed, "gone"),
        ]
    );
}
