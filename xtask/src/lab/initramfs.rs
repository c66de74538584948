//! The guest's root filesystem: a newc cpio built from a staging directory.
//!
//! The archive is written here rather than with cpio(1) so that /dev/console can be a real
//! character device without mknod (and so without needing root to build it), and so the lab
//! needs no cpio on the host.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::kernels::Kernel;

/// Where the guest finds what the lab put in (paths inside the guest).
pub const GUEST_MODULES: &str = "/lib/mods";
pub const GUEST_LAB: &str = "/lab";

/// Busybox must be statically linked: the initramfs has no C library.
pub fn busybox() -> Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.exists() {
            let out = Command::new("file").arg("-L").arg(p).output();
            // Without file(1) trust the binary; the boot would show a missing loader anyway.
            if let Ok(out) = out {
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains("dynamically linked") {
                    bail!("{} is dynamically linked; the lab needs busybox-static (`apt-get install busybox-static`, or `cargo xtask setup`)", p.display());
                }
            }
            return Ok(p.to_path_buf());
        }
    }
    bail!("busybox not found; the lab needs busybox-static (`apt-get install busybox-static`, or `cargo xtask setup`)")
}

/// A staging directory that becomes the initramfs.
pub struct Builder {
    pub root: PathBuf,
    boot_modules: Vec<String>,
}

impl Builder {
    /// Start a fresh staging tree at `root` with busybox and its applet links.
    pub fn new(root: &Path) -> Result<Builder> {
        if root.exists() {
            fs::remove_dir_all(root)?;
        }
        for d in [
            "bin", "dev", "proc", "sys", "tmp", "out", "lib/mods", "lab", "root",
        ] {
            fs::create_dir_all(root.join(d))?;
        }
        let bb = busybox()?;
        fs::copy(&bb, root.join("bin/busybox"))?;
        let list = Command::new(&bb).arg("--list").output()?;
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
            }
        }
        // Scripts and tools in the guest expect the usual locations.
        std::os::unix::fs::symlink("bin", root.join("sbin"))?;
        fs::create_dir_all(root.join("usr"))?;
        std::os::unix::fs::symlink("../bin", root.join("usr/bin"))?;
        std::os::unix::fs::symlink("../bin", root.join("usr/sbin"))?;
        Ok(Builder {
            root: root.to_path_buf(),
            boot_modules: Vec::new(),
        })
    }

    /// Copy a host file to `dest` (a path inside the guest).
    pub fn add_file(&self, src: &Path, dest: &str, mode: u32) -> Result<()> {
        let to = self.guest_path(dest);
        fs::create_dir_all(to.parent().unwrap())?;
        fs::copy(src, &to)
            .with_context(|| format!("copying {} into the initramfs", src.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    pub fn add_bytes(&self, dest: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let to = self.guest_path(dest);
        fs::create_dir_all(to.parent().unwrap())?;
        fs::write(&to, bytes)?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn guest_path(&self, dest: &str) -> PathBuf {
        self.root.join(dest.trim_start_matches('/'))
    }

    /// Put `name` and its dependencies (decompressed: busybox insmod reads plain ELF) into
    /// /lib/mods. With `load_at_boot` the whole chain is insmodded by init, in dependency
    /// order; without it only the dependencies are, so a scenario can load `name` itself
    /// while the tracer watches. Returns false when the kernel has no such module (it may be
    /// built in, or absent on this kernel).
    pub fn add_kernel_module(
        &mut self,
        kernel: &Kernel,
        name: &str,
        load_at_boot: bool,
    ) -> Result<bool> {
        let Some(chain) = module_chain(kernel, name)? else {
            return Ok(false);
        };
        for (i, path) in chain.iter().enumerate() {
            let modname = module_name(path);
            let dest = self.guest_path(&format!("{GUEST_MODULES}/{modname}.ko"));
            if !dest.exists() {
                fs::write(&dest, decompress(path)?)?;
            }
            let is_target = i + 1 == chain.len();
            if (load_at_boot || !is_target) && !self.boot_modules.contains(&modname) {
                self.boot_modules.push(modname);
            }
        }
        Ok(true)
    }

    /// Write the init script and the boot module list, then the archive to `out`.
    pub fn finish(&self, init: &str, out: &Path) -> Result<()> {
        self.add_bytes(
            "/lab/modules.boot",
            (self.boot_modules.join("\n") + "\n").as_bytes(),
            0o644,
        )?;
        self.add_bytes("/init", init.as_bytes(), 0o755)?;
        let mut w = std::io::BufWriter::new(fs::File::create(out)?);
        let mut cpio = Cpio { ino: 1 };
        cpio.entry(&mut w, "dev/console", 0o020600, 0, (5, 1), &[])?;
        cpio.tree(&mut w, &self.root, &self.root)?;
        cpio.entry(&mut w, "TRAILER!!!", 0, 0, (0, 0), &[])?;
        w.flush()?;
        Ok(())
    }
}

/// `vgem` -> the module files to load, dependencies first; None when it is not a module of
/// this kernel. Uses kmod's depmod/modprobe when the host has them, else reads the
/// `depends=` field of each module's .modinfo itself (hosts without kmod, e.g. containers).
pub fn module_chain(kernel: &Kernel, name: &str) -> Result<Option<Vec<PathBuf>>> {
    if let (Some(depmod), Some(modprobe)) = (find_tool("depmod"), find_tool("modprobe")) {
        let dep = kernel.modules_dir.join("modules.dep");
        if !dep.exists() {
            super::run_cmd(
                Command::new(depmod)
                    .arg("-b")
                    .arg(&kernel.root)
                    .arg(&kernel.kver),
            )?;
        }
        let out = Command::new(modprobe)
            .arg("-d")
            .arg(&kernel.root)
            .arg("-S")
            .arg(&kernel.kver)
            .arg("--show-depends")
            .arg(name)
            .output()?;
        if !out.status.success() {
            return Ok(None);
        }
        let chain: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("insmod "))
            .map(|l| PathBuf::from(l.split_whitespace().next().unwrap()))
            .collect();
        return Ok(if chain.is_empty() { None } else { Some(chain) });
    }
    let files = module_files(&kernel.modules_dir)?;
    if !files.contains_key(&normalize(name)) {
        return Ok(None);
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    visit(&files, &normalize(name), &mut seen, &mut order)?;
    Ok(Some(order))
}

fn visit(
    files: &BTreeMap<String, PathBuf>,
    name: &str,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    // Dependencies that are not files are built in.
    let Some(path) = files.get(name) else {
        return Ok(());
    };
    let elf = decompress(path)?;
    for dep in modinfo(&elf, "depends")
        .split(',')
        .filter(|d| !d.is_empty())
    {
        visit(files, &normalize(dep), seen, order)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The value of `key=` in a module's .modinfo strings (NUL-separated `key=value`).
fn modinfo(elf: &[u8], key: &str) -> String {
    let pat = format!("{key}=");
    elf.split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(pat.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).to_string())
        .unwrap_or_default()
}

fn module_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".ko") {
                out.insert(module_name(&p), p);
            }
        }
    }
    Ok(out)
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// `.../drm_kms_helper.ko.xz` -> `drm_kms_helper`.
pub fn module_name(path: &Path) -> String {
    let f = path.file_name().unwrap().to_string_lossy();
    normalize(f.split(".ko").next().unwrap())
}

/// A module's ELF bytes, whatever compression the kernel package used.
pub fn decompress(path: &Path) -> Result<Vec<u8>> {
    let s = path.to_string_lossy();
    let tool = if s.ends_with(".xz") {
        "xz"
    } else if s.ends_with(".zst") {
        "zstd"
    } else if s.ends_with(".gz") {
        "gzip"
    } else {
        return Ok(fs::read(path)?);
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!("{tool} -dc {} failed", path.display());
    }
    Ok(out.stdout)
}

pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

struct Cpio {
    ino: u32,
}

impl Cpio {
    fn entry(
        &mut self,
        w: &mut impl Write,
        name: &str,
        mode: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let namesz = name.len() + 1;
        write!(
            w,
            "070701{ino:08X}{mode:08X}{:08X}{:08X}{:08X}{mtime:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{namesz:08X}{:08X}",
            0, 0, 1, data.len(), 0, 0, rdev.0, rdev.1, 0
        )?;
        w.write_all(name.as_bytes())?;
        w.write_all(&[0])?;
        w.write_all(&vec![0u8; (4 - (110 + namesz) % 4) % 4])?;
        w.write_all(data)?;
        w.write_all(&vec![0u8; (4 - data.len() % 4) % 4])?;
        Ok(())
    }

    fn tree(&mut self, w: &mut impl Write, base: &Path, dir: &Path) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
            let md = fs::symlink_metadata(&p)?;
            let perm = md.mode() & 0o7777;
            let mtime = md.mtime() as u32;
            if md.file_type().is_symlink() {
                let target = fs::read_link(&p)?;
                self.entry(
                    w,
                    &rel,
                    0o120000 | 0o777,
                    mtime,
                    (0, 0),
                    target.to_string_lossy().as_bytes(),
                )?;
            } else if md.is_dir() {
                self.entry(w, &rel, 0o040000 | perm, mtime, (0, 0), &[])?;
                self.tree(w, base, &p)?;
            } else {
                self.entry(w, &rel, 0o100000 | perm, mtime, (0, 0), &fs::read(&p)?)?;
            }
        }
        Ok(())
    }
}
