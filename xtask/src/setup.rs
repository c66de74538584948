//! `cargo xtask setup`: installs what building the eBPF programs and running
//! the lab need on a fresh Debian 12 machine (platform.md §2). Idempotent:
//! when everything is present it only checks, in seconds.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages: the eBPF toolchain (Debian's rustc-web is linked against
/// LLVM 22 and ships the library source `-Z build-std=core` needs), the lab
/// (qemu, busybox, initramfs tools, module builds) and the C workloads.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    "kmod",
    "gcc",
    // libFuzzer (cargo xtask fuzz) is C++.
    "g++",
    "make",
    "libc6-dev",
    "linux-libc-dev",
    "debian-archive-keyring",
    "gpgv",
    "tmux",
];

const BPF_LINKER_VERSION: &str = "0.13";

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn bpf_linker_ok() -> bool {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = format!("{home}/.cargo/bin/bpf-linker");
    Command::new(&path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false)
}

pub fn run_setup() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present");
    } else {
        if !root {
            bail!("setup: missing Debian packages {missing:?}: run `sudo cargo xtask setup` (apt-get needs root)");
        }
        eprintln!("setup: installing {missing:?}");
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if bpf_linker_ok() {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION} present");
    } else {
        eprintln!(
            "setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 2 minutes)"
        );
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .arg("--version")
            .arg(format!("~{BPF_LINKER_VERSION}"))
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("PATH", path))?;
    }
    eprintln!("setup: done; `cargo build` now builds the eBPF programs too");
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
