//! Analysis engine throughput and memory, on a synthetic event stream.
//!
//! The stream is SYNTHETIC and shaped like the live (kernel-filtered) one:
//! importer traffic through the dma-buf core (map_attachment_unlocked with its
//! nested lock, callbacks), ww transactions over several objects with an
//! occasional -EDEADLK and a correct backoff, single locks with fence waits,
//! constant churn of reservation lifetimes (init/fini with address reuse), a
//! driver's own ww_mutexes nested along a partial order with contended kernel
//! locks inside (hundreds of lock classes, thousands of lock-order edges, each
//! new one searched for a cycle), and a few violations. Every stack the events
//! name is in the engine's stack table, symbolized, as in a live run (the
//! driver's classes come from their acquisition sites' symbols). Lock attempts
//! of tasks that hold nothing are left out, as the kernel side does.
//!
//! Only `Engine::feed` is timed; the stream is generated in chunks outside the
//! timed region. Memory is measured with a counting global allocator.
//!
//! Run: `cargo bench -p tracer-core --bench analysis` (EVENTS=n to change the size).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use tracer_core::analysis::{Engine, EngineConfig};
use tracer_core::events::*;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TASKS: u32 = 64;
const OBJECTS: usize = 4096;
const COMMS: [&str; 4] = ["weston", "gnome-shell", "kworker/u8:3", "vkcube"];
const EXPORTERS: [&str; 3] = ["udmabuf", "i915", "amdgpu"];
/// A driver's ww_mutex acquisition sites (one lock class each, `ww_mutex@drv_site_N`)
/// and its private ww_mutex objects.
const DRIVER_SITES: u64 = 256;
const DRIVER_OBJECTS: u64 = 4096;
/// Stack ids of the driver's sites: `SITE_STACKS + site`.
const SITE_STACKS: StackId = 1000;
/// Kernel locks contended inside the driver's sections (one class each).
const KERNEL_LOCKS: u64 = 64;

/// The stack table of the stream: the fixed stack ids the operations use, and one stack
/// per driver site, innermost frame first.
fn stack_table() -> Vec<(StackId, Vec<Frame>)> {
    let f = |sym: &str, module: Option<&str>| Frame {
        addr: 0xffff_ffff_8100_0000,
        symbol: Some(sym.to_string()),
        offset: 0x4c,
        module: module.map(str::to_string),
    };
    let mut t: Vec<(StackId, Vec<Frame>)> = [
        (
            1,
            "dma_buf_map_attachment_unlocked",
            "drm_gem_prime_import_dev",
        ),
        (
            2,
            "dma_buf_map_attachment",
            "dma_buf_map_attachment_unlocked",
        ),
        (3, "get_sg_table", "udmabuf_map_dma_buf"),
        (20, "dma_fence_wait_timeout", "dma_resv_wait_timeout"),
        (30, "dma_buf_vmap", "drm_gem_shmem_vmap"),
        (31, "ww_mutex_lock", "tsc_abba_no_ctx"),
        (32, "dma_fence_wait_timeout", "i915_gem_object_wait"),
    ]
    .into_iter()
    .map(|(id, a, b)| (id, vec![f(a, None), f(b, None), f("do_syscall_64", None)]))
    .collect();
    for k in 0..DRIVER_SITES {
        let site = format!("drv_site_{k}");
        t.push((
            SITE_STACKS + k as StackId,
            vec![
                f("ww_mutex_lock", None),
                f(&site, Some("drv")),
                f("drv_ioctl", Some("drv")),
                f("do_syscall_64", None),
            ],
        ));
    }
    t
}

/// Emits whole operations into a reused chunk.
struct Gen {
    rng: Rng,
    ts: u64,
    objects: Vec<u64>,
    next_addr: u64,
    free: Vec<u64>,
    ops: u64,
}

impl Gen {
    fn new() -> Self {
        let mut g = Gen {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            ts: 0,
            objects: Vec::new(),
            next_addr: 0xffff_8880_0000_0000,
            free: Vec::new(),
            ops: 0,
        };
        for _ in 0..OBJECTS {
            let a = g.alloc_addr();
            g.objects.push(a);
        }
        g
    }

    fn alloc_addr(&mut self) -> u64 {
        // Freed addresses come back first, as slab objects do.
        self.free.pop().unwrap_or_else(|| {
            self.next_addr += 0x400;
            self.next_addr
        })
    }

    fn push(&mut self, out: &mut Vec<Event>, pid: u32, stack: Option<StackId>, kind: EventKind) {
        self.ts += 37;
        out.push(Event {
            ts_ns: self.ts,
            cpu: pid & 1,
            pid,
            tgid: pid / 4 * 4,
            comm: COMMS[(pid % 4) as usize].to_string(),
            stack,
            kind,
        });
    }

    fn buf(&self, resv: u64, i: usize) -> BufRef {
        BufRef {
            dmabuf: resv + 0x200,
            resv,
            ops: 0xffff_ffff_c100_0000,
            exp_name: EXPORTERS[i % 3].to_string(),
            dynamic_importer: false,
        }
    }

    fn op(&mut self, out: &mut Vec<Event>) {
        self.ops += 1;
        let pid = 1000 + self.rng.below(TASKS as u64) as u32;
        let i = self.rng.below(OBJECTS as u64) as usize;
        let a = self.objects[i];
        let lock_ret = |lock, ctx, func, ret| EventKind::LockReturn {
            lock,
            ctx,
            func,
            ret,
        };
        match self.rng.below(100) {
            // Importer traffic through the core.
            0..=39 => {
                let b = self.buf(a, i);
                self.push(
                    out,
                    pid,
                    Some(1),
                    EventKind::DmaBufCall {
                        func: DmaBufFn::MapAttachmentUnlocked,
                        phase: Phase::Entry,
                        buf: b.clone(),
                        ret: None,
                    },
                );
                self.push(out, pid, None, lock_ret(a, 0, LockFn::Lock, 0));
                self.push(
                    out,
                    pid,
                    Some(2),
                    EventKind::DmaBufCall {
                        func: DmaBufFn::MapAttachment,
                        phase: Phase::Entry,
                        buf: b.clone(),
                        ret: None,
                    },
                );
                self.push(
                    out,
                    pid,
                    Some(3),
                    EventKind::Callback {
                        cb: Callback::MapDmaBuf,
                        phase: Phase::Entry,
                        symbol: "get_sg_table".into(),
                        buf: b.clone(),
                        ret: None,
                    },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::Callback {
                        cb: Callback::MapDmaBuf,
                        phase: Phase::Return,
                        symbol: "get_sg_table".into(),
                        buf: b.clone(),
                        ret: Some(0),
                    },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::DmaBufCall {
                        func: DmaBufFn::MapAttachment,
                        phase: Phase::Return,
                        buf: b.clone(),
                        ret: Some(0),
                    },
                );
                self.push(out, pid, None, EventKind::Unlock { lock: a });
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::DmaBufCall {
                        func: DmaBufFn::MapAttachmentUnlocked,
                        phase: Phase::Return,
                        buf: b,
                        ret: Some(0),
                    },
                );
            }
            // A ww transaction over 2-5 objects, sometimes with -EDEADLK + backoff.
            40..=69 => {
                let ctx = 0xffff_c900_0000_0000 + pid as u64 * 0x100;
                let n = 2 + self.rng.below(4) as usize;
                let mut locks: Vec<u64> = (0..n)
                    .map(|k| self.objects[(i + k * 7) % OBJECTS])
                    .collect();
                locks.dedup();
                let f = LockFn::LockInterruptible;
                for (k, &l) in locks.iter().enumerate() {
                    if k > 0 {
                        self.push(
                            out,
                            pid,
                            Some(10 + k as u32),
                            EventKind::LockAttempt {
                                lock: l,
                                ctx,
                                func: f,
                            },
                        );
                    }
                    if k == 1 && self.rng.below(20) == 0 {
                        // -EDEADLK: back off (unlock all), slow-lock the contended one, retry.
                        self.push(out, pid, Some(11), lock_ret(l, ctx, f, EDEADLK));
                        self.push(out, pid, None, EventKind::Unlock { lock: locks[0] });
                        self.push(out, pid, None, lock_ret(l, ctx, f, 0));
                        self.push(
                            out,
                            pid,
                            Some(10),
                            EventKind::LockAttempt {
                                lock: locks[0],
                                ctx,
                                func: f,
                            },
                        );
                        self.push(out, pid, Some(10), lock_ret(locks[0], ctx, f, 0));
                        continue;
                    }
                    self.push(
                        out,
                        pid,
                        if k > 0 { Some(10 + k as u32) } else { None },
                        lock_ret(l, ctx, f, 0),
                    );
                }
                // -EALREADY on a re-lookup of the first object.
                self.push(
                    out,
                    pid,
                    Some(19),
                    EventKind::LockAttempt {
                        lock: locks[0],
                        ctx,
                        func: f,
                    },
                );
                self.push(out, pid, Some(19), lock_ret(locks[0], ctx, f, EALREADY));
                for &l in locks.iter().rev() {
                    self.push(out, pid, None, EventKind::Unlock { lock: l });
                }
            }
            // A single lock with a fence wait and an mmap_lock read under it.
            70..=84 => {
                self.push(out, pid, None, lock_ret(a, 0, LockFn::LockInterruptible, 0));
                self.push(
                    out,
                    pid,
                    Some(20),
                    EventKind::FenceWaitStart {
                        fence: 0xf000 + i as u64,
                    },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::FenceWaitEnd {
                        fence: 0xf000 + i as u64,
                    },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::ContentionBegin {
                        lock: 0xffff_ffff_8300_0000,
                        flags: 0,
                    },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::ContentionEnd {
                        lock: 0xffff_ffff_8300_0000,
                        ret: 0,
                    },
                );
                self.push(out, pid, None, EventKind::Unlock { lock: a });
            }
            // A driver's own ww_mutexes (not reservations), each acquisition site its own
            // class: two nested along a partial order (a lower site first), sometimes under a
            // held reservation, with a contended kernel lock inside. Clean, but it grows the
            // graph to hundreds of classes and thousands of edges.
            85..=89 => {
                let k1 = self.rng.below(DRIVER_SITES - 8);
                let k2 = k1 + 1 + self.rng.below(8);
                let obj = |r: &mut Rng| 0xffff_8890_0000_0000 + r.below(DRIVER_OBJECTS) * 0x200;
                let (x, y) = (obj(&mut self.rng), obj(&mut self.rng));
                let y = if y == x { y + 0x100 } else { y };
                let under_resv = self.rng.below(2) == 0;
                if under_resv {
                    self.push(out, pid, None, lock_ret(a, 0, LockFn::Lock, 0));
                }
                let (s1, s2) = (
                    Some(SITE_STACKS + k1 as StackId),
                    Some(SITE_STACKS + k2 as StackId),
                );
                if under_resv {
                    self.push(
                        out,
                        pid,
                        s1,
                        EventKind::LockAttempt {
                            lock: x,
                            ctx: 0,
                            func: LockFn::Lock,
                        },
                    );
                }
                self.push(out, pid, s1, lock_ret(x, 0, LockFn::Lock, 0));
                self.push(
                    out,
                    pid,
                    s2,
                    EventKind::LockAttempt {
                        lock: y,
                        ctx: 0,
                        func: LockFn::Lock,
                    },
                );
                self.push(out, pid, s2, lock_ret(y, 0, LockFn::Lock, 0));
                let kl = 0xffff_ffff_8400_0000 + self.rng.below(KERNEL_LOCKS) * 0x40;
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::ContentionBegin { lock: kl, flags: 0 },
                );
                self.push(
                    out,
                    pid,
                    None,
                    EventKind::ContentionEnd { lock: kl, ret: 0 },
                );
                self.push(out, pid, None, EventKind::Unlock { lock: y });
                self.push(out, pid, None, EventKind::Unlock { lock: x });
                if under_resv {
                    self.push(out, pid, None, EventKind::Unlock { lock: a });
                }
            }
            // Lifetime churn: an object dies, a new one (often at the same address) is born.
            90..=97 => {
                self.push(out, 0, None, EventKind::ResvFini { resv: a });
                self.free.push(a);
                let n = self.alloc_addr();
                self.objects[i] = n;
                self.push(out, 0, None, EventKind::ResvInit { resv: n });
            }
            // A few violations, at a low rate.
            _ => match self.rng.below(50) {
                0 => {
                    let b = self.buf(a, i);
                    self.push(
                        out,
                        pid,
                        Some(30),
                        EventKind::DmaBufCall {
                            func: DmaBufFn::Vmap,
                            phase: Phase::Entry,
                            buf: b.clone(),
                            ret: None,
                        },
                    );
                    self.push(
                        out,
                        pid,
                        None,
                        EventKind::DmaBufCall {
                            func: DmaBufFn::Vmap,
                            phase: Phase::Return,
                            buf: b,
                            ret: Some(0),
                        },
                    );
                }
                1 => {
                    let b = self.objects[(i + 1) % OBJECTS];
                    self.push(out, pid, None, lock_ret(a, 0, LockFn::Lock, 0));
                    self.push(
                        out,
                        pid,
                        Some(31),
                        EventKind::LockAttempt {
                            lock: b,
                            ctx: 0,
                            func: LockFn::Lock,
                        },
                    );
                    self.push(out, pid, Some(31), lock_ret(b, 0, LockFn::Lock, 0));
                    self.push(out, pid, None, EventKind::Unlock { lock: b });
                    self.push(out, pid, None, EventKind::Unlock { lock: a });
                }
                2 => {
                    self.push(out, pid, None, lock_ret(a, 0, LockFn::Lock, 0));
                    self.push(out, pid, Some(32), EventKind::FenceWaitStart { fence: 1 });
                    self.push(out, pid, None, EventKind::FenceWaitEnd { fence: 1 });
                    self.push(out, pid, None, EventKind::Unlock { lock: a });
                }
                _ => {
                    // Clean trylock traffic.
                    self.push(out, pid, None, lock_ret(a, 0, LockFn::Trylock, 1));
                    self.push(out, pid, None, EventKind::Unlock { lock: a });
                }
            },
        }
    }

    fn fill(&mut self, out: &mut Vec<Event>, n: usize) {
        out.clear();
        while out.len() < n {
            self.op(out);
        }
    }

    fn prologue(&mut self, out: &mut Vec<Event>) {
        out.clear();
        for k in 0..self.objects.len() {
            let a = self.objects[k];
            self.push(out, 0, None, EventKind::ResvInit { resv: a });
        }
    }
}

/// Bytes the engine allocates per live, held reservation lock: many objects
/// initialised and held at once (transactions of 16 per task), measured with
/// the counting allocator after a warm-up that sizes the maps' steady state.
fn bytes_per_live_lock() -> f64 {
    const N: u64 = 65_536;
    const PER_TASK: u64 = 16;
    let ev = |ts: u64, pid: u32, kind: EventKind| Event {
        ts_ns: ts,
        cpu: 0,
        pid,
        tgid: pid,
        comm: "weston".into(),
        stack: Some(5),
        kind,
    };
    let mut e = Engine::new(EngineConfig::default());
    // Warm-up so interned strings, the class table and the graph exist.
    e.feed(&ev(0, 1, EventKind::ResvInit { resv: 1 }));
    e.feed(&ev(0, 1, EventKind::ResvFini { resv: 1 }));
    let before = live_bytes();
    let mut ts = 1;
    for k in 0..N {
        let lock = 0xffff_8880_0000_0000 + k * 0x400;
        let pid = 10_000 + (k / PER_TASK) as u32;
        let ctx = 0xffff_c900_0000_0000 + pid as u64 * 0x100;
        ts += 1;
        e.feed(&ev(ts, 0, EventKind::ResvInit { resv: lock }));
        if k % PER_TASK != 0 {
            e.feed(&ev(
                ts,
                pid,
                EventKind::LockAttempt {
                    lock,
                    ctx,
                    func: LockFn::Lock,
                },
            ));
        }
        e.feed(&ev(
            ts,
            pid,
            EventKind::LockReturn {
                lock,
                ctx,
                func: LockFn::Lock,
                ret: 0,
            },
        ));
    }
    let after = live_bytes();
    assert_eq!(e.stats().held_locks, N);
    std::hint::black_box(&e);
    (after - before) as f64 / N as f64
}

fn main() {
    // `cargo bench` passes --bench; no harness, so arguments are ignored.
    let total: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    const CHUNK: usize = 1 << 18;
    let mut gen = Gen::new();
    let mut chunk = Vec::with_capacity(CHUNK + 64);
    let mut engine = Engine::new(EngineConfig::default());
    for (id, frames) in stack_table() {
        engine.stacks_mut().insert(id, frames);
    }
    gen.prologue(&mut chunk);
    for ev in &chunk {
        engine.feed(ev);
    }
    let mut fed = 0usize;
    let mut busy = Duration::ZERO;
    let mut new_findings = 0usize;
    let mut mem_at_10pct = None;
    while fed < total {
        gen.fill(&mut chunk, CHUNK.min(total - fed).max(1));
        let t = Instant::now();
        for ev in &chunk {
            new_findings += engine.feed(ev).len();
        }
        busy += t.elapsed();
        fed += chunk.len();
        if mem_at_10pct.is_none() && fed >= total / 10 {
            mem_at_10pct = Some(live_bytes());
        }
    }
    let mem_end = live_bytes();
    let st = engine.stats();
    let rate = fed as f64 / busy.as_secs_f64();
    eprintln!(
        "events {fed} in {:.3} s of feed time; {} operations; findings {} ({} occurrences, {} reported new)",
        busy.as_secs_f64(),
        gen.ops,
        st.findings,
        st.finding_occurrences,
        new_findings
    );
    eprintln!(
        "engine state at end: {} live objects, {} tasks, {} held locks, {} classes, {} graph edges, {} instance orders; \
         unlock-without-lock {}",
        st.live_objects, st.live_tasks, st.held_locks, st.classes, st.graph_edges, st.instance_orders, st.unlock_without_lock
    );
    // The planted violations only: the driver's partial order must not show as one.
    for f in engine.findings() {
        eprintln!(
            "  finding: {} at {} ({} times)",
            f.id.id(),
            f.location,
            f.count
        );
    }
    eprintln!(
        "heap (whole process, chunk buffer included): {} KiB after 10% of the stream, {} KiB at the end",
        mem_at_10pct.unwrap_or(0) / 1024,
        mem_end / 1024
    );
    let per_lock = bytes_per_live_lock();
    println!(
        "analysis throughput: {:.0} events/s, {:.0} bytes per live lock",
        rate, per_lock
    );
}
