//! fentry/fexit hooks for vmlinux functions that are not on the lock hot path
//! (the dma-buf API, dma_resv_init/fini), preferred over kprobes where the
//! kernel allows BPF trampolines: fexit sees the arguments and the return
//! value together, so no per-task frame is needed.
//!
//! A tracing program's target is fixed when it is loaded, so the object
//! carries identical "slot" programs; user space loads one entry and one exit
//! slot per function. Arguments are read with bpf_get_func_arg (a generic body
//! cannot read ctx past the function's own argument count: the verifier checks
//! it against the target's BTF). Stacks are taken once per call site (see
//! `funcs::site_stack`); the call site is read from the trampoline's frame.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_func_arg, bpf_get_func_ip, bpf_get_func_ret, bpf_probe_read_kernel,
        bpf_probe_read_kernel_buf,
    },
    programs::{FEntryContext, FExitContext},
};
use tracer_common::{RawKind, func_flags as ff, func_slot};

use crate::{
    FUNC_SLOTS,
    calls::{entry_deferred, return_dropped},
    emit::{find_task, flush_pending, has_unsent, output, stack_id, task, traced_thread},
    funcs::{desc_for, fill_args, send_call, site_stack},
};

/// Argument `n` of the traced function, 0 past its last. The helper leaves `v`
/// as it was when `n` is out of range, so its return is not tested: a branch
/// on it per argument made the verifier walk each combination of "read" and
/// "0" through the whole program (three arguments: the fentry slots verified
/// about four times the instructions of their kprobe twins).
#[inline(always)]
pub fn arg(ctx: *mut core::ffi::c_void, n: u32) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: the helper checks n against the traced function's argument count.
    let _ = unsafe { bpf_get_func_arg(ctx, n, &mut v) };
    v
}

#[inline(always)]
fn args3(ctx: *mut core::ffi::c_void) -> [u64; 3] {
    [arg(ctx, 0), arg(ctx, 1), arg(ctx, 2)]
}

/// Words above a tracing program's context searched for the trampoline's
/// return address (the context is the saved argument registers; above them
/// sit the return value slot, the saved frame pointer, the return address
/// into the traced function and the traced function's own return address).
const CALLER_SCAN_WORDS: usize = 16;

/// The traced function's return address (its call site in the caller), read
/// from the trampoline's frame: the word after the one that returns into the
/// traced function just past its patched `call` (ip + 5, or ip + 9 after an
/// ENDBR). 0 if not found (then the caller gets a fresh stack).
///
/// The frame's layout is fixed per function (argument count, trampoline
/// flags), so the word is searched for once and its index kept in the
/// function's `FUNC_SLOTS` entry; later calls read two words and check the
/// first, and search again if the layout changed (another program attached).
#[inline(always)]
pub fn tracing_caller(ctx: *mut core::ffi::c_void, ip: u64) -> u64 {
    let slot = FUNC_SLOTS
        .get_ptr_mut(func_slot(ip))
        // SAFETY: a map value read.
        .filter(|s| unsafe { (**s).ip } == ip);
    if let Some(s) = slot {
        // SAFETY: as above.
        let k = unsafe { (*s).caller_word } as u64;
        if k > 0 && k < CALLER_SCAN_WORDS as u64 {
            // SAFETY: a checked read of two words of the trampoline's frame.
            let pair: [u64; 2] =
                unsafe { bpf_probe_read_kernel((ctx as u64 + (k - 1) * 8) as *const [u64; 2]) }
                    .unwrap_or([0; 2]);
            if pair[0] == ip + 5 || pair[0] == ip + 9 {
                return pair[1];
            }
        }
    }
    let mut words = [0u64; CALLER_SCAN_WORDS];
    // SAFETY: a checked read of the trampoline's stack frame above `ctx`.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, CALLER_SCAN_WORDS * 8)
    };
    if unsafe { bpf_probe_read_kernel_buf(ctx as *const u8, bytes) }.is_err() {
        return 0;
    }
    let mut i = 0;
    while i < CALLER_SCAN_WORDS - 1 {
        let w = words[i];
        if w == ip + 5 || w == ip + 9 {
            if let Some(s) = slot {
                // SAFETY: every caller stores the same index for a function.
                unsafe { (*s).caller_word = i as u32 + 1 };
            }
            return words[i + 1];
        }
        i += 1;
    }
    0
}

#[inline(always)]
fn tracing_entry(ctx: &FEntryContext) -> Option<()> {
    // SAFETY: helper on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    let (cfg, tid) = traced_thread()?;
    if desc.flags & ff::EMIT_ENTRY == 0 {
        return None;
    }
    let args = args3(ctx.as_ptr());
    // SAFETY: this thread's map value.
    let t = unsafe { &mut *task(tid)? };
    if desc.flags & ff::EMIT_RETURN != 0 {
        t.in_call = t.in_call.saturating_add(1);
    }
    let held = t.held;
    let stack = if cfg.stack_all != 0 {
        stack_id(ctx)
    } else if desc.flags & ff::STACK_ALWAYS != 0 || (desc.flags & ff::STACK_NESTED != 0 && held > 0)
    {
        let caller = tracing_caller(ctx.as_ptr(), ip);
        site_stack(ctx, t, caller, ip)
    } else {
        -1
    };
    if entry_deferred(cfg, t, &desc, ip, stack, &args) {
        return Some(());
    }
    send_call(cfg, t, RawKind::FuncEntry, &desc, ip, stack, 0, &args);
    Some(())
}

#[inline(always)]
fn tracing_exit(ctx: &FExitContext) -> Option<()> {
    // SAFETY: helper on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    let (cfg, tid) = traced_thread()?;
    if desc.flags & ff::EMIT_RETURN == 0 {
        return None;
    }
    let args = args3(ctx.as_ptr());
    let mut ret: u64 = 0;
    // SAFETY: helper on an fexit context.
    unsafe { bpf_get_func_ret(ctx.as_ptr(), &mut ret) };
    let mut held = 0;
    if let Some(t) = find_task(tid) {
        // SAFETY: this thread's map value.
        let t = unsafe { &mut *t };
        t.in_call = t.in_call.saturating_sub(1);
        if return_dropped(t) {
            return Some(());
        }
        if has_unsent(t) {
            flush_pending(t);
        }
        held = t.held;
    }
    output(RawKind::FuncReturn as u16, desc.hook, |ev| {
        ev.func_ip = ip;
        ev.ret = ret as i64;
        ev.held = held;
        fill_args(cfg, &desc, &args, ev);
    });
    Some(())
}

tracing_slots!(
    tracing_entry, tracing_exit;
    (fentry_slot0, fexit_slot0),
    (fentry_slot1, fexit_slot1),
    (fentry_slot2, fexit_slot2),
    (fentry_slot3, fexit_slot3),
    (fentry_slot4, fexit_slot4),
    (fentry_slot5, fexit_slot5),
    (fentry_slot6, fexit_slot6),
    (fentry_slot7, fexit_slot7),
    (fentry_slot8, fexit_slot8),
    (fentry_slot9, fexit_slot9),
    (fentry_slot10, fexit_slot10),
    (fentry_slot11, fexit_slot11),
    (fentry_slot12, fexit_slot12),
    (fentry_slot13, fexit_slot13),
    (fentry_slot14, fexit_slot14),
    (fentry_slot15, fexit_slot15),
    (fentry_slot16, fexit_slot16),
    (fentry_slot17, fexit_slot17),
    (fentry_slot18, fexit_slot18),
    (fentry_slot19, fexit_slot19),
    (fentry_slot20, fexit_slot20),
    (fentry_slot21, fexit_slot21),
    (fentry_slot22, fexit_slot22),
    (fentry_slot23, fexit_slot23),
);
