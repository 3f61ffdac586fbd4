//! `cargo xtask ci`: the cargo steps of `.ci/run`, without its setup.

use crate::proc;

/// The checks every change must pass, in the order CI runs them.
pub const STEPS: [&[&str]; 3] = [
    &["fmt", "--all", "--check"],
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ],
    &["test", "--workspace"],
];

/// Runs each step, stopping at the first that fails.
pub fn run() -> Result<(), String> {
    let root = proc::workspace_root();
    for step in STEPS {
        println!("==> cargo {}", step.join(" "));
        let status = proc::cargo()
            .args(step)
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo {}` failed ({status})", step.join(" ")));
        }
    }
    println!("==> all checks passed");
    Ok(())
}
