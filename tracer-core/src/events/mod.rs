//! Events: the typed model the engine consumes, decoding from the kernel's raw
//! records, stacks, buffer-to-lock links and the recording format.

pub mod decode;
pub mod links;
pub mod model;
pub mod record;
pub mod stacks;

pub use model::*;
pub use stacks::{Frame, StackTable};
