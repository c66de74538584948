//! Kernel side: BTF offsets, kallsyms, and the loader
//! that attaches what this kernel allows and reports what it does not.

pub mod btf;
pub mod kallsyms;
pub mod loader;

pub use loader::{LoadOptions, Tracer};

/// The running kernel's release ("" if /proc cannot tell).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
