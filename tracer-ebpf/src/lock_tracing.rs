//! The ww_mutex functions on fentry/fexit, where the kernel allows BPF
//! trampolines: on x86 a trampoline costs about half a kprobe, and fexit sees
//! the arguments and the return value together, so no per-task frame is
//! pushed. Same policy as the kprobe path in `funcs.rs`: an un-nested lock
//! outside every hooked call is kept back (`pending`), its unlock drops it,
//! and a nested one is sent with its call site's stack. The call site comes
//! from the trampoline's frame (`tracing::tracing_caller`).
//!
//! Slot programs (`tracing_slots!` in main.rs): one entry/exit slot
//! pair per lock function, one entry slot per unlock function.
//!
//! Every lock function takes (lock, ctx) and returns int, and the unlock
//! functions take the lock first: the programs read the context directly
//! (checked by the verifier against each target's BTF at load), which the
//! generic bodies of `tracing.rs` cannot do.

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_func_ip,
    programs::{FEntryContext, FExitContext},
};
use tracer_common::{RawKind, STACK_SKIPPED, func_flags as ff};

use crate::{
    emit::{stack_id, task, traced_thread},
    funcs::{
        count_lock_return, desc_for, drop_pending, keep_pending, lone_site_wanted, outside_calls,
        send_call, site_stack,
    },
    held::{forget_sent, note_sent},
    novelty::{chain_broken, chain_start, drop_kept, entry_is_repeat, exit_kept},
    tracing::tracing_caller,
};

/// A lock function's entry: sent only when nested (the attempt is what a
/// deadlock leaves behind) or when the user asked for every event.
#[inline(always)]
fn lock_entry(ctx: &FEntryContext) -> Option<()> {
    let (cfg, tid) = traced_thread()?;
    // SAFETY: this thread's map value.
    let t = unsafe { &mut *task(tid)? };
    let nested = t.held > 0;
    // No lock function's entry is sent un-nested outside the full stream (a
    // test of the hook table checks it), so that common case needs no
    // descriptor.
    if !nested && cfg.full_stream == 0 {
        return None;
    }
    // SAFETY: helper on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    if desc.flags & ff::EMIT_ENTRY == 0
        || (desc.flags & ff::ENTRY_ONLY_NESTED != 0 && !nested && cfg.full_stream == 0)
    {
        return None;
    }
    let stack = if cfg.stack_all != 0 {
        stack_id(ctx)
    } else {
        site_stack(ctx, t, tracing_caller(ctx.as_ptr(), ip), ip)
    };
    let args = [ctx.arg::<u64>(0), ctx.arg::<u64>(1), 0];
    // A repeat of a chain already sent: nothing new to judge (novelty.rs).
    if nested && entry_is_repeat(cfg, t, args[0], args[1], desc.hook, stack) {
        return Some(());
    }
    send_call(cfg, t, RawKind::FuncEntry, &desc, ip, stack, 0, &args);
    Some(())
}

/// A lock function's return: counts the acquisition; keeps a lone one back.
#[inline(always)]
fn lock_exit(ctx: &FExitContext) -> Option<()> {
    // SAFETY: helper on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    let (cfg, tid) = traced_thread()?;
    // SAFETY: this thread's map value.
    let t = unsafe { &mut *task(tid)? };
    // After the two arguments, the return value (an int: only the low 32
    // bits are defined).
    let ret = ctx.arg::<u64>(2) as i32 as i64;
    let (ok, lone) = count_lock_return(cfg, &desc, t, ret);
    if lone && !ok {
        // A failed attempt holds nothing.
        return Some(());
    }
    let lock = ctx.arg::<u64>(0);
    // A lock of the object this thread just tore down is sent, with its
    // stack: the lock-after-fini check must see it.
    let lone = lone && lock != t.last_fini;
    let ww_ctx = ctx.arg::<u64>(1);
    let stack = if cfg.stack_all != 0 {
        stack_id(ctx)
    } else if lone && outside_calls(t) && !lone_site_wanted(cfg, t) {
        STACK_SKIPPED
    } else if desc.flags & ff::STACK_NESTED != 0 {
        site_stack(ctx, t, tracing_caller(ctx.as_ptr(), ip), ip)
    } else {
        -1
    };
    if lone {
        if keep_pending(t, lock, ww_ctx, ret, stack, ip, desc.hook) {
            // The first lock of what may be a transaction.
            chain_start(t, ww_ctx, stack, desc.hook, ip);
            return Some(());
        }
        chain_broken(t);
    } else if exit_kept(cfg, t, lock, ww_ctx, desc.hook, stack, ok, ret) {
        return Some(());
    }
    let args = [lock, ww_ctx, 0];
    send_call(cfg, t, RawKind::FuncReturn, &desc, ip, stack, ret, &args);
    if ok {
        note_sent(cfg, t, lock);
    }
    Some(())
}

/// An unlock function's entry: the unlock of a lock never sent is dropped
/// with it, before any `FUNCS` lookup.
#[inline(always)]
fn unlock_entry(ctx: &FEntryContext) -> Option<()> {
    let (cfg, tid) = traced_thread()?;
    // SAFETY: this thread's map value.
    let t = unsafe { &mut *task(tid)? };
    if t.held > 0 {
        t.held -= 1;
    }
    let lock = ctx.arg::<u64>(0);
    // The held locks are no longer the chain they were (novelty.rs).
    chain_broken(t);
    if t.npending > 0 && drop_pending(t, lock) {
        return Some(());
    }
    if t.nkept > 0 && drop_kept(t, lock) {
        return Some(());
    }
    forget_sent(cfg, t, lock);
    // SAFETY: helper on the program's own context.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let desc = desc_for(ip)?;
    if desc.flags & ff::EMIT_ENTRY == 0 {
        return None;
    }
    let stack = if cfg.stack_all != 0 {
        stack_id(ctx)
    } else {
        -1
    };
    send_call(
        cfg,
        t,
        RawKind::FuncEntry,
        &desc,
        ip,
        stack,
        0,
        &[lock, 0, 0],
    );
    Some(())
}

// ww_mutex_lock, ww_mutex_lock_interruptible, ww_mutex_trylock, and a spare.
tracing_slots!(
    lock_entry, lock_exit;
    (lock_fentry_slot0, lock_fexit_slot0),
    (lock_fentry_slot1, lock_fexit_slot1),
    (lock_fentry_slot2, lock_fexit_slot2),
    (lock_fentry_slot3, lock_fexit_slot3),
);

tracing_slots!(unlock_entry; unlock_fentry_slot0, unlock_fentry_slot1);
