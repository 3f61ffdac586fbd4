//! `cargo xtask bench dash`: the dashboard's render time and idle CPU.
//!
//! - Render: `crates/dash/examples/render_bench.rs`, built in release mode,
//!   draws the Print tab holding 10k jobs on a 120×40 `TestBackend` and
//!   reports the mean and p99 time per frame.
//! - Idle CPU: the real `backroom` binary runs in a private tmux at 120×40,
//!   with its servers on closed loopback ports (so it only ticks and backs
//!   off), and its utime+stime are read from `/proc/<pid>/stat` before and
//!   after a quiet stretch.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Options;
use crate::json::{self, Value};
use crate::proc;

/// What we aim for.
const FRAME_AIM_MS: f64 = 5.0;
const IDLE_CPU_AIM_PERCENT: f64 = 1.0;

const JOBS: u32 = 10_000;

const TMUX_HINT: &str = "tmux is missing: apt-get install -y tmux";

struct Binaries {
    render: PathBuf,
    backroom: PathBuf,
}

struct Render {
    frames: f64,
    mean_ms: f64,
    p99_ms: f64,
}

pub fn dash(options: &Options) -> Result<(), String> {
    if !proc::installed("tmux") {
        return Err(TMUX_HINT.to_owned());
    }
    let binaries = build()?;
    let frames = if options.quick { 300 } else { 2000 };
    eprintln!("dash: drawing the Print tab with {JOBS} jobs, {frames} frames at 120x40...");
    let render = measure_render(&binaries.render, frames)?;
    let idle_for = Duration::from_secs(if options.quick { 5 } else { 30 });
    eprintln!(
        "dash: idle CPU of backroom over {} s (servers down)...",
        idle_for.as_secs()
    );
    let cpu = measure_idle_cpu(&binaries.backroom, idle_for)?;

    println!("dash ({}):", if options.quick { "quick" } else { "full" });
    println!(
        "  render, Print tab, {JOBS} jobs, 120x40: mean {:.3} ms, p99 {:.3} ms per frame ({} frames); aim < {FRAME_AIM_MS} ms: {}",
        render.mean_ms,
        render.p99_ms,
        render.frames,
        verdict(render.p99_ms < FRAME_AIM_MS)
    );
    println!(
        "  idle CPU over {} s: {cpu:.2}%; aim < {IDLE_CPU_AIM_PERCENT}%: {}",
        idle_for.as_secs(),
        verdict(cpu < IDLE_CPU_AIM_PERCENT)
    );
    if options.json {
        let summary = json::object([
            ("bench", "dash".into()),
            ("quick", Value::Bool(options.quick)),
            ("jobs", f64::from(JOBS).into()),
            ("frames", render.frames.into()),
            ("render_mean_ms", render.mean_ms.into()),
            ("render_p99_ms", render.p99_ms.into()),
            ("render_aim_ms", FRAME_AIM_MS.into()),
            ("idle_secs", idle_for.as_secs_f64().into()),
            ("idle_cpu_percent", cpu.into()),
            ("idle_cpu_aim_percent", IDLE_CPU_AIM_PERCENT.into()),
        ]);
        println!("{}", summary.render());
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Builds the render example and the `backroom` binary in release mode.
fn build() -> Result<Binaries, String> {
    eprintln!("building backroom and the render example (release)...");
    let built = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-dash",
        "--bin",
        "backroom",
        "--example",
        "render_bench",
    ])?;
    Ok(Binaries {
        render: built.executable("example", "render_bench")?,
        backroom: built.executable("bin", "backroom")?,
    })
}

fn measure_render(example: &Path, frames: u32) -> Result<Render, String> {
    let output = Command::new(example)
        .args([JOBS.to_string(), frames.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the render example: {e}"))?;
    if !output.status.success() {
        return Err(format!("the render example failed ({})", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let figures =
        json::parse(line).map_err(|e| format!("the render example said {line:?}: {e}"))?;
    let number = |key: &str| {
        figures
            .get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("the render example gave no {key}: {line}"))
    };
    Ok(Render {
        frames: number("frames")?,
        mean_ms: number("mean_ms")?,
        p99_ms: number("p99_ms")?,
    })
}

/// A private tmux server, killed (with `backroom` in it) when dropped.
struct Tmux {
    socket: String,
    /// Where tmux put its socket, which it leaves behind.
    socket_path: Option<String>,
    config: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Result<Output, String> {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .map_err(|e| format!("cannot run tmux: {e}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.config);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs `backroom` idle in tmux and returns its CPU use over `window`, in
/// percent of one core.
fn measure_idle_cpu(backroom: &Path, window: Duration) -> Result<f64, String> {
    let pid = std::process::id();
    let mut tmux = Tmux {
        socket: format!("backroom-bench-dash-{pid}"),
        socket_path: None,
        config: std::env::temp_dir().join(format!("backroom-bench-dash-{pid}.toml")),
    };
    // An empty config, so that the user's ~/.config is not read.
    std::fs::write(&tmux.config, "").map_err(|e| format!("cannot write a config: {e}"))?;
    let mut args: Vec<String> = [
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "--",
    ]
    .map(String::from)
    .to_vec();
    args.push(backroom.display().to_string());
    args.extend(["--config".into(), tmux.config.display().to_string()]);
    for flag in ["--files", "--print", "--db", "--proxy-admin"] {
        args.extend([flag.into(), format!("127.0.0.1:{}", proc::free_port()?)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = tmux.run(&args)?;
    if !started.status.success() {
        return Err(format!(
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&started.stderr).trim()
        ));
    }
    let shown = tmux.run(&[
        "display-message",
        "-p",
        "-t",
        "0",
        "#{socket_path} #{pane_pid}",
    ])?;
    let shown = String::from_utf8_lossy(&shown.stdout).trim().to_owned();
    let (socket_path, pane_pid) = shown
        .rsplit_once(' ')
        .ok_or_else(|| format!("tmux gave no pane pid: {shown:?}"))?;
    tmux.socket_path = Some(socket_path.to_owned());
    let pane_pid = pane_pid.to_owned();
    // Let it start and take over the screen before the quiet stretch.
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(&pane_pid)?;
    let at = Instant::now();
    std::thread::sleep(window);
    let after = cpu_ticks(&pane_pid)?;
    let elapsed = at.elapsed().as_secs_f64();
    let ticks = after.saturating_sub(before) as f64;
    Ok(ticks / clock_ticks_per_second() / elapsed * 100.0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path} (has backroom exited?): {e}"))?;
    // The command name may hold spaces; the fields start after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counting
    // from 0 after the `)`.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err(format!("cannot parse {path}: {stat}")),
    }
}

/// `getconf CLK_TCK`, which is 100 on every Linux in practice.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
