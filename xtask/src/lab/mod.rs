//! `cargo xtask lab`: boot real Debian kernels in qemu with real dma-buf drivers.

pub mod kernels;

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::Command;

#[derive(Args, Debug)]
pub struct LabArgs {
    /// Kernel: a short name (6.1, 6.12, 7.3) or the Debian package version of a kernel image.
    #[arg(long, default_value = kernels::DEFAULT_KERNEL)]
    pub kernel: String,
    /// Refresh the private apt lists even if they are cached.
    #[arg(long)]
    pub refresh: bool,
    /// Only fetch and extract the kernel(s).
    #[arg(long)]
    pub fetch_only: bool,
}

pub fn run(args: LabArgs) -> Result<()> {
    let k = kernels::fetch(&args.kernel, args.refresh)?;
    println!("{} {} {} {}", k.key, k.kver, k.version, k.root.display());
    Ok(())
}

/// `$TRACER_LAB_CACHE`, or `lab-cache/` at the repository root (ignored by git).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("TRACER_LAB_CACHE") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("lab-cache"),
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Run a command, failing with its command line when it does not exit 0.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed: {status}", cmd);
    }
    Ok(())
}
