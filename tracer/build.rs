//! Builds the eBPF programs (tracer-ebpf) for bpfel-unknown-none and embeds the
//! object in the tracer binary.
//!
//! The eBPF crate needs Debian's rustc (it ships the library source that
//! `-Z build-std=core` compiles) and bpf-linker; rustup's toolchain cannot build
//! it. Everything is installed by `cargo xtask setup`.

use std::{env, path::PathBuf, process::Command};

const SETUP_HINT: &str = "run `cargo xtask setup` to install the eBPF toolchain (Debian rustc-web, rust-web-src, llvm-22, bpf-linker)";

fn main() {
    if let Err(e) = build() {
        // One line the user can act on; cargo shows it as the build failure.
        println!("cargo::error=eBPF build failed: {e:#}");
        std::process::exit(1);
    }
}

fn build() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest.join("../tracer-ebpf").canonicalize()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo::rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo::rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        manifest.join("../tracer-common/src").display()
    );
    println!("cargo::rerun-if-env-changed=TRACER_EBPF_OBJ");

    // A prebuilt object (e.g. for a cross build) short-circuits the toolchain.
    if let Ok(obj) = env::var("TRACER_EBPF_OBJ") {
        std::fs::copy(&obj, out_dir.join("tracer-ebpf.o"))
            .map_err(|e| anyhow::anyhow!("TRACER_EBPF_OBJ={obj}: {e}"))?;
        return Ok(());
    }

    let debian_rustc = PathBuf::from("/usr/bin/rustc");
    let debian_cargo = PathBuf::from("/usr/bin/cargo");
    if !debian_rustc.exists() || !debian_cargo.exists() {
        anyhow::bail!("Debian's rustc/cargo (/usr/bin/rustc) not found; {SETUP_HINT}");
    }
    let home = env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo_bin = PathBuf::from(&home).join(".cargo/bin");
    let linker_ok = cargo_bin.join("bpf-linker").exists()
        || Command::new("bpf-linker").arg("--version").output().is_ok();
    if !linker_ok {
        anyhow::bail!("bpf-linker not found; {SETUP_HINT}");
    }

    let target_dir = ebpf_dir.join("target");
    let mut cmd = Command::new(&debian_cargo);
    cmd.current_dir(&ebpf_dir)
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", &debian_rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "--cfg=bpf_target_arch=\"x86_64\"",
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
            ]
            .join("\x1f"),
        )
        .env(
            "PATH",
            format!(
                "/usr/lib/llvm-22/bin:{}:{}",
                cargo_bin.display(),
                env::var("PATH").unwrap_or_default()
            ),
        );
    // Variables of the outer (rustup) build must not leak into the inner one.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "RUSTUP_TOOLCHAIN",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in env::vars() {
        if k.starts_with("CARGO_FEATURE_")
            || k.starts_with("CARGO_CFG_")
            || k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_PKG_NAME"
        {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", debian_cargo.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            println!("cargo::warning={line}");
        }
        if stderr.contains("can't find crate for `core`") || stderr.contains("rust-src") {
            anyhow::bail!("Debian's library source is missing; {SETUP_HINT}");
        }
        anyhow::bail!("cargo build of tracer-ebpf failed (output above); if the toolchain is incomplete, {SETUP_HINT}");
    }
    let obj = target_dir.join("bpfel-unknown-none/release/tracer-ebpf");
    std::fs::copy(&obj, out_dir.join("tracer-ebpf.o"))
        .map_err(|e| anyhow::anyhow!("copying {}: {e}", obj.display()))?;
    Ok(())
}
