//! The engine: feeds events into per-task state, lock identity, the order
//! graph and the checks, and keeps the deduplicated findings.
//!
//! Deterministic: time comes only from events, no I/O, no clock. The same
//! stream gives the same findings live or replayed, and the full stream gives
//! the same findings as the kernel-filtered one (lock attempts of tasks that
//! hold nothing are not sent live): checks that belong to an acquisition run
//! at its attempt, or at its return when no attempt was seen.

use serde::{Deserialize, Serialize};

use crate::events::{
    BufRef, Callback, DmaBufFn, Event, EventKind, LockFn, Phase, StackId, StackTable,
    SummarisedCall, EALREADY, EDEADLK,
};

use super::checks::resv_lock_after_fini::Fini;
use super::checks::{self, Acquire, Env};
pub use super::config::EngineConfig;
use super::finding::Finding;
use super::graph::{EdgeEvidence, Insert, InstanceOrder, LockGraph, Observation};
use super::identity::{
    ClassId, ClassTable, LockClass, LockId, ObjectTable, INIT_MM_MMAP_LOCK, MMAP_LOCK, RESERVATION,
    RESERVATION_CTX, WW_UNKNOWN,
};
use super::state::{
    ApiFrame, Backoff, CbFrame, HeldLock, Pending, TaskTable, MAX_FRAMES, MAX_HELD,
};
use super::store::FindingStore;
use super::ww_homes::{home_of, Home};
use super::{FastMap, Interner};
use crate::kernel::frames::is_plumbing;

/// Counters: what the engine saw and what it had to tolerate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    pub lock_attempts: u64,
    pub lock_returns: u64,
    /// Returns whose attempt was not in the stream (normal for first locks in the live stream).
    pub returns_without_attempt: u64,
    pub acquisitions: u64,
    pub ealready: u64,
    /// -EALREADY for a lock the engine did not know as held by that ctx (attached mid-flight).
    pub ealready_not_held: u64,
    pub edeadlk: u64,
    /// Other failures (-EINTR, failed trylock).
    pub lock_failed: u64,
    pub unlocks: u64,
    /// Unlock of a lock the engine did not know as held (attached mid-flight, lost events).
    pub unlock_without_lock: u64,
    pub resv_init: u64,
    pub resv_fini: u64,
    pub resv_reinit_without_fini: u64,
    /// `dma_resv_fini`s not remembered for the lock-after-fini check (over its cap).
    #[serde(default)]
    pub finis_not_remembered: u64,
    pub api_calls: u64,
    pub callbacks: u64,
    /// API/callback returns without a matching entry.
    pub unmatched_returns: u64,
    /// Frames or held locks past the per-task caps (not kept).
    pub dropped_frames: u64,
    pub dropped_held: u64,
    pub fence_waits: u64,
    pub mmap_locks: u64,
    pub contentions: u64,
    /// Contended kernel locks not given a class (over `max_other_classes`).
    pub contention_classes_dropped: u64,
    pub syscall_exits: u64,
    /// Threads that exited (their state is forgotten: the id may be reused).
    #[serde(default)]
    pub thread_exits: u64,
    /// Acquisitions the kernel kept back because nothing could judge them
    /// (the thread held nothing and was in no hooked call), as counted per
    /// thread and reported at its exit.
    #[serde(default)]
    pub lone_acquisitions: u64,
    /// Nested acquisitions the kernel's novelty filter did not send (repeats
    /// of a transaction it had sent, released without anything judged
    /// against them), as counted per thread and reported at its exit.
    #[serde(default)]
    pub summarised_acquisitions: u64,
    /// dma-buf calls and callbacks the kernel's call filter did not send
    /// (each repeated a judgement already made, with nothing inside it to
    /// judge), as user space read the kernel's per-function counts.
    #[serde(default)]
    pub summarised_calls: u64,
    /// Held locks the engine still had for a thread when it exited (a leak,
    /// or an unlock lost to the ring buffer).
    #[serde(default)]
    pub held_at_thread_exit: u64,
    /// Held locks the kernel found no longer owned by their thread (their
    /// unlock was not seen: a skipped program run), dropped before anything
    /// was judged against them.
    #[serde(default)]
    pub locks_gone: u64,
    /// Kernel modules loaded while tracing (their dma-buf ops tables were
    /// looked for and hooked).
    #[serde(default)]
    pub module_loads: u64,
    /// Fence waits of the dma-buf core under a lock it took itself (not a
    /// driver's finding).
    #[serde(default)]
    pub core_fence_waits: u64,
    /// Finding occurrences (including repeats of a known finding).
    pub finding_occurrences: u64,
    // Gauges, filled by `Engine::stats()`.
    pub live_tasks: u64,
    pub live_objects: u64,
    pub held_locks: u64,
    pub classes: u64,
    pub graph_edges: u64,
    pub instance_orders: u64,
    pub instance_orders_dropped: u64,
    /// Observations of an ordering (held lock, lock taken) not recorded
    /// because one of the two locks had no known class: a
    /// ww_mutex that is not a known reservation object and came without the
    /// stack that names its class (kept back in the kernel without its call
    /// site, docs/probes.md, or a failed stack walk). One "unknown" class
    /// would join unrelated locks into false cycles.
    #[serde(default)]
    pub unclassified_orderings: u64,
    pub findings: u64,
    /// Entries per dma-buf API function (kernel name) and per callback
    /// (`dma_buf_ops.<member>`, `dma_buf_attach_ops.<member>`): what the
    /// tracer saw a workload drive (the lab's proof that a clean run saw traffic).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub calls: std::collections::BTreeMap<String, u64>,
    /// Of the same functions, the calls the kernel's call filter counted and
    /// did not send (`summarised_calls`, per function).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub calls_summarised: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    /// What the counters say about findings the engine could not make, one
    /// line each, for the end of a report (empty when nothing was missed).
    pub fn notes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.unclassified_orderings > 0 {
            v.push(format!(
                "{} lock orderings were not recorded: a ww_mutex that is not a known reservation \
                 object came without the stack that names its class (docs/probes.md; \
                 --lone-sites keeps un-nested locks' stacks)",
                self.unclassified_orderings
            ));
        }
        v
    }
}

/// A held lock as the live view shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLockView {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub lock: LockId,
    pub class: String,
    pub ctx: u64,
    pub func: LockFn,
    pub since_ns: u64,
    pub held_for_ns: u64,
    pub stack: Option<StackId>,
}

pub struct Engine {
    cfg: EngineConfig,
    objects: ObjectTable,
    classes: ClassTable,
    tasks: TaskTable,
    graph: LockGraph,
    instances: InstanceOrder,
    store: FindingStore,
    names: Interner,
    stacks: Option<StackTable>,
    site_classes: FastMap<StackId, ClassId>,
    /// Addresses of reservation objects torn down (`dma_resv_fini`) and not
    /// initialised since, at most `MAX_FINIS`.
    finis: FastMap<u64, Fini>,
    /// Entries per `DmaBufFn` / `Callback` (by discriminant).
    api_counts: [u64; DmaBufFn::ALL.len()],
    cb_counts: [u64; Callback::ALL.len()],
    /// Calls the kernel summarised (`EventKind::CallsSummarised`), per function.
    api_summarised: [u64; DmaBufFn::ALL.len()],
    cb_summarised: [u64; Callback::ALL.len()],
    stats: Stats,
}

/// Remembered `dma_resv_fini`s, at most this many (past it, new ones are
/// counted and not remembered).
const MAX_FINIS: usize = 1 << 16;

/// Site classes cached per stack id, at most this many.
const MAX_SITE_CACHE: usize = 1 << 16;

macro_rules! env {
    ($self:ident, $ev:expr) => {
        Env {
            ev: $ev,
            conv: $self.cfg.convention,
            cfg: &$self.cfg,
            classes: &$self.classes,
            names: &$self.names,
            stacks: $self.stacks.as_ref(),
        }
    };
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            classes: ClassTable::new(cfg.max_other_classes),
            instances: InstanceOrder::new(cfg.max_instance_orders),
            cfg,
            objects: ObjectTable::new(),
            tasks: TaskTable::new(),
            graph: LockGraph::new(),
            store: FindingStore::new(),
            names: Interner::new(),
            stacks: None,
            site_classes: FastMap::default(),
            finis: FastMap::default(),
            api_counts: [0; DmaBufFn::ALL.len()],
            cb_counts: [0; Callback::ALL.len()],
            api_summarised: [0; DmaBufFn::ALL.len()],
            cb_summarised: [0; Callback::ALL.len()],
            stats: Stats::default(),
        }
    }

    /// An engine that symbolizes stacks: code locations (dedup keys) and
    /// ww classes by acquisition site come from `stacks`.
    pub fn with_stacks(cfg: EngineConfig, stacks: StackTable) -> Self {
        let mut e = Engine::new(cfg);
        e.stacks = Some(stacks);
        e
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stacks(&self) -> Option<&StackTable> {
        self.stacks.as_ref()
    }

    /// The stack table (created empty if none was supplied), for live readers
    /// that resolve stacks as they first appear.
    pub fn stacks_mut(&mut self) -> &mut StackTable {
        self.stacks.get_or_insert_with(StackTable::new)
    }

    /// Every finding so far, deduplicated, in order of first occurrence.
    pub fn findings(&self) -> &[Finding] {
        self.store.all()
    }

    pub fn graph(&self) -> &LockGraph {
        &self.graph
    }

    pub fn classes(&self) -> &ClassTable {
        &self.classes
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.live_tasks = self.tasks.len() as u64;
        s.live_objects = self.objects.len() as u64;
        s.held_locks = self.tasks.iter().map(|t| t.held.len() as u64).sum();
        s.classes = self.classes.len() as u64;
        s.graph_edges = self.graph.edge_count() as u64;
        s.instance_orders = self.instances.len() as u64;
        s.instance_orders_dropped = self.instances.dropped;
        s.findings = self.store.len() as u64;
        s.finding_occurrences = self.store.all().iter().map(|f| f.count).sum();
        let conv = self.cfg.convention;
        for (f, &n) in DmaBufFn::ALL.iter().zip(&self.api_counts) {
            if n > 0 {
                s.calls.insert(conv.fn_name(*f).to_string(), n);
            }
        }
        for (c, &n) in Callback::ALL.iter().zip(&self.cb_counts) {
            if n > 0 {
                s.calls.insert(conv.callback_name(*c), n);
            }
        }
        for (f, &n) in DmaBufFn::ALL.iter().zip(&self.api_summarised) {
            if n > 0 {
                s.calls_summarised.insert(conv.fn_name(*f).to_string(), n);
            }
        }
        for (c, &n) in Callback::ALL.iter().zip(&self.cb_summarised) {
            if n > 0 {
                s.calls_summarised.insert(conv.callback_name(*c), n);
            }
        }
        s
    }

    /// Locks held right now, longest-held first (for the live view).
    pub fn held_locks(&self, now_ns: u64) -> Vec<HeldLockView> {
        let mut v: Vec<HeldLockView> = self
            .tasks
            .iter()
            .flat_map(|t| {
                t.held.iter().map(move |h| HeldLockView {
                    pid: t.pid,
                    tgid: t.tgid,
                    comm: t.comm.clone(),
                    lock: h.lock,
                    class: self.classes.name(h.class),
                    ctx: h.ctx,
                    func: h.func,
                    since_ns: h.since_ns,
                    held_for_ns: now_ns.saturating_sub(h.since_ns),
                    stack: h.stack,
                })
            })
            .collect();
        v.sort_by(|a, b| {
            a.since_ns
                .cmp(&b.since_ns)
                .then(a.pid.cmp(&b.pid))
                .then(a.lock.cmp(&b.lock))
        });
        v
    }

    /// Feeds one event; returns the findings it produced for the first time
    /// (repeats are counted in the stored finding).
    pub fn feed(&mut self, ev: &Event) -> Vec<Finding> {
        let mut out = Vec::new();
        self.stats.events += 1;
        match &ev.kind {
            EventKind::LockAttempt { lock, ctx, func } => {
                self.on_attempt(ev, *lock, *ctx, *func, &mut out)
            }
            EventKind::LockReturn {
                lock,
                ctx,
                func,
                ret,
            } => self.on_return(ev, *lock, *ctx, *func, *ret, &mut out),
            EventKind::Unlock { lock } => self.on_unlock(ev, *lock),
            EventKind::ResvInit { resv } => {
                self.stats.resv_init += 1;
                self.finis.remove(resv);
                let (_, old) = self.objects.init(*resv);
                if let Some(old) = old {
                    self.stats.resv_reinit_without_fini += 1;
                    self.instances.forget(old);
                }
            }
            EventKind::ResvFini { resv } => {
                self.stats.resv_fini += 1;
                if let Some(id) = self.objects.fini(*resv) {
                    self.instances.forget(id);
                }
                let fini = Fini {
                    ts_ns: ev.ts_ns,
                    pid: ev.pid,
                    tgid: ev.tgid,
                    stack: ev.stack,
                };
                if self.finis.len() < MAX_FINIS || self.finis.contains_key(resv) {
                    self.finis.insert(*resv, fini);
                } else {
                    self.stats.finis_not_remembered += 1;
                }
            }
            EventKind::DmaBufCall {
                func, phase, buf, ..
            } => self.on_api(ev, *func, *phase, buf, &mut out),
            EventKind::Callback {
                cb,
                phase,
                symbol,
                buf,
                ..
            } => self.on_callback(ev, *cb, *phase, symbol, buf),
            EventKind::FenceWaitStart { fence } => {
                self.stats.fence_waits += 1;
                let env = env!(self, ev);
                let task = self.tasks.get(ev.pid);
                if task.is_some_and(|t| {
                    t.held
                        .iter()
                        .any(|h| h.class == RESERVATION && t.taken_by_open_core_call(h))
                }) {
                    self.stats.core_fence_waits += 1;
                }
                out.extend(checks::fence_wait_under_resv::check(
                    &env,
                    task,
                    *fence,
                    &mut self.store,
                ));
            }
            EventKind::FenceWaitEnd { .. } => {}
            EventKind::MmapLock { mm, acquired, .. } => {
                // Only the start of a blocking acquisition orders locks: a trylock
                // (acquire_returned without start_locking) cannot deadlock.
                if acquired.is_none() {
                    self.stats.mmap_locks += 1;
                    // init_mm's lock (kernel page tables: set_memory_wc under
                    // a resv on 7.3) is not the user mms' class lockdep primes.
                    let class = if self.cfg.init_mm != 0 && *mm == self.cfg.init_mm {
                        INIT_MM_MMAP_LOCK
                    } else {
                        MMAP_LOCK
                    };
                    let acq = Acquire {
                        lock: LockId {
                            addr: *mm,
                            generation: 0,
                        },
                        class,
                        ctx: 0,
                        func: LockFn::Lock,
                        stack: ev.stack,
                    };
                    self.order_edges(ev, &acq, class, &mut out);
                }
            }
            EventKind::MmapUnlock { .. } => {}
            EventKind::ContentionBegin { lock, .. } => self.on_contention(ev, *lock, &mut out),
            EventKind::ContentionEnd { .. } => {}
            EventKind::ModuleLoad { .. } => self.stats.module_loads += 1,
            EventKind::ModuleFree { .. } => {}
            EventKind::LockGone { locks } => {
                for &lock in locks {
                    self.stats.locks_gone += 1;
                    // Already released here if its unlock did come after all.
                    self.release(ev, lock);
                }
            }
            EventKind::ThreadExit {
                lone_locks,
                summarised,
                ..
            } => {
                self.stats.thread_exits += 1;
                self.stats.lone_acquisitions += u64::from(*lone_locks);
                self.stats.summarised_acquisitions += u64::from(*summarised);
                self.stats.held_at_thread_exit += self.tasks.forget(ev.pid) as u64;
            }
            EventKind::CallsSummarised { call, count } => {
                self.stats.summarised_calls += count;
                let n = match call {
                    SummarisedCall::Api(f) => &mut self.api_summarised[*f as usize],
                    SummarisedCall::Callback { cb, .. } => &mut self.cb_summarised[*cb as usize],
                };
                *n += count;
            }
            EventKind::SyscallExit { nr, held } => {
                self.stats.syscall_exits += 1;
                let env = env!(self, ev);
                let task = self.tasks.get(ev.pid);
                out.extend(checks::held_at_return_to_user::check(
                    &env,
                    task,
                    *nr,
                    *held,
                    &mut self.store,
                ));
            }
        }
        out
    }

    /// Class of a ww_mutex at `addr` acquired by task `pid` now: a known
    /// reservation object; else the class of the locks the same acquire
    /// context already holds (one ctx locks one ww class: `ww_acquire_init`
    /// binds it to the class); else the class the acquiring function's home
    /// names (`ww_homes`); else a per-site class.
    fn classify(
        &mut self,
        pid: u32,
        addr: u64,
        ctx: u64,
        stack: Option<StackId>,
    ) -> (LockId, ClassId) {
        if let Some(id) = self.objects.lookup(addr) {
            return (id, RESERVATION);
        }
        let id = LockId {
            addr,
            generation: 0,
        };
        if let Some(c) = self.ctx_class(pid, ctx) {
            return (id, c);
        }
        let Some(stack) = stack else {
            return (id, WW_UNKNOWN);
        };
        if let Some(&c) = self.site_classes.get(&stack) {
            return (id, c);
        }
        let site = self
            .stacks
            .as_ref()
            .and_then(|st| st.get(stack))
            .and_then(|frames| {
                frames
                    .iter()
                    .find_map(|f| f.symbol.as_deref().filter(|s| !is_plumbing(s)))
                    .map(str::to_string)
            });
        let class = match site {
            Some(s) => {
                let c = match home_of(&s) {
                    Some(Home::Reservation) => Some(RESERVATION),
                    Some(Home::Static(name)) => {
                        self.classes.intern(LockClass::WwClass(name.into()))
                    }
                    None => self.classes.intern(LockClass::WwSite(s)),
                };
                c.unwrap_or(WW_UNKNOWN)
            }
            // Not resolvable (yet): do not cache, the table may learn it.
            None => return (id, WW_UNKNOWN),
        };
        if self.site_classes.len() < MAX_SITE_CACHE {
            self.site_classes.insert(stack, class);
        }
        (id, class)
    }

    /// An acquisition of the ww_mutex at `addr` by task `pid`, classified.
    fn acquisition(
        &mut self,
        pid: u32,
        addr: u64,
        ctx: u64,
        func: LockFn,
        stack: Option<StackId>,
    ) -> Acquire {
        let (lock, class) = self.classify(pid, addr, ctx, stack);
        Acquire {
            lock,
            class,
            ctx,
            func,
            stack,
        }
    }

    /// The ww class of acquire context `ctx` of task `pid`: the class of a
    /// lock of known class it holds, if any.
    fn ctx_class(&self, pid: u32, ctx: u64) -> Option<ClassId> {
        if ctx == 0 {
            return None;
        }
        self.tasks
            .get(pid)?
            .held
            .iter()
            .find(|h| h.ctx == ctx && h.class != WW_UNKNOWN)
            .map(|h| h.class)
    }

    fn on_attempt(
        &mut self,
        ev: &Event,
        lock: u64,
        ctx: u64,
        func: LockFn,
        out: &mut Vec<Finding>,
    ) {
        self.stats.lock_attempts += 1;
        let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
        t.pending = Some(Pending {
            lock,
            ctx,
            func,
            stack: ev.stack,
            ts_ns: ev.ts_ns,
        });
        if func != LockFn::Trylock {
            self.intent(ev, lock, ctx, func, ev.stack, out);
        }
    }

    fn on_return(
        &mut self,
        ev: &Event,
        lock: u64,
        ctx: u64,
        func: LockFn,
        ret: i64,
        out: &mut Vec<Finding>,
    ) {
        self.stats.lock_returns += 1;
        let acquired = match func {
            LockFn::Trylock => ret == 1,
            _ => ret == 0,
        };
        let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
        let pending = t.pending.take().filter(|p| p.lock == lock);
        let stack = pending.and_then(|p| p.stack).or(ev.stack);
        if pending.is_none() {
            self.stats.returns_without_attempt += 1;
            if func != LockFn::Trylock {
                self.intent(ev, lock, ctx, func, stack, out);
            }
        }
        if acquired {
            self.stats.acquisitions += 1;
            let acq = self.acquisition(ev.pid, lock, ctx, func, stack);
            let (id, class) = (acq.lock, acq.class);
            if func == LockFn::Trylock {
                // A trylock is never judged at its attempt (it cannot block),
                // but a use after fini is a use.
                self.check_after_fini(ev, &acq, out);
            }
            // Acquired at the return: the attempt may be missing (filtered
            // stream), and the time must not depend on it.
            let since = ev.ts_ns;
            let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
            if t.held.len() < MAX_HELD {
                let taken_in_api = t.api.last().map(|a| a.ts_ns);
                t.held.push(HeldLock {
                    lock: id,
                    class,
                    ctx,
                    func,
                    since_ns: since,
                    stack,
                    taken_in_api,
                });
            } else {
                self.stats.dropped_held += 1;
            }
            // Any successful lock with the ctx ends its backoff window: the
            // violation, if any, was judged at the attempt.
            if t.backoff.is_some_and(|b| b.ctx == ctx) {
                t.backoff = None;
            }
        } else if ret == EALREADY {
            self.stats.ealready += 1;
            let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
            if !t.held.iter().any(|h| h.lock.addr == lock && h.ctx == ctx) {
                self.stats.ealready_not_held += 1;
            }
        } else if ret == EDEADLK {
            self.stats.edeadlk += 1;
            let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
            if ctx != 0 {
                t.backoff = Some(Backoff {
                    ctx,
                    contended: lock,
                    ts_ns: ev.ts_ns,
                    stack,
                });
            }
        } else {
            self.stats.lock_failed += 1;
        }
        self.tasks.gc(ev.pid);
    }

    /// Judges a (non-try) acquisition about to block: protocol, recursion,
    /// exporter relock, ordering.
    fn intent(
        &mut self,
        ev: &Event,
        addr: u64,
        ctx: u64,
        func: LockFn,
        stack: Option<StackId>,
        out: &mut Vec<Finding>,
    ) {
        let acq = self.acquisition(ev.pid, addr, ctx, func, stack);
        let (id, class) = (acq.lock, acq.class);
        self.check_after_fini(ev, &acq, out);
        let Some(task) = self.tasks.get(ev.pid) else {
            return;
        };
        if task.held.is_empty() && task.callbacks.is_empty() {
            // Holding nothing and inside no callback: nothing to judge. This is
            // the hot path's common case.
            return;
        }
        let env = env!(self, ev);
        let store = &mut self.store;
        let mut second_ctx = false;
        if ctx != 0 {
            if let Some(b) = task.backoff.filter(|b| b.ctx == ctx) {
                if task.holds_ctx(ctx) {
                    out.extend(checks::ww_protocol::no_backoff(&env, task, &acq, &b, store));
                }
            }
            // Only two live contexts of one ww class are wrong: lockdep keys
            // ww_acquire_init on the class's acquire key, so a reservation
            // transaction inside a modeset one (i915's prepare_fb) is legal.
            // Unknown classes judge nothing: a false error costs more.
            let same_class = |h: &&HeldLock| {
                h.ctx != 0 && h.ctx != ctx && h.class == class && class != WW_UNKNOWN
            };
            if let Some(other) = task.held.iter().find(same_class) {
                out.extend(checks::ww_protocol::second_ctx(
                    &env, task, &acq, other, store,
                ));
                // The second context's ordering against the first (held
                // reservation -> reservation acquire context) is the same bug:
                // lockdep reports the recursive acquire context and stops.
                second_ctx = true;
            }
        }
        if let Some(i) = task.held_index(addr) {
            let h = task.held[i];
            if ctx != 0 && h.ctx == ctx {
                // Same transaction: -EALREADY, legal.
                return;
            }
            if let Some(cb) = checks::exporter_relock::frame(&env, task, addr) {
                out.extend(checks::exporter_relock::check(&env, task, &acq, cb, store));
            } else if let Some(cb) = checks::exporter_relock::from_stack(&env, task, &acq, &h) {
                // A callback with no hook (a module loaded after the start): the
                // stack says which driver function the core called.
                out.extend(checks::exporter_relock::check_from_stack(
                    &env, task, &acq, &cb, store,
                ));
            } else if !checks::recursive_lock::explained_by_api_call(&env, task, &h) {
                out.extend(checks::recursive_lock::check(&env, task, &acq, &h, store));
            }
            // A relock adds no ordering: lockdep reports it and stops there too.
            return;
        }
        if let Some(cb) = checks::exporter_relock::frame(&env, task, addr) {
            out.extend(checks::exporter_relock::check(&env, task, &acq, cb, store));
        }
        if class == RESERVATION && ctx == 0 {
            let mut reported_nesting = false;
            for h in task
                .held
                .iter()
                .filter(|h| h.class == RESERVATION && h.lock != id)
            {
                if !reported_nesting {
                    reported_nesting = true;
                    out.extend(checks::ww_protocol::ctx_less_nesting(
                        &env, task, &acq, h, store,
                    ));
                }
                let mk = || EdgeEvidence {
                    primed: false,
                    pid: ev.pid,
                    tgid: ev.tgid,
                    comm: ev.comm.clone(),
                    ts_ns: ev.ts_ns,
                    from_lock: h.lock.addr,
                    from_stack: h.stack,
                    to_lock: addr,
                    to_stack: stack,
                };
                let new_ev = mk();
                if let Some(old) = self.instances.record(h.lock, id, &new_ev.observation(), mk) {
                    out.extend(checks::lock_order_inversion::check_abba(
                        &env, task, &acq, &new_ev, old, store,
                    ));
                }
            }
        }
        if second_ctx {
            return;
        }
        // The first lock of a reservation transaction stands for ww_acquire_init
        // (inline, unseen): it orders the held locks before the acquire context.
        let target = if ctx != 0 && class == RESERVATION && !task.holds_ctx(ctx) {
            RESERVATION_CTX
        } else {
            class
        };
        self.order_edges(ev, &acq, target, out);
    }

    /// A lock of a reservation object torn down and not re-initialised.
    fn check_after_fini(&mut self, ev: &Event, acq: &Acquire, out: &mut Vec<Finding>) {
        if self.finis.is_empty() {
            return;
        }
        let Some(fini) = self.finis.get(&acq.lock.addr).copied() else {
            return;
        };
        let env = env!(self, ev);
        out.extend(checks::resv_lock_after_fini::check(
            &env,
            self.tasks.get(ev.pid),
            acq,
            &fini,
            &mut self.store,
        ));
    }

    /// Records "each held class before `target`" and reports cycles.
    fn order_edges(&mut self, ev: &Event, acq: &Acquire, target: ClassId, out: &mut Vec<Finding>) {
        let Some(task) = self.tasks.get(ev.pid) else {
            return;
        };
        for h in task.held.iter() {
            // Locks of one acquire context never order each other (the ww
            // protocol resolves their order at run time), whatever class the
            // engine could give each; context-less same-class nesting is
            // judged per instance above.
            if (acq.ctx != 0 && h.ctx == acq.ctx) || h.class == target {
                continue;
            }
            if h.class == WW_UNKNOWN || target == WW_UNKNOWN {
                self.stats.unclassified_orderings += 1;
                continue;
            }
            let seen = Observation {
                pid: ev.pid,
                from_lock: h.lock.addr,
                from_stack: h.stack,
                to_lock: acq.lock.addr,
                to_stack: acq.stack,
            };
            let r = self.graph.add(h.class, target, &seen, || EdgeEvidence {
                primed: false,
                pid: ev.pid,
                tgid: ev.tgid,
                comm: ev.comm.clone(),
                ts_ns: ev.ts_ns,
                from_lock: h.lock.addr,
                from_stack: h.stack,
                to_lock: acq.lock.addr,
                to_stack: acq.stack,
            });
            if let Insert::Cycle(path) = r {
                let env = env!(self, ev);
                out.extend(checks::lock_order_inversion::check_cycle(
                    &env,
                    task,
                    acq,
                    &self.graph,
                    &path,
                    &mut self.store,
                ));
            }
        }
    }

    fn on_unlock(&mut self, ev: &Event, addr: u64) {
        self.stats.unlocks += 1;
        if !self.release(ev, addr) {
            self.stats.unlock_without_lock += 1;
        }
    }

    /// Drops a lock from the task's held set; whether it was there.
    fn release(&mut self, ev: &Event, addr: u64) -> bool {
        let Some(t) = self.tasks.get_mut(ev.pid) else {
            return false;
        };
        let released = match t.release(addr) {
            Some(h) => {
                // The backoff is complete once no lock of the ctx is held.
                if t.backoff.is_some_and(|b| b.ctx == h.ctx) && !t.holds_ctx(h.ctx) {
                    t.backoff = None;
                }
                true
            }
            None => false,
        };
        self.tasks.gc(ev.pid);
        released
    }

    /// A resv address seen in a dma-buf call: known from now on. Locks taken
    /// before it was known (the importer locked, then called) are reclassified.
    fn learn_resv(&mut self, resv: u64) {
        if resv == 0 || self.objects.lookup(resv).is_some() {
            return;
        }
        let id = self.objects.learn(resv);
        self.finis.remove(&resv);
        // Rare (first sight of an object whose init predates the trace), so a
        // walk over the tasks is acceptable.
        let pids: Vec<u32> = self
            .tasks
            .iter()
            .filter(|t| t.holds(resv))
            .map(|t| t.pid)
            .collect();
        for pid in pids {
            if let Some(t) = self.tasks.get_mut(pid) {
                for h in t.held.iter_mut().filter(|h| h.lock.addr == resv) {
                    h.lock = id;
                    h.class = RESERVATION;
                }
            }
        }
    }

    fn on_api(
        &mut self,
        ev: &Event,
        func: DmaBufFn,
        phase: Phase,
        buf: &BufRef,
        out: &mut Vec<Finding>,
    ) {
        match phase {
            Phase::Entry => {
                self.stats.api_calls += 1;
                self.api_counts[func as usize] += 1;
                self.learn_resv(buf.resv);
                // The core calling itself on the same buffer (attach ->
                // dynamic_attach, map_unlocked -> map) is judged at the outer call.
                let core_internal = self.tasks.get(ev.pid).is_some_and(|t| {
                    t.api.last().is_some_and(|a| {
                        a.resv == buf.resv && t.callbacks.last().is_none_or(|c| c.ts_ns < a.ts_ns)
                    })
                });
                if !core_internal {
                    let env = env!(self, ev);
                    let task = self.tasks.get(ev.pid);
                    out.extend(checks::importer_missing_lock::check(
                        &env,
                        task,
                        func,
                        buf,
                        ev.stack,
                        &mut self.store,
                    ));
                    out.extend(checks::importer_holds_lock::check(
                        &env,
                        task,
                        func,
                        buf,
                        ev.stack,
                        &mut self.store,
                    ));
                }
                let exp_name = self.names.intern(&buf.exp_name);
                let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
                let frame = ApiFrame {
                    func,
                    resv: buf.resv,
                    dmabuf: buf.dmabuf,
                    exp_name,
                    stack: ev.stack,
                    ts_ns: ev.ts_ns,
                };
                push_bounded(&mut t.api, frame, &mut self.stats.dropped_frames);
            }
            Phase::Return => {
                let matched = self
                    .tasks
                    .get_mut(ev.pid)
                    .is_some_and(|t| pop_to(&mut t.api, |f| f.func == func));
                if !matched {
                    self.stats.unmatched_returns += 1;
                }
                self.tasks.gc(ev.pid);
            }
        }
    }

    fn on_callback(&mut self, ev: &Event, cb: Callback, phase: Phase, symbol: &str, buf: &BufRef) {
        match phase {
            Phase::Entry => {
                self.stats.callbacks += 1;
                self.cb_counts[cb as usize] += 1;
                self.learn_resv(buf.resv);
                let symbol = self.names.intern(symbol);
                let exp_name = self.names.intern(&buf.exp_name);
                let t = self.tasks.entry(ev.pid, ev.tgid, &ev.comm);
                let frame = CbFrame {
                    cb,
                    symbol,
                    resv: buf.resv,
                    dmabuf: buf.dmabuf,
                    exp_name,
                    stack: ev.stack,
                    ts_ns: ev.ts_ns,
                };
                push_bounded(&mut t.callbacks, frame, &mut self.stats.dropped_frames);
            }
            Phase::Return => {
                let matched = self
                    .tasks
                    .get_mut(ev.pid)
                    .is_some_and(|t| pop_to(&mut t.callbacks, |f| f.cb == cb));
                if !matched {
                    self.stats.unmatched_returns += 1;
                }
                self.tasks.gc(ev.pid);
            }
        }
    }

    fn on_contention(&mut self, ev: &Event, lock: u64, out: &mut Vec<Finding>) {
        self.stats.contentions += 1;
        let Some(t) = self.tasks.get(ev.pid) else {
            return;
        };
        if t.held.is_empty() {
            return;
        }
        // Contention on a ww_mutex (its base mutex sits at offset 0) is the
        // lock call already being judged, not another lock.
        if self.objects.lookup(lock).is_some()
            || t.holds(lock)
            || t.pending.is_some_and(|p| p.lock == lock)
        {
            return;
        }
        let Some(class) = self.classes.intern(LockClass::Other(lock)) else {
            self.stats.contention_classes_dropped += 1;
            return;
        };
        let acq = Acquire {
            lock: LockId {
                addr: lock,
                generation: 0,
            },
            class,
            ctx: 0,
            func: LockFn::Lock,
            stack: ev.stack,
        };
        self.order_edges(ev, &acq, class, out);
    }
}

/// Pushes a call frame unless the task is already `MAX_FRAMES` deep (then
/// counted: a runaway stream must not grow memory).
fn push_bounded<T>(frames: &mut Vec<T>, frame: T, dropped: &mut u64) {
    if frames.len() < MAX_FRAMES {
        frames.push(frame);
    } else {
        *dropped += 1;
    }
}

/// A return: drops the innermost frame that `is_it` matches and every frame
/// opened inside it (their returns were missed). False if none matched.
fn pop_to<T>(frames: &mut Vec<T>, is_it: impl Fn(&T) -> bool) -> bool {
    match frames.iter().rposition(is_it) {
        Some(i) => {
            frames.truncate(i);
            true
        }
        None => false,
    }
}
