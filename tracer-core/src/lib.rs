//! The tracer's pure core: typed events in, findings and verdicts out.
//!
//! Nothing here touches the kernel, a runtime or the file system: it is unit-tested from
//! event vectors and replayable from recordings, on any machine (`cargo test -p
//! tracer-core` needs no eBPF toolchain). The app crate (`tracer`) wires sources (the
//! kernel, a recording file) to sinks (the terminal, files) around it.
//!
//! - `kernel`: kernel knowledge as data: the hook table, the BTF fields, the convention
//!   symbols, how kernel stack frames are classified.
//! - `events`: the event model, decoding of the kernel's raw records, stacks, the
//!   recording format (bytes in, bytes out).
//! - `analysis`: the engine and its checks, the convention rule table per kernel era.
//! - `replay`: a recording through the engine, in one order, for every command.
//! - `gate`: the CI verdict (threshold, allow list, exit status).
//! - `report`: text, JSON, DOT, JUnit and SARIF renderings.

pub mod analysis;
pub mod events;
pub mod gate;
pub mod kernel;
pub mod replay;
pub mod report;
