//! What the PostgreSQL face changes in SQL text before SQLite sees it:
//! statements split at their semicolons, `$n` parameters numbered the way
//! SQLite numbers them (`?n`), PostgreSQL casts on literals and parameters
//! (`'\x00ff'::bytea`, `'NaN'::float`, `$1::int8`), and the session
//! functions drivers ask for (`version()`, `current_database()`,
//! `current_setting('name')`) answered as literals.
//!
//! It is a lexer, not a parser: it knows strings, quoted names, comments and
//! parentheses, which is all these rewrites need.

use std::collections::HashMap;

use pgwire::api::Type;

/// What the session functions answer.
pub trait Session {
    fn version(&self) -> String;
    fn database(&self) -> String;
    fn user(&self) -> String;
    fn setting(&self, name: &str) -> Option<String>;
}

/// A statement as SQLite should see it, and the types its casts gave its
/// parameters (by number, from 1).
#[derive(Debug, Default, PartialEq)]
pub struct Rewritten {
    pub sql: String,
    pub param_types: HashMap<usize, Type>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A string literal, with its quotes.
    Str(String),
    /// A quoted or bare name, or a keyword.
    Word(String),
    Param(usize),
    Number(String),
    Space(String),
    Cast,
    Semicolon,
    Other(char),
}

fn lex(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let take = |out: &mut Vec<Tok>, end: usize, make: fn(String) -> Tok| {
            out.push(make(chars[start..end].iter().collect()));
        };
        match c {
            '\'' | '"' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                take(&mut out, i, if c == '\'' { Tok::Str } else { Tok::Word });
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                take(&mut out, i, Tok::Space);
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
                take(&mut out, i, Tok::Space);
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 2;
                out.push(Tok::Cast);
            }
            ';' => {
                i += 1;
                out.push(Tok::Semicolon);
            }
            '$' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let n: String = chars[start + 1..i].iter().collect();
                out.push(Tok::Param(n.parse().unwrap_or(0)));
            }
            c if c.is_whitespace() => {
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                take(&mut out, i, Tok::Space);
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                take(&mut out, i, Tok::Number);
            }
            c if c.is_alphanumeric() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$'))
                {
                    i += 1;
                }
                take(&mut out, i, Tok::Word);
            }
            other => {
                i += 1;
                out.push(Tok::Other(other));
            }
        }
    }
    out
}

fn text(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Str(s) | Tok::Word(s) | Tok::Number(s) | Tok::Space(s) => s.clone(),
            Tok::Param(n) => format!("?{n}"),
            Tok::Cast => "::".into(),
            Tok::Semicolon => ";".into(),
            Tok::Other(c) => c.to_string(),
        })
        .collect()
}

/// The statements of `sql`, without their semicolons, empty ones dropped.
/// A `CREATE TRIGGER`'s body keeps its inner semicolons: the statement ends
/// at the `END` that closes it.
pub fn split(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<Tok> = Vec::new();
    let mut depth = 0usize;
    for tok in lex(sql) {
        if let Tok::Word(w) = &tok {
            let trigger = is_trigger(&current);
            if trigger && (w.eq_ignore_ascii_case("begin") || w.eq_ignore_ascii_case("case")) {
                depth += 1;
            } else if trigger && w.eq_ignore_ascii_case("end") {
                depth = depth.saturating_sub(1);
            }
        }
        if tok == Tok::Semicolon && depth == 0 {
            push_statement(&mut out, &current);
            current.clear();
            continue;
        }
        current.push(tok);
    }
    push_statement(&mut out, &current);
    out
}

fn push_statement(out: &mut Vec<String>, toks: &[Tok]) {
    let original: String = toks
        .iter()
        .map(|t| match t {
            Tok::Param(n) => format!("${n}"),
            other => text(std::slice::from_ref(other)),
        })
        .collect();
    let trimmed = original.trim();
    if !trimmed.is_empty() && toks.iter().any(|t| !matches!(t, Tok::Space(_))) {
        out.push(trimmed.to_owned());
    }
}

fn is_trigger(toks: &[Tok]) -> bool {
    let words: Vec<String> = toks
        .iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        })
        .take(3)
        .collect();
    words.first().is_some_and(|w| w == "create") && words[1..].iter().any(|w| w == "trigger")
}

/// Rewrites one statement for SQLite.
pub fn rewrite(sql: &str, session: &dyn Session) -> Rewritten {
    let toks = lex(sql);
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    // Where each open parenthesis is in `out`, and where the last closed
    // group began, so that a cast can wrap it.
    let mut opens: Vec<usize> = Vec::new();
    let mut last_group: Option<usize> = None;
    let mut param_types = HashMap::new();
    let mut i = 0;
    while i < toks.len() {
        let tok = &toks[i];
        match tok {
            Tok::Cast => {
                let (ty, next) = cast_type(&toks, i + 1);
                apply_cast(&mut out, last_group, &ty, &mut param_types);
                i = next;
                continue;
            }
            Tok::Other('(') => opens.push(out.len()),
            Tok::Other(')') => last_group = opens.pop(),
            Tok::Word(w) => {
                if let Some((literal, next)) = session_function(&toks, i, w, session) {
                    if i > 0 && toks[i - 1] == Tok::Other('.') {
                        // Drop the `pg_catalog.` before it.
                        out.truncate(out.len().saturating_sub(2));
                    }
                    out.push(Tok::Str(literal));
                    i = next;
                    continue;
                }
            }
            _ => {}
        }
        out.push(tok.clone());
        i += 1;
    }
    Rewritten {
        sql: text(&out),
        param_types,
    }
}

/// The type name after `::`, lower case, and where the tokens go on.
fn cast_type(toks: &[Tok], mut i: usize) -> (String, usize) {
    let mut words = Vec::new();
    while let Some(tok) = toks.get(i) {
        match tok {
            Tok::Space(_) if words.is_empty() => {}
            Tok::Word(w)
                if words.is_empty()
                    || matches!(
                        w.to_ascii_lowercase().as_str(),
                        "precision" | "varying" | "with" | "without" | "time" | "zone"
                    ) =>
            {
                words.push(w.trim_matches('"').to_ascii_lowercase());
            }
            Tok::Space(_) => {
                // A space ends the type unless a word of a longer name follows.
                let continues = matches!(toks.get(i + 1), Some(Tok::Word(w))
                    if matches!(w.to_ascii_lowercase().as_str(),
                        "precision" | "varying" | "with" | "without" | "time" | "zone"));
                if !continues {
                    break;
                }
            }
            Tok::Other('(') if !words.is_empty() => {
                while toks.get(i).is_some_and(|t| *t != Tok::Other(')')) {
                    i += 1;
                }
            }
            Tok::Other('[') => {
                while toks.get(i).is_some_and(|t| *t != Tok::Other(']')) {
                    i += 1;
                }
            }
            _ => break,
        }
        i += 1;
    }
    (words.join(" "), i)
}

/// The PostgreSQL types a cast may name, as the face types them.
pub fn named_type(name: &str) -> Option<Type> {
    let base = name.strip_prefix("pg_catalog.").unwrap_or(name);
    Some(match base {
        "int" | "int2" | "int4" | "int8" | "integer" | "bigint" | "smallint" | "oid" => Type::INT8,
        "float" | "float4" | "float8" | "real" | "double precision" => Type::FLOAT8,
        "numeric" | "decimal" => Type::NUMERIC,
        "bool" | "boolean" => Type::BOOL,
        "bytea" => Type::BYTEA,
        "text" | "varchar" | "character varying" | "char" | "character" | "name" => Type::TEXT,
        _ => return None,
    })
}

/// Replaces the operand that ends `out` with what SQLite makes of the cast.
fn apply_cast(
    out: &mut Vec<Tok>,
    last_group: Option<usize>,
    ty: &str,
    param_types: &mut HashMap<usize, Type>,
) {
    let Some(end) = out.iter().rposition(|t| !matches!(t, Tok::Space(_))) else {
        return;
    };
    out.truncate(end + 1);
    let target = named_type(ty);
    let start = match &out[end] {
        Tok::Other(')') => match last_group {
            Some(open) => open,
            None => return,
        },
        Tok::Str(s) => {
            if let Some(literal) = target.as_ref().and_then(|t| literal_cast(s, t)) {
                out[end] = literal;
                return;
            }
            end
        }
        Tok::Param(n) => {
            if let Some(t) = &target {
                param_types.insert(*n, t.clone());
            }
            end
        }
        _ => end,
    };
    let affinity = match target {
        Some(Type::INT8) => "INTEGER",
        Some(Type::FLOAT8) => "REAL",
        Some(Type::NUMERIC) => "NUMERIC",
        _ => return,
    };
    out.insert(start, Tok::Word("CAST(".into()));
    out.push(Tok::Word(format!(" AS {affinity})")));
}

/// A string literal cast to a type SQLite spells differently.
fn literal_cast(quoted: &str, ty: &Type) -> Option<Tok> {
    let inner = quoted.get(1..quoted.len().saturating_sub(1))?;
    let word = |w: &str| Some(Tok::Word(w.into()));
    match *ty {
        Type::BYTEA => {
            let hex = inner.strip_prefix("\\x")?;
            hex.chars()
                .all(|c| c.is_ascii_hexdigit())
                .then(|| Tok::Word(format!("X'{hex}'")))
        }
        Type::FLOAT8 | Type::NUMERIC => match inner.to_ascii_lowercase().as_str() {
            "infinity" | "+infinity" | "inf" => word("9e999"),
            "-infinity" | "-inf" => word("-9e999"),
            // SQLite has no NaN: it stores NULL for it.
            "nan" => word("NULL"),
            _ => None,
        },
        Type::BOOL => match inner.to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => word("1"),
            "f" | "false" | "n" | "no" | "off" | "0" => word("0"),
            _ => None,
        },
        _ => None,
    }
}

/// `version()`, `current_database()`, `current_schema()`, `current_user`,
/// `session_user` and `current_setting('name')` as literals, with where the
/// tokens go on.
fn session_function(
    toks: &[Tok],
    i: usize,
    word: &str,
    session: &dyn Session,
) -> Option<(String, usize)> {
    let lower = word.to_ascii_lowercase();
    let name = lower.as_str();
    let qualifier = (i >= 2 && toks[i - 1] == Tok::Other('.')).then(|| &toks[i - 2]);
    if qualifier.is_some_and(|q| !matches!(q, Tok::Word(w) if w.eq_ignore_ascii_case("pg_catalog")))
    {
        return None;
    }
    let args = call_args(toks, i + 1);
    let (value, next) = match (name, args) {
        ("current_user" | "session_user", None) => (Some(session.user()), i + 1),
        ("version", Some((args, next))) if args.is_empty() => (Some(session.version()), next),
        ("current_database" | "current_catalog", Some((args, next))) if args.is_empty() => {
            (Some(session.database()), next)
        }
        ("current_schema", Some((args, next))) if args.is_empty() => (Some("main".into()), next),
        ("current_setting", Some((args, next))) => match args.as_slice() {
            [Tok::Str(s)] => {
                let key = s.trim_matches('\'').to_ascii_lowercase();
                (session.setting(&key), next)
            }
            _ => return None,
        },
        _ => return None,
    };
    let literal = match value {
        Some(v) => quote(&v),
        None => "NULL".into(),
    };
    Some((literal, next))
}

/// The argument tokens of a call starting at `i` (spaces dropped), and
/// where the tokens go on after its `)`.
fn call_args(toks: &[Tok], mut i: usize) -> Option<(Vec<Tok>, usize)> {
    while matches!(toks.get(i), Some(Tok::Space(_))) {
        i += 1;
    }
    if toks.get(i) != Some(&Tok::Other('(')) {
        return None;
    }
    let mut args = Vec::new();
    i += 1;
    loop {
        match toks.get(i)? {
            Tok::Other(')') => return Some((args, i + 1)),
            Tok::Space(_) => {}
            Tok::Other('(') => return None,
            t => args.push(t.clone()),
        }
        i += 1;
    }
}

/// A string as an SQL literal.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Session for Fixed {
        fn version(&self) -> String {
            "PostgreSQL 15.0".into()
        }
        fn database(&self) -> String {
            "main".into()
        }
        fn user(&self) -> String {
            "ann".into()
        }
        fn setting(&self, name: &str) -> Option<String> {
            (name == "datestyle").then(|| "ISO, MDY".into())
        }
    }

    fn sql(s: &str) -> String {
        rewrite(s, &Fixed).sql
    }

    #[test]
    fn statements_split_at_semicolons_outside_strings_and_comments() {
        assert_eq!(
            split("SELECT 'a;b'; -- c;\nSELECT \"x;\" ;; /* ; */"),
            vec!["SELECT 'a;b'", "-- c;\nSELECT \"x;\""]
        );
    }

    #[test]
    fn a_trigger_body_stays_one_statement() {
        let parts =
            split("CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; END; SELECT 1");
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].ends_with("END"));
    }

    #[test]
    fn dollar_parameters_become_sqlite_numbered_ones() {
        assert_eq!(sql("SELECT $2, $1, '$1'"), "SELECT ?2, ?1, '$1'");
    }

    #[test]
    fn literal_casts_become_sqlite_literals() {
        assert_eq!(sql("SELECT '\\x00ff'::bytea"), "SELECT X'00ff'");
        assert_eq!(sql("SELECT 'Infinity'::float"), "SELECT 9e999");
        assert_eq!(sql("SELECT '-Infinity'::float8"), "SELECT -9e999");
        assert_eq!(sql("SELECT 'NaN'::double precision"), "SELECT NULL");
        assert_eq!(sql("SELECT 'true'::boolean, 'f'::bool"), "SELECT 1, 0");
        assert_eq!(sql("SELECT '2024-01-02'::date"), "SELECT '2024-01-02'");
        assert_eq!(
            sql("SELECT '2024-01-02 03:04'::timestamp with time zone"),
            "SELECT '2024-01-02 03:04'"
        );
        assert_eq!(sql("SELECT 'x'::varchar(10)"), "SELECT 'x'");
    }

    #[test]
    fn numeric_casts_keep_their_affinity() {
        assert_eq!(
            sql("SELECT '5'::int8 + 1"),
            "SELECT CAST('5' AS INTEGER) + 1"
        );
        assert_eq!(sql("SELECT (a + b)::float"), "SELECT CAST((a + b) AS REAL)");
        let r = rewrite("SELECT $1::bigint", &Fixed);
        assert_eq!(r.sql, "SELECT CAST(?1 AS INTEGER)");
        assert_eq!(r.param_types.get(&1), Some(&Type::INT8));
    }

    #[test]
    fn session_functions_are_answered_as_literals() {
        assert_eq!(
            sql("SELECT version(), current_database(), current_user"),
            "SELECT 'PostgreSQL 15.0', 'main', 'ann'"
        );
        assert_eq!(
            sql("select pg_catalog.current_setting('DateStyle'), current_setting('nope')"),
            "select 'ISO, MDY', NULL"
        );
        assert_eq!(
            sql("SELECT t.version() FROM t"),
            "SELECT t.version() FROM t"
        );
    }

    #[test]
    fn strings_are_never_rewritten() {
        assert_eq!(
            sql("SELECT 'a::int', 'it''s $1'"),
            "SELECT 'a::int', 'it''s $1'"
        );
    }
}
