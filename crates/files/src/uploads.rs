//! The register of interrupted resumable uploads: who started each one,
//! for which path, and when. It lets users list and abort their own uploads
//! (`uploads`, `abort_upload`), and quotas count the bytes they hold.
//!
//! The register is a hidden folder at the root, one small file per upload,
//! named by the upload's server id. A record lives exactly as long as its
//! upload's temp file: it is written when the upload starts and removed when
//! the temp file is committed or removed ([`crate::atomic::TempFile`] does
//! both). The startup sweep removes records whose temp file is gone.

use std::io;

use backroom_api::files::{UploadInfo, WriteMode};
use backroom_frame::Error;
use backroom_frame::auth::{Identity, Role};
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic::{self, TEMP_PREFIX};
use crate::paths::{RelPath, fs_error, open_parent};

/// The register's folder at the root; a reserved name, so no client can
/// reach it.
pub const REGISTER: &str = ".backroom-uploads";

/// What the register keeps of one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    owner: String,
    path: String,
    upload_id: String,
    mode: WriteMode,
    started_ms: i64,
}

/// The server id of the upload `upload_id` of `path`: stable, short, and
/// safe as a file name.
pub fn upload_key(path: &RelPath, upload_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(path.to_string().as_bytes());
    hash.update([0]);
    hash.update(upload_id.as_bytes());
    hash.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One upload's place in the register; [`Registered::forget`] removes it.
pub struct Registered {
    register: Dir,
    key: String,
}

impl Registered {
    /// Removes the record; one already gone is fine.
    pub fn forget(&self) {
        match self.register.remove_file(&self.key) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "cannot remove an upload's record")
            }
        }
    }
}

fn open_register(root: &Dir) -> io::Result<Dir> {
    match root.create_dir(REGISTER) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    root.open_dir(REGISTER)
}

/// Records a resumable upload that starts now.
pub fn record(
    root: &Dir,
    path: &RelPath,
    upload_id: &str,
    owner: &str,
    mode: WriteMode,
) -> io::Result<Registered> {
    let register = open_register(root)?;
    let key = upload_key(path, upload_id);
    let record = Record {
        owner: owner.to_owned(),
        path: path.to_string(),
        upload_id: upload_id.to_owned(),
        mode,
        started_ms: now_ms(),
    };
    // Written beside and renamed, so a crash never leaves half a record; the
    // startup sweep removes a temp name left behind.
    let temp = format!("{TEMP_PREFIX}{key}");
    register.write(&temp, backroom_frame::body::encode(&record))?;
    register.rename(&temp, &register, &key)?;
    Ok(Registered { register, key })
}

/// The register entry of an upload being resumed (written when it began).
pub fn registered(root: &Dir, path: &RelPath, upload_id: &str) -> io::Result<Registered> {
    Ok(Registered {
        register: open_register(root)?,
        key: upload_key(path, upload_id),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every record, with its key; unreadable ones are left out.
fn records(root: &Dir) -> io::Result<Vec<(String, Record)>> {
    let register = match root.open_dir(REGISTER) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in register.entries()? {
        let Ok(key) = entry?.file_name().into_string() else {
            continue;
        };
        if atomic::is_reserved(&key) {
            continue;
        }
        let Ok(bytes) = register.read(&key) else {
            continue;
        };
        if let Ok(record) = backroom_frame::body::decode::<Record>(&bytes) {
            found.push((key, record));
        }
    }
    Ok(found)
}

/// The bytes an upload's temp file holds; `None` once it is gone.
fn received(root: &Dir, record: &Record) -> Option<u64> {
    let path = RelPath::parse(&record.path).ok()?;
    let (dir, name) = open_parent(root, &path).ok()?;
    atomic::find_part(&dir, name, &record.upload_id)
        .ok()
        .map(|(_, received)| received)
}

/// The caller's interrupted uploads (an admin's: everyone's), by path.
/// Blocking.
pub fn list(root: &Dir, who: &Identity) -> Result<Vec<UploadInfo>, Error> {
    let mut uploads: Vec<UploadInfo> = records(root)
        .map_err(|e| fs_error(e, &RelPath::root()))?
        .into_iter()
        .filter(|(_, r)| who.role == Role::Admin || r.owner == who.user)
        .filter_map(|(id, r)| {
            let received = received(root, &r)?;
            Some(UploadInfo {
                id,
                path: r.path,
                upload_id: r.upload_id,
                owner: r.owner,
                mode: r.mode,
                received,
                started_ms: r.started_ms,
            })
        })
        .collect();
    uploads.sort_by(|a, b| (&a.path, &a.id).cmp(&(&b.path, &b.id)));
    Ok(uploads)
}

/// The path and client upload id of upload `id`, if the caller may abort
/// it: their own, or anyone's for an admin. Blocking.
pub fn find(root: &Dir, who: &Identity, id: &str) -> Result<(RelPath, String), Error> {
    let missing = || Error::not_found(format!("no interrupted upload {id:?}"));
    let record = records(root)
        .map_err(|e| fs_error(e, &RelPath::root()))?
        .into_iter()
        .find(|(key, _)| key == id)
        .map(|(_, record)| record)
        .ok_or_else(missing)?;
    if who.role != Role::Admin && record.owner != who.user {
        return Err(Error::forbidden(format!(
            "upload {id:?} belongs to {}",
            record.owner
        )));
    }
    let path = RelPath::parse(&record.path)?;
    Ok((path, record.upload_id))
}

/// Removes upload `upload_id` of `path`: its temp file and its record.
/// Blocking; the caller holds the upload's lock.
pub fn abort(root: &Dir, path: &RelPath, upload_id: &str) -> Result<(), Error> {
    let (dir, name) = open_parent(root, path)?;
    atomic::remove_parts(&dir, name, upload_id).map_err(|e| fs_error(e, path))?;
    registered(root, path, upload_id)
        .map_err(|e| fs_error(e, path))?
        .forget();
    Ok(())
}

/// The bytes that interrupted uploads hold under `under`, leaving out those
/// `running` says are in flight (they are charged as they go). Blocking.
pub fn held_under(root: &Dir, under: &RelPath, running: &dyn Fn(&str, &str) -> bool) -> u64 {
    let Ok(records) = records(root) else {
        return 0;
    };
    records
        .iter()
        .filter(|(_, r)| {
            RelPath::parse(&r.path).is_ok_and(|p| p.starts_with(under))
                && !running(&r.path, &r.upload_id)
        })
        .filter_map(|(_, r)| received(root, r))
        .sum()
}

/// Removes the records whose temp file is gone (expired, or lost in a
/// crash). Blocking; at startup.
pub fn prune(root: &Dir) -> io::Result<u64> {
    let mut removed = 0;
    for (key, record) in records(root)? {
        if received(root, &record).is_none() {
            open_register(root)?.remove_file(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_hex_and_depend_on_path_and_id() {
        let a = RelPath::parse("a/f").expect("path");
        let b = RelPath::parse("b/f").expect("path");
        let key = upload_key(&a, "u1");
        assert_eq!(key.len(), 24);
        assert!(key.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key, upload_key(&a, "u1"));
        assert_ne!(key, upload_key(&b, "u1"));
        assert_ne!(key, upload_key(&a, "u2"));
    }

    #[test]
    fn a_record_whose_temp_file_is_gone_is_pruned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).expect("root");
        let path = RelPath::parse("f.bin").expect("path");
        let kept = crate::atomic::TempFile::start_part(
            root.try_clone().expect("dir"),
            "f.bin",
            "kept",
            WriteMode::CreateNew,
        )
        .expect("part");
        drop(kept.registered(
            record(&root, &path, "kept", "ann", WriteMode::CreateNew).expect("record"),
        ));
        record(&root, &path, "expired", "ann", WriteMode::CreateNew).expect("record");
        assert_eq!(records(&root).expect("records").len(), 2);
        assert_eq!(prune(&root).expect("prune"), 1);
        let left = records(&root).expect("records");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.upload_id, "kept");
    }
}
