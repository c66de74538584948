//! Things the lab compiles for the guest: out-of-tree kernel modules (against the extracted
//! Debian headers), the C workloads, and the static tracer binary.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::kernels::Kernel;
use super::{cache_dir, repo_root};

/// Build the module sources in `src` (a directory with a Kbuild-style Makefile) against
/// `kernel`'s headers. The sources are copied to a per-kernel build directory first so no
/// build output ever lands in the repository. Returns the .ko files.
pub fn build_module(kernel: &Kernel, src: &Path) -> Result<Vec<PathBuf>> {
    let src = src
        .canonicalize()
        .with_context(|| format!("module directory {}", src.display()))?;
    let name = src.file_name().unwrap().to_string_lossy().to_string();
    let build = cache_dir().join("build").join(&kernel.kver).join(&name);
    if build.exists() {
        fs::remove_dir_all(&build)?;
    }
    copy_tree(&src, &build)?;
    let headers = prepare_headers(kernel)?;
    prepare_kbuild_tools(kernel)?;
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&headers)
        .arg(format!("M={}", build.display()))
        .arg("modules");
    cmd.arg(format!(
        "-j{}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    ));
    // Without pahole the BTF step for modules fails; the module still loads without BTF.
    if super::initramfs::find_tool("pahole").is_none() {
        cmd.arg("CONFIG_DEBUG_INFO_BTF_MODULES=");
    }
    cmd.args(compiler_overrides(kernel)?);
    let out = cmd
        .output()
        .context("running make (install make and gcc)")?;
    if !out.status.success() {
        bail!(
            "building {} against {} failed:\n{}{}",
            src.display(),
            kernel.kver,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kos: Vec<PathBuf> = fs::read_dir(&build)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
        .collect();
    if kos.is_empty() {
        bail!("building {} produced no .ko", src.display());
    }
    Ok(kos)
}

/// The headers' top Makefile includes the common headers by their installed absolute path
/// (/usr/src/linux-headers-KV-common); point it at the extracted copy instead. Regenerated
/// from the original each time so a moved cache still works.
fn prepare_headers(kernel: &Kernel) -> Result<PathBuf> {
    let dir = &kernel.headers_dir;
    let makefile = dir.join("Makefile");
    let orig = dir.join("Makefile.debian");
    if !makefile.exists() {
        bail!("no kernel headers at {}", dir.display());
    }
    if !orig.exists() {
        fs::copy(&makefile, &orig)?;
    }
    let text = fs::read_to_string(&orig)?;
    let usr_src = kernel.root.join("usr/src");
    let fixed = text.replace("/usr/src/", &format!("{}/", usr_src.display()));
    fs::write(&makefile, fixed)?;
    Ok(dir.clone())
}

/// The headers name the compiler the kernel was built with (`$(CROSS_COMPILE)gcc-N` in
/// .kernelvariables). A newer suite's kernel wants a gcc the host may not have; then build
/// with the host's gcc, and drop the one flag of newer gccs that kbuild would otherwise pass
/// (it falls back to -falign-functions, as it does for older compilers).
fn compiler_overrides(kernel: &Kernel) -> Result<Vec<String>> {
    let vars = fs::read_to_string(kernel.headers_dir.join(".kernelvariables")).unwrap_or_default();
    let Some(gcc) = vars
        .lines()
        .filter(|l| l.trim_start().starts_with("CC "))
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.contains("gcc-"))
                .map(|w| w.rsplit(')').next().unwrap().to_string())
        })
    else {
        return Ok(vec![]);
    };
    let triplet = format!("x86_64-linux-gnu-{gcc}");
    if super::initramfs::find_tool(&triplet).is_some() {
        return Ok(vec![]);
    }
    eprintln!(
        "lab: {} was built with {gcc}, which this host lacks; building with the host's gcc",
        kernel.kver
    );
    let mut out = vec!["CC=gcc".to_string()];
    let probe = Command::new("gcc")
        .args([
            "-fmin-function-alignment=16",
            "-x",
            "c",
            "-c",
            "-o",
            "/dev/null",
            "/dev/null",
        ])
        .output()?;
    if !probe.status.success() {
        out.push("CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT=".into());
    }
    Ok(out)
}

/// The kbuild tools (fixdep, modpost, objtool, ...) of a newer suite are linked against a
/// newer glibc than the host's. Run them through that suite's own dynamic loader and C
/// library instead: each ELF tool is renamed to `<tool>.bin` and replaced by a shell wrapper.
/// The wrapper keeps argv[0], so Debian's dispatching tools (modpost -> modpost.real-*) still
/// find their siblings.
fn prepare_kbuild_tools(kernel: &Kernel) -> Result<()> {
    let Some(suite) = &kernel.tools_libc_suite else {
        return Ok(());
    };
    let usr_lib = kernel.root.join("usr/lib");
    let kbuild = fs::read_dir(&usr_lib)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-kbuild-")
        })
        .with_context(|| format!("no linux-kbuild-* in {}", usr_lib.display()))?;
    let stamp = kbuild.join(".lab-wrapped");
    if stamp.exists() {
        return Ok(());
    }
    // Wrapping is harmless on a host whose glibc is new enough, and probing each tool for
    // the error would mean running tools of unknown behaviour with no arguments.
    eprintln!(
        "lab: running {}'s kbuild tools with {suite}'s glibc",
        kernel.kver
    );
    let libc = super::kernels::fetch_packages(suite, &["libc6"])?;
    let libdir = libc.join("usr/lib/x86_64-linux-gnu");
    let loader = libdir.join("ld-linux-x86-64.so.2");
    if !loader.exists() {
        bail!("no dynamic loader in {}", libdir.display());
    }
    let mut stack = vec![kbuild.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
                continue;
            }
            let mut magic = [0u8; 4];
            let is_elf = fs::File::open(&p)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"\x7fELF";
            if !is_elf || p.extension().is_some_and(|x| x == "bin") {
                continue;
            }
            let bin = PathBuf::from(format!("{}.bin", p.display()));
            fs::rename(&p, &bin)?;
            // The host's library directories come second: libelf, zlib and libcrypto from the
            // host work with the newer C library.
            let wrapper = format!(
                "#!/bin/sh\nexec '{}' --library-path '{}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu' --argv0 \"$0\" '{}' \"$@\"\n",
                loader.display(),
                libdir.display(),
                bin.display()
            );
            fs::write(&p, wrapper)?;
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
    }
    fs::write(&stamp, "")?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)?.flatten() {
        let p = e.path();
        let name = e.file_name();
        let s = name.to_string_lossy();
        // Leftovers of an in-tree build would confuse kbuild's dependency tracking.
        if s.ends_with(".o")
            || s.ends_with(".ko")
            || s.starts_with('.')
            || s.ends_with(".mod")
            || s.ends_with(".mod.c")
        {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_tree(&p, &to.join(&name))?;
        } else {
            fs::copy(&p, to.join(&name))?;
        }
    }
    Ok(())
}

/// Compile every tests/lab/workloads/*.c statically with the host's gcc (the initramfs has no
/// C library). Uses the host's kernel uapi headers (linux-libc-dev). Returns (name, binary).
pub fn build_workloads() -> Result<Vec<(String, PathBuf)>> {
    let src_dir = repo_root().join("tests/lab/workloads");
    let out_dir = cache_dir().join("build/workloads");
    fs::create_dir_all(&out_dir)?;
    let mut out = Vec::new();
    let mut sources: Vec<PathBuf> = fs::read_dir(&src_dir)
        .with_context(|| format!("reading {}", src_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    // Every header of the directory: a workload is rebuilt when any of them changed.
    let headers: Vec<PathBuf> = fs::read_dir(&src_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .collect();
    for src in sources {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        let bin = out_dir.join(&name);
        let deps: Vec<&Path> = std::iter::once(src.as_path())
            .chain(headers.iter().map(PathBuf::as_path))
            .collect();
        if !is_newer(&bin, &deps) {
            let out = Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(&bin)
                .arg(&src)
                .output()
                .context("running gcc (install gcc and libc6-dev)")?;
            if !out.status.success() {
                bail!(
                    "compiling {} failed:\n{}",
                    src.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        out.push((name, bin));
    }
    Ok(out)
}

fn is_newer(target: &Path, sources: &[&Path]) -> bool {
    let Ok(t) = fs::metadata(target).and_then(|m| m.modified()) else {
        return false;
    };
    sources.iter().all(|s| {
        fs::metadata(s)
            .and_then(|m| m.modified())
            .map(|m| m <= t)
            .unwrap_or(true)
    })
}

/// Build the tracer as a static-pie binary that runs in the bare initramfs.
pub fn build_static_tracer() -> Result<PathBuf> {
    let root = repo_root();
    let target = "x86_64-unknown-linux-gnu";
    eprintln!(
        "lab: building the static tracer (cargo build --release -p tracer --target {target})"
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--release", "-p", "tracer", "--target", target])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()?;
    if !status.success() {
        bail!("building the tracer failed; run the lab with --no-tracer to test the lab alone, or pass a prebuilt static binary with --tracer PATH");
    }
    let bin = root.join("target").join(target).join("release/tracer");
    if !bin.exists() {
        bail!("{} was not produced", bin.display());
    }
    // Debug info makes the binary ~48 MB; the guest needs the symbol table only
    // (the tracer's uprobe finds its own `tracer_read_kernel` by symbol).
    let stripped = root.join("target").join(target).join("release/tracer-lab");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&bin)
        .arg(&stripped)
        .status();
    match status {
        Ok(s) if s.success() => Ok(stripped),
        _ => {
            eprintln!("lab: objcopy --strip-debug failed; using the unstripped tracer");
            Ok(bin)
        }
    }
}
