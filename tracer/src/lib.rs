//! tracer: lockdep for dma-buf reservation locks, on stock kernels, over eBPF.
//!
//! The data path: `probes` (kernel hooks) -> `events` (decoding, recording) ->
//! `analysis` (the pure engine) -> `report` (text, JSON, ...).

pub mod analysis;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod events;
pub mod probes;
pub mod report;
pub mod stop;
pub mod symbolize;
pub mod tui;
