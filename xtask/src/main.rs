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
    Lab(lab::LabArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run_setup(),
        Command::Lab(args) => lab::run(args),
    }
}
