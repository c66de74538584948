//! `importer-missing-lock`: a dma-buf API function that asserts
//! `dma_resv_assert_held(dmabuf->resv)` was called by a task that does not hold
//! that lock. On production kernels the assertion compiles to nothing, so the
//! call races with every other user of the buffer (move_notify, eviction).

use crate::events::{BufRef, DmaBufFn};

use super::super::finding::{BufferRef, Finding};
use super::super::state::TaskState;
use super::super::store::{DedupKey, FindingStore};
use super::Env;
use crate::analysis::kinds::IMPORTER_MISSING_LOCK as INFO;
use crate::analysis::rules::{fn_rule_for, FnReq};

/// At a dma-buf API call entry.
pub fn check(
    env: &Env,
    task: Option<&TaskState>,
    f: DmaBufFn,
    buf: &BufRef,
    stack_in: Option<u32>,
    out: &mut FindingStore,
) -> Option<Finding> {
    if buf.resv == 0 || fn_rule_for(env.conv, f, buf.dynamic_importer) != FnReq::MustHold {
        return None;
    }
    if task.is_some_and(|t| t.holds(buf.resv)) {
        return None;
    }
    let name = env.conv.fn_name(f);
    let location = env
        .location(stack_in, true)
        .unwrap_or_else(|| format!("{name}/{}", buf.exp_name));
    let key = DedupKey {
        kind: INFO.kind,
        variant: "",
        location,
    };
    out.report(key, env.ev, || {
        let side = if f == DmaBufFn::MoveNotify { "exporter" } else { "importer" };
        let mut fi = env.base(
            &INFO,
            format!(
                "{} called {name}() on a dma-buf exported by \"{}\" (resv {:#x}) without holding its \
                 reservation lock; {name} requires the caller to hold it (dma_resv_assert_held, \
                 a no-op without lockdep)",
                env.who(),
                buf.exp_name,
                buf.resv
            ),
        );
        fi.title = format!("dma-buf {side} called {name} without holding the reservation lock");
        fi.function = Some(name.to_string());
        fi.buffer = Some(BufferRef { exp_name: buf.exp_name.clone(), dmabuf: buf.dmabuf, resv: buf.resv });
        fi.held_locks = env.held_refs(task);
        fi.other_stacks = env.held_stacks(task);
        fi
    })
}
