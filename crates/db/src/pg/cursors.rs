//! psycopg2's named (server-side) cursors: `DECLARE name CURSOR FOR query`,
//! `FETCH [FORWARD] n FROM name` and `CLOSE name`, parsed here and served
//! by the engine's cursors.

use std::collections::VecDeque;

use backroom_api::db::{Column, Value};
use backroom_frame::error::Error;

use crate::engine::CursorPages;

/// A statement about named cursors.
#[derive(Debug, PartialEq)]
pub enum CursorStatement {
    Declare {
        name: String,
        query: String,
    },
    /// `None`: every row left (`FETCH ALL`).
    Fetch {
        name: String,
        count: Option<usize>,
    },
    Close {
        name: Option<String>,
    },
}

/// Parses DECLARE, FETCH, MOVE-less FETCH forms and CLOSE; `Err` says why a
/// form is not served.
pub fn parse(sql: &str) -> Result<CursorStatement, String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    match lower.first().map(String::as_str) {
        Some("declare") => {
            let name = unquote(words.get(1).ok_or("DECLARE needs a cursor name")?);
            let at = lower
                .iter()
                .position(|w| w == "for")
                .filter(|at| *at >= 2)
                .ok_or("DECLARE name CURSOR FOR query")?;
            if lower[2..at]
                .iter()
                .any(|w| w == "scroll" && !lower.contains(&"no".into()))
            {
                return Err("scrollable cursors are not supported: cursors move forward".into());
            }
            let query = words[at + 1..].join(" ");
            Ok(CursorStatement::Declare { name, query })
        }
        Some("fetch") => {
            let mut rest: Vec<&str> = lower[1..].iter().map(String::as_str).collect();
            let name = unquote(words.last().ok_or("FETCH needs a cursor name")?);
            rest.pop();
            if matches!(rest.last(), Some(&"from" | &"in")) {
                rest.pop();
            }
            let count = match rest.as_slice() {
                [] | ["next"] | ["forward"] => Some(1),
                ["all"] | ["forward", "all"] => None,
                [n] | ["forward", n] => {
                    Some(n.parse().map_err(|_| format!("FETCH {n}: not a count"))?)
                }
                other => {
                    return Err(format!(
                        "FETCH {}: cursors move forward only",
                        other.join(" ")
                    ));
                }
            };
            Ok(CursorStatement::Fetch { name, count })
        }
        Some("close") => match lower.get(1).map(String::as_str) {
            Some("all") => Ok(CursorStatement::Close { name: None }),
            Some(_) => Ok(CursorStatement::Close {
                name: Some(unquote(words[1])),
            }),
            None => Err("CLOSE needs a cursor name or ALL".into()),
        },
        _ => Err("not a cursor statement".into()),
    }
}

/// A name as PostgreSQL reads it: folded to lower case unless quoted.
pub fn unquote(name: &str) -> String {
    let name = name.trim_end_matches(';');
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => name.to_ascii_lowercase(),
    }
}

/// An open cursor: the engine's pages and the rows of the page begun.
pub struct OpenCursor {
    pub columns: Vec<Column>,
    pub pages: CursorPages,
    pub buffered: VecDeque<Vec<Value>>,
    pub done: bool,
}

impl OpenCursor {
    /// Up to `count` rows (all when `None`), from the buffer and then from
    /// the engine, page by page.
    pub async fn fetch(
        &mut self,
        count: Option<usize>,
        decode: impl Fn(&[u8]) -> Result<Vec<Vec<Value>>, Error>,
    ) -> Result<Vec<Vec<Value>>, Error> {
        let want = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < want {
            if let Some(row) = self.buffered.pop_front() {
                out.push(row);
                continue;
            }
            if self.done {
                break;
            }
            match self.pages.next().await {
                Some(page) => self.buffered.extend(decode(&page?)?),
                None => self.done = true,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psycopg2s_cursor_statements_are_understood() {
        assert_eq!(
            parse("DECLARE \"c_1\" CURSOR WITHOUT HOLD FOR SELECT * FROM t"),
            Ok(CursorStatement::Declare {
                name: "c_1".into(),
                query: "SELECT * FROM t".into()
            })
        );
        assert_eq!(
            parse("FETCH FORWARD 2000 FROM \"c_1\""),
            Ok(CursorStatement::Fetch {
                name: "c_1".into(),
                count: Some(2000)
            })
        );
        assert_eq!(
            parse("FETCH ALL FROM c"),
            Ok(CursorStatement::Fetch {
                name: "c".into(),
                count: None
            })
        );
        assert_eq!(
            parse("CLOSE \"c_1\""),
            Ok(CursorStatement::Close {
                name: Some("c_1".into())
            })
        );
        assert!(parse("FETCH BACKWARD 1 FROM c").is_err());
        assert!(parse("DECLARE c SCROLL CURSOR FOR SELECT 1").is_err());
    }
}
