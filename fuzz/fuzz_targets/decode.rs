//! The event decoder on arbitrary raw records (what the kernel side writes into the ring),
//! with the static hook table and one discovered callback: every record decodes or is
//! counted undecodable, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::RawEvent;
use tracer_core::{
    events::decode::Decoder,
    kernel::{
        hooks::{FIRST_DYNAMIC_ID, FUNC_HOOKS},
        Callback, HookInfo, HookKind,
    },
};

#[global_allocator]
static A: tracer_fuzz::Bounded = tracer_fuzz::Bounded;

fn hooks() -> Vec<HookInfo> {
    let mut v: Vec<HookInfo> = FUNC_HOOKS
        .iter()
        .map(|h| HookInfo {
            id: h.id,
            kind: h.kind,
            symbol: h.func.to_string(),
            module: None,
            addr: 0xffff_ffff_8100_0000 + h.id as u64 * 0x100,
        })
        .collect();
    v.push(HookInfo {
        id: FIRST_DYNAMIC_ID,
        kind: HookKind::Callback(Callback::MapDmaBuf),
        symbol: "fuzz_map_dma_buf".into(),
        module: Some("fuzz".into()),
        addr: 0xffff_ffff_c000_0000,
    });
    v
}

fuzz_target!(|data: &[u8]| {
    let d = Decoder::new(&hooks());
    for chunk in data.chunks_exact(RawEvent::SIZE) {
        if let Some(r) = RawEvent::from_bytes(chunk) {
            let _ = d.decode(&r);
        }
    }
});
