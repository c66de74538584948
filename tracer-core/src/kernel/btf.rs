//! The struct fields the tracer reads, named once. Rust eBPF has no CO-RE: user space
//! reads each field's offset from the running kernel's BTF and hands it to the programs
//! (`tracer::probes::btf`); recordings keep the offsets they ran with.

/// One `struct.member` whose offset the programs need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub strukt: &'static str,
    pub member: &'static str,
}

impl Field {
    const fn new(strukt: &'static str, member: &'static str) -> Self {
        Self { strukt, member }
    }

    /// `struct.member`, as recordings and messages spell it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.strukt, self.member)
    }
}

pub const DMA_BUF_RESV: Field = Field::new("dma_buf", "resv");
pub const DMA_BUF_OPS: Field = Field::new("dma_buf", "ops");
pub const DMA_BUF_EXP_NAME: Field = Field::new("dma_buf", "exp_name");
pub const ATTACHMENT_DMABUF: Field = Field::new("dma_buf_attachment", "dmabuf");
pub const EXPORT_INFO_OPS: Field = Field::new("dma_buf_export_info", "ops");
pub const EXPORT_INFO_RESV: Field = Field::new("dma_buf_export_info", "resv");
pub const EXPORT_INFO_EXP_NAME: Field = Field::new("dma_buf_export_info", "exp_name");
pub const ATTACHMENT_IMPORTER_OPS: Field = Field::new("dma_buf_attachment", "importer_ops");
pub const OPS_PIN: Field = Field::new("dma_buf_ops", "pin");
/// Optional: only the module tracepoints read it (a kernel without it loses module
/// names, not the tracer).
pub const MODULE_NAME: Field = Field::new("module", "name");
/// Optional, with `MUTEX_OWNER`: the held-lock check reads a ww_mutex's owner word
/// (`base` is a `struct mutex`; on PREEMPT_RT an rt_mutex, and there is no check).
pub const WW_MUTEX_BASE: Field = Field::new("ww_mutex", "base");
pub const MUTEX_OWNER: Field = Field::new("mutex", "owner");

/// Every field, in the order recordings list them.
pub const FIELDS: &[Field] = &[
    DMA_BUF_RESV,
    DMA_BUF_OPS,
    DMA_BUF_EXP_NAME,
    ATTACHMENT_DMABUF,
    EXPORT_INFO_OPS,
    EXPORT_INFO_RESV,
    EXPORT_INFO_EXP_NAME,
    ATTACHMENT_IMPORTER_OPS,
    OPS_PIN,
    MODULE_NAME,
    WW_MUTEX_BASE,
    MUTEX_OWNER,
];
