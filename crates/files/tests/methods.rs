//! Every method against a live server on loopback: the happy paths, the
//! modes and flags, and the bad inputs each must refuse with a typed error.

mod common;

use backroom_api::files::{
    Algorithm, FindArgs, Kind, ListArgs, MoveArgs, ReadArgs, WriteArgs, WriteMode, Written, method,
};
use backroom_frame::ErrorCode;
use bytes::Bytes;
use common::{TestServer, pattern, sha256_hex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn write_args(path: &str, mode: WriteMode) -> WriteArgs {
    WriteArgs::new(path, mode)
}

#[tokio::test]
async fn a_written_file_reads_back_with_its_stat() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let data = pattern(300_000, 1);
    let written = c
        .write_all(
            &write_args("a.bin", WriteMode::CreateNew),
            Bytes::from(data.clone()),
        )
        .await
        .expect("write");
    assert_eq!(written.size, 300_000);
    assert_eq!(c.read_all("a.bin", 1 << 20).await.expect("read"), data);
    let entry = c.stat("a.bin").await.expect("stat");
    assert_eq!(
        (entry.name.as_str(), entry.kind, entry.size),
        ("a.bin", Kind::File, 300_000)
    );
    assert!(entry.modified_ms > 0);
    assert_eq!(
        std::fs::read(server.root.join("a.bin")).expect("on disk"),
        data
    );
}

#[tokio::test]
async fn create_new_refuses_an_existing_file_and_overwrite_replaces_it() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let first = write_args("f.txt", WriteMode::CreateNew);
    c.write_all(&first, Bytes::from_static(b"one"))
        .await
        .expect("first");
    let err = c
        .write_all(&first, Bytes::from_static(b"two"))
        .await
        .expect_err("exists");
    assert_eq!(err.code, ErrorCode::Conflict);
    c.write_all(
        &write_args("f.txt", WriteMode::Overwrite),
        Bytes::from_static(b"three"),
    )
    .await
    .expect("overwrite");
    assert_eq!(c.read_all("f.txt", 100).await.expect("read"), b"three");
    let names: Vec<_> = std::fs::read_dir(&server.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["f.txt"], "no temp file is left behind");
}

#[tokio::test]
async fn ranges_read_the_middle_of_a_file() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let data = pattern(10_000, 2);
    c.write_all(
        &write_args("r.bin", WriteMode::CreateNew),
        Bytes::from(data.clone()),
    )
    .await
    .expect("write");
    let args = ReadArgs {
        path: "r.bin".into(),
        offset: 1000,
        length: Some(500),
    };
    let (head, stream) = c.read(&args).await.expect("read");
    assert_eq!((head.size, head.offset, head.length), (10_000, 1000, 500));
    assert_eq!(
        stream.collect(1 << 20).await.expect("bytes"),
        &data[1000..1500]
    );
    let beyond = ReadArgs {
        path: "r.bin".into(),
        offset: 10_001,
        length: None,
    };
    let err = c.read(&beyond).await.err().expect("beyond the end");
    assert_eq!(err.code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn a_range_across_several_read_blocks_arrives_whole_and_in_chunks() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // Read blocks are 1 MiB and chunks 128 KiB: a range that starts and
    // ends inside blocks, and spans three, checks the seams of both.
    let data = pattern((3 << 20) + 4321, 7);
    c.write_all(
        &write_args("blocks.bin", WriteMode::CreateNew),
        Bytes::from(data.clone()),
    )
    .await
    .expect("write");
    let (offset, length) = ((1 << 20) - 5, (2 << 20) + 9);
    let args = ReadArgs {
        path: "blocks.bin".into(),
        offset: offset as u64,
        length: Some(length as u64),
    };
    let (head, mut stream) = c.read(&args).await.expect("read");
    assert_eq!(head.length, length as u64);
    let mut got = Vec::new();
    while let Some(chunk) = stream.chunk().await.expect("chunk") {
        assert!(
            chunk.len() <= backroom_frame::stream::MAX_CHUNK,
            "a chunk of {} bytes",
            chunk.len()
        );
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), length);
    assert!(got == data[offset..offset + length], "the bytes differ");
}

#[tokio::test]
async fn a_download_interrupted_and_resumed_matches_the_checksum() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let data = pattern(3 << 20, 3);
    c.write_all(
        &write_args("big.bin", WriteMode::CreateNew),
        Bytes::from(data.clone()),
    )
    .await
    .expect("write");
    let args = ReadArgs {
        path: "big.bin".into(),
        ..ReadArgs::default()
    };
    let (_, mut stream) = c.read(&args).await.expect("read");
    let mut got = Vec::new();
    while got.len() < 1 << 20 {
        got.extend_from_slice(&stream.chunk().await.expect("chunk").expect("more"));
    }
    drop(stream);
    let rest = ReadArgs {
        path: "big.bin".into(),
        offset: got.len() as u64,
        length: None,
    };
    let (_, stream) = c.read(&rest).await.expect("resume");
    got.extend_from_slice(&stream.collect(8 << 20).await.expect("rest"));
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    let sum = c.checksum("big.bin", Algorithm::Sha256).await.expect("sum");
    assert_eq!(sum.hex, sha256_hex(&data));
}

#[tokio::test]
async fn an_upload_interrupted_and_resumed_matches_the_checksum() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let data = pattern(4 << 20, 4);
    let mut args = write_args("up.bin", WriteMode::CreateNew);
    args.upload_id = Some("upload-1".into());
    let mut upload = c.write(&args).await.expect("start");
    upload
        .send(Bytes::copy_from_slice(&data[..3 << 20]))
        .await
        .expect("send");
    drop(upload);

    let status = c
        .upload_status("up.bin", "upload-1", Some(Algorithm::Blake3))
        .await
        .expect("status");
    assert_eq!(status.mode, WriteMode::CreateNew);
    assert!(status.received <= 3 << 20, "{}", status.received);
    let prefix = &data[..status.received as usize];
    assert_eq!(
        status.digest,
        Some(blake3::hash(prefix).to_hex().to_string()),
        "the digest of exactly the bytes received"
    );
    let err = c.stat("up.bin").await.expect_err("not yet there");
    assert_eq!(err.code, ErrorCode::NotFound);

    let resume = WriteArgs {
        path: "up.bin".into(),
        mode: WriteMode::Resume,
        upload_id: Some("upload-1".into()),
        offset: status.received,
        size: Some(data.len() as u64),
    };
    let rest = Bytes::copy_from_slice(&data[status.received as usize..]);
    let written = c.write_all(&resume, rest).await.expect("resume");
    assert_eq!(written.size, data.len() as u64);
    let sum = c.checksum("up.bin", Algorithm::Blake3).await.expect("sum");
    assert_eq!(sum.hex, blake3::hash(&data).to_hex().to_string());
    let err = c
        .upload_status("up.bin", "upload-1", None)
        .await
        .expect_err("done");
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn an_upload_ended_short_keeps_exactly_its_bytes_across_write_blocks() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // Chunks are written to disk a megabyte at a time: what an upload sent
    // before it ended, block or not, must all be kept for the resume.
    let sent = (3 << 19) + 100;
    let data = pattern(sent, 5);
    let mut args = write_args("short.bin", WriteMode::CreateNew);
    args.upload_id = Some("short-1".into());
    args.size = Some(4 << 20);
    let ended = c.write_all(&args, Bytes::from(data.clone())).await;
    assert_eq!(ended.expect_err("ends short").code, ErrorCode::BadRequest);
    let status = c
        .upload_status("short.bin", "short-1", Some(Algorithm::Blake3))
        .await
        .expect("status");
    assert_eq!(status.received, sent as u64);
    assert_eq!(
        status.digest,
        Some(blake3::hash(&data).to_hex().to_string())
    );
}

#[tokio::test]
async fn resuming_beyond_what_was_received_is_refused() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let mut args = write_args("p.bin", WriteMode::Overwrite);
    args.upload_id = Some("u2".into());
    let mut upload = c.write(&args).await.expect("start");
    // More than two flow-control windows: once sent, the server has begun.
    upload
        .send(Bytes::from(pattern(3 << 20, 6)))
        .await
        .expect("send");
    drop(upload);
    let status = c.upload_status("p.bin", "u2", None).await.expect("status");
    let resume = WriteArgs {
        path: "p.bin".into(),
        mode: WriteMode::Resume,
        upload_id: Some("u2".into()),
        offset: status.received + 1,
        size: None,
    };
    let err = c
        .write_all(&resume, Bytes::from_static(b"x"))
        .await
        .expect_err("gap");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let unknown = WriteArgs {
        upload_id: Some("nope".into()),
        offset: 0,
        ..resume
    };
    let err = c
        .write_all(&unknown, Bytes::from_static(b"x"))
        .await
        .expect_err("no such upload");
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn bad_upload_ids_and_offsets_are_refused() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for id in ["", "../x", "a/b", &"x".repeat(65), "sp ace"] {
        let mut args = write_args("f", WriteMode::CreateNew);
        args.upload_id = Some(id.into());
        let err = c
            .write_all(&args, Bytes::from_static(b"x"))
            .await
            .expect_err(id);
        assert_eq!(err.code, ErrorCode::BadRequest, "{id:?}");
    }
    let mut args = write_args("f", WriteMode::CreateNew);
    args.offset = 5;
    let err = c
        .write_all(&args, Bytes::from_static(b"x"))
        .await
        .expect_err("offset without resume");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let resume = write_args("f", WriteMode::Resume);
    let err = c
        .write_all(&resume, Bytes::from_static(b"x"))
        .await
        .expect_err("resume without id");
    assert_eq!(err.code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn write_without_a_body_or_into_a_missing_directory_is_refused() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let args = write_args("f", WriteMode::CreateNew);
    let err = c
        .client()
        .request::<_, Written>(method::WRITE, &args)
        .await
        .expect_err("no stream");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = c
        .write_all(
            &write_args("no/such/dir/f", WriteMode::CreateNew),
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("no parent");
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn listing_is_sorted_paginated_filtered_and_hides_temp_files() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.mkdir("d", false).await.expect("mkdir");
    for name in ["c.txt", "a.txt", "b.pdf", "e.txt"] {
        std::fs::write(server.root.join("d").join(name), name).expect("seed");
    }
    std::fs::write(server.root.join("d/.backroom-tmp-9-9-9"), "half").expect("seed temp");
    std::fs::create_dir(server.root.join("d/sub")).expect("subdir");

    let mut args = ListArgs {
        path: "d".into(),
        limit: 2,
        ..ListArgs::default()
    };
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.list(&args).await.expect("list");
        pages += 1;
        names.extend(page.entries.iter().map(|e| e.name.clone()));
        match page.next {
            Some(next) => args.after = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["a.txt", "b.pdf", "c.txt", "e.txt", "sub"]);
    assert_eq!(pages, 3);

    let txt = ListArgs {
        path: "d".into(),
        glob: Some("*.txt".into()),
        ..ListArgs::default()
    };
    let page = c.list(&txt).await.expect("glob");
    let names: Vec<_> = page.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "c.txt", "e.txt"]);
    let sub = c
        .list(&ListArgs {
            path: "d".into(),
            glob: Some("sub".into()),
            ..ListArgs::default()
        })
        .await
        .expect("sub");
    assert_eq!(sub.entries[0].kind, Kind::Dir);

    let bad = ListArgs {
        path: "d".into(),
        glob: Some("[".into()),
        ..ListArgs::default()
    };
    assert_eq!(
        c.list(&bad).await.expect_err("bad glob").code,
        ErrorCode::BadRequest
    );
    let err = c
        .list(&ListArgs {
            path: "d/a.txt".into(),
            ..ListArgs::default()
        })
        .await
        .expect_err("not a dir");
    assert_ne!(err.code, ErrorCode::Internal, "{err}");
}

#[tokio::test]
async fn a_large_directory_pages_through_every_entry() {
    let server = TestServer::start().await;
    let dir = server.root.join("many");
    std::fs::create_dir_all(&dir).expect("dir");
    for i in 0..5000 {
        std::fs::write(dir.join(format!("f{i:05}")), b"").expect("seed");
    }
    let c = server.client().await;
    let mut args = ListArgs {
        path: "many".into(),
        ..ListArgs::default()
    };
    let mut seen = 0;
    let mut last = String::new();
    loop {
        let page = c.list(&args).await.expect("page");
        for e in &page.entries {
            assert!(e.name > last, "sorted");
            last.clone_from(&e.name);
            seen += 1;
        }
        match page.next {
            Some(next) => args.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, 5000);
}

#[tokio::test]
async fn mkdir_with_parents_and_remove_with_recursion() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let err = c.mkdir("x/y/z", false).await.expect_err("no parents");
    assert_eq!(err.code, ErrorCode::NotFound);
    c.mkdir("x/y/z", true).await.expect("parents");
    c.mkdir("x/y/z", true)
        .await
        .expect("idempotent with parents");
    assert_eq!(
        c.mkdir("x/y", false).await.expect_err("exists").code,
        ErrorCode::Conflict
    );
    c.write_all(
        &write_args("x/y/z/f", WriteMode::CreateNew),
        Bytes::from_static(b"f"),
    )
    .await
    .expect("write");
    let err = c.remove("x", false).await.expect_err("not empty");
    assert_eq!(err.code, ErrorCode::Conflict);
    c.remove("x", true).await.expect("recursive");
    assert!(!server.root.join("x").exists());
    assert_eq!(
        c.remove("x", true).await.expect_err("gone").code,
        ErrorCode::NotFound
    );
    assert_eq!(
        c.remove("", true).await.expect_err("root").code,
        ErrorCode::Forbidden
    );
    assert!(server.root.exists());
}

#[tokio::test]
async fn rename_and_copy_do_not_overwrite_unless_asked() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for (name, body) in [("a", "A"), ("b", "B")] {
        c.write_all(
            &write_args(name, WriteMode::CreateNew),
            Bytes::from_static(body.as_bytes()),
        )
        .await
        .expect("seed");
    }
    let mv = |from: &str, to: &str, overwrite| MoveArgs {
        from: from.into(),
        to: to.into(),
        overwrite,
    };
    assert_eq!(
        c.rename(&mv("a", "b", false))
            .await
            .expect_err("exists")
            .code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.copy(&mv("a", "b", false)).await.expect_err("exists").code,
        ErrorCode::Conflict
    );
    assert_eq!(c.read_all("b", 10).await.expect("b"), b"B");

    let copied = c.copy(&mv("a", "c", false)).await.expect("copy");
    assert_eq!(copied.size, 1);
    c.rename(&mv("c", "b", true)).await.expect("overwrite");
    assert_eq!(c.read_all("b", 10).await.expect("b"), b"A");
    assert_eq!(
        c.stat("c").await.expect_err("moved").code,
        ErrorCode::NotFound
    );
    c.copy(&mv("a", "b", true)).await.expect("copy over");

    c.mkdir("dir", false).await.expect("dir");
    c.rename(&mv("a", "dir/a", false))
        .await
        .expect("move into dir");
    let err = c
        .client()
        .request::<_, ()>(method::MOVE, &mv("dir", "dir/inner", false))
        .await
        .expect_err("into itself");
    assert_eq!(err.code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn checksums_are_sha256_and_blake3() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.write_all(
        &write_args("abc", WriteMode::CreateNew),
        Bytes::from_static(b"abc"),
    )
    .await
    .expect("write");
    let sha = c.checksum("abc", Algorithm::Sha256).await.expect("sha");
    assert_eq!(
        sha.hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let b3 = c.checksum("abc", Algorithm::Blake3).await.expect("b3");
    assert_eq!(b3.hex, blake3::hash(b"abc").to_hex().to_string());
    assert_eq!(b3.size, 3);
}

#[tokio::test]
async fn find_matches_substrings_and_globs_within_a_bound() {
    let server = TestServer::start().await;
    for p in [
        "a/report-1.txt",
        "a/b/report-2.txt",
        "a/b/notes.md",
        "c/report.pdf",
    ] {
        let path = server.root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, p).expect("seed");
    }
    let c = server.client().await;
    let find = |pattern: &str, glob, limit| FindArgs {
        path: "".into(),
        pattern: pattern.into(),
        glob,
        limit,
    };
    let found = c.find(&find("report", false, 0)).await.expect("find");
    let paths: Vec<_> = found.matches.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        paths,
        ["a/b/report-2.txt", "a/report-1.txt", "c/report.pdf"]
    );
    assert!(!found.truncated);
    let globbed = c.find(&find("*.txt", true, 0)).await.expect("glob");
    assert_eq!(globbed.matches.len(), 2);
    let bounded = c.find(&find("report", false, 1)).await.expect("bounded");
    assert_eq!(bounded.matches.len(), 1);
    assert!(bounded.truncated);
    let nested = c.find(&find("b/*.md", true, 0)).await.expect("path glob");
    assert!(
        nested.matches.is_empty(),
        "a path glob is anchored at the search root"
    );
    let under_a = FindArgs {
        path: "a".into(),
        ..find("b/*.md", true, 0)
    };
    assert_eq!(c.find(&under_a).await.expect("under a").matches.len(), 1);
    assert_eq!(
        c.find(&find("", false, 0)).await.expect_err("empty").code,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn du_sums_a_subtree() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.root.join("t/u")).expect("dirs");
    std::fs::write(server.root.join("t/a"), [0u8; 100]).expect("a");
    std::fs::write(server.root.join("t/u/b"), [0u8; 50]).expect("b");
    let c = server.client().await;
    let usage = c.du("t").await.expect("du");
    assert_eq!((usage.bytes, usage.files, usage.dirs), (150, 2, 2));
    let file = c.du("t/a").await.expect("du file");
    assert_eq!((file.bytes, file.files), (100, 1));
}

#[tokio::test]
async fn unknown_methods_and_garbage_bodies_get_typed_errors_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let err = c
        .client()
        .request::<_, ()>("format_disk", &())
        .await
        .expect_err("unknown");
    assert_eq!(err.code, ErrorCode::UnknownMethod);
    let err = c
        .client()
        .call(method::STAT, Bytes::from_static(&[0x92, 0x01, 0xc0]))
        .await
        .expect_err("an array, not a map");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("raw connect");
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n\xff\xfe garbage")
        .await
        .expect("garbage");
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink).await;
    let err = c
        .client()
        .request::<_, ()>(method::LIST, &42u64)
        .await
        .expect_err("wrong shape");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let huge = ListArgs {
        path: "".into(),
        limit: u32::MAX,
        ..ListArgs::default()
    };
    c.list(&huge).await.expect("a huge limit is capped");
    let long = "a/".repeat(5000);
    assert_eq!(
        c.stat(&long).await.expect_err("long").code,
        ErrorCode::BadRequest
    );
    assert!(c.stat("").await.expect("still serving").kind == Kind::Dir);
}

#[tokio::test]
async fn an_upload_must_match_its_declared_size() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let mut short = write_args("s", WriteMode::CreateNew);
    short.size = Some(10);
    let err = c
        .write_all(&short, Bytes::from_static(b"12345"))
        .await
        .expect_err("short");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let mut long = write_args("l", WriteMode::CreateNew);
    long.size = Some(3);
    let err = c
        .write_all(&long, Bytes::from_static(b"12345"))
        .await
        .expect_err("long");
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert_eq!(std::fs::read_dir(&server.root).expect("root").count(), 0);
    let mut exact = write_args("e", WriteMode::CreateNew);
    exact.size = Some(5);
    c.write_all(&exact, Bytes::from_static(b"12345"))
        .await
        .expect("exact");
}

#[tokio::test]
async fn a_directory_copies_whole_and_never_merges() {
    let server = TestServer::start().await;
    for (path, body) in [("src/a.txt", "A"), ("src/deep/b.txt", "BB")] {
        let path = server.root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, body).expect("seed");
    }
    std::os::unix::fs::symlink("a.txt", server.root.join("src/link")).expect("link");
    let c = server.client().await;
    let mv = |from: &str, to: &str| MoveArgs {
        from: from.into(),
        to: to.into(),
        overwrite: true,
    };
    let copied = c.copy(&mv("src", "dst")).await.expect("copy");
    assert_eq!(copied.size, 3);
    assert_eq!(c.read_all("dst/deep/b.txt", 10).await.expect("b"), b"BB");
    assert_eq!(
        c.read_all("dst/link", 10).await.expect("through the link"),
        b"A"
    );
    assert_eq!(
        c.copy(&mv("src", "dst")).await.expect_err("exists").code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.copy(&mv("src", "src/inner"))
            .await
            .expect_err("into itself")
            .code,
        ErrorCode::BadRequest
    );
    let names: std::collections::BTreeSet<_> = std::fs::read_dir(&server.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["dst", "src"],
        "no temp directory is left behind"
    );
}
