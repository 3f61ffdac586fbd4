//! Values of any size, written from an upload and read back as a stream
//! with SQLite's incremental blob I/O.

mod common;

use backroom_api::db::{BeginArgs, BlobArgs, BlobInfo, DbClient};
use backroom_frame::ErrorCode;
use bytes::Bytes;
use common::{READER, admin, connect, exec, scalar, start};

/// One value: table `f`, column `data`, the given rowid.
fn place(rowid: i64, bytes: Option<u64>) -> BlobArgs {
    BlobArgs {
        table: "f".into(),
        column: "data".into(),
        rowid,
        bytes,
        ..BlobArgs::default()
    }
}

async fn table(db: &DbClient) {
    exec(db, "CREATE TABLE f (id INTEGER PRIMARY KEY, data BLOB)").await;
    exec(db, "INSERT INTO f VALUES (1, x'00')").await;
}

/// Uploads `data` in pieces of 1 MiB, announcing `announced` bytes.
async fn upload(
    db: &DbClient,
    data: &[u8],
    announced: u64,
) -> Result<BlobInfo, backroom_frame::Error> {
    let mut call = db.blob_write(&place(1, Some(announced))).await?;
    for piece in data.chunks(1 << 20) {
        call.send(Bytes::copy_from_slice(piece)).await?;
    }
    call.finish().await
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_larger_than_a_frame_is_written_from_an_upload_and_read_back() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    table(&db).await;
    let size = db.client().welcome().limits.max_frame as usize + (3 << 20);
    let data = pattern(size);
    let info = upload(&db, &data, size as u64).await.expect("written");
    assert_eq!(info.bytes, size as u64);
    assert_eq!(
        scalar(&db, "SELECT length(data) FROM f WHERE id = 1").await,
        size as i64
    );
    let (head, stream) = db.blob_read(&place(1, None)).await.expect("read");
    assert_eq!(head.bytes, size as u64);
    let back = stream.collect(size + 1).await.expect("the bytes");
    assert!(back == data, "the value read back differs");
    server.stop().await;
}

#[tokio::test]
async fn a_short_upload_or_a_missing_row_changes_nothing() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    table(&db).await;
    let err = upload(&db, &pattern(1000), 2000).await.expect_err("short");
    assert_eq!(err.code, ErrorCode::BadRequest, "{err}");
    assert_eq!(scalar(&db, "SELECT length(data) FROM f").await, 1);
    let mut call = db.blob_write(&place(9, Some(10))).await.expect("starts");
    let _ = call.send(Bytes::from_static(b"0123456789")).await;
    let err = call.finish::<BlobInfo>().await.expect_err("no row 9");
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    let err = db.blob_read(&place(9, None)).await.err().expect("no row 9");
    assert!(err.message.contains("no such rowid"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_read_only_user_reads_blobs_but_cannot_write_them() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    table(&db).await;
    let reader = connect(&server, READER).await;
    let (head, stream) = reader.blob_read(&place(1, None)).await.expect("read");
    assert_eq!(head.bytes, 1);
    assert_eq!(stream.collect(10).await.expect("bytes"), [0]);
    let err = upload(&reader, b"x", 1).await.expect_err("refused");
    assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_blob_written_in_a_transaction_is_rolled_back_with_it() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    table(&db).await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    upload(&db, &pattern(5000), 5000).await.expect("written");
    let (head, _) = db
        .blob_read(&place(1, None))
        .await
        .expect("read in the transaction");
    assert_eq!(head.bytes, 5000);
    db.rollback().await.expect("rollback");
    assert_eq!(scalar(&db, "SELECT length(data) FROM f").await, 1);
    server.stop().await;
}
