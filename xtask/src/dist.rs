//! `cargo xtask dist`: what a user copies to a GPU dev box. One static `tracer` binary (the
//! eBPF object is embedded at build time), and a `.deb` with it, its man pages and shell
//! completions, built with dpkg-deb (Debian's own tool). Output in target/dist/.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

fn tracer_version(root: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let doc: toml::Table = manifest.parse().context("parsing Cargo.toml")?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("no [workspace.package] version in Cargo.toml")
}

/// The package's control file.
pub fn control(version: &str, installed_kib: u64) -> String {
    format!(
        "Package: tracer\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: tracer developers <tracer@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Section: devel\n\
         Priority: optional\n\
         Homepage: https://localhost/tracer\n\
         Description: lockdep for dma-buf reservation locks, on stock kernels, over eBPF\n \
         Checks the dma-buf locking convention (which calls an importer makes holding a\n \
         buffer's reservation lock, which exporter callbacks run with it held) and\n \
         lockdep's ordering rules on a running kernel, without a debug kernel. Needs a\n \
         kernel with BTF and root (or CAP_BPF and CAP_PERFMON): `tracer doctor` checks.\n"
    )
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

fn gzip(p: &Path) -> Result<()> {
    run(Command::new("gzip").args(["-9n", "-f"]).arg(p), "gzip")
}

/// Builds target/dist/tracer and target/dist/tracer_VERSION_amd64.deb; returns the .deb.
pub fn dist(root: &Path) -> Result<PathBuf> {
    let version = tracer_version(root)?;
    let built = crate::lab::modules::build_static_tracer()?;
    let out = root.join("target/dist");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let binary = out.join("tracer");
    std::fs::copy(&built, &binary).context("copying the static tracer")?;
    // The binary must run on a box with nothing installed: no dynamic loader needed.
    let file = Command::new("file").arg(&binary).output();
    if let Ok(o) = file {
        let t = String::from_utf8_lossy(&o.stdout);
        if t.contains("dynamically linked") && !t.contains("static-pie") {
            bail!("{} is dynamically linked: {t}", binary.display());
        }
    }
    let pkg = out.join("deb");
    let bin_dir = pkg.join("usr/bin");
    let man_dir = pkg.join("usr/share/man/man1");
    let doc_dir = pkg.join("usr/share/doc/tracer");
    let bash = pkg.join("usr/share/bash-completion/completions");
    let zsh = pkg.join("usr/share/zsh/vendor-completions");
    let fish = pkg.join("usr/share/fish/vendor_completions.d");
    for d in [
        &bin_dir,
        &man_dir,
        &doc_dir,
        &bash,
        &zsh,
        &fish,
        &pkg.join("DEBIAN"),
    ] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::copy(&binary, bin_dir.join("tracer"))?;
    run(
        Command::new(&binary).arg("manpages").arg(&man_dir),
        "tracer manpages",
    )?;
    for e in std::fs::read_dir(&man_dir)? {
        gzip(&e?.path())?;
    }
    for (shell, path) in [
        ("bash", bash.join("tracer")),
        ("zsh", zsh.join("_tracer")),
        ("fish", fish.join("tracer.fish")),
    ] {
        let o = Command::new(&binary)
            .args(["completions", shell])
            .output()
            .context("tracer completions")?;
        if !o.status.success() || o.stdout.is_empty() {
            bail!("tracer completions {shell} failed");
        }
        std::fs::write(path, o.stdout)?;
    }
    std::fs::write(
        doc_dir.join("copyright"),
        "tracer: lockdep for dma-buf reservation locks.\nLicense: GPL-2.0-only OR MIT\n",
    )?;
    let size_kib = dir_size(&pkg)? / 1024;
    std::fs::write(pkg.join("DEBIAN/control"), control(&version, size_kib))?;
    let deb = out.join(format!("tracer_{version}_amd64.deb"));
    run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&pkg)
            .arg(&deb),
        "dpkg-deb --build",
    )?;
    println!("dist: {} (static binary)", binary.display());
    println!("dist: {}", deb.display());
    Ok(deb)
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_control_file_is_well_formed() {
        let c = super::control("1.2.3", 4096);
        assert!(c.starts_with("Package: tracer\nVersion: 1.2.3\nArchitecture: amd64\n"));
        assert!(c.contains("Installed-Size: 4096\n"));
        // Continuation lines of the description start with one space; the file ends in a
        // newline.
        let desc: Vec<&str> = c
            .lines()
            .skip_while(|l| !l.starts_with("Description:"))
            .collect();
        assert!(desc.len() > 1 && desc[1..].iter().all(|l| l.starts_with(' ')));
        assert!(c.ends_with('\n'));
    }
}
