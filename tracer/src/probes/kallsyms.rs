//! /proc/kallsyms: function addresses to attach by, data symbols to discover
//! exporters by, and module names for stack frames.

use std::{collections::HashMap, path::Path};

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sym {
    pub addr: u64,
    /// kallsyms type letter (`T`/`t` text, `D`/`d`/`R`/`r`/`B`/`b` data).
    pub kind: char,
    pub name: String,
    pub module: Option<String>,
}

impl Sym {
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 'T' | 't' | 'W' | 'w')
    }
    pub fn is_data(&self) -> bool {
        matches!(self.kind, 'D' | 'd' | 'R' | 'r' | 'B' | 'b')
    }
}

/// Symbols sorted by address, with a name index.
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    syms: Vec<Sym>,
    by_name: HashMap<String, usize>,
}

impl Kallsyms {
    pub fn load() -> Result<Self> {
        Self::from_file(Path::new("/proc/kallsyms"))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let k = Self::parse(&text);
        if k.syms.iter().all(|s| s.addr == 0) {
            bail!("{} shows only zero addresses: run as root (kernel.kptr_restrict hides them otherwise)", path.display());
        }
        Ok(k)
    }

    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<Sym> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?.chars().next()?;
                let name = it.next()?.to_string();
                let module = it
                    .next()
                    .map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
                Some(Sym {
                    addr,
                    kind,
                    name,
                    module,
                })
            })
            .collect();
        // Stable: symbols at one address keep the file's order.
        syms.sort_by_key(|s| s.addr);
        drop_stale_init_symbols(&mut syms);
        let mut by_name = HashMap::with_capacity(syms.len());
        for (i, s) in syms.iter().enumerate() {
            // First text definition wins (static functions may repeat names).
            let e = by_name.entry(s.name.clone()).or_insert(i);
            if !syms[*e].is_text() && s.is_text() {
                *e = i;
            }
        }
        Self { syms, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Sym> {
        self.by_name.get(name).map(|&i| &self.syms[i])
    }

    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The symbol containing `addr` (greatest start <= addr).
    pub fn lookup(&self, addr: u64) -> Option<&Sym> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        if i == 0 {
            return None;
        }
        Some(&self.syms[i - 1])
    }

    /// The text symbol that starts exactly at `addr`.
    pub fn function_at(&self, addr: u64) -> Option<&Sym> {
        self.lookup(addr).filter(|s| s.addr == addr && s.is_text())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sym> {
        self.syms.iter()
    }

    pub fn len(&self) -> usize {
        self.syms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }
}

/// ftrace keeps the names of a module's init functions after the kernel freed them (so
/// traces still resolve), and lists them in /proc/kallsyms as text symbols of that module
/// until it is unloaded (`ftrace_mod_get_kallsym`, kernel/trace/ftrace.c; 6.1, 6.12, 7.3), after
/// every live module symbol. The freed memory is reused by modules loaded later, so one
/// address can carry a live function of module B and a dead init function of module A, which
/// had made a callback of B look like A's. Of text symbols of different modules at one
/// address, only the first listed (the live one) is kept.
fn drop_stale_init_symbols(syms: &mut Vec<Sym>) {
    let mut keep = vec![true; syms.len()];
    let mut start = 0;
    while start < syms.len() {
        let end = start + syms[start..].partition_point(|s| s.addr == syms[start].addr);
        if let Some(first) = syms[start..end].iter().position(Sym::is_text) {
            let module = syms[start + first].module.clone();
            for i in start + first + 1..end {
                if syms[i].is_text() && syms[i].module != module {
                    keep[i] = false;
                }
            }
        }
        start = end;
    }
    let mut k = keep.into_iter();
    syms.retain(|_| k.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff821fdb90 T ww_mutex_lock
ffffffff821fdc00 T ww_mutex_unlock
ffffffffc0a00000 t vgem_prime_pin\t[vgem]
ffffffffc0a10000 d vgem_dmabuf_ops\t[vgem]
";

    #[test]
    fn parses_and_looks_up() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(k.len(), 5);
        assert_eq!(k.get("ww_mutex_lock").unwrap().addr, 0xffffffff821fdb90);
        let s = k.lookup(0xffffffff821fdb95).unwrap();
        assert_eq!(s.name, "ww_mutex_lock");
        let m = k.lookup(0xffffffffc0a00010).unwrap();
        assert_eq!(m.module.as_deref(), Some("vgem"));
        assert!(k.get("vgem_dmabuf_ops").unwrap().is_data());
        assert!(k.function_at(0xffffffff821fdb91).is_none());
        assert!(k.lookup(0x10).is_none());
    }

    /// What the lab's 7.3 guest listed: tracer_late loaded into memory that bochs' freed init
    /// function had, whose name ftrace still lists (after the live modules' symbols).
    #[test]
    fn a_freed_init_function_listed_by_ftrace_does_not_name_a_live_function() {
        let k = Kallsyms::parse(
            "ffffffffc0e01000 t tsc_late_vmap\t[tracer_late]\n\
             ffffffffc0e02000 d tsc_late_ops\t[tracer_late]\n\
             ffffffffc0e01000 T bochs_pci_driver_init\t[bochs]\n\
             ffffffff81000000 T _stext\n",
        );
        let f = k.function_at(0xffffffffc0e01000).unwrap();
        assert_eq!(f.name, "tsc_late_vmap");
        assert_eq!(f.module.as_deref(), Some("tracer_late"));
        assert!(k.get("bochs_pci_driver_init").is_none());
        // Aliases within one image are all kept (the last listed names the address).
        let k = Kallsyms::parse("ffffffff81000000 T a\nffffffff81000000 T b\n");
        assert_eq!(k.len(), 2);
        assert_eq!(k.function_at(0xffffffff81000000).unwrap().name, "b");
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let k = Kallsyms::parse("not a line\nffffffff81000000 T ok\n\nzz T bad\n");
        assert_eq!(k.len(), 1);
    }
}
