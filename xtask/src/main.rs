//! Developer tasks for the tracer workspace: `cargo xtask <command>`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod dist;
mod fuzz;
mod lab;
mod layers;
mod setup;

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for the tracer workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the host tools the workspace and the lab need.
    Setup,
    /// Boot real Debian kernels in qemu and run the tracer against real dma-buf traffic.
    Lab(Box<lab::LabArgs>),
    /// Every test: setup, the workspace's tests (unit, engine, privileged host
    /// tests) and the lab scenarios on the default kernel. What CI runs.
    Test,
    /// Build what a user installs: a static tracer binary and a .deb with its man pages
    /// and shell completions (target/dist/).
    Dist,
    /// Fuzz what the tracer reads that others wrote: the recording reader, the event
    /// decoder, and `tracer analyze` end to end (libFuzzer; docs/fuzzing.md).
    Fuzz {
        /// Executions per target.
        #[arg(long, default_value_t = 10_000_000)]
        runs: u64,
        /// Targets to run (default: all): recording, decode, analyze.
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Check the module import graph: no upward import between layers, no circle
    /// between modules, no eBPF, runtime or I/O in tracer-core (docs/architecture.md).
    Layers,
    /// The demo for a machine without GPU traffic: setup, build, boot the lab
    /// with every scenario and show what the tracer finds.
    Demo,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run_setup(),
        Command::Lab(args) => lab::run(*args),
        Command::Test => test(),
        Command::Demo => demo(),
        Command::Layers => layers::check(&lab::repo_root()),
        Command::Dist => dist::dist(&lab::repo_root()).map(|_| ()),
        Command::Fuzz { runs, targets } => {
            let targets = if targets.is_empty() {
                fuzz::TARGETS.iter().map(|t| t.to_string()).collect()
            } else {
                targets
            };
            fuzz::run(&lab::repo_root(), runs, &targets).map(|_| ())
        }
    }
}

/// Whether this process runs as root (/proc/self belongs to the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn cargo(args: &[&str]) -> Result<()> {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .status()?;
    anyhow::ensure!(status.success(), "cargo {} failed", args.join(" "));
    Ok(())
}

fn lab_args(show_findings: bool, interactive: bool) -> lab::LabArgs {
    use clap::Parser as _;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        lab: lab::LabArgs,
    }
    let mut w = Wrap::parse_from(["lab"]);
    w.lab.show_findings = show_findings;
    w.lab.interactive = interactive;
    w.lab
}

fn test() -> Result<()> {
    setup::run_setup()?;
    layers::check(&lab::repo_root())?;
    cargo(&["test", "--workspace", "--locked"])?;
    // The tests that need root (they load BPF programs) or tmux are `#[ignore]`d, so a
    // plain `cargo test` lists them as ignored instead of passing them unrun.
    if is_root() {
        // With the fail points compiled in: the panic tests trigger one (inert without
        // FAILPOINTS in the environment).
        cargo(&[
            "test",
            "--workspace",
            "--locked",
            "--features",
            "tracer/failpoints",
            "--",
            "--ignored",
        ])?;
    } else {
        println!("xtask: not root: the tests that load BPF programs were not run (cargo test lists them as ignored)");
    }
    // A smoke run of every fuzz target (the full run: cargo xtask fuzz, docs/fuzzing.md).
    fuzz::run(
        &lab::repo_root(),
        20_000,
        &fuzz::TARGETS
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
    )?;
    lab::run(lab_args(false, false))?;
    payload_example()?;
    // A short soak: the same judgement as the 30-minute one (docs/results.md, "Long runs").
    let mut soak = lab_args(false, false);
    soak.soak = Some(SOAK_SMOKE_MINUTES);
    lab::run(soak)
}

/// Minutes of the soak `cargo xtask test` runs.
const SOAK_SMOKE_MINUTES: u32 = 3;

/// The worked example of docs/lab.md ("Bring your own suite"), end to end: the example suite
/// built as an ordinary dynamically linked host program, run in the guest with
/// `--payload`; its TAP output must be all "ok" (a failing script fails the run) and the
/// report clean and showing the suite's dma-buf traffic.
fn payload_example() -> Result<()> {
    let src = lab::repo_root().join("docs/examples/lab-payload");
    let dir = lab::cache_dir().join("build/payload-example");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(src.join("run.sh"), dir.join("run.sh"))?;
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(dir.join("suite"))
        .arg(src.join("suite.c"))
        .status()
        .context("running gcc for the payload example")?;
    if !st.success() {
        anyhow::bail!("compiling docs/examples/lab-payload/suite.c failed");
    }
    let report = dir.join("report.json");
    let mut a = lab_args(false, false);
    a.payload = Some(dir.clone());
    a.report = Some(report.clone());
    lab::run(a)?;
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)
        .context("the payload example's report is not JSON")?;
    let findings = doc["findings"].as_array().map_or(0, |f| f.len());
    let exports = doc["stats"]["calls"]["dma_buf_export"]
        .as_u64()
        .unwrap_or(0);
    if findings != 0 || exports < 2 {
        anyhow::bail!(
            "payload example: expected a clean report with 2 dma_buf_export calls, got {findings} finding(s) and {exports} export(s) ({})",
            report.display()
        );
    }
    println!("payload example: suite passed, report clean, {exports} exports seen");
    Ok(())
}

fn demo() -> Result<()> {
    setup::run_setup()?;
    cargo(&["build", "--release", "-p", "tracer", "--locked"])?;
    // On a terminal the findings open in the tracer's live view; otherwise as text.
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    lab::run(lab_args(!tty, tty))
}
