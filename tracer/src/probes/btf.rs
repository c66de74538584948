//! Struct field offsets from the running kernel's BTF. Rust eBPF has no CO-RE,
//! so the programs get these numbers from user space at start-up.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use btf_rs::{Btf, Type};
use tracer_common::Config;

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The BTF fields the tracer reads, as data: (struct, member).
pub const FIELDS: &[(&str, &str)] = &[
    ("dma_buf", "resv"),
    ("dma_buf", "ops"),
    ("dma_buf", "exp_name"),
    ("dma_buf_attachment", "dmabuf"),
    ("dma_buf_export_info", "ops"),
    ("dma_buf_export_info", "resv"),
    ("dma_buf_export_info", "exp_name"),
    ("dma_buf_attachment", "importer_ops"),
    ("dma_buf_ops", "pin"),
    ("module", "name"),
    ("ww_mutex", "base"),
    ("mutex", "owner"),
];

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn load() -> Result<Self> {
        Self::from_path(Path::new(VMLINUX_BTF))
    }

    pub fn from_path(p: &Path) -> Result<Self> {
        if !p.exists() {
            bail!("{} not found: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF); the tracer needs it to read dma-buf structures", p.display());
        }
        let btf = Btf::from_file(p).with_context(|| format!("parsing {}", p.display()))?;
        Ok(Self { btf })
    }

    fn struct_type(&self, name: &str) -> Result<btf_rs::Struct> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| anyhow!("BTF has no type `struct {name}`"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| anyhow!("BTF has no complete `struct {name}`"))
    }

    /// Byte offset of `strukt.member`, or an error naming the missing field.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32> {
        let s = self.struct_type(strukt)?;
        for m in &s.members {
            if self.btf.resolve_name(m).ok().as_deref() == Some(member) {
                return Ok(m.bit_offset() / 8);
            }
        }
        bail!("BTF field `struct {strukt}.{member}` not found in this kernel")
    }

    /// All members of a struct with byte offsets (for ops tables).
    pub fn members(&self, strukt: &str) -> Result<Vec<(String, u32)>> {
        let s = self.struct_type(strukt)?;
        Ok(s.members
            .iter()
            .map(|m| {
                (
                    self.btf.resolve_name(m).unwrap_or_default(),
                    m.bit_offset() / 8,
                )
            })
            .collect())
    }

    /// Number of arguments of a raw tracepoint's prototype (without the
    /// leading context pointer), from the `btf_trace_<name>` typedef.
    pub fn tracepoint_arg_count(&self, tp: &str) -> Option<usize> {
        let name = format!("btf_trace_{tp}");
        let t = self
            .btf
            .resolve_types_by_name(&name)
            .ok()?
            .into_iter()
            .next()?;
        let mut cur = t;
        for _ in 0..4 {
            cur = match cur {
                Type::Typedef(ref td) => self.btf.resolve_chained_type(td).ok()?,
                Type::Ptr(ref p) => self.btf.resolve_chained_type(p).ok()?,
                Type::FuncProto(fp) => return Some(fp.parameters.len().saturating_sub(1)),
                _ => return None,
            };
        }
        None
    }

    /// The configuration block for the eBPF programs.
    pub fn config(&self) -> Result<Config> {
        let off = |s: &str, m: &str| self.member_offset(s, m);
        Ok(Config {
            dma_buf_resv: off("dma_buf", "resv")?,
            dma_buf_ops: off("dma_buf", "ops")?,
            dma_buf_exp_name: off("dma_buf", "exp_name")?,
            attachment_dmabuf: off("dma_buf_attachment", "dmabuf")?,
            export_info_ops: off("dma_buf_export_info", "ops")?,
            export_info_resv: off("dma_buf_export_info", "resv")?,
            export_info_exp_name: off("dma_buf_export_info", "exp_name")?,
            attachment_importer_ops: off("dma_buf_attachment", "importer_ops")?,
            ops_pin: off("dma_buf_ops", "pin")?,
            // Only the module tracepoints read it: a kernel without it
            // loses module names, not the tracer.
            module_name: off("module", "name").unwrap_or(0),
            ..Default::default()
        })
        .map(|mut c| {
            // The held-lock check reads a ww_mutex's owner word: `base` is a
            // `struct mutex` with an `owner` (not on PREEMPT_RT, where it is
            // an rt_mutex: no check there).
            if let (Ok(base), Ok(owner)) = (off("ww_mutex", "base"), off("mutex", "owner")) {
                c.ww_mutex_owner = base + owner;
                c.owner_check = 1;
            }
            c
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against this machine's kernel BTF when present (it is on every
    /// machine the project builds on); checks the offsets are plausible and
    /// that a missing field is named in the error.
    #[test]
    fn host_btf_offsets() {
        let Ok(btf) = KernelBtf::load() else {
            eprintln!("no {VMLINUX_BTF}: skipped");
            return;
        };
        let cfg = btf.config().expect("dma-buf fields in BTF");
        assert!(cfg.dma_buf_resv > 0 && cfg.dma_buf_resv < 4096);
        assert_ne!(cfg.dma_buf_resv, cfg.dma_buf_ops);
        // struct ww_mutex { struct mutex base; ... }, owner first in mutex.
        assert_eq!((cfg.owner_check, cfg.ww_mutex_owner), (1, 0));
        let err = btf
            .member_offset("dma_buf", "no_such_field")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dma_buf.no_such_field"), "{err}");
        let members = btf.members("dma_buf_ops").unwrap();
        assert!(members.iter().any(|(n, _)| n == "map_dma_buf"));
    }
}
