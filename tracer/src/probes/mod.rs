//! Kernel side: BTF offsets, kallsyms, and the loader
//! that attaches what this kernel allows and reports what it does not.

pub mod btf;
pub mod kallsyms;
pub mod loader;

pub use loader::{LoadOptions, Tracer};
