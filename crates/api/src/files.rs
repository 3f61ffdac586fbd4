//! The files service's messages and its typed client.
//!
//! Every path is relative to the server's root and uses `/` as separator.
//! Errors travel as protocol errors; `too_large` with a message starting
//! `quota exceeded` is a quota refusal.

use backroom_frame::client::{Client, ClientConfig, UploadCall};
use backroom_frame::error::Error;
use backroom_frame::stream::ByteStream;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The service name a files client asks for in `Hello`.
pub const SERVICE: &str = "files";
/// Where `backroom-files` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7701";
/// How many entries `list` returns when the caller sets no limit.
pub const DEFAULT_PAGE: u32 = 1000;

/// The names of the file server's vital signs in `info`, written once for
/// the server and its readers.
pub mod vital {
    /// Bytes received by uploads per second, over the last 5 s (both faces).
    pub const IN: &str = "in";
    /// Bytes sent by downloads per second, over the last 5 s (both faces).
    pub const OUT: &str = "out";
    /// Uploads and downloads running now.
    pub const TRANSFERS: &str = "transfers";
    /// Free bytes on the root's disk, for users other than root; an alert
    /// under 1 GiB or under 5% of the disk.
    pub const FREE: &str = "free";
}

/// The method names of this service, written once for client and server.
/// Each names its argument and answer types.
pub mod method {
    /// `ListArgs` → `Listing`.
    pub const LIST: &str = "list";
    /// `PathArgs` → `Entry`.
    pub const STAT: &str = "stat";
    /// `ReadArgs` → head `ReadHead`, then the bytes as a download.
    pub const READ: &str = "read";
    /// `WriteArgs` and the bytes as an upload → `Written`.
    pub const WRITE: &str = "write";
    /// `UploadStatusArgs` → `UploadStatus`.
    pub const UPLOAD_STATUS: &str = "upload_status";
    /// nothing → `Uploads`.
    pub const UPLOADS: &str = "uploads";
    /// `AbortUploadArgs` → nil.
    pub const ABORT_UPLOAD: &str = "abort_upload";
    /// `MkdirArgs` → nil.
    pub const MKDIR: &str = "mkdir";
    /// `RemoveArgs` → nil.
    pub const REMOVE: &str = "remove";
    /// `MoveArgs` → nil.
    pub const RENAME: &str = "rename";
    /// `MoveArgs` → nil: an alias of `rename`.
    pub const MOVE: &str = "move";
    /// `MoveArgs` → `Written`.
    pub const COPY: &str = "copy";
    /// `ChecksumArgs` → `Checksum`.
    pub const CHECKSUM: &str = "checksum";
    /// `FindArgs` → `FindResult`.
    pub const FIND: &str = "find";
    /// `PathArgs` → `Usage`.
    pub const DU: &str = "du";
    /// `PathArgs` → head `Watching`, then `Change` events.
    pub const WATCH: &str = "watch";
}

/// What a directory entry is. A symlink is reported as itself, not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One file or directory, as `list` and `stat` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The last component of the path (empty for the root itself).
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Modification time, in milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// The Unix permission bits, such as `0o644`.
    pub mode: u32,
}

/// Arguments of the requests that name one path: `stat`, `du`, `watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathArgs {
    pub path: String,
}

/// Arguments of `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListArgs {
    pub path: String,
    /// Only names that match this glob (`*.pdf`, `report-??.txt`).
    #[serde(default)]
    pub glob: Option<String>,
    /// Resume after this name: the `next` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many entries; 0 means [`DEFAULT_PAGE`].
    #[serde(default)]
    pub limit: u32,
}

/// One page of a directory, sorted by name (bytewise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Arguments of `read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadArgs {
    pub path: String,
    #[serde(default)]
    pub offset: u64,
    /// At most this many bytes; `None` reads to the end.
    #[serde(default)]
    pub length: Option<u64>,
}

/// The head of a `read`, sent before its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadHead {
    /// The whole file's size.
    pub size: u64,
    pub offset: u64,
    /// How many bytes follow.
    pub length: u64,
    pub modified_ms: i64,
}

/// How a `write` treats an existing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Fail with `conflict` if the target exists (checked again at commit).
    CreateNew,
    /// Replace the target atomically.
    Overwrite,
    /// Continue the interrupted upload `upload_id` at `offset`; it commits
    /// with the mode it was started with.
    Resume,
}

/// Arguments of `write`, whose bytes follow as the request's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteArgs {
    pub path: String,
    pub mode: WriteMode,
    /// Chosen by the client (1 to 64 of `A-Z a-z 0-9 _ -`) to make the upload
    /// resumable: an interrupted upload then keeps its received bytes.
    #[serde(default)]
    pub upload_id: Option<String>,
    /// Where the stream starts, for `resume`: at most what `upload_status`
    /// reported.
    #[serde(default)]
    pub offset: u64,
    /// The final size, if known: lets the server refuse an upload that is too
    /// large or over quota before any byte is sent.
    #[serde(default)]
    pub size: Option<u64>,
}

impl WriteArgs {
    /// A plain upload with the given mode.
    pub fn new(path: impl Into<String>, mode: WriteMode) -> WriteArgs {
        WriteArgs {
            path: path.into(),
            mode,
            upload_id: None,
            offset: 0,
            size: None,
        }
    }
}

/// The answer to a committed `write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub path: String,
    pub size: u64,
}

/// Arguments of `upload_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatusArgs {
    pub path: String,
    pub upload_id: String,
    /// Also digest the bytes received, so the client can check that they
    /// are its own file's first bytes before it resumes.
    #[serde(default)]
    pub digest: Option<Algorithm>,
}

/// How far an interrupted resumable upload got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// Bytes safely received: resume at this offset.
    pub received: u64,
    /// The mode the upload commits with.
    pub mode: WriteMode,
    /// The digest of the `received` bytes, when asked for: compare it with
    /// [`digest`] of the same prefix of the local file.
    #[serde(default)]
    pub digest: Option<String>,
}

/// One interrupted resumable upload, as `uploads` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    /// The server's name for it, which `abort_upload` takes.
    pub id: String,
    /// The target, relative to the root.
    pub path: String,
    /// The client's upload id.
    pub upload_id: String,
    /// The user who started it.
    pub owner: String,
    /// The mode it commits with.
    pub mode: WriteMode,
    /// Bytes received so far; they count against quotas.
    pub received: u64,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
}

/// The answer to `uploads`: the caller's own interrupted uploads (an
/// admin's: everyone's), sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploads {
    pub uploads: Vec<UploadInfo>,
}

/// Arguments of `abort_upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortUploadArgs {
    /// An [`UploadInfo::id`].
    pub id: String,
}

/// Arguments of `mkdir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirArgs {
    pub path: String,
    /// Create missing parents too, and succeed if the directory exists.
    #[serde(default)]
    pub parents: bool,
}

/// Arguments of `remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveArgs {
    pub path: String,
    /// Needed to remove a directory that is not empty.
    #[serde(default)]
    pub recursive: bool,
}

/// Arguments of `rename` (alias `move`) and `copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveArgs {
    pub from: String,
    pub to: String,
    /// Replace an existing `to`; otherwise that is a `conflict`.
    #[serde(default)]
    pub overwrite: bool,
}

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Sha256,
    Blake3,
}

/// Arguments of `checksum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumArgs {
    pub path: String,
    pub algorithm: Algorithm,
}

/// A file's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub hex: String,
    pub size: u64,
}

/// Arguments of `find`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindArgs {
    /// Where to search, recursively.
    pub path: String,
    /// A substring of the name, or with `glob` a glob matched against the
    /// name (or against the path below `path` when it holds a `/`).
    pub pattern: String,
    #[serde(default)]
    pub glob: bool,
    /// At most this many matches; 0 means 1000.
    #[serde(default)]
    pub limit: u32,
}

/// One match of `find`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Relative to the root.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
}

/// The answer to `find`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindResult {
    /// Sorted by path.
    pub matches: Vec<Found>,
    /// More matched than the limit allowed.
    pub truncated: bool,
}

/// The answer to `du`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The apparent size of every file in the subtree.
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
}

/// What happened to a path under a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Modified,
    Removed,
    Renamed,
    /// Events were lost because the watcher fell behind: list again.
    Overflow,
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A request to this server.
    Server,
    /// Another program, seen on disk.
    Disk,
}

/// One event of a `watch` subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Relative to the root; for `renamed`, the old path.
    pub path: String,
    /// The new path of a `renamed`.
    pub to: Option<String>,
    pub origin: Origin,
}

/// The acknowledgement of `watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watching {
    pub path: String,
    /// Whether changes by other programs are seen too (false when the
    /// platform watcher could not start).
    pub disk: bool,
}

/// Digests at most `limit` bytes of `reader` with `algorithm`: the lowercase
/// hex and the bytes read. The server's `checksum` and `upload_status` and a
/// client checking its own file use this one function, so both sides agree.
pub fn digest(
    reader: &mut impl std::io::Read,
    algorithm: Algorithm,
    limit: u64,
) -> std::io::Result<(String, u64)> {
    let mut buf = vec![0; 256 * 1024];
    let mut read = 0u64;
    let mut sha = sha2::Sha256::default();
    let mut b3 = blake3::Hasher::new();
    while read < limit {
        let want = usize::try_from(limit - read).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        read += n as u64;
        match algorithm {
            Algorithm::Sha256 => sha2::Digest::update(&mut sha, &buf[..n]),
            Algorithm::Blake3 => {
                b3.update(&buf[..n]);
            }
        }
    }
    let hex = match algorithm {
        Algorithm::Sha256 => sha2::Digest::finalize(sha)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Algorithm::Blake3 => b3.finalize().to_hex().to_string(),
    };
    Ok((hex, read))
}

/// A typed client of the files service.
#[derive(Debug, Clone)]
pub struct FilesClient {
    client: Client,
}

impl FilesClient {
    /// Connects to a files server.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<FilesClient, Error> {
        let mut config = ClientConfig::new(addr, SERVICE);
        config.token = token;
        FilesClient::connect_with(&config).await
    }

    /// Connects with a full client config (TLS, retries).
    pub async fn connect_with(config: &ClientConfig) -> Result<FilesClient, Error> {
        Client::connect(config)
            .await
            .map(|client| FilesClient { client })
    }

    /// The underlying protocol client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn list(&self, args: &ListArgs) -> Result<Listing, Error> {
        self.client.request(method::LIST, args).await
    }

    pub async fn stat(&self, path: &str) -> Result<Entry, Error> {
        self.client.request(method::STAT, &path_args(path)).await
    }

    /// Starts a download; read the bytes from the returned stream.
    pub async fn read(&self, args: &ReadArgs) -> Result<(ReadHead, ByteStream), Error> {
        self.client.download(method::READ, args).await
    }

    /// Reads a whole (small) file into memory.
    pub async fn read_all(&self, path: &str, limit: usize) -> Result<Vec<u8>, Error> {
        let args = ReadArgs {
            path: path.into(),
            ..ReadArgs::default()
        };
        let (_, stream) = self.read(&args).await?;
        stream.collect(limit).await
    }

    /// Starts an upload: `send` its bytes, then `finish::<Written>()`.
    pub async fn write(&self, args: &WriteArgs) -> Result<UploadCall, Error> {
        self.client.upload(method::WRITE, args).await
    }

    /// Uploads `data` in one call.
    pub async fn write_all(&self, args: &WriteArgs, data: Bytes) -> Result<Written, Error> {
        let mut upload = self.write(args).await?;
        upload.send(data).await?;
        upload.finish().await
    }

    /// How far an interrupted upload got, with the digest of its bytes if
    /// `digest` names an algorithm.
    pub async fn upload_status(
        &self,
        path: &str,
        upload_id: &str,
        digest: Option<Algorithm>,
    ) -> Result<UploadStatus, Error> {
        let args = UploadStatusArgs {
            path: path.into(),
            upload_id: upload_id.into(),
            digest,
        };
        self.client.request(method::UPLOAD_STATUS, &args).await
    }

    /// The caller's interrupted resumable uploads (an admin's: everyone's).
    pub async fn uploads(&self) -> Result<Uploads, Error> {
        self.client.request(method::UPLOADS, &()).await
    }

    /// Aborts an interrupted upload of the caller's (an admin: anyone's),
    /// removing its bytes.
    pub async fn abort_upload(&self, id: &str) -> Result<(), Error> {
        let args = AbortUploadArgs { id: id.into() };
        self.client.request(method::ABORT_UPLOAD, &args).await
    }

    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<(), Error> {
        let args = MkdirArgs {
            path: path.into(),
            parents,
        };
        self.client.request(method::MKDIR, &args).await
    }

    pub async fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        let args = RemoveArgs {
            path: path.into(),
            recursive,
        };
        self.client.request(method::REMOVE, &args).await
    }

    pub async fn rename(&self, args: &MoveArgs) -> Result<(), Error> {
        self.client.request(method::RENAME, args).await
    }

    pub async fn copy(&self, args: &MoveArgs) -> Result<Written, Error> {
        self.client.request(method::COPY, args).await
    }

    pub async fn checksum(&self, path: &str, algorithm: Algorithm) -> Result<Checksum, Error> {
        let args = ChecksumArgs {
            path: path.into(),
            algorithm,
        };
        self.client.request(method::CHECKSUM, &args).await
    }

    pub async fn find(&self, args: &FindArgs) -> Result<FindResult, Error> {
        self.client.request(method::FIND, args).await
    }

    pub async fn du(&self, path: &str) -> Result<Usage, Error> {
        self.client.request(method::DU, &path_args(path)).await
    }

    /// Subscribes to changes under `path`; the head is a [`Watching`].
    pub async fn watch(
        &self,
        path: &str,
    ) -> Result<(Watching, backroom_frame::client::Subscription<Change>), Error> {
        let sub = self
            .client
            .subscribe(method::WATCH, &path_args(path))
            .await?;
        let head = backroom_frame::body::decode(&sub.head)?;
        Ok((head, sub))
    }
}

fn path_args(path: &str) -> PathArgs {
    PathArgs { path: path.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_kinds_travel_as_snake_case_names() {
        let args = WriteArgs::new("a.txt", WriteMode::CreateNew);
        let body = backroom_frame::body::encode(&args);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("create_new"), "{body:02x?}");
        assert!(text.contains("upload_id"), "{body:02x?}");
        let back: WriteArgs = backroom_frame::body::decode(&body).expect("decodes");
        assert_eq!(back, args);
    }

    #[test]
    fn digest_stops_at_the_limit_and_knows_both_algorithms() {
        let data = b"hello world";
        let (sha, n) = digest(&mut &data[..], Algorithm::Sha256, 5).expect("digest");
        assert_eq!(n, 5);
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let (b3, n) = digest(&mut &data[..], Algorithm::Blake3, u64::MAX).expect("digest");
        assert_eq!(n, data.len() as u64);
        assert_eq!(b3, blake3::hash(data).to_hex().to_string());
    }

    #[test]
    fn optional_arguments_may_be_left_out() {
        #[derive(Serialize)]
        struct Minimal<'a> {
            path: &'a str,
        }
        let body = backroom_frame::body::encode(&Minimal { path: "d" });
        let list: ListArgs = backroom_frame::body::decode(&body).expect("list args");
        assert_eq!(list.limit, 0);
        assert!(list.glob.is_none());
        let read: ReadArgs = backroom_frame::body::decode(&body).expect("read args");
        assert_eq!((read.offset, read.length), (0, None));
    }
}
