//! Programs that only return, for `--floor`: user space attaches them to
//! exactly the hooks and through exactly the mechanisms a normal run uses, so
//! an overhead benchmark can tell what the hook mechanism itself costs
//! (kprobe, kretprobe, fentry/fexit trampoline, raw tracepoint) from what the
//! tracer's programs add (docs/overhead.md).
//!
//! A fentry/fexit program's target is fixed at load time, so the floor needs
//! as many slot pairs as `tracing.rs` has; kprobes and raw tracepoints take
//! one program attached many times.

use aya_ebpf::{
    macros::{kprobe, kretprobe, raw_tracepoint},
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
};

#[kprobe]
pub fn floor_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[kretprobe]
pub fn floor_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}

#[raw_tracepoint]
pub fn floor_raw_tp(_ctx: RawTracePointContext) -> i32 {
    0
}

/// The body of every empty slot program.
#[inline(always)]
fn nothing<C>(_ctx: &C) -> Option<()> {
    None
}

tracing_slots!(
    nothing, nothing;
    (floor_fentry_slot0, floor_fexit_slot0),
    (floor_fentry_slot1, floor_fexit_slot1),
    (floor_fentry_slot2, floor_fexit_slot2),
    (floor_fentry_slot3, floor_fexit_slot3),
    (floor_fentry_slot4, floor_fexit_slot4),
    (floor_fentry_slot5, floor_fexit_slot5),
    (floor_fentry_slot6, floor_fexit_slot6),
    (floor_fentry_slot7, floor_fexit_slot7),
    (floor_fentry_slot8, floor_fexit_slot8),
    (floor_fentry_slot9, floor_fexit_slot9),
    (floor_fentry_slot10, floor_fexit_slot10),
    (floor_fentry_slot11, floor_fexit_slot11),
    (floor_fentry_slot12, floor_fexit_slot12),
    (floor_fentry_slot13, floor_fexit_slot13),
    (floor_fentry_slot14, floor_fexit_slot14),
    (floor_fentry_slot15, floor_fexit_slot15),
    (floor_fentry_slot16, floor_fexit_slot16),
    (floor_fentry_slot17, floor_fexit_slot17),
    (floor_fentry_slot18, floor_fexit_slot18),
    (floor_fentry_slot19, floor_fexit_slot19),
    (floor_fentry_slot20, floor_fexit_slot20),
    (floor_fentry_slot21, floor_fexit_slot21),
    (floor_fentry_slot22, floor_fexit_slot22),
    (floor_fentry_slot23, floor_fexit_slot23),
);

tracing_slots!(
    nothing, nothing;
    (floor_lock_fentry_slot0, floor_lock_fexit_slot0),
    (floor_lock_fentry_slot1, floor_lock_fexit_slot1),
    (floor_lock_fentry_slot2, floor_lock_fexit_slot2),
    (floor_lock_fentry_slot3, floor_lock_fexit_slot3),
);

tracing_slots!(nothing; floor_unlock_fentry_slot0, floor_unlock_fentry_slot1);
