//! Client paths: parsed once into a normalised relative path, and resolved
//! only through the root's capability (`cap-std`), never through the ambient
//! filesystem.
//!
//! The string checks here refuse what is plainly wrong (NUL bytes and other
//! control characters, `..` above the root, our own temp names); a leading
//! `/` is the root. The
//! confinement itself
//! comes from `cap_std::fs::Dir`, which resolves every path beneath the root
//! directory handle (with `openat2(RESOLVE_BENEATH)` on Linux) and fails with
//! `PermissionDenied` when a symlink or `..` would lead out.

use std::fmt;
use std::io;

use backroom_frame::Error;
use cap_std::fs::Dir;

/// Names that start with this are the server's own temp files: hidden from
/// listings and refused in client paths.
pub const RESERVED_PREFIX: &str = ".backroom-";

/// The longest client path accepted, in bytes (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// A normalised path below the root: no empty, `.` or `..` components. The
/// root itself has no components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// The root directory.
    pub fn root() -> RelPath {
        RelPath { parts: Vec::new() }
    }

    /// Parses a client path, where a leading `/` is the root. `..` may climb
    /// back up inside the path but never above the root.
    pub fn parse(raw: &str) -> Result<RelPath, Error> {
        if raw.len() > MAX_PATH {
            return Err(Error::bad_request(format!(
                "a path may be at most {MAX_PATH} bytes"
            )));
        }
        if raw.contains('\0') {
            return Err(Error::bad_request("a path may not contain a NUL byte"));
        }
        // Refused rather than escaped: a name with a newline or an escape
        // sequence could forge lines in the log or in a terminal's listing.
        if raw.chars().any(char::is_control) {
            return Err(Error::bad_request(format!(
                "{raw:?} holds a control character, which names may not"
            )));
        }
        if raw.starts_with('\\') {
            return Err(Error::bad_request(format!(
                "{raw:?} starts with a backslash: separate paths with /"
            )));
        }
        let mut parts: Vec<String> = Vec::new();
        // A leading `/` names the served root, as FTP, SFTP and WebDAV
        // clients write it; it is one more empty component here.
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(Error::forbidden(format!("{raw:?} leads outside the root")));
                    }
                }
                name if name.starts_with(RESERVED_PREFIX) => {
                    return Err(Error::forbidden(format!(
                        "names starting with {RESERVED_PREFIX:?} are reserved for the server"
                    )));
                }
                name => parts.push(name.to_owned()),
            }
        }
        Ok(RelPath { parts })
    }

    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn components(&self) -> &[String] {
        &self.parts
    }

    /// The last component, or `""` for the root.
    pub fn name(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }

    /// The parent directory and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &str)> {
        let (last, rest) = self.parts.split_last()?;
        Some((
            RelPath {
                parts: rest.to_vec(),
            },
            last,
        ))
    }

    pub fn join(&self, name: &str) -> RelPath {
        let mut parts = self.parts.clone();
        parts.push(name.to_owned());
        RelPath { parts }
    }

    /// Whether `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.parts.starts_with(&other.parts)
    }

    /// The path as `cap-std` takes it: `.` for the root.
    pub fn as_fs(&self) -> String {
        if self.parts.is_empty() {
            ".".to_owned()
        } else {
            self.parts.join("/")
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("/"))
    }
}

/// Opens the directory that holds `path`'s last component, beneath `root`.
/// Mutations then act on (that directory, one plain name), so no later path
/// walk can be redirected by a symlink swapped in meanwhile.
pub fn open_parent<'a>(root: &Dir, path: &'a RelPath) -> Result<(Dir, &'a str), Error> {
    let Some((parent, name)) = path.split_last() else {
        return Err(Error::forbidden("the root itself cannot be changed"));
    };
    let dir = root
        .open_dir(parent.as_fs())
        .map_err(|e| fs_error(e, &parent))?;
    Ok((dir, name))
}

/// Turns a filesystem error into a protocol error that names the path.
pub fn fs_error(e: io::Error, path: &RelPath) -> Error {
    let shown = if path.is_root() {
        "/".to_owned()
    } else {
        path.to_string()
    };
    let kind = e.kind();
    let mut error = Error::from(e);
    error.code = match kind {
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::InvalidFilename
        | io::ErrorKind::CrossesDevices => backroom_frame::ErrorCode::BadRequest,
        io::ErrorKind::DirectoryNotEmpty => backroom_frame::ErrorCode::Conflict,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            backroom_frame::ErrorCode::TooLarge
        }
        _ => error.code,
    };
    error.message = match error.code {
        backroom_frame::ErrorCode::NotFound => format!("{shown} does not exist"),
        backroom_frame::ErrorCode::Conflict if kind == io::ErrorKind::AlreadyExists => {
            format!("{shown} already exists")
        }
        _ => format!("{shown}: {}", error.message),
    };
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use backroom_frame::ErrorCode;

    #[test]
    fn normal_paths_are_normalised() {
        assert_eq!(
            RelPath::parse("a//b/./c/").expect("ok").to_string(),
            "a/b/c"
        );
        assert_eq!(RelPath::parse("a/b/../c").expect("ok").to_string(), "a/c");
        assert!(RelPath::parse("").expect("root").is_root());
        assert!(RelPath::parse(".").expect("root").is_root());
        assert!(RelPath::parse("a/..").expect("root").is_root());
    }

    #[test]
    fn a_leading_slash_is_the_root() {
        let parse = |p: &str| RelPath::parse(p).expect(p).to_string();
        assert_eq!(parse("/docs/a.txt"), "docs/a.txt");
        assert_eq!(parse("//docs//a.txt"), "docs/a.txt");
        assert!(RelPath::parse("/").expect("root").is_root());
        assert!(RelPath::parse("/docs/..").expect("root").is_root());
    }

    #[test]
    fn escapes_backslashes_and_nul_bytes_are_refused() {
        let code = |p: &str| RelPath::parse(p).expect_err(p).code;
        assert_eq!(code("../x"), ErrorCode::Forbidden);
        assert_eq!(code("a/../../b"), ErrorCode::Forbidden);
        assert_eq!(code(".."), ErrorCode::Forbidden);
        assert_eq!(code("/.."), ErrorCode::Forbidden);
        assert_eq!(code("/../etc/passwd"), ErrorCode::Forbidden);
        assert_eq!(code("//a/../../etc"), ErrorCode::Forbidden);
        assert_eq!(code("/./../x"), ErrorCode::Forbidden);
        assert_eq!(code("\\etc\\passwd"), ErrorCode::BadRequest);
        assert_eq!(code("a\0b"), ErrorCode::BadRequest);
        assert_eq!(code(&"a/".repeat(3000)), ErrorCode::BadRequest);
    }

    #[test]
    fn control_characters_are_refused() {
        for raw in [
            "a\nb",
            "dir/x\r\n2026-01-01T00:00:00Z  INFO forged",
            "\x1b[2Jclear",
            "tab\there",
            "del\x7f",
            "c1\u{85}",
        ] {
            let err = RelPath::parse(raw).expect_err(raw);
            assert_eq!(err.code, ErrorCode::BadRequest, "{raw:?}");
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
        assert!(RelPath::parse("café/naïve ☃.txt").is_ok());
    }

    #[test]
    fn reserved_names_are_refused() {
        let err = RelPath::parse("dir/.backroom-tmp-1").expect_err("reserved");
        assert_eq!(err.code, ErrorCode::Forbidden);
    }

    #[test]
    fn an_encoded_slash_is_a_literal_name() {
        let path = RelPath::parse("..%2fetc%2fpasswd").expect("a plain name");
        assert_eq!(path.components(), ["..%2fetc%2fpasswd"]);
    }

    #[test]
    fn starts_with_compares_whole_components() {
        let ab = RelPath::parse("a/b").expect("ok");
        assert!(ab.starts_with(&RelPath::parse("a").expect("ok")));
        assert!(ab.starts_with(&RelPath::root()));
        assert!(
            !RelPath::parse("ab")
                .expect("ok")
                .starts_with(&RelPath::parse("a").expect("ok"))
        );
    }
}
