//! A tidy test: every method name is written once, in a `method` module of
//! `crates/api`, and both the clients and the servers use those constants.
//! It reads the workspace's sources and fails on a method name written as a
//! bare string where a method is named: a request, download, upload,
//! subscription or raw call, or a match arm of a server's dispatch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SERVICES: [&str; 4] = ["db", "files", "print", "proxy"];

/// The method calls of `backroom_frame::client::Client` whose first argument
/// is a method name.
const CALLS: [&str; 6] = [
    ".request(",
    ".request::<",
    ".download(",
    ".upload(",
    ".subscribe(",
    ".call(",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The names defined by `pub const NAME: &str = "name";` in the `method`
/// modules of every service.
fn method_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for service in SERVICES {
        let path = workspace().join(format!("crates/api/src/{service}.rs"));
        let text = std::fs::read_to_string(&path).expect("api source");
        let start = text.find("pub mod method {").expect("a method module");
        let end = start + text[start..].find("\n}").expect("its end");
        for line in text[start..end].lines() {
            if let Some(rest) = line.trim().strip_prefix("pub const ") {
                let name = rest.split('"').nth(1).expect("a string constant");
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal that starts `text` after blanks, if any.
fn leading_literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.split('"').next()
}

fn bare_names_in(text: &str, names: &BTreeSet<String>, dispatch: bool) -> Vec<String> {
    let mut found = Vec::new();
    for call in CALLS {
        for (at, _) in text.match_indices(call) {
            let mut rest = &text[at + call.len()..];
            if call.ends_with('<') {
                let Some(close) = rest.find(">(") else {
                    continue;
                };
                rest = &rest[close + 2..];
            }
            if let Some(name) = leading_literal(rest).filter(|n| names.contains(*n)) {
                found.push(format!("{call}\"{name}\""));
            }
        }
    }
    if dispatch {
        for line in text.lines() {
            let arm = line.trim_start();
            if let Some(name) = leading_literal(arm).filter(|n| names.contains(*n)) {
                let after = arm[name.len() + 2..].trim_start();
                if after.starts_with("=>") || after.starts_with('|') {
                    found.push(format!("match arm \"{name}\""));
                }
            }
        }
    }
    found
}

#[test]
fn no_method_name_is_a_bare_string_outside_the_api_definitions() {
    let names = method_names();
    assert!(names.contains("query") && names.contains("submit") && names.contains("stats"));
    let mut files = Vec::new();
    for krate in ["api", "db", "files", "print", "proxy", "dash"] {
        rust_files(&workspace().join("crates").join(krate), &mut files);
    }
    rust_files(&workspace().join("xtask"), &mut files);
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dispatch = name == "service.rs" || name == "admin.rs";
        for found in bare_names_in(&text, &names, dispatch) {
            offenders.push(format!("{}: {found}", file.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "use the api's method constants:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_tidy_check_finds_a_bare_name() {
    let names: BTreeSet<String> = ["list".to_owned()].into();
    let client = "self.client.request(\"list\", args)";
    assert_eq!(bare_names_in(client, &names, false).len(), 1);
    let turbofish = "client.request::<_, ()>(\n    \"list\", &())";
    assert_eq!(bare_names_in(turbofish, &names, false).len(), 1);
    let arm = "        \"list\" => list(state, &call).await,";
    assert_eq!(bare_names_in(arm, &names, true).len(), 1);
    let unknown = "client.call(\"no_such_method\", nil)";
    assert!(bare_names_in(unknown, &names, true).is_empty());
}
