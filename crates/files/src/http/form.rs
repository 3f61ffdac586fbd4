//! The listing's HTML forms: form-encoded fields and the names they carry.

use backroom_frame::Error;
use percent_encoding::percent_decode;

/// The largest form-encoded body read (a folder name and little else).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The value of `key` in an `application/x-www-form-urlencoded` body.
pub fn field(body: &[u8], key: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        let name = decode(parts.next()?)?;
        (name == key)
            .then(|| decode(parts.next().unwrap_or_default()))
            .flatten()
    })
}

fn decode(raw: &[u8]) -> Option<String> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A name a form gives for a new file or folder: one plain name, never a
/// path. Browsers send a file's own name, but some send the path it had on
/// the client's disk; only its last part is kept.
pub fn plain_name(raw: &str) -> Result<String, Error> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::bad_request(format!("{raw:?} is not a file name")));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        let body = b"other=1&folder=Q1+report%20%C3%A9";
        assert_eq!(field(body, "folder").as_deref(), Some("Q1 report é"));
        assert_eq!(field(body, "missing"), None);
    }

    #[test]
    fn only_the_last_part_of_a_name_is_kept_and_climbs_are_refused() {
        assert_eq!(plain_name("C:\\Users\\ann\\a.txt").expect("name"), "a.txt");
        assert_eq!(plain_name("../../etc/passwd").expect("name"), "passwd");
        assert!(plain_name("..").is_err());
        assert!(plain_name("a/").is_err());
    }
}
