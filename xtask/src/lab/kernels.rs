//! Which Debian kernels the lab boots, and fetching them into the cache.
//!
//! Everything goes through a private apt configuration (own sources file, lists, cache and an
//! empty dpkg status) so the host's /etc/apt is only read, never changed, and the host's
//! installed packages and pins cannot influence what "newest in the suite" means. The mirror is
//! taken from the host's own apt configuration at run time; the repository names no mirror.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cache_dir, run_cmd};

/// One lab kernel line: a short name users type, and the Debian suite that provides it.
pub struct SuiteSpec {
    pub key: &'static str,
    pub suite: &'static str,
    pub note: &'static str,
    /// Suite whose C library the kernel's kbuild tools (modpost, objtool, ...) were linked
    /// against, when that is newer than a bookworm host's: the lab then runs those tools
    /// through that suite's dynamic loader to build modules.
    pub tools_libc_suite: Option<&'static str>,
}

/// The kernels the lab knows by short name. `--matrix` boots each of them in this order.
pub const SUITES: &[SuiteSpec] = &[
    SuiteSpec {
        key: "6.1",
        suite: "bookworm",
        note: "pre-6.2 dma-buf locking convention; no udmabuf, no dma-heaps",
        tools_libc_suite: None,
    },
    SuiteSpec {
        key: "6.12",
        suite: "bookworm-backports",
        note: "default: udmabuf built in, dma-heaps, vgem and bochs as modules",
        tools_libc_suite: None,
    },
    SuiteSpec {
        key: "7.3",
        suite: "trixie-backports",
        note: "split packaging: linux-binary-*, linux-modules-*, linux-base-*",
        tools_libc_suite: Some("trixie"),
    },
];

pub const DEFAULT_KERNEL: &str = "6.12";

/// The keyring apt verifies the suites' Release files with. On bookworm hosts it holds the
/// bookworm and trixie archive keys, which sign bookworm, bookworm-backports and
/// trixie-backports alike.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A kernel extracted into the cache, ready to boot and to build modules against.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The short name (`6.12`) or the package version the user asked for.
    pub key: String,
    pub suite: String,
    /// `uname -r` of the kernel, e.g. `6.12.95+deb12-amd64`.
    pub kver: String,
    /// Debian package version, e.g. `6.12.95-1~bpo12+1`.
    pub version: String,
    /// All packages of this kernel extracted on top of each other.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// `<root>/lib/modules/<kver>` (or `usr/lib/...` on the split packaging).
    pub modules_dir: PathBuf,
    /// `<root>/usr/src/linux-headers-<kver>`.
    pub headers_dir: PathBuf,
    /// See [`SuiteSpec::tools_libc_suite`].
    pub tools_libc_suite: Option<String>,
}

/// Resolve `spec` (a short name from [`SUITES`] or a Debian package version of a kernel
/// image), download what is missing and extract it. A second call for the same kernel
/// downloads nothing: the package lists are refreshed only when absent or when `refresh` is
/// set, and extracted kernels are kept by version.
pub fn fetch(spec: &str, refresh: bool) -> Result<Kernel> {
    let cache = cache_dir();
    let mirror = host_mirror()?;
    let (suite, index, image) = if let Some(s) = SUITES.iter().find(|s| s.key == spec) {
        let apt = Apt::new(&cache, s.suite, &mirror)?;
        apt.update(refresh)?;
        let index = apt.index()?;
        let image = newest_image(&index)
            .with_context(|| format!("no amd64 kernel image found in {}", s.suite))?;
        (apt, index, image)
    } else {
        find_version(&cache, &mirror, spec, refresh)?
    };
    let kver = image_kver(&image.name).unwrap();
    let key = format!("{kver}_{}", image.version);
    let root = cache.join("kernels").join(sanitize(&key)).join("root");
    let stamp = root.with_file_name("complete");
    if !stamp.exists() {
        let pkgs = packages_for(&index, &image, &kver)?;
        let debs = suite.download(&cache.join("debs"), &pkgs)?;
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        fs::create_dir_all(&root)?;
        for deb in &debs {
            eprintln!(
                "lab: extracting {}",
                deb.file_name().unwrap().to_string_lossy()
            );
            run_cmd(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        }
        // The split packaging installs under usr/lib only; modprobe -d ROOT looks in
        // ROOT/lib/modules, as a merged-/usr system would see it.
        if !root.join("lib").exists() && root.join("usr/lib/modules").exists() {
            std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        }
        let list: Vec<String> = pkgs
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        fs::write(&stamp, list.join("\n") + "\n")?;
    }
    let vmlinuz = [
        root.join(format!("boot/vmlinuz-{kver}")),
        root.join(format!("usr/lib/modules/{kver}/vmlinuz")),
        // linux-binary-unsigned-* installs its image under this name.
        root.join(format!("usr/lib/modules/{kver}/vmlinuz.unsigned")),
    ]
    .into_iter()
    .find(|p| p.exists())
    .with_context(|| format!("no vmlinuz for {kver} in {}", root.display()))?;
    let modules_dir = root.join("lib/modules").join(&kver);
    if !modules_dir.join("kernel").exists() {
        bail!("no modules for {kver} in {}", modules_dir.display());
    }
    let tools_libc_suite = SUITES
        .iter()
        .find(|s| s.suite == suite.suite)
        .and_then(|s| s.tools_libc_suite)
        .map(str::to_string);
    Ok(Kernel {
        tools_libc_suite,
        key: spec.to_string(),
        suite: suite.suite.clone(),
        headers_dir: root.join("usr/src").join(format!("linux-headers-{kver}")),
        kver,
        version: image.version.clone(),
        root,
        vmlinuz,
        modules_dir,
    })
}

/// Download and extract the newest `packages` of `suite` into `<cache>/extra/<suite>/root`
/// (once; a stamp file remembers it). Used for host-side helpers such as a newer C library.
pub fn fetch_packages(suite: &str, packages: &[&str]) -> Result<PathBuf> {
    let cache = cache_dir();
    let root = cache
        .join("extra")
        .join(suite)
        .join(packages.join("+"))
        .join("root");
    let stamp = root.with_file_name("complete");
    if stamp.exists() {
        return Ok(root);
    }
    let apt = Apt::new(&cache, suite, &host_mirror()?)?;
    apt.update(false)?;
    let index = apt.index()?;
    let pkgs: Vec<Pkg> = packages
        .iter()
        .map(|p| lookup(&index, p, None).with_context(|| format!("{p} not found in {suite}")))
        .collect::<Result<_>>()?;
    let debs = apt.download(&cache.join("debs"), &pkgs)?;
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::create_dir_all(&root)?;
    for deb in &debs {
        run_cmd(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    fs::write(&stamp, "")?;
    Ok(root)
}

/// A package record from the suite's index (only the fields the lab needs).
#[derive(Debug, Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub depends: String,
}

type Index = BTreeMap<String, Vec<Pkg>>;

/// `linux-image-6.12.95+deb12-amd64` -> `6.12.95+deb12-amd64`; None for flavours the lab does
/// not boot (rt, cloud), debug symbols, and meta packages.
fn image_kver(name: &str) -> Option<String> {
    let kver = name.strip_prefix("linux-image-")?;
    let kver = kver.strip_suffix("-unsigned").unwrap_or(kver);
    let base = kver.strip_suffix("-amd64")?;
    if !base.starts_with(|c: char| c.is_ascii_digit())
        || base.ends_with("-rt")
        || base.ends_with("-cloud")
        || name.ends_with("-dbg")
    {
        return None;
    }
    Some(kver.to_string())
}

fn newest_image(index: &Index) -> Option<Pkg> {
    index
        .iter()
        .filter(|(name, _)| image_kver(name).is_some())
        .flat_map(|(_, v)| v.iter())
        .max_by(|a, b| {
            debian_version_cmp(&a.version, &b.version)
                // Same version: prefer the unsigned build (the name that sorts last).
                .then(a.name.cmp(&b.name))
        })
        .cloned()
}

fn find_version(
    cache: &Path,
    mirror: &str,
    version: &str,
    refresh: bool,
) -> Result<(Apt, Index, Pkg)> {
    for s in SUITES {
        let apt = Apt::new(cache, s.suite, mirror)?;
        apt.update(refresh)?;
        let index = apt.index()?;
        let found = index
            .iter()
            .filter(|(name, _)| image_kver(name).is_some())
            .flat_map(|(_, v)| v.iter())
            .filter(|p| p.version == version)
            .max_by(|a, b| a.name.cmp(&b.name))
            .cloned();
        if let Some(p) = found {
            return Ok((apt, index, p));
        }
    }
    let names: Vec<&str> = SUITES.iter().map(|s| s.key).collect();
    bail!(
        "kernel `{version}` is neither a short name ({}) nor the package version of an amd64 kernel image in {}",
        names.join(", "),
        SUITES.iter().map(|s| s.suite).collect::<Vec<_>>().join(", ")
    )
}

/// The packages that make up one kernel for the lab: the image (unsigned build when the suite
/// has one), whatever the image splits out into per-version packages (binary, modules, base on
/// the new packaging), and the headers with their common and kbuild packages.
fn packages_for(index: &Index, image: &Pkg, kver: &str) -> Result<Vec<Pkg>> {
    let abi = kver.strip_suffix("-amd64").unwrap_or(kver);
    let mut want: Vec<Pkg> = Vec::new();
    let mut todo = vec![(image.name.clone(), Some(image.version.clone()))];
    todo.push((format!("linux-headers-{kver}"), Some(image.version.clone())));
    while let Some((name, version)) = todo.pop() {
        // The new packaging ships signed and unsigned builds of the binary package; the lab
        // boots with -kernel, so the unsigned one serves and matches the brief's "unsigned".
        let name = unsigned_variant(index, &name);
        if want.iter().any(|p| p.name == name) {
            continue;
        }
        let pkg = lookup(index, &name, version.as_deref()).with_context(|| {
            format!(
                "package {name} {} not in the index",
                version.unwrap_or_default()
            )
        })?;
        for dep in pkg.depends.split(',') {
            // First alternative only: the others are other initramfs tools or the signed twin.
            let alt = dep.split('|').next().unwrap().trim();
            let dname = alt.split_whitespace().next().unwrap_or("");
            let dver = alt
                .split_once("(=")
                .map(|(_, v)| v.trim_end_matches(')').trim().to_string());
            let ours = dname.starts_with("linux-kbuild-")
                || (dname.contains(abi) && !dname.starts_with("linux-image-"));
            if ours {
                todo.push((dname.to_string(), dver));
            }
        }
        want.push(pkg);
    }
    Ok(want)
}

fn unsigned_variant(index: &Index, name: &str) -> String {
    let candidates = [
        format!("{name}-unsigned"),
        name.replacen("linux-binary-", "linux-binary-unsigned-", 1),
    ];
    candidates
        .into_iter()
        .find(|c| c != name && index.contains_key(c))
        .unwrap_or_else(|| name.to_string())
}

fn lookup(index: &Index, name: &str, version: Option<&str>) -> Option<Pkg> {
    let v = index.get(name)?;
    match version {
        Some(want) => v.iter().find(|p| p.version == want).cloned(),
        None => v
            .iter()
            .max_by(|a, b| debian_version_cmp(&a.version, &b.version))
            .cloned(),
    }
}

/// A private apt configuration for one suite under `<cache>/apt/<suite>`.
pub struct Apt {
    pub suite: String,
    dir: PathBuf,
}

impl Apt {
    fn new(cache: &Path, suite: &str, mirror: &str) -> Result<Apt> {
        let dir = cache.join("apt").join(suite);
        for d in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(d))?;
        }
        // apt only parses deb822 when the file name ends in .sources.
        let sources = format!(
            "Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\nSigned-By: {KEYRING}\n"
        );
        write_if_changed(&dir.join("lab.sources"), &sources)?;
        write_if_changed(&dir.join("status"), "")?;
        Ok(Apt {
            suite: suite.to_string(),
            dir,
        })
    }

    fn opts(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        vec![
            format!("-oDir::Etc::SourceList={}", d("lab.sources")),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            "-oDir::Etc::Preferences=/dev/null".into(),
            "-oDir::Etc::PreferencesParts=/dev/null".into(),
            format!("-oDir::State::Lists={}", d("lists")),
            format!("-oDir::State::status={}", d("status")),
            format!("-oDir::Cache={}", d("cache")),
            "-oAPT::Architecture=amd64".into(),
            "-oAPT::Architectures=amd64".into(),
            // Downloads land in the lab cache, which the _apt user may not be able to write.
            "-oAPT::Sandbox::User=root".into(),
            "-q".into(),
        ]
    }

    fn update(&self, refresh: bool) -> Result<()> {
        let have_lists = fs::read_dir(self.dir.join("lists"))?
            .flatten()
            // apt may store the index compressed (_Packages.lz4 and the like).
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"));
        if have_lists && !refresh {
            return Ok(());
        }
        eprintln!("lab: apt-get update for {} (private lists)", self.suite);
        let t = std::time::Instant::now();
        run_cmd(Command::new("apt-get").args(self.opts()).arg("update"))?;
        eprintln!(
            "lab: lists for {} in {:.1}s",
            self.suite,
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn index(&self) -> Result<Index> {
        let out = Command::new("apt-cache")
            .args(self.opts())
            .arg("dumpavail")
            .output()?;
        if !out.status.success() {
            bail!(
                "apt-cache dumpavail failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(parse_index(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `apt-get download` every package not yet in `dir`; returns the .deb paths.
    fn download(&self, dir: &Path, pkgs: &[Pkg]) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dir)?;
        let path_of = |p: &Pkg| -> Option<PathBuf> {
            let prefix = format!("{}_{}_", p.name, p.version.replace(':', "%3a"));
            fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|f| {
                    let n = f.file_name().unwrap().to_string_lossy().to_string();
                    n.starts_with(&prefix) && n.ends_with(".deb")
                })
        };
        let missing: Vec<String> = pkgs
            .iter()
            .filter(|p| path_of(p).is_none())
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        if !missing.is_empty() {
            eprintln!("lab: downloading {}", missing.join(" "));
            let t = std::time::Instant::now();
            run_cmd(
                Command::new("apt-get")
                    .current_dir(dir)
                    .args(self.opts())
                    .arg("download")
                    .args(&missing),
            )?;
            eprintln!("lab: downloaded in {:.1}s", t.elapsed().as_secs_f64());
        }
        pkgs.iter()
            .map(|p| path_of(p).with_context(|| format!("{} was not downloaded", p.name)))
            .collect()
    }
}

fn parse_index(text: &str) -> Index {
    let mut index = Index::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut depends = String::new();
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Depends: ") {
                depends = v.trim().to_string();
            }
        }
        if let (Some(name), Some(version)) = (name, version) {
            if name.starts_with("linux-") || name == "libc6" {
                index.entry(name.clone()).or_default().push(Pkg {
                    name,
                    version,
                    depends,
                });
            }
        }
    }
    index
}

/// The Debian mirror the host already uses, from its apt configuration, so the repository
/// never names one. `TRACER_LAB_MIRROR` overrides it.
pub fn host_mirror() -> Result<String> {
    if let Ok(m) = std::env::var("TRACER_LAB_MIRROR") {
        return Ok(m);
    }
    let mut candidates = Vec::new();
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            if f.extension().is_some_and(|e| e == "sources") {
                candidates.extend(deb822_uris(&text));
            } else if f.extension().is_some_and(|e| e == "list") {
                candidates.extend(one_line_uris(&text));
            }
        }
    }
    candidates.extend(one_line_uris(
        &fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    candidates
        .into_iter()
        .next()
        .context("no Debian archive URI (a `deb` source for a non-security suite) in the host's apt configuration; set TRACER_LAB_MIRROR")
}

/// URIs of deb822 stanzas that carry a main-archive suite (the security archive has a
/// different layout and no kernels from backports).
fn deb822_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
                .unwrap_or_default()
        };
        let types = field("Types:");
        let suites = field("Suites:");
        if !types.split_whitespace().any(|t| t == "deb")
            || suites.split_whitespace().all(|s| s.ends_with("-security"))
        {
            continue;
        }
        out.extend(field("URIs:").split_whitespace().map(str::to_string));
    }
    out
}

fn one_line_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next() != Some("deb") {
            continue;
        }
        // Options in brackets may hold spaces; skip until the first word that looks like a URI.
        let rest: Vec<&str> = line.split_whitespace().skip(1).collect();
        let Some(pos) = rest.iter().position(|w| w.contains("://")) else {
            continue;
        };
        let uri = rest[pos];
        if rest.get(pos + 1).is_some_and(|s| !s.ends_with("-security")) {
            out.push(uri.to_string());
        }
    }
    out
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text)?;
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Debian version ordering (deb-version(7)): epoch, then upstream and revision compared as
/// alternating non-digit and digit runs, with `~` sorting before everything.
pub fn debian_version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn cmp_part(mut a: &str, mut b: &str) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        while !a.is_empty() || !b.is_empty() {
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (sa, sb) = (&a[..na], &b[..nb]);
            let (mut ia, mut ib) = (sa.chars(), sb.chars());
            loop {
                let (ca, cb) = (ia.next(), ib.next());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                match order(ca).cmp(&order(cb)) {
                    Equal => {}
                    o => return o,
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let va: u128 = a[..da].parse().unwrap_or(0);
            let vb: u128 = b[..db].parse().unwrap_or(0);
            match va.cmp(&vb) {
                Equal => {}
                o => return o,
            }
            a = &a[da..];
            b = &b[db..];
        }
        Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| cmp_part(ua, ub))
        .then_with(|| cmp_part(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions() {
        assert_eq!(
            debian_version_cmp("6.12.95-1~bpo12+1", "6.12.94-1~bpo12+1"),
            Greater
        );
        assert_eq!(debian_version_cmp("6.1.176-1", "6.1.99-1"), Greater);
        assert_eq!(debian_version_cmp("1.0~rc1-1", "1.0-1"), Less);
        assert_eq!(debian_version_cmp("1:1.0-1", "2.0-1"), Greater);
        assert_eq!(
            debian_version_cmp("7.3.4-1~bpo13+1", "7.3.4-1~bpo13+1"),
            Equal
        );
    }

    #[test]
    fn image_names() {
        assert_eq!(
            image_kver("linux-image-6.12.95+deb12-amd64").as_deref(),
            Some("6.12.95+deb12-amd64")
        );
        assert_eq!(
            image_kver("linux-image-6.1.0-50-amd64-unsigned").as_deref(),
            Some("6.1.0-50-amd64")
        );
        assert_eq!(image_kver("linux-image-6.1.0-50-rt-amd64"), None);
        assert_eq!(image_kver("linux-image-6.1.0-50-cloud-amd64"), None);
        assert_eq!(image_kver("linux-image-amd64"), None);
        assert_eq!(image_kver("linux-image-6.1.0-50-amd64-dbg"), None);
    }

    #[test]
    fn mirrors() {
        let s = "Types: deb\nURIs: http://a/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://b/debian-security\nSuites: bookworm-security\n";
        assert_eq!(deb822_uris(s), vec!["http://a/debian"]);
        let l = "deb [signed-by=/x] http://c/debian bookworm main\ndeb http://d/sec bookworm-security main\n";
        assert_eq!(one_line_uris(l), vec!["http://c/debian"]);
    }
}
