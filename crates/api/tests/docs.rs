//! Keeps each service's page true to its wire types: every method, every
//! field of every request, answer and event, and every variant of every enum
//! that `crates/api` sends must appear in `docs/<service>.md`, in the
//! section named after its type (`### `Type``), as a table row.

use std::path::{Path, PathBuf};

const SERVICES: [&str; 4] = ["db", "files", "print", "proxy"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A type that travels: a struct's fields, or an enum's wire names (and the
/// fields of its variants that carry data).
#[derive(Debug)]
struct WireType {
    name: String,
    names: Vec<String>,
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The field or variant a line of a type's body declares, if any.
fn member(line: &str, is_enum: bool) -> Vec<String> {
    let line = line.trim();
    if line.starts_with("//") || line.starts_with('#') || line.is_empty() {
        return Vec::new();
    }
    if let Some(rest) = line.strip_prefix("pub ") {
        return rest
            .split(':')
            .next()
            .map(str::to_owned)
            .into_iter()
            .collect();
    }
    if !is_enum {
        return Vec::new();
    }
    let starts_variant = line.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    let mut names = Vec::new();
    let mut rest = line;
    if starts_variant {
        let end = line
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(line.len());
        names.push(snake_case(&line[..end]));
        rest = &line[end..];
    }
    // Fields of a variant that carries data: `Name { a: T, b: U }`, on one
    // line or on lines of their own.
    let fields = rest.trim_start_matches([' ', '{', '(']);
    for field in fields.split(',') {
        if let Some((name, _)) = field.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The serde types of one api module, read from its source.
fn wire_types(service: &str) -> Vec<WireType> {
    let path = workspace().join(format!("crates/api/src/{service}.rs"));
    let text = std::fs::read_to_string(path).expect("api source");
    let lines: Vec<&str> = text.lines().collect();
    let mut types = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !(line.starts_with("#[derive(") && line.contains("Serialize")) {
            continue;
        }
        let Some((decl, at)) = lines[i + 1..]
            .iter()
            .zip(i + 1..)
            .find(|(l, _)| !l.starts_with("#["))
        else {
            continue;
        };
        let (is_enum, rest) = match (
            decl.strip_prefix("pub struct "),
            decl.strip_prefix("pub enum "),
        ) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => continue,
        };
        let name = rest.split([' ', '{', '(']).next().unwrap_or("").to_owned();
        let names = lines[at + 1..]
            .iter()
            .take_while(|l| **l != "}")
            .flat_map(|l| member(l, is_enum))
            .collect();
        types.push(WireType { name, names });
    }
    types
}

/// The heading of each page's table of methods with their types.
const METHODS: &str = "### Methods by name";

/// The lines of the page's section headed `heading`.
fn section<'a>(page: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = page.lines().skip_while(|l| l.trim() != heading);
    lines.next()?;
    Some(lines.take_while(|l| !l.starts_with('#')).collect())
}

fn missing_from_page(service: &str, page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for wire in wire_types(service) {
        let Some(section) = section(page, &format!("### `{}`", wire.name)) else {
            missing.push(format!("### `{}`", wire.name));
            continue;
        };
        for name in &wire.names {
            let row = format!("| `{name}` |");
            let field = format!("`{name}` (");
            let listed = section
                .iter()
                .any(|l| l.starts_with(&row) || (l.starts_with('|') && l.contains(&field)));
            if !listed {
                missing.push(format!("`{}.{name}`", wire.name));
            }
        }
    }
    missing
}

fn method_names(service: &str) -> Vec<String> {
    let path = workspace().join(format!("crates/api/src/{service}.rs"));
    let text = std::fs::read_to_string(path).expect("api source");
    let start = text.find("pub mod method {").expect("a method module");
    let end = start + text[start..].find("\n}").expect("its end");
    text[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_field_variant_and_method_of_the_api_is_on_its_services_page() {
    let mut missing = Vec::new();
    for service in SERVICES {
        let page = std::fs::read_to_string(workspace().join(format!("docs/{service}.md")))
            .expect("the service's page");
        for gap in missing_from_page(service, &page) {
            missing.push(format!("docs/{service}.md lacks {gap}"));
        }
        let methods = section(&page, METHODS).expect("a table of the methods");
        for method in method_names(service) {
            let row = format!("| `{method}` |");
            if !methods.iter().any(|l| l.starts_with(&row)) {
                missing.push(format!("docs/{service}.md lacks method `{method}`"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_check_sees_fields_and_variants() {
    let files = wire_types("files");
    let write = files
        .iter()
        .find(|t| t.name == "WriteArgs")
        .expect("WriteArgs");
    assert!(write.names.contains(&"upload_id".to_owned()), "{write:?}");
    let db = wire_types("db");
    let feed = db
        .iter()
        .find(|t| t.name == "FeedEvent")
        .expect("FeedEvent");
    for name in ["change", "table", "op", "rowid", "lagged", "missed"] {
        assert!(feed.names.contains(&name.to_owned()), "{feed:?}");
    }
    let page = "### `Written`\n\n| Field | Type |\n| `path` | str |\n";
    // Every other type's section, and `size` of `Written`.
    assert_eq!(missing_from_page("files", page).len(), files.len());
}
