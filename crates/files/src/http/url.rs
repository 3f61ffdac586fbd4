//! Request targets to paths: the URL's path is percent-decoded once, then
//! checked before it reaches [`RelPath`], so that no encoding smuggles a
//! separator, a climb or a NUL past the checks.

use backroom_frame::Error;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::paths::RelPath;

/// What must be escaped in a path segment of a URL we write.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'\'');

/// A request's path: the file it names, and whether the URL ended in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: RelPath,
    pub slash: bool,
}

/// Decodes the path of a request target. Each segment is decoded once and
/// must then be valid UTF-8 (which refuses overlong forms), hold no `/` or
/// `\` (an encoded separator), and be neither `.` nor `..` (a climb, plain
/// or encoded). A double encoding decodes to a literal `%` name and stays
/// inside the root.
pub fn decode(raw: &str) -> Result<Target, Error> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(Error::bad_request("the request target must start with /"));
    };
    let mut names = Vec::new();
    for segment in rest.split('/') {
        let bytes: Vec<u8> = percent_decode_str(segment).collect();
        let name = String::from_utf8(bytes)
            .map_err(|_| Error::bad_request("a path segment is not valid UTF-8"))?;
        match name.as_str() {
            "" => {}
            "." | ".." => {
                return Err(Error::bad_request("a path may not hold . or .. segments"));
            }
            n if n.contains(['/', '\\']) => {
                return Err(Error::bad_request("a path segment may not hold / or \\"));
            }
            n => names.push(n.to_owned()),
        }
    }
    let path = RelPath::parse(&names.join("/"))?;
    if path.components().len() != names.len() {
        return Err(Error::bad_request("a path segment is not a plain name"));
    }
    Ok(Target {
        path,
        slash: raw.ends_with('/'),
    })
}

/// The URL path of `path`, each segment escaped; `dir` adds a trailing `/`.
pub fn encode(path: &RelPath, dir: bool) -> String {
    let mut out = String::from("/");
    for (i, part) in path.components().iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(part, SEGMENT));
    }
    if dir && !path.is_root() {
        out.push('/');
    }
    out
}

/// One escaped segment, for a link relative to its folder.
pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) {
        assert!(decode(raw).is_err(), "{raw} is refused");
    }

    #[test]
    fn the_traversal_corpus_is_refused() {
        for raw in [
            "/..",
            "/a/../..",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc",
            "/.%2e/x",
            "/a%2f..%2f..%2fetc",
            "/..%5c..%5cetc",
            "/..%5cwindows",
            "/a%00b",
            "/%c0%ae%c0%ae/etc",
            "/%c0%afetc",
            "/%e0%80%ae",
            "/a/%2e/b",
            "/.backroom-tmp-1",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn a_double_encoding_is_a_literal_name_inside_the_root() {
        let target = decode("/%252e%252e/%252fetc").expect("decodes");
        assert_eq!(target.path.components(), ["%2e%2e", "%2fetc"]);
    }

    #[test]
    fn names_round_trip_through_encode() {
        let target = decode("/caf%C3%A9/a%20b%3Fc%23d/").expect("decodes");
        assert_eq!(target.path.components(), ["café", "a b?c#d"]);
        assert!(target.slash);
        assert_eq!(decode(&encode(&target.path, true)).expect("again"), target);
    }
}
