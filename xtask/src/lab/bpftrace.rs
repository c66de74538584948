//! bpftrace in the lab guest, for comparisons with the tracer (docs/overhead.md).
//!
//! The guest has only static busybox, so [`bundle`] gathers Debian's dynamically linked
//! `bpftrace` with every shared library it needs and the dynamic loader. Nothing is installed
//! on the host: the `bpftrace` package (the candidate of the host's apt) is fetched with
//! `apt-get download` and extracted with `dpkg-deb -x` under `<cache>/bpftrace/`. Its ELF
//! `NEEDED` entries are then followed transitively (`readelf -d`); each library is taken from
//! the extracted packages or, when the host already has it, from the host's own library
//! directories. For a library found in neither, the not-installed dependencies of the packages
//! fetched so far are downloaded and extracted too, and the walk is retried (on a bookworm host
//! with LLVM 14 that means `libbpfcc` and `libclang1-14`). The result is remembered in
//! `<cache>/bpftrace/bundle.list`, so later calls run no tool and need no network.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache_dir;

/// Where bpftrace is in the guest (the guest's /usr/bin is a link to /bin, so it is on PATH).
pub const GUEST_BIN: &str = "/usr/bin/bpftrace";
/// Where the libraries go in the guest: a directory glibc's loader searches without
/// /etc/ld.so.cache (Debian's multiarch directory is one of its built-in defaults).
pub const GUEST_LIBDIR: &str = "/lib/x86_64-linux-gnu";

/// Host library directories, searched after the extracted packages.
pub const HOST_LIBDIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
];

/// Library directories inside the extracted packages.
const ROOT_LIBDIRS: &[&str] = &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"];

/// (host path, guest path) pairs that make `/usr/bin/bpftrace` runnable in the lab guest: the
/// executable, every library it needs (transitively, symlinks resolved, each under its soname
/// in [`GUEST_LIBDIR`]) and the dynamic loader at the executable's interpreter path. Pass them
/// as `files` to [`super::boot_guest`]. The first call downloads three packages or so; later
/// calls read the cached list.
pub fn bundle() -> Result<Vec<(PathBuf, String)>> {
    let dir = cache_dir().join("bpftrace");
    let list = dir.join("bundle.list");
    if let Some(files) = read_list(&list) {
        return Ok(files);
    }
    let files = build(&dir).context("cannot bundle bpftrace for the lab guest")?;
    fs::write(&list, format_list(&files))
        .with_context(|| format!("cannot write {}", list.display()))?;
    Ok(files)
}

/// Total size in bytes of the bundle's host files.
pub fn size(files: &[(PathBuf, String)]) -> u64 {
    files
        .iter()
        .map(|(p, _)| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn build(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let debs = dir.join("debs");
    let root = dir.join("root");
    fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
    }
    fs::create_dir_all(&root)?;

    // Packages extracted into `root`, and those whose dependencies were already looked at.
    let mut fetched: Vec<String> = Vec::new();
    let mut expanded: BTreeSet<String> = BTreeSet::new();
    fetch_extract(&debs, &root, "bpftrace")?;
    fetched.push("bpftrace".into());

    let bin = root.join("usr/bin/bpftrace");
    if !bin.is_file() {
        bail!(
            "the bpftrace package has no usr/bin/bpftrace (extracted to {})",
            root.display()
        );
    }
    let mut dirs: Vec<PathBuf> = ROOT_LIBDIRS.iter().map(|d| root.join(d)).collect();
    dirs.extend(HOST_LIBDIRS.iter().map(PathBuf::from));

    // soname -> real file
    let mut libs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut todo = vec![bin.clone()];
    loop {
        // soname -> the file that needs it
        let mut missing: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
        while let Some(elf) = todo.pop() {
            if !seen.insert(elf.clone()) {
                continue;
            }
            for soname in needed(&elf)? {
                if let Some(p) = libs.get(&soname) {
                    todo.push(p.clone());
                    continue;
                }
                match find_lib(&root, &dirs, &soname) {
                    Some(p) => {
                        libs.insert(soname, p.clone());
                        todo.push(p);
                    }
                    None => {
                        missing.entry(soname).or_insert_with(|| elf.clone());
                    }
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        // Fetch what the packages taken so far depend on and the host lacks, then walk again.
        let frontier: Vec<String> = fetched
            .iter()
            .filter(|p| !expanded.contains(*p))
            .cloned()
            .collect();
        let mut new = Vec::new();
        for pkg in &frontier {
            expanded.insert(pkg.clone());
            for group in depends(pkg)? {
                if group.iter().any(|p| fetched.contains(p) || new.contains(p)) {
                    continue;
                }
                if installed(&group)? {
                    continue;
                }
                new.push(group[0].clone());
            }
        }
        if new.is_empty() {
            let what: Vec<String> = missing
                .iter()
                .map(|(s, by)| format!("{s} (needed by {})", by.display()))
                .collect();
            bail!(
                "no file for {} in the host's library directories ({}) nor in the packages fetched ({}); install the host package that ships it (apt-file search <soname>) and retry",
                what.join(", "),
                HOST_LIBDIRS.join(", "),
                fetched.join(", ")
            );
        }
        for pkg in &new {
            fetch_extract(&debs, &root, pkg)?;
            fetched.push(pkg.clone());
        }
        // Walk everything again: the new packages may provide what was missing.
        todo = vec![bin.clone()];
    }

    let interp = interpreter(&bin)?;
    // The loader must be the one of the C library the bundle carries.
    let libc = libs
        .get("libc.so.6")
        .context("bpftrace does not link libc.so.6 (unexpected build)")?;
    let loader = libc
        .parent()
        .map(|d| d.join("ld-linux-x86-64.so.2"))
        .filter(|p| p.exists())
        .or_else(|| find_lib(&root, &dirs, "ld-linux-x86-64.so.2"))
        .context("no ld-linux-x86-64.so.2 next to libc.so.6 nor in the library directories")?;
    let loader = resolve(&root, &loader)?;

    let mut files = vec![(bin, GUEST_BIN.to_string())];
    for (soname, path) in &libs {
        files.push((path.clone(), format!("{GUEST_LIBDIR}/{soname}")));
    }
    if !files.iter().any(|(_, g)| *g == interp) {
        files.push((loader, interp));
    }
    Ok(files)
}

/// `apt-get download PKG` into `debs` unless a `PKG_*.deb` is already there, then extract it
/// into `root`.
fn fetch_extract(debs: &Path, root: &Path, pkg: &str) -> Result<()> {
    let find = || -> Option<PathBuf> {
        let prefix = format!("{pkg}_");
        fs::read_dir(debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
            .max()
    };
    let deb = match find() {
        Some(d) => d,
        None => {
            eprintln!("lab: apt-get download {pkg} (for the guest's bpftrace)");
            let out = Command::new("apt-get")
                .current_dir(debs)
                // The cache may not be writable by apt's _apt user.
                .args(["-q", "-oAPT::Sandbox::User=root", "download", pkg])
                .output()
                .context("cannot run apt-get (install apt)")?;
            if !out.status.success() {
                bail!(
                    "`apt-get download {pkg}` failed ({}): {}; check the host's apt sources and run `apt-get update`",
                    out.status,
                    last_line(&out.stderr)
                );
            }
            find().with_context(|| {
                format!(
                    "`apt-get download {pkg}` left no {pkg}_*.deb in {}",
                    debs.display()
                )
            })?
        }
    };
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root)
        .output()
        .context("cannot run dpkg-deb (install dpkg)")?;
    if !out.status.success() {
        bail!(
            "`dpkg-deb -x {}` failed: {}; delete the file and retry",
            deb.display(),
            last_line(&out.stderr)
        );
    }
    Ok(())
}

/// The dependency groups of `pkg` according to the host's apt (Depends and Pre-Depends).
fn depends(pkg: &str) -> Result<Vec<Vec<String>>> {
    let out = Command::new("apt-cache")
        .args([
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            pkg,
        ])
        .output()
        .context("cannot run apt-cache (install apt)")?;
    if !out.status.success() {
        bail!(
            "`apt-cache depends {pkg}` failed: {}; run `apt-get update`",
            last_line(&out.stderr)
        );
    }
    Ok(parse_depends(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether the host has any package of `group` installed.
fn installed(group: &[String]) -> Result<bool> {
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package}\t${db:Status-Abbrev}\n")
        .args(group)
        .output()
        .context("cannot run dpkg-query (install dpkg)")?;
    // dpkg-query exits 1 when some name is unknown; the others are still listed.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split('\t').nth(1).is_some_and(|s| s.starts_with("ii"))))
}

/// `apt-cache depends` output -> groups of alternatives, each a list of real packages. A
/// virtual package (`<name>`) stands for its providers (the indented lines after it); `|`
/// before `Depends:` joins the line with the next one into one group.
fn parse_depends(text: &str) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut continues = false;
    let mut in_virtual = false;
    for line in text.lines() {
        let t = line.trim_start();
        let (or, rest) = match t.strip_prefix('|') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let dep = rest
            .strip_prefix("Depends:")
            .or_else(|| rest.strip_prefix("PreDepends:"));
        if let Some(dep) = dep {
            if !continues && !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            let name = dep.trim();
            in_virtual = name.starts_with('<');
            if !in_virtual {
                current.push(name.to_string());
            }
            continues = or;
        } else if line.starts_with("    ") && in_virtual {
            current.push(t.trim().to_string());
        } else {
            // The package's own name line, or another relation kind.
            in_virtual = false;
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// The sonames an ELF file needs (`readelf -d`).
pub fn needed(elf: &Path) -> Result<Vec<String>> {
    Ok(parse_needed(&readelf("-dW", elf)?))
}

/// The program interpreter an executable asks for (`readelf -l`).
pub fn interpreter(elf: &Path) -> Result<String> {
    parse_interpreter(&readelf("-lW", elf)?)
        .with_context(|| format!("{} names no program interpreter", elf.display()))
}

fn readelf(flag: &str, elf: &Path) -> Result<String> {
    let out = Command::new("readelf")
        .arg(flag)
        .arg(elf)
        .env("LC_ALL", "C")
        .output()
        .context("cannot run readelf (install binutils)")?;
    if !out.status.success() {
        bail!(
            "`readelf {flag} {}` failed: {}",
            elf.display(),
            last_line(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `readelf -d` output -> the `NEEDED` sonames, in order.
fn parse_needed(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let start = l.find('[')? + 1;
            let end = l.rfind(']')?;
            (start < end).then(|| l[start..end].to_string())
        })
        .collect()
}

/// `readelf -l` output -> the requested program interpreter.
fn parse_interpreter(text: &str) -> Option<String> {
    let i = text.find("[Requesting program interpreter: ")?;
    let rest = &text[i + "[Requesting program interpreter: ".len()..];
    Some(rest[..rest.find(']')?].to_string())
}

/// The first `dir/soname` that exists, as the real file (symlinks followed; links inside the
/// extracted packages stay inside them).
pub fn find_lib(root: &Path, dirs: &[PathBuf], soname: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(soname))
        .find_map(|p| match fs::symlink_metadata(&p) {
            Ok(_) => resolve(root, &p).ok(),
            Err(_) => None,
        })
}

/// Follows symlinks of `p` to a regular file. An absolute link target inside `root` (an
/// extracted package) is taken relative to `root`, not to the host's `/`.
fn resolve(root: &Path, p: &Path) -> Result<PathBuf> {
    let mut p = p.to_path_buf();
    for _ in 0..40 {
        let md = fs::symlink_metadata(&p).with_context(|| format!("{} vanished", p.display()))?;
        if !md.file_type().is_symlink() {
            let real = p
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", p.display()))?;
            if !real.is_file() {
                bail!("{} is not a regular file", real.display());
            }
            return Ok(real);
        }
        let target = fs::read_link(&p)?;
        p = if target.is_absolute() && p.starts_with(root) {
            root.join(target.strip_prefix("/").unwrap())
        } else {
            p.parent().unwrap().join(target)
        };
    }
    bail!("too many levels of symbolic links at {}", p.display())
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_string()
}

/// The cached bundle, when every file it names still exists.
fn read_list(list: &Path) -> Option<Vec<(PathBuf, String)>> {
    let text = fs::read_to_string(list).ok()?;
    let files = parse_list(&text)?;
    files.iter().all(|(p, _)| p.is_file()).then_some(files)
}

fn format_list(files: &[(PathBuf, String)]) -> String {
    files
        .iter()
        .map(|(h, g)| format!("{}\t{g}\n", h.display()))
        .collect()
}

fn parse_list(text: &str) -> Option<Vec<(PathBuf, String)>> {
    let files: Vec<(PathBuf, String)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (h, g) = l.split_once('\t')?;
            Some((PathBuf::from(h), g.to_string()))
        })
        .collect::<Option<_>>()?;
    // A list without the executable is not a bundle.
    files.iter().any(|(_, g)| g == GUEST_BIN).then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READELF_D: &str = "
Dynamic section at offset 0x251d00 contains 33 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libbpf.so.1]
 0x0000000000000001 (NEEDED)             Shared library: [libbcc_bpf.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libclang-14.so.13]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libfoo.so.1]
 0x000000000000001d (RUNPATH)            Library runpath: [$ORIGIN/../lib]
 0x000000000000000c (INIT)               0x21000
 0x000000006ffffffb (FLAGS_1)            Flags: PIE
";

    #[test]
    fn needed_entries_in_order_and_nothing_else() {
        assert_eq!(
            parse_needed(READELF_D),
            [
                "libbpf.so.1",
                "libbcc_bpf.so.0",
                "libclang-14.so.13",
                "libc.so.6"
            ]
        );
        assert!(parse_needed("\nThere is no dynamic section in this file.\n").is_empty());
    }

    #[test]
    fn interpreter_from_program_headers() {
        let text = "  INTERP         0x000318 0x0000000000000318 0x0000000000000318 0x00001c 0x00001c R   0x1\n      [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]\n  LOAD ...\n";
        assert_eq!(
            parse_interpreter(text).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(parse_interpreter("  LOAD 0x0\n"), None);
    }

    #[test]
    fn depends_groups_alternatives_and_virtuals() {
        let text = "bsd-mailx
 |Depends: <default-mta>
    exim4-daemon-light
  Depends: <mail-transport-agent>
    courier-mta
    postfix
  Depends: libbsd0
 |Depends: libfoo1
  Depends: libfoo1t64
  PreDepends: libc6
";
        assert_eq!(
            parse_depends(text),
            vec![
                vec!["exim4-daemon-light", "courier-mta", "postfix"],
                vec!["libbsd0"],
                vec!["libfoo1", "libfoo1t64"],
                vec!["libc6"],
            ]
        );
        let bpftrace =
            "bpftrace\n  Depends: libbpf1\n  Depends: libbpfcc\n  Depends: libclang1-14\n";
        assert_eq!(
            parse_depends(bpftrace),
            vec![vec!["libbpf1"], vec!["libbpfcc"], vec!["libclang1-14"]]
        );
    }

    #[test]
    fn list_round_trip_and_rejects() {
        let files = vec![
            (
                PathBuf::from("/c/bpftrace/root/usr/bin/bpftrace"),
                GUEST_BIN.to_string(),
            ),
            (
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
            ),
        ];
        assert_eq!(parse_list(&format_list(&files)), Some(files));
        assert_eq!(parse_list("/a/libc.so.6\t/lib/libc.so.6\n"), None);
        assert_eq!(parse_list("garbage\n"), None);
    }

    #[test]
    fn absolute_links_stay_in_the_extracted_tree() {
        let dir = std::env::temp_dir().join(format!("bpftrace-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let lib = dir.join("usr/lib/x86_64-linux-gnu");
        let real = dir.join("usr/lib/llvm-14/lib");
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(&real).unwrap();
        fs::write(real.join("libclang-14.so.13"), b"elf").unwrap();
        // Absolute target: must resolve inside `dir`, not on the host.
        std::os::unix::fs::symlink(
            "/usr/lib/llvm-14/lib/libclang-14.so.13",
            lib.join("libclang-14.so.13"),
        )
        .unwrap();
        std::os::unix::fs::symlink("libclang-14.so.13", lib.join("libclang.so.1")).unwrap();
        let dirs = vec![lib.clone()];
        let want = real.join("libclang-14.so.13").canonicalize().unwrap();
        assert_eq!(
            find_lib(&dir, &dirs, "libclang-14.so.13"),
            Some(want.clone())
        );
        assert_eq!(find_lib(&dir, &dirs, "libclang.so.1"), Some(want));
        assert_eq!(find_lib(&dir, &dirs, "libnone.so.0"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
