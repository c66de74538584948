//! Kernel knowledge, as data, in one place: what the tracer hooks and on which kernels
//! (`hooks`), which struct fields it reads from BTF (`btf`), which symbols tell the
//! convention era (`CONVENTION_SYMBOLS`; the rules themselves are
//! `analysis::rules`), and how a kernel stack's frames are classified (`frames`).

pub mod btf;
pub mod frames;
pub mod functions;
pub mod hooks;

pub use functions::{Callback, DmaBufFn, LockFn};
pub use hooks::{HookInfo, HookKind, ProbeState, ProbeStatus};

/// The dma-buf symbols whose presence in kallsyms tells the convention era
/// (`analysis::rules::detect`).
pub const CONVENTION_SYMBOLS: &[&str] = &[
    "dma_buf_map_attachment_unlocked",
    "dma_buf_vmap_unlocked",
    functions::MOVE_NOTIFY.call,
    functions::INVALIDATE_MAPPINGS.call,
    "dma_buf_pin",
    "dma_buf_vmap",
];
