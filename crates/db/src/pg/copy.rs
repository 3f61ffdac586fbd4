//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT` in PostgreSQL's text and
//! CSV formats (what psql's `\copy` sends): the statement's parts, and rows
//! to and from their lines.

use backroom_api::db::Value;

/// What a COPY statement asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    /// The table, as written (quotes kept).
    pub table: Option<String>,
    /// `COPY (query) TO STDOUT`.
    pub query: Option<String>,
    /// The columns listed, if any, as written.
    pub columns: Vec<String>,
    pub from_stdin: bool,
    pub csv: bool,
    pub header: bool,
}

/// Parses a COPY statement, or says why it cannot be served.
pub fn parse(sql: &str) -> Result<Copy, String> {
    let rest = sql.trim()[4..].trim_start();
    let (table, query, rest) = if let Some(inner) = rest.strip_prefix('(') {
        let end = matching(inner).ok_or("COPY (query): the query's parenthesis is not closed")?;
        (None, Some(inner[..end].to_owned()), &inner[end + 1..])
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '(')
            .ok_or("COPY needs a table and FROM STDIN or TO STDOUT")?;
        (Some(rest[..end].to_owned()), None, &rest[end..])
    };
    let rest = rest.trim_start();
    let (columns, rest) = match rest.strip_prefix('(') {
        Some(inner) => {
            let end = inner
                .find(')')
                .ok_or("COPY: the column list is not closed")?;
            let columns = inner[..end]
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            (columns, &inner[end + 1..])
        }
        None => (Vec::new(), rest),
    };
    let lower = rest.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ','))
        .filter(|w| !w.is_empty())
        .collect();
    let from_stdin = match words.as_slice() {
        ["from", "stdin", ..] => true,
        ["to", "stdout", ..] => false,
        _ => {
            return Err(
                "COPY reads FROM STDIN and writes TO STDOUT only: files are the client's \
                 (use psql's \\copy)"
                    .into(),
            );
        }
    };
    if from_stdin && query.is_some() {
        return Err("COPY (query) can only go TO STDOUT".into());
    }
    if words.contains(&"binary") {
        return Err("COPY's binary format is not supported: use text or csv".into());
    }
    Ok(Copy {
        table,
        query,
        columns,
        from_stdin,
        csv: words.contains(&"csv"),
        header: words.contains(&"header"),
    })
}

/// Where the parenthesis opened just before `s` closes.
fn matching(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// One row as a line of the format, newline included.
pub fn encode_line(row: &[Value], csv: bool) -> String {
    let fields: Vec<String> = row
        .iter()
        .map(|v| match v {
            Value::Null if csv => String::new(),
            Value::Null => "\\N".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) if csv => csv_field(t),
            Value::Text(t) => text_field(t),
            Value::Blob(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                if csv {
                    format!("\\x{hex}")
                } else {
                    format!("\\\\x{hex}")
                }
            }
        })
        .collect();
    let mut line = fields.join(if csv { "," } else { "\t" });
    line.push('\n');
    line
}

fn text_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.is_empty() || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The rows of COPY data; every field is text (SQLite converts it by the
/// column's affinity) or NULL.
pub fn decode(data: &str, csv: bool, header: bool) -> Result<Vec<Vec<Value>>, String> {
    let mut rows = if csv {
        decode_csv(data)?
    } else {
        decode_text(data)?
    };
    if header && !rows.is_empty() {
        rows.remove(0);
    }
    Ok(rows)
}

fn decode_text(data: &str) -> Result<Vec<Vec<Value>>, String> {
    let mut rows = Vec::new();
    for line in data.lines() {
        if line == "\\." {
            break;
        }
        let row = line
            .split('\t')
            .map(|field| {
                if field == "\\N" {
                    Ok(Value::Null)
                } else {
                    unescape(field).map(Value::Text)
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        rows.push(row);
    }
    Ok(rows)
}

fn unescape(field: &str) -> Result<String, String> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => return Err("COPY data: a field ends with a lone backslash".into()),
        }
    }
    Ok(out)
}

fn decode_csv(data: &str) -> Result<Vec<Vec<Value>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted_field = false;
    let mut in_quotes = false;
    let mut chars = data.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quoted_field = true;
            }
            ',' => row.push(csv_value(std::mem::take(&mut field), &mut quoted_field)),
            '\r' => {}
            '\n' => {
                row.push(csv_value(std::mem::take(&mut field), &mut quoted_field));
                if !(row.len() == 1 && row[0] == Value::Text("\\.".into())) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
                any = false;
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err("COPY data: a quoted CSV field is not closed".into());
    }
    if any {
        row.push(csv_value(field, &mut quoted_field));
        rows.push(row);
    }
    Ok(rows)
}

/// An unquoted empty CSV field is NULL; a quoted one is the empty string.
fn csv_value(field: String, quoted: &mut bool) -> Value {
    let value = if field.is_empty() && !*quoted {
        Value::Null
    } else {
        Value::Text(field)
    };
    *quoted = false;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psqls_copy_statements_are_understood() {
        let c = parse("COPY  t FROM STDIN csv header").expect("parses");
        assert_eq!(c.table.as_deref(), Some("t"));
        assert!(c.from_stdin && c.csv && c.header);
        let c = parse("COPY t (a, b) TO STDOUT WITH (FORMAT csv)").expect("parses");
        assert_eq!(c.columns, ["a", "b"]);
        assert!(!c.from_stdin && c.csv && !c.header);
        let c = parse("COPY (SELECT a FROM t WHERE b = ')') TO STDOUT").expect("parses");
        assert_eq!(c.query.as_deref(), Some("SELECT a FROM t WHERE b = ')'"));
        assert!(parse("COPY t FROM '/etc/passwd'").is_err());
        assert!(parse("COPY t TO STDOUT BINARY").is_err());
    }

    #[test]
    fn text_rows_round_trip_with_escapes_and_nulls() {
        let row = vec![
            Value::Text("a\tb\\c\nd".into()),
            Value::Null,
            Value::Integer(7),
        ];
        let line = encode_line(&row, false);
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N\t7\n");
        let back = decode(&line, false, false).expect("decodes");
        assert_eq!(
            back,
            vec![vec![
                Value::Text("a\tb\\c\nd".into()),
                Value::Null,
                Value::Text("7".into())
            ]]
        );
    }

    #[test]
    fn csv_rows_round_trip_with_quotes_and_nulls() {
        let row = vec![
            Value::Text("x, \"y\"\nz".into()),
            Value::Null,
            Value::Text(String::new()),
        ];
        let line = encode_line(&row, true);
        assert_eq!(line, "\"x, \"\"y\"\"\nz\",,\"\"\n");
        let back = decode(&format!("h1,h2,h3\n{line}"), true, true).expect("decodes");
        assert_eq!(back, vec![row]);
        assert!(decode("\"open", true, false).is_err());
    }
}
