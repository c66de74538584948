//! Per-task state: the locks each task holds, its in-flight lock attempt, its
//! ww backoff window, and the dma-buf API calls and callbacks it is inside.
//!
//! ww semantics (Documentation/locking/ww-mutex-design.rst):
//! - `-EALREADY`: this ctx already holds the lock; nothing new is held and no
//!   unlock will follow.
//! - `-EDEADLK`: the task must release every lock of that ctx before locking
//!   with it again (the backoff window).
//! - a failed trylock holds nothing.
//! - an unlock of a lock the engine does not know as held (the tracer attached
//!   while it was held, or an event was lost) is tolerated and counted.
//!
//! Memory stays flat: a task's entry is dropped when it holds nothing and is
//! inside nothing; dropped entries go to a small pool so their vectors and comm
//! string are reused instead of reallocated per lock sequence.

use crate::events::{Callback, DmaBufFn, LockFn, StackId};

use super::identity::{ClassId, LockId};
use super::FastMap;

/// One held lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldLock {
    pub lock: LockId,
    pub class: ClassId,
    /// The acquire context (0 = none).
    pub ctx: u64,
    pub func: LockFn,
    pub since_ns: u64,
    /// Stack of the acquisition (the nested attempt's stack; None for a
    /// first lock in the filtered stream).
    pub stack: Option<StackId>,
    /// The dma-buf API call the task was inside when it took the lock (its
    /// entry time, which names the frame), if any: a lock the core took
    /// itself (attach, the `_unlocked` wrappers) while that call is open.
    pub taken_in_api: Option<u64>,
}

impl TaskState {
    /// Whether `h` was taken by a dma-buf core function that is still
    /// running and has not called out to a driver since: the core's own
    /// locking, not the driver's.
    pub fn taken_by_open_core_call(&self, h: &HeldLock) -> bool {
        let Some(ts) = h.taken_in_api else {
            return false;
        };
        let open = self
            .api
            .iter()
            .any(|a| a.ts_ns == ts && a.resv == h.lock.addr);
        open && self.callbacks.last().is_none_or(|c| c.ts_ns < ts)
    }
}

/// A lock attempt whose return has not been seen yet.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub lock: u64,
    pub ctx: u64,
    pub func: LockFn,
    pub stack: Option<StackId>,
    pub ts_ns: u64,
}

/// An open `-EDEADLK` backoff window.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub ctx: u64,
    pub contended: u64,
    pub ts_ns: u64,
    pub stack: Option<StackId>,
}

/// The task is inside this dma-buf API call.
#[derive(Clone, Copy, Debug)]
pub struct ApiFrame {
    pub func: DmaBufFn,
    pub resv: u64,
    pub dmabuf: u64,
    pub exp_name: u32,
    pub stack: Option<StackId>,
    pub ts_ns: u64,
}

/// The task is inside this exporter/importer callback.
#[derive(Clone, Copy, Debug)]
pub struct CbFrame {
    pub cb: Callback,
    /// Interned symbol of the hooked driver function.
    pub symbol: u32,
    pub resv: u64,
    pub dmabuf: u64,
    pub exp_name: u32,
    pub stack: Option<StackId>,
    pub ts_ns: u64,
}

/// Frames past this depth are counted, not kept (a runaway stream must not grow memory).
pub const MAX_FRAMES: usize = 32;
/// Held locks past this count are counted, not kept.
pub const MAX_HELD: usize = 256;

#[derive(Debug, Default)]
pub struct TaskState {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub held: Vec<HeldLock>,
    pub pending: Option<Pending>,
    pub backoff: Option<Backoff>,
    pub api: Vec<ApiFrame>,
    pub callbacks: Vec<CbFrame>,
}

impl TaskState {
    fn reset(&mut self, pid: u32, tgid: u32, comm: &str) {
        self.pid = pid;
        self.tgid = tgid;
        self.comm.clear();
        self.comm.push_str(comm);
        self.held.clear();
        self.pending = None;
        self.backoff = None;
        self.api.clear();
        self.callbacks.clear();
    }

    /// Nothing that must be remembered between events.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty()
            && self.pending.is_none()
            && self.backoff.is_none()
            && self.api.is_empty()
            && self.callbacks.is_empty()
    }

    /// Index of the most recent held entry for this address.
    #[inline]
    pub fn held_index(&self, addr: u64) -> Option<usize> {
        self.held.iter().rposition(|h| h.lock.addr == addr)
    }

    #[inline]
    pub fn holds(&self, addr: u64) -> bool {
        self.held_index(addr).is_some()
    }

    /// Whether any held lock was taken with `ctx` (non-zero).
    #[inline]
    pub fn holds_ctx(&self, ctx: u64) -> bool {
        ctx != 0 && self.held.iter().any(|h| h.ctx == ctx)
    }

    /// Removes the most recent held entry for `addr`; None if not held.
    pub fn release(&mut self, addr: u64) -> Option<HeldLock> {
        let i = self.held_index(addr)?;
        Some(self.held.remove(i))
    }
}

/// All tasks with state, by thread id.
#[derive(Debug, Default)]
pub struct TaskTable {
    tasks: FastMap<u32, TaskState>,
    pool: Vec<TaskState>,
}

const POOL: usize = 64;

impl TaskTable {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn get(&self, pid: u32) -> Option<&TaskState> {
        self.tasks.get(&pid)
    }

    #[inline]
    pub fn get_mut(&mut self, pid: u32) -> Option<&mut TaskState> {
        self.tasks.get_mut(&pid)
    }

    /// The task's state, created (from the pool) if absent. The comm is
    /// copied only on creation or when it changed (exec), never per event.
    #[inline]
    pub fn entry(&mut self, pid: u32, tgid: u32, comm: &str) -> &mut TaskState {
        let pool = &mut self.pool;
        let t = self.tasks.entry(pid).or_insert_with(|| {
            let mut t = pool.pop().unwrap_or_default();
            t.reset(pid, tgid, comm);
            t
        });
        if t.comm != comm {
            t.comm.clear();
            t.comm.push_str(comm);
            t.tgid = tgid;
        }
        t
    }

    /// Drops the task's state if it is idle.
    #[inline]
    pub fn gc(&mut self, pid: u32) {
        if self.tasks.get(&pid).is_some_and(|t| t.is_idle()) {
            if let Some(t) = self.tasks.remove(&pid) {
                if self.pool.len() < POOL {
                    self.pool.push(t);
                }
            }
        }
    }

    /// Drops the task's state whatever it holds (the thread exited); returns
    /// how many held locks it still had.
    pub fn forget(&mut self, pid: u32) -> usize {
        let Some(t) = self.tasks.remove(&pid) else {
            return 0;
        };
        let held = t.held.len();
        if self.pool.len() < POOL {
            self.pool.push(t);
        }
        held
    }

    pub fn iter(&self) -> impl Iterator<Item = &TaskState> {
        self.tasks.values()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(addr: u64, ctx: u64) -> HeldLock {
        HeldLock {
            lock: LockId {
                addr,
                generation: 1,
            },
            class: 0,
            ctx,
            func: LockFn::Lock,
            since_ns: 0,
            stack: None,
            taken_in_api: None,
        }
    }

    #[test]
    fn idle_tasks_are_dropped_and_pooled() {
        let mut t = TaskTable::new();
        t.entry(1, 1, "a").held.push(held(0x10, 0));
        t.gc(1);
        assert_eq!(t.len(), 1);
        assert!(t.get_mut(1).unwrap().release(0x10).is_some());
        t.gc(1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.pool.len(), 1);
        let s = t.entry(2, 2, "bbbb");
        assert_eq!(s.comm, "bbbb");
        assert!(s.is_idle());
    }

    #[test]
    fn release_of_unheld_is_none() {
        let mut s = TaskState::default();
        assert!(s.release(0x10).is_none());
        s.held.push(held(0x10, 7));
        assert!(s.holds_ctx(7));
        assert!(!s.holds_ctx(0));
        assert!(s.release(0x10).is_some());
    }
}
