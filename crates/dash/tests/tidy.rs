//! The dependency rules of `docs/architecture.md`, checked against what the
//! manifests say (`cargo metadata`), so that they stay true without anyone
//! remembering them.
//!
//! A server is a workspace crate that depends on `backroom-daemon` (the
//! shared plumbing of the daemons' `main`), so a new service is covered
//! without editing this file.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const FRAME: &str = "backroom-frame";
const API: &str = "backroom-api";
const DAEMON: &str = "backroom-daemon";
const DASH: &str = "backroom-dash";
const XTASK: &str = "xtask";

/// One dependency of one workspace crate on another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    /// `normal`, `dev` or `build`.
    kind: String,
}

/// Every dependency between workspace crates, from `cargo metadata`.
fn workspace_edges() -> Vec<Edge> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = Vec::new();
    for package in packages {
        let from = package["name"].as_str().expect("name");
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let to = dependency["name"].as_str().expect("dependency name");
            if names.contains(to) {
                edges.push(Edge {
                    from: from.to_string(),
                    to: to.to_string(),
                    kind: dependency["kind"].as_str().unwrap_or("normal").to_string(),
                });
            }
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

/// The crates that depend on `backroom-daemon`: the servers.
fn servers(edges: &[Edge]) -> BTreeSet<String> {
    edges
        .iter()
        .filter(|e| e.to == DAEMON && e.kind == "normal")
        .map(|e| e.from.clone())
        .collect()
}

/// Fails with every edge that breaks `rule`, so one run shows them all.
fn assert_none(rule: &str, broken: Vec<&Edge>) {
    assert!(
        broken.is_empty(),
        "docs/architecture.md, rule \"{rule}\" is broken by:\n{}",
        broken
            .iter()
            .map(|e| format!("  {} -> {} ({})", e.from, e.to, e.kind))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_workspace_has_the_crates_the_rules_name() {
    let edges = workspace_edges();
    let servers = servers(&edges);
    for name in [
        "backroom-files",
        "backroom-print",
        "backroom-db",
        "backroom-proxy",
    ] {
        assert!(
            servers.contains(name),
            "{name} is not a server: {servers:?}"
        );
    }
    assert!(edges.iter().any(|e| e.from == DASH && e.to == API));
}

#[test]
fn frame_depends_on_no_workspace_crate() {
    let edges = workspace_edges();
    assert_none(
        "frame knows no service",
        edges.iter().filter(|e| e.from == FRAME).collect(),
    );
}

#[test]
fn api_depends_only_on_frame() {
    let edges = workspace_edges();
    assert_none(
        "api depends only on frame",
        edges
            .iter()
            .filter(|e| e.from == API && e.to != FRAME)
            .collect(),
    );
}

#[test]
fn no_server_depends_on_another_server() {
    let edges = workspace_edges();
    let servers = servers(&edges);
    assert_none(
        "a server never depends on another server",
        edges
            .iter()
            .filter(|e| servers.contains(&e.from) && servers.contains(&e.to))
            .collect(),
    );
}

#[test]
fn dash_depends_on_servers_only_for_its_tests() {
    let edges = workspace_edges();
    assert_none(
        "dash depends on api and frame, and on no server crate outside [dev-dependencies]",
        edges
            .iter()
            .filter(|e| e.from == DASH && e.kind != "dev" && e.to != API && e.to != FRAME)
            .collect(),
    );
}

#[test]
fn daemon_depends_only_on_frame_and_nothing_below_it_depends_on_daemon() {
    let edges = workspace_edges();
    assert_none(
        "daemon depends only on frame; frame and api never on daemon",
        edges
            .iter()
            .filter(|e| {
                (e.from == DAEMON && e.to != FRAME)
                    || ((e.from == FRAME || e.from == API) && e.to == DAEMON)
            })
            .collect(),
    );
}

#[test]
fn xtask_depends_on_no_workspace_crate() {
    let edges = workspace_edges();
    assert_none(
        "xtask depends on no crate of the workspace",
        edges.iter().filter(|e| e.from == XTASK).collect(),
    );
}
