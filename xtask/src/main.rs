//! Developer tasks for the tracer workspace: `cargo xtask <command>`.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod lab;
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
    }
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
    cargo(&["test", "--workspace", "--locked"])?;
    lab::run(lab_args(false, false))
}

fn demo() -> Result<()> {
    setup::run_setup()?;
    cargo(&["build", "--release", "-p", "tracer", "--locked"])?;
    // On a terminal the findings open in the tracer's live view; otherwise as text.
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    lab::run(lab_args(!tty, tty))
}
