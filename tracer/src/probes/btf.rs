//! Struct field offsets from the running kernel's BTF. Rust eBPF has no CO-RE,
//! so the programs get these numbers from user space at start-up.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use btf_rs::{Btf, Type};
use tracer_common::Config;
use tracer_core::kernel::btf::*;

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

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
        let off = |f: &Field| self.member_offset(f.strukt, f.member);
        Ok(Config {
            dma_buf_resv: off(&DMA_BUF_RESV)?,
            dma_buf_ops: off(&DMA_BUF_OPS)?,
            dma_buf_exp_name: off(&DMA_BUF_EXP_NAME)?,
            attachment_dmabuf: off(&ATTACHMENT_DMABUF)?,
            export_info_ops: off(&EXPORT_INFO_OPS)?,
            export_info_resv: off(&EXPORT_INFO_RESV)?,
            export_info_exp_name: off(&EXPORT_INFO_EXP_NAME)?,
            attachment_importer_ops: off(&ATTACHMENT_IMPORTER_OPS)?,
            ops_pin: off(&OPS_PIN)?,
            module_name: off(&MODULE_NAME).unwrap_or(0),
            ..Default::default()
        })
        .map(|mut c| {
            if let (Ok(base), Ok(owner)) = (off(&WW_MUTEX_BASE), off(&MUTEX_OWNER)) {
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
