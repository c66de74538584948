//! Events: the typed model the engine consumes, decoding from the kernel's raw
//! records, stacks, buffer-to-lock links, the recording format, and the
//! kernel side's filter modelled over a full stream.

pub mod decode;
pub mod filter;
pub mod links;
pub mod model;
pub mod record;
pub mod stacks;

pub use model::*;
pub use stacks::{Frame, StackTable};
