//! The recording reader on arbitrary bytes: an error or a recording, never a panic, a hang
//! or an allocation over the bound; a recording's events then decode without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_core::events::record::Recording;

#[global_allocator]
static A: tracer_fuzz::Bounded = tracer_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = Recording::parse(data, "fuzz") {
        let _ = rec.events();
    }
});
