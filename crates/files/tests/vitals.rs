//! The file server's vital signs in `info`: bytes in and out, transfers
//! running, free disk.

mod common;

use backroom_api::files::{ReadArgs, WriteArgs, WriteMode, vital};
use backroom_frame::server::Info;
use bytes::Bytes;
use common::{TestServer, pattern};

fn value(info: &Info, name: &str) -> f64 {
    info.vital(name)
        .unwrap_or_else(|| panic!("no vital sign {name} in {:?}", info.vitals))
        .value
}

#[tokio::test]
async fn uploads_and_downloads_move_bytes_in_and_out() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let before = c.client().info().await.expect("info");
    assert_eq!(value(&before, vital::IN), 0.0);
    assert_eq!(value(&before, vital::OUT), 0.0);
    assert!(
        value(&before, vital::FREE) > 0.0,
        "the root's disk has room"
    );
    let data = pattern(100_000, 3);
    c.write_all(
        &WriteArgs::new("a.bin", WriteMode::CreateNew),
        Bytes::from(data.clone()),
    )
    .await
    .expect("written");
    let uploaded = c.client().info().await.expect("info");
    assert!(value(&uploaded, vital::IN) > 0.0);
    assert_eq!(value(&uploaded, vital::OUT), 0.0);
    let read = c.read_all("a.bin", 1 << 20).await.expect("read");
    assert_eq!(read, data);
    let downloaded = c.client().info().await.expect("info");
    assert!(value(&downloaded, vital::OUT) > 0.0);
    server.stop().await;
}

#[tokio::test]
async fn a_download_in_progress_is_an_active_transfer() {
    let server = TestServer::start().await;
    std::fs::write(server.root.join("big.bin"), pattern(4 << 20, 5)).expect("seed");
    let c = server.client().await;
    let idle = c.client().info().await.expect("info");
    assert_eq!(value(&idle, vital::TRANSFERS), 0.0);
    let args = ReadArgs {
        path: "big.bin".into(),
        offset: 0,
        length: None,
    };
    // Four times the stream window: the download waits for credit that
    // this client, reading nothing, never gives.
    let (_head, stream) = c.read(&args).await.expect("read");
    let busy = c.client().info().await.expect("info");
    assert_eq!(value(&busy, vital::TRANSFERS), 1.0);
    drop(stream);
    server.stop().await;
}
