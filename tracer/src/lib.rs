//! tracer: lockdep for dma-buf reservation locks, on stock kernels, over eBPF.
//!
//! The app crate wires sources to sinks around the pure core (`tracer_core`: events,
//! analysis, gate, reports). Layers, each importing only those below it (checked by
//! `cargo xtask layers`; docs/architecture.md):
//!
//! - `probes`: the kernel side: BTF offsets, kallsyms, loading and attaching the programs.
//! - `symbolize`: kernel stacks to frames.
//! - `session`: the source layer: a live kernel session or a recording.
//! - `cli`: the command line (clap definitions).
//! - `tui`: the interactive view.
//! - `commands`: one shell per command.

pub mod cli;
pub mod commands;
pub mod probes;
pub mod session;
pub mod symbolize;
pub mod tui;
