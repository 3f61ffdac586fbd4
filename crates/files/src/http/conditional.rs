//! Validators, conditional requests and ranges (RFC 9110 §8.8, §13, §14):
//! pure functions of the request's headers and the file's state, so that
//! each rule is tested without a socket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// A strong entity tag, quotes included. Every write commits a new
    /// file by rename, so the inode changes with the contents.
    pub etag: String,
    /// Whole seconds, as `Last-Modified` carries them.
    pub modified: SystemTime,
}

impl Validators {
    pub fn new(ino: u64, size: u64, modified_ms: i64) -> Validators {
        let ms = u64::try_from(modified_ms).unwrap_or(0);
        Validators {
            etag: format!("\"{ino:x}-{size:x}-{ms:x}\""),
            modified: UNIX_EPOCH + Duration::from_secs(ms / 1000),
        }
    }

    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition failed.
    Failed,
}

fn header<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a list of entity tags (or `*`) names `current`. `weak` compares
/// with the `W/` prefix ignored, as If-None-Match does.
fn tag_matches(list: &str, current: Option<&Validators>, weak: bool) -> bool {
    let Some(current) = current else {
        return false;
    };
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        match tag.strip_prefix("W/") {
            Some(stripped) => weak && stripped == current.etag,
            None => tag == current.etag,
        }
    })
}

fn date(headers: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    header(headers, name).and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order, for a file that
/// is `current` (`None` when it does not exist). `read` is GET or HEAD.
pub fn evaluate(headers: &HeaderMap, current: Option<&Validators>, read: bool) -> Decision {
    if let Some(list) = header(headers, &IF_MATCH) {
        if !tag_matches(list, current, false) {
            return Decision::Failed;
        }
    } else if let (Some(since), Some(current)) = (date(headers, &IF_UNMODIFIED_SINCE), current) {
        if current.modified > since {
            return Decision::Failed;
        }
    }
    if let Some(list) = header(headers, &IF_NONE_MATCH) {
        if tag_matches(list, current, true) {
            return if read {
                Decision::NotModified
            } else {
                Decision::Failed
            };
        }
    } else if let (true, Some(since), Some(current)) =
        (read, date(headers, &IF_MODIFIED_SINCE), current)
    {
        if current.modified <= since {
            return Decision::NotModified;
        }
    }
    Decision::Proceed
}

/// What part of a file a GET sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    /// 206: `length` bytes from `start`.
    Range {
        start: u64,
        length: u64,
    },
    /// 416: the range lies beyond the end.
    Unsatisfiable,
}

/// The part a `Range` header asks of a file of `size` bytes. One range is
/// served; a list of ranges, another unit or a malformed header gets the
/// whole file, as RFC 9110 §14.2 allows. `If-Range` with another version's
/// validator also gets the whole file.
pub fn part(headers: &HeaderMap, size: u64, current: &Validators) -> Part {
    let Some(spec) = header(headers, &RANGE) else {
        return Part::Whole;
    };
    if let Some(condition) = header(headers, &IF_RANGE) {
        let same = if condition.starts_with('"') {
            condition == current.etag
        } else {
            httpdate::parse_http_date(condition).is_ok_and(|d| d == current.modified)
        };
        if !same {
            return Part::Whole;
        }
    }
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return Part::Whole;
    };
    if spec.contains(',') {
        return Part::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Part::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // `-N`: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                return Part::Unsatisfiable;
            }
            let length = suffix.min(size);
            Part::Range {
                start: size - length,
                length,
            }
        }
        (false, Some(start), last) => {
            if start >= size {
                return Part::Unsatisfiable;
            }
            let end = match (last, last_is_empty(last, spec)) {
                (Some(end), _) if end >= start => end.min(size - 1),
                (None, true) => size - 1,
                _ => return Part::Whole,
            };
            Part::Range {
                start,
                length: end - start + 1,
            }
        }
        _ => Part::Whole,
    }
}

/// Whether the part after `-` is empty (`N-`), as opposed to malformed.
fn last_is_empty(last: Option<u64>, spec: &str) -> bool {
    last.is_none() && spec.trim_end().ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    fn file() -> Validators {
        Validators::new(7, 100, 1_700_000_000_500)
    }

    #[test]
    fn a_matching_if_none_match_is_not_modified_on_reads_and_failed_on_writes() {
        let v = file();
        let h = headers(&[(IF_NONE_MATCH, &format!("\"x\", W/{}", v.etag))]);
        assert_eq!(evaluate(&h, Some(&v), true), Decision::NotModified);
        assert_eq!(evaluate(&h, Some(&v), false), Decision::Failed);
        let star = headers(&[(IF_NONE_MATCH, "*")]);
        assert_eq!(evaluate(&star, None, false), Decision::Proceed);
    }

    #[test]
    fn if_match_needs_the_current_strong_tag() {
        let v = file();
        let good = headers(&[(IF_MATCH, &v.etag)]);
        assert_eq!(evaluate(&good, Some(&v), false), Decision::Proceed);
        let weak = headers(&[(IF_MATCH, &format!("W/{}", v.etag))]);
        assert_eq!(evaluate(&weak, Some(&v), false), Decision::Failed);
        let star = headers(&[(IF_MATCH, "*")]);
        assert_eq!(evaluate(&star, None, false), Decision::Failed);
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let v = file();
        let same = headers(&[(IF_MODIFIED_SINCE, &v.last_modified())]);
        assert_eq!(evaluate(&same, Some(&v), true), Decision::NotModified);
        let before = headers(&[(IF_MODIFIED_SINCE, "Sat, 01 Jan 2000 00:00:00 GMT")]);
        assert_eq!(evaluate(&before, Some(&v), true), Decision::Proceed);
    }

    #[test]
    fn ranges_are_clamped_and_refused_past_the_end() {
        let v = file();
        let range = |spec: &str| part(&headers(&[(RANGE, spec)]), 100, &v);
        assert_eq!(
            range("bytes=10-19"),
            Part::Range {
                start: 10,
                length: 10
            }
        );
        assert_eq!(
            range("bytes=90-"),
            Part::Range {
                start: 90,
                length: 10
            }
        );
        assert_eq!(
            range("bytes=90-500"),
            Part::Range {
                start: 90,
                length: 10
            }
        );
        assert_eq!(
            range("bytes=-30"),
            Part::Range {
                start: 70,
                length: 30
            }
        );
        assert_eq!(
            range("bytes=-500"),
            Part::Range {
                start: 0,
                length: 100
            }
        );
        assert_eq!(range("bytes=100-"), Part::Unsatisfiable);
        assert_eq!(range("bytes=-0"), Part::Unsatisfiable);
        assert_eq!(range("bytes=5-1"), Part::Whole);
        assert_eq!(range("bytes=0-1,5-6"), Part::Whole);
        assert_eq!(range("items=0-1"), Part::Whole);
        assert_eq!(range("bytes=x-1"), Part::Whole);
    }

    #[test]
    fn if_range_with_another_version_gets_the_whole_file() {
        let v = file();
        let h = headers(&[(RANGE, "bytes=0-0"), (IF_RANGE, "\"other\"")]);
        assert_eq!(part(&h, 100, &v), Part::Whole);
        let h = headers(&[(RANGE, "bytes=0-0"), (IF_RANGE, &v.etag)]);
        assert_eq!(
            part(&h, 100, &v),
            Part::Range {
                start: 0,
                length: 1
            }
        );
    }
}
