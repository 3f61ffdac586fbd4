//! Atomic file replacement: data goes to a temp file beside the target, which
//! is fsynced, renamed into place, and then the directory is fsynced. Readers
//! see the old file or the new one, never a part of one.

use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use backroom_api::files::{Algorithm, WriteMode};
use cap_std::fs::{Dir, File, OpenOptions};
use rustix::fs::RenameFlags;
use sha2::{Digest, Sha256};

use crate::paths::RESERVED_PREFIX;
use crate::uploads::Registered;

/// Temp files of uploads that cannot be resumed: removed at every startup.
pub const TEMP_PREFIX: &str = ".backroom-tmp-";
/// Temp files of resumable uploads: kept until resumed or expired.
pub const PART_PREFIX: &str = ".backroom-part-";

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A file being written beside its target. Dropped before `commit`, it
/// removes itself unless it belongs to a resumable upload.
pub struct TempFile {
    dir: Dir,
    temp: String,
    target: String,
    file: File,
    written: u64,
    keep_on_drop: bool,
    finished: bool,
    /// A resumable upload's record, removed with the temp file.
    registered: Option<Registered>,
}

/// The name of a resumable upload's temp file. It binds the upload id to the
/// target's name and records the mode the upload commits with.
pub fn part_name(target: &str, upload_id: &str, mode: WriteMode) -> String {
    let mut hash = Sha256::new();
    hash.update(target.as_bytes());
    hash.update([0]);
    hash.update(upload_id.as_bytes());
    let digest = hash.finalize();
    let tag = match mode {
        WriteMode::CreateNew => "n",
        WriteMode::Overwrite | WriteMode::Resume => "o",
    };
    let mut name = format!("{PART_PREFIX}{tag}-");
    for b in &digest[..12] {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Finds an interrupted resumable upload: its mode and the bytes it holds.
pub fn find_part(dir: &Dir, target: &str, upload_id: &str) -> io::Result<(WriteMode, u64)> {
    for mode in [WriteMode::CreateNew, WriteMode::Overwrite] {
        match dir.symlink_metadata(part_name(target, upload_id, mode)) {
            Ok(meta) => return Ok((mode, meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no interrupted upload {upload_id:?} for {target}"),
    ))
}

/// The digest of an interrupted resumable upload's bytes.
pub fn digest_part(
    dir: &Dir,
    target: &str,
    upload_id: &str,
    mode: WriteMode,
    algorithm: Algorithm,
) -> io::Result<String> {
    let mut file = dir.open(part_name(target, upload_id, mode))?;
    let (hex, _) = backroom_api::files::digest(&mut file, algorithm, u64::MAX)?;
    Ok(hex)
}

impl TempFile {
    /// A fresh temp file for an upload that will not be resumed.
    pub fn create(dir: Dir, target: &str) -> io::Result<TempFile> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let temp = format!("{TEMP_PREFIX}{}-{seq}-{nanos}", std::process::id());
            match dir.open_with(&temp, &options) {
                Ok(file) => return Ok(TempFile::new(dir, temp, target, file, 0, false)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The temp file of a resumable upload, started afresh (truncated).
    pub fn start_part(
        dir: Dir,
        target: &str,
        upload_id: &str,
        mode: WriteMode,
    ) -> io::Result<TempFile> {
        // A new start replaces an older attempt of either mode.
        remove_parts(&dir, target, upload_id)?;
        let temp = part_name(target, upload_id, mode);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        let file = dir.open_with(&temp, &options)?;
        Ok(TempFile::new(dir, temp, target, file, 0, true))
    }

    /// Reopens an interrupted resumable upload at `offset`, dropping whatever
    /// it holds beyond. Returns the mode it commits with.
    pub fn resume_part(
        dir: Dir,
        target: &str,
        upload_id: &str,
        offset: u64,
    ) -> io::Result<(TempFile, WriteMode)> {
        let (mode, held) = find_part(&dir, target, upload_id)?;
        if offset > held {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upload {upload_id:?} holds {held} bytes; cannot resume at {offset}"),
            ));
        }
        let temp = part_name(target, upload_id, mode);
        let mut file = dir.open_with(&temp, OpenOptions::new().write(true))?;
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok((TempFile::new(dir, temp, target, file, offset, true), mode))
    }

    fn new(
        dir: Dir,
        temp: String,
        target: &str,
        file: File,
        written: u64,
        keep_on_drop: bool,
    ) -> TempFile {
        TempFile {
            dir,
            temp,
            target: target.to_owned(),
            file,
            written,
            keep_on_drop,
            finished: false,
            registered: None,
        }
    }

    /// Ties a resumable upload's record to this temp file: it is removed
    /// when the file is committed or removed.
    pub fn registered(mut self, registered: Registered) -> TempFile {
        self.registered = Some(registered);
        self
    }

    /// Bytes in the temp file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Makes the data durable and puts it in place of the target. Without
    /// `replace`, an existing target (even one created meanwhile) is a
    /// conflict and the temp file stays for a resumable upload; data that
    /// cannot be synced is removed, resumable or not.
    pub fn commit(mut self, replace: bool) -> io::Result<u64> {
        if let Err(e) = self.file.sync_all() {
            // Bytes that cannot be made durable (a full disk) are not worth
            // resuming either: removed, so that their space is free.
            self.keep_on_drop = false;
            return Err(e);
        }
        if replace {
            rustix::fs::renameat(&self.dir, &self.temp, &self.dir, &self.target)?;
        } else {
            rename_noreplace(&self.dir, &self.temp, &self.dir, &self.target)?;
        }
        self.finished = true;
        sync_dir(&self.dir)?;
        Ok(self.written)
    }

    /// Removes the temp file now, resumable or not: a rollback.
    pub fn discard(mut self) {
        self.keep_on_drop = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.finished && self.keep_on_drop {
            return;
        }
        if let Some(registered) = &self.registered {
            registered.forget();
        }
        if self.finished {
            return;
        }
        if let Err(e) = self.dir.remove_file(&self.temp) {
            tracing::warn!(temp = %self.temp, error = %e, "cannot remove a temp file");
        }
    }
}

/// Removes the temp files of resumable upload `upload_id` of `target`, of
/// either mode; none there is fine.
pub fn remove_parts(dir: &Dir, target: &str, upload_id: &str) -> io::Result<()> {
    for mode in [WriteMode::CreateNew, WriteMode::Overwrite] {
        match dir.remove_file(part_name(target, upload_id, mode)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A directory being filled beside its final name. Dropped before `commit`,
/// it removes itself and everything in it.
pub struct TempDir {
    parent: Dir,
    name: String,
    dir: Dir,
    finished: bool,
}

impl TempDir {
    pub fn create(parent: &Dir) -> io::Result<TempDir> {
        loop {
            let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{}-{seq}-dir", std::process::id());
            match parent.create_dir(&name) {
                Ok(()) => {
                    let dir = parent.open_dir(&name)?;
                    return Ok(TempDir {
                        parent: parent.try_clone()?,
                        name,
                        dir,
                        finished: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Renames the directory to `target`, failing if that exists.
    pub fn commit(mut self, target: &str) -> io::Result<()> {
        rename_noreplace(&self.parent, &self.name, &self.parent, target)?;
        self.finished = true;
        sync_dir(&self.parent)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Err(e) = self.parent.remove_dir_all(&self.name) {
            tracing::warn!(temp = %self.name, error = %e, "cannot remove a temp directory");
        }
    }
}

/// Renames within or across directories, failing with `AlreadyExists` if the
/// destination exists. The check and the rename are one atomic step.
pub fn rename_noreplace(from_dir: &Dir, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: a hard link is just as atomic
        // for files (it fails on an existing name), then drop the old name.
        Err(rustix::io::Errno::INVAL) if !from_dir.symlink_metadata(from)?.is_dir() => {
            rustix::fs::linkat(from_dir, from, to_dir, to, rustix::fs::AtFlags::empty())?;
            from_dir.remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes a directory's entries (a rename, a new or removed name) durable.
pub fn sync_dir(dir: &Dir) -> io::Result<()> {
    // The `Dir` handle may be an `O_PATH` descriptor, which cannot fsync;
    // a plain read-only open of "." can.
    dir.open_with(".", OpenOptions::new().read(true))?
        .sync_all()
}

/// Whether a name is one of the server's temp files.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}
