//! Events: the typed model the engine consumes, decoding from the kernel's raw
//! records, stacks, and the recording format.

pub mod model;
pub mod stacks;

pub use model::*;
pub use stacks::{Frame, StackTable};
