//! One module per finding kind. Each has its static description (`INFO`) and
//! the decision; the engine calls them at the right events with the state.

pub mod exporter_relock;
pub mod fence_wait_under_resv;
pub mod held_at_return_to_user;
pub mod importer_holds_lock;
pub mod importer_missing_lock;
pub mod lock_order_inversion;
pub mod recursive_lock;
pub mod resv_lock_after_fini;
pub mod ww_protocol;

use crate::events::{Event, LockFn, StackId, StackTable};

use super::config::EngineConfig;
use super::finding::{BufferRef, CallbackRef, Finding, LockRef, TaskRef};
use super::identity::{ClassId, ClassTable, LockId};
use super::kinds::KindInfo;
use super::rules::Convention;
use super::state::{ApiFrame, CbFrame, HeldLock, TaskState};
use super::Interner;
use crate::kernel::frames::{is_dma_buf_core, is_plumbing, source_function};

/// A lock acquisition about to happen (an attempt, or a return whose attempt
/// was filtered out in the kernel because the task held nothing).
#[derive(Clone, Copy, Debug)]
pub struct Acquire {
    pub lock: LockId,
    pub class: ClassId,
    pub ctx: u64,
    pub func: LockFn,
    pub stack: Option<StackId>,
}

/// Read-only view of engine state a check needs to describe an occurrence.
pub struct Env<'a> {
    pub ev: &'a Event,
    pub conv: Convention,
    pub cfg: &'a EngineConfig,
    pub classes: &'a ClassTable,
    pub names: &'a Interner,
    pub stacks: Option<&'a StackTable>,
}

impl<'a> Env<'a> {
    /// The innermost non-locking symbol of `stack` (skipping the dma-buf core
    /// too when `skip_core`, so API findings name the importer), if resolvable.
    pub fn location(&self, stack: Option<StackId>, skip_core: bool) -> Option<String> {
        let frames = self.stacks?.get(stack?)?;
        frames.iter().find_map(|f| {
            let s = f.symbol.as_deref()?;
            if is_plumbing(s) || (skip_core && is_dma_buf_core(s)) {
                None
            } else {
                Some(source_function(s).to_string())
            }
        })
    }

    pub fn task_ref(&self) -> TaskRef {
        TaskRef {
            pid: self.ev.pid,
            tgid: self.ev.tgid,
            comm: self.ev.comm.clone(),
        }
    }

    pub fn held_ref(&self, h: &HeldLock) -> LockRef {
        LockRef {
            addr: h.lock.addr,
            generation: h.lock.generation,
            class: self.classes.name(h.class),
            ctx: h.ctx,
            func: Some(h.func),
            since_ns: Some(h.since_ns),
            stack: h.stack,
        }
    }

    pub fn acquire_ref(&self, a: &Acquire) -> LockRef {
        LockRef {
            addr: a.lock.addr,
            generation: a.lock.generation,
            class: self.classes.name(a.class),
            ctx: a.ctx,
            func: self.classes.get(a.class).is_ww().then_some(a.func),
            since_ns: None,
            stack: a.stack,
        }
    }

    pub fn held_refs(&self, task: Option<&TaskState>) -> Vec<LockRef> {
        task.map(|t| t.held.iter().map(|h| self.held_ref(h)).collect())
            .unwrap_or_default()
    }

    pub fn held_stacks(&self, task: Option<&TaskState>) -> Vec<StackId> {
        task.map(|t| t.held.iter().filter_map(|h| h.stack).collect())
            .unwrap_or_default()
    }

    pub fn cb_buffer(&self, f: &CbFrame) -> BufferRef {
        BufferRef {
            exp_name: self.names.get(f.exp_name).to_string(),
            dmabuf: f.dmabuf,
            resv: f.resv,
        }
    }

    pub fn api_buffer(&self, f: &ApiFrame) -> BufferRef {
        BufferRef {
            exp_name: self.names.get(f.exp_name).to_string(),
            dmabuf: f.dmabuf,
            resv: f.resv,
        }
    }

    pub fn cb_ref(&self, f: &CbFrame) -> CallbackRef {
        CallbackRef {
            member: self.conv.callback_member(f.cb).to_string(),
            symbol: self.names.get(f.symbol).to_string(),
            from_stack: false,
        }
    }

    /// A finding with the kind's texts and this event's task; the caller fills the rest.
    pub fn base(&self, info: &KindInfo, explanation: String) -> Finding {
        Finding {
            id: info.kind,
            variant: String::new(),
            severity: info.severity,
            title: info.title.to_string(),
            explanation,
            advice: info.advice.to_string(),
            location: String::new(),
            task: self.task_ref(),
            tasks: Vec::new(),
            tasks_truncated: false,
            first_ts_ns: self.ev.ts_ns,
            last_ts_ns: self.ev.ts_ns,
            count: 1,
            buffer: None,
            function: None,
            callback: None,
            lock: None,
            held_locks: Vec::new(),
            stack: self.ev.stack,
            other_stacks: Vec::new(),
            chains: Vec::new(),
        }
    }

    pub fn who(&self) -> String {
        format!("{}/{}", self.ev.comm, self.ev.pid)
    }
}
