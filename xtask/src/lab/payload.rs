//! `cargo xtask lab --payload DIR`: a user's own user space in the guest.
//!
//! Every file of DIR goes to /lab/user/ (same relative paths, same permission bits), and
//! DIR/run.sh is what the guest runs under the tracer. The guest has only static busybox, so
//! each dynamically linked executable or library in DIR gets the shared libraries it needs
//! (its ELF `NEEDED` entries, followed transitively) from DIR itself or from the host's library
//! directories, into the guest's multiarch library directory, plus the dynamic loader at the
//! path the executable asks for: the way the bpftrace bundle is made (bpftrace.rs).

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::bpftrace::{find_lib, interpreter, needed, GUEST_LIBDIR, HOST_LIBDIRS};

/// Where the payload lands in the guest.
pub const GUEST_DIR: &str = "/lab/user";

/// One file to put into the guest: host path, guest path.
pub type PayloadFile = (PathBuf, String);

/// The files that make DIR runnable in the guest (see the module comment).
pub fn bundle(dir: &Path) -> Result<Vec<PayloadFile>> {
    if !dir.join("run.sh").is_file() {
        bail!(
            "{} has no run.sh: the payload's entry point is DIR/run.sh, run by the guest's sh",
            dir.display()
        );
    }
    let mut files: Vec<PayloadFile> = Vec::new();
    let mut elves: Vec<PathBuf> = Vec::new();
    walk(dir, dir, &mut files, &mut elves)?;

    // Libraries shipped in the payload are found first.
    let mut lib_dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|(p, _)| p.parent().map(Path::to_path_buf))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    lib_dirs.extend(HOST_LIBDIRS.iter().map(PathBuf::from));

    let mut libs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interps: BTreeSet<String> = BTreeSet::new();
    let mut todo = elves.clone();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut missing: Vec<String> = Vec::new();
    while let Some(elf) = todo.pop() {
        if !seen.insert(elf.clone()) {
            continue;
        }
        if elves.contains(&elf) {
            if let Ok(i) = interpreter(&elf) {
                interps.insert(i);
            }
        }
        for soname in needed(&elf)? {
            if libs.contains_key(&soname) {
                continue;
            }
            match find_lib(Path::new("/"), &lib_dirs, &soname) {
                Some(p) => {
                    todo.push(p.clone());
                    libs.insert(soname, p);
                }
                None => missing.push(format!("{soname} (needed by {})", elf.display())),
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "no file for {} in the payload nor in the host's library directories ({}): put it \
             into the payload directory or install the host package that ships it",
            missing.join(", "),
            HOST_LIBDIRS.join(", ")
        );
    }
    for (soname, path) in &libs {
        files.push((path.clone(), format!("{GUEST_LIBDIR}/{soname}")));
    }
    for interp in interps {
        let p = Path::new(&interp);
        let host = find_lib(
            Path::new("/"),
            &[p.parent().unwrap_or(Path::new("/")).to_path_buf()],
            p.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
        )
        .with_context(|| format!("the host has no dynamic loader {interp}"))?;
        files.push((host, interp));
    }
    Ok(files)
}

fn walk(
    root: &Path,
    dir: &Path,
    files: &mut Vec<PayloadFile>,
    elves: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let md = fs::metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if md.is_dir() {
            walk(root, &p, files, elves)?;
            continue;
        }
        if !md.is_file() {
            continue;
        }
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        if is_dynamic_elf(&p)? {
            elves.push(p.clone());
        }
        files.push((p, format!("{GUEST_DIR}/{rel}")));
    }
    Ok(())
}

/// An ELF file with a dynamic section (an executable or a shared library needing others).
fn is_dynamic_elf(p: &Path) -> Result<bool> {
    let mut head = [0u8; 4];
    let n = {
        use std::io::Read;
        let mut f = fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        f.read(&mut head)?
    };
    if n < 4 || head != *b"\x7fELF" {
        return Ok(false);
    }
    Ok(!needed(p).unwrap_or_default().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload of a script and a dynamically linked host program: the program, its
    /// libraries (libc at least) under the guest's library directory, and the loader.
    #[test]
    fn bundles_a_dynamic_program_with_its_libraries_and_loader() {
        let dir = std::env::temp_dir().join(format!("payload-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::write(dir.join("run.sh"), "bin/true\n").unwrap();
        // Any dynamically linked program of the host.
        let prog = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("a `true` program on the host");
        fs::copy(prog, dir.join("bin/true")).unwrap();
        let files = bundle(&dir).unwrap();
        let guest: Vec<&str> = files.iter().map(|(_, g)| g.as_str()).collect();
        assert!(guest.contains(&"/lab/user/run.sh"), "{guest:?}");
        assert!(guest.contains(&"/lab/user/bin/true"), "{guest:?}");
        assert!(
            guest.contains(&"/lib/x86_64-linux-gnu/libc.so.6"),
            "{guest:?}"
        );
        assert!(guest.iter().any(|g| g.contains("ld-linux")), "{guest:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_payload_without_run_sh_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("payload-norun-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let e = bundle(&dir).unwrap_err().to_string();
        assert!(e.contains("has no run.sh"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
