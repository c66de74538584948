//! Loading and attaching. Every hook ends in a `ProbeStatus` (attached, absent
//! from this kernel, or refused with the kernel's reason): the tracer goes on
//! with what it has and says what it cannot see.

use std::{collections::HashMap, path::Path};

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{kprobe::KProbeLinkId, FEntry, FExit, KProbe, RawTracePoint, UProbe},
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{func_slot, ArgKind, Config, FuncDesc, FuncSlot, KmemBuf, KMEM_LEN};

use tracer_core::kernel::{
    functions::Callback,
    hooks::{
        self as table, HookInfo, HookKind, ProbeState, ProbeStatus, CALLBACK_FLAGS,
        EXPORTER_CALLBACKS, FIRST_DYNAMIC_ID, FUNC_HOOKS, TRACEPOINTS,
    },
};

use super::{btf::KernelBtf, kallsyms::Kallsyms};

/// The compiled eBPF object, built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf.o"));

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Send every event (no in-kernel filtering of un-nested lock traffic).
    pub full_stream: bool,
    /// Stack on every function event.
    pub stack_all: bool,
    /// Every un-nested lock reads its call site (`Config::lone_sites_always`).
    pub lone_sites: bool,
    /// Attach programs that only return (tracer-ebpf/src/floor.rs) instead of
    /// the tracer's, on the same hooks through the same mechanisms: the cost
    /// floor of an overhead benchmark. Nothing is sent.
    pub floor: bool,
    /// Hook the ww_mutex functions with kprobes even where fentry/fexit works.
    pub lock_kprobes: bool,
    /// Which mechanism the function hooks use where both work.
    pub hooks: HookChoice,
    /// Check held locks against their owner word even on a kernel that does
    /// not preempt BPF programs (where no hook run is skipped).
    pub owner_check: bool,
    /// Run the kernel side's novelty filter (tracer-ebpf/src/novelty.rs).
    pub novelty: bool,
    /// With it, the call filter (tracer-ebpf/src/calls.rs); None: decided by the kernel's
    /// release (`CALL_FILTER_FROM`).
    pub call_filter: Option<bool>,
    /// Say nothing on stderr about the choices made (`tracer doctor` says them itself).
    pub quiet: bool,
}

/// Which mechanism the function hooks (the dma-buf API, resv lifetimes, the
/// ww_mutex functions) use where the kernel allows both. Callbacks are always
/// kprobes (docs/probes.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HookChoice {
    /// fentry/fexit, except on a kernel that preempts BPF programs
    /// (preempt=full, lazy or rt): kprobes there, which run with preemption
    /// off and so are not skipped for a preempted run.
    #[default]
    Auto,
    /// fentry/fexit wherever the kernel allows them (cheaper; on a
    /// preemptible kernel calls made while a program is preempted go unseen,
    /// counted and reported at exit).
    Fentry,
    /// kprobe/kretprobe for every function hook.
    Kprobes,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ring_bytes: 64 << 20,
            full_stream: false,
            stack_all: false,
            lone_sites: false,
            floor: false,
            lock_kprobes: false,
            hooks: HookChoice::Auto,
            owner_check: false,
            novelty: true,
            call_filter: None,
            quiet: false,
        }
    }
}

/// The links one hooked function holds.
struct HookLinks {
    /// The entry program (`fn_entry` or `fn_unlock`, or their floor twins) and its link.
    entry_program: String,
    entry: KProbeLinkId,
    /// The return program's link, if the function's return is hooked.
    ret: Option<KProbeLinkId>,
}

/// One program's run statistics, from the kernel's BPF stats (`--prog-stats`).
#[derive(Clone, Debug)]
pub struct ProgStat {
    pub name: String,
    pub runs: u64,
    pub run_time: std::time::Duration,
}

/// What the kernel allows for function hooks, probed once.
#[derive(Clone, Debug)]
struct Mechanisms {
    fentry: Result<(), String>,
    kprobe: Result<(), String>,
}

pub struct Tracer {
    ebpf: Ebpf,
    pub kallsyms: Kallsyms,
    pub btf: KernelBtf,
    pub config: Config,
    pub status: Vec<ProbeStatus>,
    pub hooks: Vec<HookInfo>,
    mech: Mechanisms,
    next_dynamic_id: u16,
    /// Functions already hooked (by address), to hook shared callbacks once.
    hooked_addrs: HashMap<u64, u16>,
    /// The kprobe links of each hooked function, by address: detached (their file
    /// descriptors closed) when the function's module is unloaded. Without that, a driver
    /// loaded and unloaded again and again ran the tracer out of descriptors (the lab's
    /// exporter-churn scenario: EMFILE after about 90 loads).
    links: HashMap<u64, HookLinks>,
    /// ops tables already examined, with the module that owned each when it was (None:
    /// the kernel image, or not known). Kept at examination time because at a module's
    /// unload the symbol index may already lack it: the index is re-read when an event is
    /// processed, and later unloads may have happened by then.
    seen_ops: HashMap<u64, Option<String>>,
    ops_layout: Vec<(String, u32)>,
    /// Kernel BTF for loading fentry/fexit programs (parsed once).
    aya_btf: Option<Btf>,
    /// Next free fentry/fexit slot program pair.
    next_slot: usize,
    /// See [`LoadOptions::floor`].
    floor: bool,
    lock_kprobes: bool,
    /// Every function hook on kprobe/kretprobe (`HookChoice`).
    func_kprobes: bool,
    /// What the ops tables examined since the last `module_loaded` held.
    tally: TableTally,
    /// Next free ww_mutex lock slot pair and unlock slot (lock_tracing.rs).
    next_lock_slot: usize,
    next_unlock_slot: usize,
    /// Each program load (the verifier's work): program, its target, how long it took.
    /// `--prog-stats` shows them: the start-up is mostly this.
    pub load_times: Vec<(String, String, std::time::Duration)>,
}

/// What the dma-buf ops tables of a module held, and what became of each
/// callback (`Tracer::module_loaded`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableTally {
    /// `struct dma_buf_ops` tables found.
    pub tables: usize,
    /// Their non-empty callback members that point at a function.
    pub callbacks: usize,
    /// Callbacks hooked now.
    pub hooked: usize,
    /// Callbacks whose function was hooked already (shared with another table).
    pub shared: usize,
    /// Callbacks that could not be hooked: `function: reason`.
    pub failed: Vec<String>,
    /// Tables found by name whose memory the kernel-memory reader could not
    /// read (their callbacks are unknown, so not hooked).
    pub unreadable: usize,
    /// Tables found by name whose mandatory callbacks (map_dma_buf, release) did not point at
    /// functions: `name (member pointer, ...)`. Not hooked.
    pub unresolved: Vec<String>,
    /// The module's symbols were not in /proc/kallsyms when its load was handled (so no
    /// table of it could be found by name).
    pub no_symbols: bool,
    /// Tables that did not resolve on a first read of /proc/kallsyms and were tried again.
    pub retried: usize,
}

impl TableTally {
    /// One line for the user: what was hooked of what was there.
    pub fn summary(&self) -> Option<String> {
        if self.no_symbols {
            return Some(
                "none of its symbols were in /proc/kallsyms when its load was handled (unloaded \
                 already?): its dma-buf ops tables, if any, are not hooked"
                    .to_string(),
            );
        }
        if !self.unresolved.is_empty() && self.callbacks == 0 {
            return Some(format!(
                "{} dma-buf ops table(s) found by name did not point at functions, so were not \
                 hooked: {}",
                self.unresolved.len(),
                self.unresolved.join("; ")
            ));
        }
        if self.unreadable > 0 && self.callbacks == 0 {
            return Some(format!(
                "{} dma-buf ops table(s) found by name could not be read: their callbacks \
                 are not hooked",
                self.unreadable
            ));
        }
        if self.callbacks == 0 {
            return None;
        }
        let mut s = format!(
            "{} of {} dma-buf callback(s) of {} ops table(s) hooked",
            self.hooked + self.shared,
            self.callbacks,
            self.tables
        );
        if self.shared > 0 {
            s.push_str(&format!(
                " ({} shared with tables hooked before)",
                self.shared
            ));
        }
        if self.retried > 0 {
            s.push_str(&format!(
                " (after {} re-read(s) of /proc/kallsyms: a read torn by a module's init)",
                self.retried
            ));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!(
                "; {} could not be hooked: {}",
                self.failed.len(),
                self.failed.join("; ")
            ));
        }
        if self.unreadable > 0 {
            s.push_str(&format!(
                "; {} more table(s) could not be read",
                self.unreadable
            ));
        }
        Some(s)
    }
}

/// Slots in tracer-ebpf/src/lock_tracing.rs.
const LOCK_SLOTS: usize = 4;
const UNLOCK_SLOTS: usize = 2;

/// The empty program (tracer-ebpf/src/floor.rs) of the same type as the
/// tracer's program `name`, on the same hook. Tracing programs are bound to
/// their target at load time, so each slot has its own empty twin.
pub fn floor_program(name: &str) -> String {
    match name {
        "fn_entry" | "fn_unlock" => "floor_kprobe".into(),
        "fn_return" => "floor_kretprobe".into(),
        n if n.starts_with("fentry_slot")
            || n.starts_with("fexit_slot")
            || n.starts_with("lock_fentry_slot")
            || n.starts_with("lock_fexit_slot")
            || n.starts_with("unlock_fentry_slot") =>
        {
            format!("floor_{n}")
        }
        // The raw tracepoint programs of tracepoints.rs.
        _ => "floor_raw_tp".into(),
    }
}

/// Number of fentry/fexit slot pairs in the eBPF object (tracer-ebpf/src/tracing.rs).
const TRACING_SLOTS: usize = 24;

/// Checks privileges before touching bpf(): one clear line instead of EPERM.
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    let has = |c: u64| cap_eff & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!("tracer needs root (or CAP_BPF + CAP_PERFMON) to load eBPF programs: run it with sudo")
}

/// Every hooked function holds two or three descriptors (links and perf events), and
/// drivers add dozens of callbacks: the usual soft limit of 1024 is raised to the hard
/// limit, as other BPF tools do. A failure leaves the limit as it was (EMFILE is then
/// reported per hook).
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Called by the tracer itself so that the `read_kmem` uprobe can copy kernel
/// memory into the `KMEM` map. Must stay a real, un-inlined symbol.
#[no_mangle]
#[inline(never)]
pub extern "C" fn tracer_read_kernel(addr: u64, len: u64) -> u64 {
    std::hint::black_box(addr) ^ std::hint::black_box(len)
}

fn kprobe_pmu_reason() -> Result<(), String> {
    if Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        Ok(())
    } else {
        Err("kprobes not in this kernel (no /sys/bus/event_source/devices/kprobe: CONFIG_KPROBES off)".into())
    }
}

/// A refusal by the kernel: its errno, read from the error chain's `io::Error` (the one
/// place kernel errors are classified: by number, never by message), and its text.
#[derive(Debug)]
struct KernelError {
    errno: Option<i32>,
    text: String,
}

impl KernelError {
    fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut errno = None;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(x) = cur {
            if let Some(io) = x.downcast_ref::<std::io::Error>() {
                errno = errno.or(io.raw_os_error());
            }
            cur = x.source();
        }
        Self {
            errno,
            text: errno_text(e),
        }
    }

    /// The hook point does not exist in this kernel.
    fn not_found(&self) -> bool {
        self.errno == Some(libc::ENOENT)
    }

    /// The kernel does not let BPF programs be loaded or attached this way.
    fn not_permitted(&self) -> bool {
        self.errno == Some(libc::EPERM)
    }
}

/// An error chain on one line; a verifier log is cut to its verdict (the
/// whole log is printed with RUST_LOG=debug).
fn errno_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    condense_verifier_log(&s)
}

fn condense_verifier_log(s: &str) -> String {
    let Some((head, log)) = s.split_once("Verifier output:") else {
        return s.replace('\n', " ");
    };
    log::debug!("verifier log: {log}");
    let verdict = log
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with(':')
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("processed ")
        })
        .unwrap_or("");
    format!("{}verifier: {verdict}", head.trim_end())
}

impl Tracer {
    /// Loads the object, configures it and probes which mechanisms work.
    /// Attaches nothing yet.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        check_privileges()?;
        raise_fd_limit();
        let btf = KernelBtf::load()?;
        let mut config = btf.config()?;
        config.self_tgid = std::process::id();
        config.full_stream = opts.full_stream as u32;
        config.stack_all = opts.stack_all as u32;
        config.lone_sites_always = opts.lone_sites as u32;
        let kallsyms = Kallsyms::load()?;
        config.ret_trampoline = table::RET_TRAMPOLINES
            .iter()
            .find_map(|n| kallsyms.get(n))
            .map_or(0, |s| s.addr);
        // The held-lock owner check (tracer-ebpf/src/held.rs) is needed where
        // a function hook's run can be skipped, i.e. on a kernel that preempts
        // BPF programs; elsewhere it is compiled out at load (a read-only
        // global the verifier folds), which keeps old verifiers fast (6.1
        // spent minutes per start on its branches).
        let preempt = preempt_mode();
        let preemptible = match &preempt {
            PreemptMode::Known(m) => preemptible_bpf(m),
            PreemptMode::Unknown(_) => true,
        };
        let owner_check = config.owner_check != 0 && (preemptible || opts.owner_check);
        let call_filter = call_filter_choice(opts);
        config.owner_check = owner_check as u32;
        let ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", opts.ring_bytes)
            .override_global("OWNER_CHECK", &config.owner_check, true)
            .override_global("NOVELTY", &(opts.novelty as u32), true)
            .override_global("CALLS", &(call_filter as u32), true)
            .load(EBPF_OBJECT)
            .map_err(|e| anyhow!("loading the eBPF object: {}", errno_text(&e)))?;
        let ops_layout = btf.members("dma_buf_ops").unwrap_or_default();
        let mut t = Self {
            ebpf,
            kallsyms,
            btf,
            config,
            status: Vec::new(),
            hooks: Vec::new(),
            mech: Mechanisms {
                fentry: Ok(()),
                kprobe: Ok(()),
            },
            next_dynamic_id: FIRST_DYNAMIC_ID,
            hooked_addrs: HashMap::new(),
            links: HashMap::new(),
            seen_ops: HashMap::new(),
            ops_layout,
            aya_btf: None,
            next_slot: 0,
            floor: opts.floor,
            lock_kprobes: opts.lock_kprobes,
            func_kprobes: opts.hooks == HookChoice::Kprobes,
            tally: TableTally::default(),
            next_lock_slot: 0,
            next_unlock_slot: 0,
            load_times: Vec::new(),
        };
        {
            let mut cfg: Array<_, Config> =
                Array::try_from(t.ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
            cfg.set(0, t.config, 0).context("writing the CONFIG map")?;
        }
        t.mech = Mechanisms {
            fentry: t.probe_fentry(),
            kprobe: kprobe_pmu_reason(),
        };
        t.choose_function_hooks(opts.hooks, preempt, opts.quiet);
        Ok(t)
    }

    /// `--hooks auto`: function hooks on kprobes where the kernel preempts BPF programs.
    fn choose_function_hooks(&mut self, hooks: HookChoice, preempt: PreemptMode, quiet: bool) {
        // fentry/fexit and (since 6.13) raw tracepoint programs run
        // preemptibly, and the kernel skips a program's run on a CPU where that
        // program is already running: on a kernel that preempts them, calls
        // made while a run is preempted go unseen, and an unseen unlock leaves
        // a lock looking held (false findings, seen on 7.3). kprobe programs
        // run with preemption off: every function hook goes there.
        if hooks == HookChoice::Auto && self.mech.kprobe.is_ok() {
            match preempt {
                PreemptMode::Known(m) if preemptible_bpf(&m) => {
                    self.func_kprobes = true;
                    if !self.floor && !quiet {
                        eprintln!(
                            "tracer: this kernel preempts BPF programs (preempt={m}): function \
                             hooks use kprobes, which run with preemption off (an fentry program \
                             skips the calls made while it is preempted on that CPU; --hooks \
                             fentry to use them anyway)"
                        );
                    }
                }
                PreemptMode::Known(_) => {}
                PreemptMode::Unknown(why) => {
                    self.func_kprobes = true;
                    if !self.floor && !quiet {
                        eprintln!(
                            "tracer: cannot tell whether this kernel preempts BPF programs \
                             ({why}): function hooks use kprobes to be safe (mount debugfs, or \
                             pass --hooks fentry on a kernel booted with preempt=none or \
                             voluntary)"
                        );
                    }
                }
            }
        }
    }

    /// The object's program `name` as its type (`KProbe`, `RawTracePoint`...).
    fn program_as<'a, T>(&'a mut self, name: &str) -> Result<&'a mut T, String>
    where
        &'a mut aya::programs::Program: TryInto<&'a mut T, Error = aya::programs::ProgramError>,
    {
        self.ebpf
            .program_mut(name)
            .ok_or("program missing from the object")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| errno_text(&e))
    }

    /// The program to attach where a normal run attaches `name`: itself, or
    /// in floor mode the empty program of the same type ([`floor_program`]).
    fn program_for(&self, name: &str) -> String {
        if self.floor {
            floor_program(name)
        } else {
            name.to_string()
        }
    }

    /// Runs and run time of every loaded program that ran, busiest first. The
    /// kernel counts only while BPF stats are enabled (`aya::sys::enable_stats`).
    pub fn program_stats(&self) -> Vec<ProgStat> {
        let mut v: Vec<ProgStat> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                (info.run_count() > 0).then(|| ProgStat {
                    name: name.to_string(),
                    runs: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.run_time));
        v
    }

    /// Instructions the verifier processed to load `program` (bpf_prog_info.verified_insns,
    /// Linux 5.16+): what a program's load time is made of. None where the kernel does
    /// not say or the program is not loaded.
    pub fn verified_insns(&self, program: &str) -> Option<u32> {
        self.ebpf
            .program(program)?
            .info()
            .ok()?
            .verified_instruction_count()
    }

    /// Runs the kernel skipped, per program (bpf_prog_info.recursion_misses):
    /// a tracing program is not run on a CPU where it is already running. On
    /// a kernel that preempts BPF programs (preempt=full or lazy) that is
    /// another task calling the same hooked function while the first one's
    /// run is preempted: a call the tracer does not see.
    pub fn skipped_runs(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let fd = p.fd().ok()?;
                let misses = recursion_misses(fd.as_fd().as_raw_fd())?;
                (misses > 0).then(|| (name.to_string(), misses))
            })
            .collect();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        v
    }

    /// Whether this tracer attaches the empty floor programs.
    pub fn is_floor(&self) -> bool {
        self.floor
    }

    fn probe_fentry(&mut self) -> Result<(), String> {
        let btf = Btf::from_sys_fs().map_err(|e| errno_text(&e))?;
        let res = self.load_fentry_capability(&btf);
        if res.is_ok() {
            self.aya_btf = Some(btf);
        }
        res
    }

    fn load_fentry_capability(&mut self, btf: &Btf) -> Result<(), String> {
        let prog: &mut FEntry = self
            .ebpf
            .program_mut("fentry_capability")
            .ok_or("fentry_capability program missing")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| errno_text(&e))?;
        match prog.load("ww_mutex_unlock", btf) {
            Ok(()) => Ok(()),
            Err(e) => {
                let k = KernelError::of(&e);
                if k.not_permitted() {
                    Err("fentry refused (EPERM at load, before the verifier)".into())
                } else {
                    Err(format!("fentry/fexit not usable: {}", k.text))
                }
            }
        }
    }

    /// Describes the mechanisms for `tracer probes`' header.
    /// Whether function hooks can attach at all: (fentry/fexit, kprobes), each Ok or the
    /// kernel's reason.
    pub fn mechanisms(&self) -> (&Result<(), String>, &Result<(), String>) {
        (&self.mech.fentry, &self.mech.kprobe)
    }

    pub fn mechanism_summary(&self) -> Vec<String> {
        let line = |name: &str, r: &Result<(), String>| match r {
            Ok(()) => format!("{name}: available"),
            Err(e) => format!("{name}: unavailable — {e}"),
        };
        vec![
            line("fentry/fexit", &self.mech.fentry),
            line("kprobe/kretprobe", &self.mech.kprobe),
        ]
    }

    /// Attaches every static hook and tracepoint, then the callbacks of the
    /// exporters visible in kallsyms. Failures become status rows.
    pub fn attach_all(&mut self) -> Result<()> {
        self.attach_tracepoints();
        for h in FUNC_HOOKS {
            self.attach_static(h);
        }
        self.attach_kmem_reader();
        self.discover_exporters();
        self.arm()
    }

    /// Lets the programs send events: only once every hook is live, so that
    /// no lock is seen taken whose release could not be seen yet.
    fn arm(&mut self) -> Result<()> {
        self.config.armed = 1;
        let mut cfg: Array<_, Config> =
            Array::try_from(self.ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
        cfg.set(0, self.config, 0)
            .context("writing the CONFIG map (arming the programs)")
    }

    fn attach_tracepoints(&mut self) {
        for tp in TRACEPOINTS {
            let program = match tp.older {
                Some((older, n)) if self.btf.tracepoint_arg_count(tp.tracepoint) == Some(n) => {
                    older
                }
                _ => tp.program,
            };
            let res = (|| -> Result<(), KernelError> {
                let program = self.program_for(program);
                let prog: &mut RawTracePoint = self
                    .program_as(&program)
                    .map_err(|text| KernelError { errno: None, text })?;
                // The floor's one program serves every tracepoint.
                let mut took = None;
                if prog.fd().is_err() {
                    let t0 = std::time::Instant::now();
                    prog.load().map_err(|e| KernelError::of(&e))?;
                    took = Some(t0.elapsed());
                }
                prog.attach(tp.tracepoint)
                    .map_err(|e| KernelError::of(&e))?;
                if let Some(d) = took {
                    self.load_times
                        .push((program.clone(), tp.tracepoint.to_string(), d));
                }
                Ok(())
            })();
            let (state, reason) = match res {
                Ok(()) => (ProbeState::Attached, String::new()),
                Err(e) if e.not_found() => (
                    ProbeState::Absent,
                    format!("tracepoint not in this kernel ({})", e.text),
                ),
                Err(e) => (ProbeState::Failed, e.text),
            };
            self.status.push(ProbeStatus {
                hook: format!("{}:{}", tp.category, tp.tracepoint),
                family: "tracepoint".into(),
                mechanism: "raw_tp".into(),
                state,
                reason,
            });
        }
    }

    fn ensure_kprobes_loaded(&mut self) -> Result<(), String> {
        for name in ["fn_entry", "fn_unlock", "fn_return"] {
            let name = self.program_for(name);
            let prog: &mut KProbe = self.program_as(&name)?;
            if prog.fd().is_err() {
                let t0 = std::time::Instant::now();
                prog.load().map_err(|e| errno_text(&e))?;
                self.load_times
                    .push((name.clone(), "(every kprobe)".into(), t0.elapsed()));
            }
        }
        Ok(())
    }

    /// Installs the descriptor (at the address and past a 4-byte ENDBR, where
    /// kprobes land on IBT kernels) and attaches entry and return probes.
    fn hook_function(&mut self, func: &str, addr: u64, desc: FuncDesc) -> Result<String, String> {
        let entry = if desc.flags & tracer_common::func_flags::UNLOCKS != 0 {
            "fn_unlock"
        } else {
            "fn_entry"
        };
        if let Err(e) = &self.mech.kprobe {
            let fentry = match &self.mech.fentry {
                Ok(()) => "fentry available but function hooks use kprobes".to_string(),
                Err(f) => f.clone(),
            };
            return Err(format!("{fentry}; {e}"));
        }
        self.ensure_kprobes_loaded()?;
        self.install_desc(addr, desc)?;
        // The kretprobe goes first: the kernel runs the probes of one address
        // newest first, and a kretprobe's entry handler overwrites the return
        // address the entry program reads as the call site (the programs
        // also refuse the trampoline's address, `Config::ret_trampoline`).
        let mut ret_link = None;
        if desc.flags & tracer_common::func_flags::EMIT_RETURN != 0 {
            let name = self.program_for("fn_return");
            let ret: &mut KProbe = self.program_as(&name)?;
            ret_link = Some(ret.attach(func, 0).map_err(|e| errno_text(&e))?);
        }
        let name = self.program_for(entry);
        let entry: &mut KProbe = self.program_as(&name)?;
        let entry_link = match entry.attach(func, 0) {
            Ok(l) => l,
            Err(e) => {
                // A return probe without its entry would pop frames it never pushed.
                if let Some(link) = ret_link {
                    let name = self.program_for("fn_return");
                    if let Ok(ret) = self.program_as::<KProbe>(&name) {
                        let _ = ret.detach(link);
                    }
                }
                return Err(errno_text(&e));
            }
        };
        let mech = if ret_link.is_some() {
            "kprobe+kretprobe"
        } else {
            "kprobe"
        };
        self.hooked_addrs.insert(addr, desc.hook);
        self.links.insert(
            addr,
            HookLinks {
                entry_program: name,
                entry: entry_link,
                ret: ret_link,
            },
        );
        Ok(mech.to_string())
    }

    /// Describes the function at `addr` to the programs. Also at `addr + 4`:
    /// on IBT kernels a kprobe lands after the 4-byte ENDBR instruction.
    fn install_desc(&mut self, addr: u64, desc: FuncDesc) -> Result<(), String> {
        {
            let mut funcs: BpfHashMap<_, u64, FuncDesc> =
                BpfHashMap::try_from(self.ebpf.map_mut("FUNCS").ok_or("FUNCS map missing")?)
                    .map_err(|e| errno_text(&e))?;
            for a in [addr, addr + 4] {
                funcs.insert(a, desc, 0).map_err(|e| errno_text(&e))?;
            }
        }
        // The direct-mapped copy: first come, first served; a function whose
        // slot is taken is found in FUNCS.
        let mut slots: Array<_, FuncSlot> = Array::try_from(
            self.ebpf
                .map_mut("FUNC_SLOTS")
                .ok_or("FUNC_SLOTS map missing")?,
        )
        .map_err(|e| errno_text(&e))?;
        for a in [addr, addr + 4] {
            let i = func_slot(a);
            let cur = slots.get(&i, 0).map_err(|e| errno_text(&e))?;
            if cur.ip == 0 || cur.ip == a {
                slots
                    .set(
                        i,
                        FuncSlot {
                            ip: a,
                            desc,
                            ..Default::default()
                        },
                        0,
                    )
                    .map_err(|e| errno_text(&e))?;
            }
        }
        Ok(())
    }

    /// Attaches a free fentry (and, if returns matter, fexit) slot program to `func`.
    fn hook_tracing(&mut self, func: &str, addr: u64, desc: FuncDesc) -> Result<String, String> {
        if let Err(e) = &self.mech.fentry {
            return Err(e.clone());
        }
        if self.next_slot >= TRACING_SLOTS {
            return Err("all fentry slots in use".into());
        }
        // A slot that failed half-way (loaded, not attached) cannot be reused.
        let slot = self.next_slot;
        self.next_slot += 1;
        self.install_desc(addr, desc)?;
        let entry_name = self.program_for(&format!("fentry_slot{slot}"));
        let exit_name = self.program_for(&format!("fexit_slot{slot}"));
        let exit_name =
            (desc.flags & tracer_common::func_flags::EMIT_RETURN != 0).then_some(exit_name);
        let mech = self.attach_tracing_pair(func, &entry_name, exit_name.as_deref())?;
        self.hooked_addrs.insert(addr, desc.hook);
        Ok(mech)
    }

    /// Loads `entry` (fentry) and, if given, `exit` (fexit) against `func` and
    /// attaches them. If the exit fails the entry is detached again: the
    /// caller then falls back to kprobes, and an entry left behind would send
    /// every entry twice.
    fn attach_tracing_pair(
        &mut self,
        func: &str,
        entry: &str,
        exit: Option<&str>,
    ) -> Result<String, String> {
        let btf = self.aya_btf.as_ref().ok_or("no kernel BTF")?;
        let p: &mut FEntry = self
            .ebpf
            .program_mut(entry)
            .ok_or_else(|| format!("{entry} missing from the object"))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| errno_text(&e))?;
        let t0 = std::time::Instant::now();
        p.load(func, btf).map_err(|e| errno_text(&e))?;
        let took = t0.elapsed();
        let link = p.attach().map_err(|e| errno_text(&e))?;
        self.load_times
            .push((entry.to_string(), func.to_string(), took));
        let Some(exit) = exit else {
            return Ok("fentry".into());
        };
        let res = (|| -> Result<(), String> {
            let btf = self.aya_btf.as_ref().ok_or("no kernel BTF")?;
            let p: &mut FExit = self
                .ebpf
                .program_mut(exit)
                .ok_or_else(|| format!("{exit} missing from the object"))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| errno_text(&e))?;
            let t0 = std::time::Instant::now();
            p.load(func, btf).map_err(|e| errno_text(&e))?;
            let took = t0.elapsed();
            p.attach().map_err(|e| errno_text(&e))?;
            self.load_times
                .push((exit.to_string(), func.to_string(), took));
            Ok(())
        })();
        match res {
            Ok(()) => Ok("fentry+fexit".into()),
            Err(e) => {
                if let Some(p) = self.ebpf.program_mut(entry) {
                    if let Ok(p) = <&mut FEntry>::try_from(p) {
                        let _ = p.detach(link);
                    }
                }
                Err(format!("fexit: {e}"))
            }
        }
    }

    /// Attaches a ww_mutex lock (entry + exit) or unlock (entry) function to
    /// its own fentry/fexit slot programs (tracer-ebpf/src/lock_tracing.rs).
    fn hook_lock_tracing(
        &mut self,
        func: &str,
        addr: u64,
        desc: FuncDesc,
    ) -> Result<String, String> {
        if let Err(e) = &self.mech.fentry {
            return Err(e.clone());
        }
        let unlock = desc.flags & tracer_common::func_flags::UNLOCKS != 0;
        let (entry, exit) = if unlock {
            if self.next_unlock_slot >= UNLOCK_SLOTS {
                return Err("all unlock fentry slots in use".into());
            }
            self.next_unlock_slot += 1;
            (
                format!("unlock_fentry_slot{}", self.next_unlock_slot - 1),
                None,
            )
        } else {
            if self.next_lock_slot >= LOCK_SLOTS {
                return Err("all lock fentry slots in use".into());
            }
            self.next_lock_slot += 1;
            let n = self.next_lock_slot - 1;
            (
                format!("lock_fentry_slot{n}"),
                Some(format!("lock_fexit_slot{n}")),
            )
        };
        self.install_desc(addr, desc)?;
        let entry = self.program_for(&entry);
        let exit = exit.map(|e| self.program_for(&e));
        let mech = self.attach_tracing_pair(func, &entry, exit.as_deref())?;
        self.hooked_addrs.insert(addr, desc.hook);
        Ok(mech)
    }

    /// The fentry/fexit attempt's result, or kprobe/kretprobe if it failed
    /// (the mechanism or the error then says why fentry did not serve).
    fn or_kprobes(
        &mut self,
        fentry: Result<String, String>,
        func: &str,
        addr: u64,
        desc: FuncDesc,
    ) -> Result<String, String> {
        let fentry_err = match fentry {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        self.hook_function(func, addr, desc)
            .map(|m| format!("{m} (fentry: {fentry_err})"))
            .map_err(|e| {
                if e.contains("fentry") {
                    e
                } else {
                    format!("fentry: {fentry_err}; {e}")
                }
            })
    }

    fn attach_static(&mut self, h: &table::FuncHook) {
        let Some(sym) = self.kallsyms.get(h.func).filter(|s| s.is_text()).cloned() else {
            self.status.push(ProbeStatus {
                hook: h.func.into(),
                family: "function".into(),
                mechanism: "-".into(),
                state: ProbeState::Absent,
                reason: format!("not in this kernel's kallsyms (exists: {})", h.exists),
            });
            return;
        };
        let desc = FuncDesc {
            hook: h.id,
            arg_kind: h.arg as u8,
            flags: h.flags,
            _pad: 0,
        };
        // fentry/fexit first where it can serve, kprobe/kretprobe as the fallback
        // (and for the ww_mutex functions with --lock-kprobes).
        let res = match h.kind {
            _ if self.func_kprobes => self.hook_function(h.func, sym.addr, desc),
            HookKind::Lock(_) | HookKind::Unlock if self.lock_kprobes => {
                self.hook_function(h.func, sym.addr, desc)
            }
            HookKind::Lock(_) | HookKind::Unlock => {
                let first = self.hook_lock_tracing(h.func, sym.addr, desc);
                self.or_kprobes(first, h.func, sym.addr, desc)
            }
            _ => {
                let first = self.hook_tracing(h.func, sym.addr, desc);
                self.or_kprobes(first, h.func, sym.addr, desc)
            }
        };
        self.push_func_status(h.func, "function", res);
        self.hooks.push(HookInfo {
            id: h.id,
            kind: h.kind,
            symbol: h.func.into(),
            module: sym.module,
            addr: sym.addr,
        });
    }

    fn push_func_status(&mut self, hook: &str, family: &str, res: Result<String, String>) {
        let (mechanism, state, reason) = match res {
            Ok(m) => (m, ProbeState::Attached, String::new()),
            Err(e) => ("-".into(), ProbeState::Failed, e),
        };
        self.status.push(ProbeStatus {
            hook: hook.into(),
            family: family.into(),
            mechanism,
            state,
            reason,
        });
    }

    fn attach_kmem_reader(&mut self) {
        let res = (|| -> Result<(), String> {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let prog: &mut UProbe = self
                .ebpf
                .program_mut("read_kmem")
                .ok_or("read_kmem missing")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| errno_text(&e))?;
            prog.load().map_err(|e| errno_text(&e))?;
            prog.attach(
                "tracer_read_kernel",
                &exe,
                aya::programs::uprobe::UProbeScope::CallingProcess,
            )
            .map_err(|e| errno_text(&e))?;
            Ok(())
        })();
        self.push_func_status(
            "tracer_read_kernel (ops table reader)",
            "uprobe",
            res.map(|_| "uprobe".into()),
        );
    }

    /// Reads kernel memory through the `read_kmem` uprobe.
    pub fn read_kernel(&mut self, addr: u64) -> Option<[u8; KMEM_LEN]> {
        tracer_read_kernel(addr, KMEM_LEN as u64);
        let m: Array<_, KmemBuf> = Array::try_from(self.ebpf.map("KMEM")?).ok()?;
        let b = m.get(&0, 0).ok()?;
        (b.addr == addr && b.status == 1).then_some(b.data)
    }

    /// Exporters known by their `*_dmabuf_ops`-like data symbols.
    fn discover_exporters(&mut self) {
        self.hook_tables_of(None);
    }

    /// Data symbols (name, address) of `module` (None: every one) that `named` accepts.
    fn data_symbols(&self, module: Option<&str>, named: fn(&str) -> bool) -> Vec<(String, u64)> {
        self.kallsyms
            .iter()
            .filter(|s| s.is_data() && named(&s.name))
            .filter(|s| module.is_none() || s.module.as_deref() == module)
            .map(|s| (s.name.clone(), s.addr))
            .collect()
    }

    /// Hooks the exporters' and importers' ops tables found by name, of
    /// `module` or of the whole kernel. Returns the number of callbacks hooked.
    fn hook_tables_of(&mut self, module: Option<&str>) -> usize {
        let mut added = 0;
        for (name, addr) in self.data_symbols(module, table::looks_like_dma_buf_ops) {
            added += self.hook_ops_table(addr, Some(&name));
        }
        for (name, addr) in self.data_symbols(module, table::looks_like_dma_buf_attach_ops) {
            added += self.hook_attach_ops_table(addr, &name) as usize;
        }
        added
    }

    /// A module was loaded after the start: re-reads kallsyms and hooks the
    /// module's dma-buf ops tables (exporters' and importers'). Returns the
    /// number of callbacks hooked (the new `hooks` entries are at the end).
    pub fn module_loaded(&mut self, module: &str) -> Result<TableTally> {
        self.kallsyms =
            Kallsyms::load().context("re-reading /proc/kallsyms after a module load")?;
        // A module just loaded has fresh tables: an address of one already marked seen is
        // left from a module whose unload was not seen (a lost event), never this one's.
        for named in [
            table::looks_like_dma_buf_ops,
            table::looks_like_dma_buf_attach_ops,
        ] {
            for (_, addr) in self.data_symbols(Some(module), named) {
                self.seen_ops.remove(&addr);
            }
        }
        self.tally = TableTally {
            no_symbols: !self
                .kallsyms
                .iter()
                .any(|s| s.module.as_deref() == Some(module)),
            ..Default::default()
        };
        self.hook_tables_of(Some(module));
        // /proc/kallsyms is read in chunks by position. When a module's init ends during the
        // read, its symbol list shrinks to the core symbols and later positions shift: the
        // read can miss functions (seen on 7.3: amdgpu's table read right, its map_dma_buf
        // and release "not functions"). A table found by name that did not resolve is
        // retried on a fresh read (the init has usually ended by then).
        for _ in 0..3 {
            if self.tally.unresolved.is_empty() {
                break;
            }
            self.kallsyms =
                Kallsyms::load().context("re-reading /proc/kallsyms after a module load")?;
            let earlier = std::mem::take(&mut self.tally.unresolved);
            self.tally.retried += earlier.len();
            self.hook_tables_of(Some(module));
        }
        Ok(std::mem::take(&mut self.tally))
    }

    /// A module was freed: its functions are gone (the kernel removed their
    /// kprobes), and its addresses may be reused by the next module. Forgets
    /// its hooks, their descriptors and its ops tables, and re-reads
    /// kallsyms. Returns the number of hooks forgotten.
    pub fn module_freed(&mut self, module: &str) -> Result<usize> {
        // Hooks of this module still in place (an earlier load's are gone already).
        let mut gone: Vec<u64> = self
            .hooks
            .iter()
            .filter(|h| {
                h.module.as_deref() == Some(module) && self.hooked_addrs.contains_key(&h.addr)
            })
            .map(|h| h.addr)
            .collect();
        gone.sort_unstable();
        gone.dedup();
        for &addr in &gone {
            self.hooked_addrs.remove(&addr);
            self.remove_desc(addr);
            self.detach_links(addr);
        }
        self.seen_ops
            .retain(|_, owner| owner.as_deref() != Some(module));
        self.kallsyms =
            Kallsyms::load().context("re-reading /proc/kallsyms after a module unload")?;
        Ok(gone.len())
    }

    /// Detaches the kprobes of the function at `addr` (gone with its module: the kernel
    /// disarmed them already), closing their descriptors.
    fn detach_links(&mut self, addr: u64) {
        let Some(l) = self.links.remove(&addr) else {
            return;
        };
        if let Some(ret) = l.ret {
            let name = self.program_for("fn_return");
            if let Ok(p) = self.program_as::<KProbe>(&name) {
                let _ = p.detach(ret);
            }
        }
        if let Ok(p) = self.program_as::<KProbe>(&l.entry_program) {
            let _ = p.detach(l.entry);
        }
    }

    /// The module whose symbol starts at `addr`, from the current symbol index.
    fn owner_module(&self, addr: u64) -> Option<String> {
        self.kallsyms
            .lookup(addr)
            .filter(|s| s.addr == addr)
            .and_then(|s| s.module.clone())
    }

    /// Removes the descriptor of the function at `addr` (and past its ENDBR).
    fn remove_desc(&mut self, addr: u64) {
        if let Some(m) = self.ebpf.map_mut("FUNCS") {
            if let Ok(mut funcs) = BpfHashMap::<_, u64, FuncDesc>::try_from(m) {
                for a in [addr, addr + 4] {
                    let _ = funcs.remove(&a);
                }
            }
        }
        if let Some(m) = self.ebpf.map_mut("FUNC_SLOTS") {
            if let Ok(mut slots) = Array::<_, FuncSlot>::try_from(m) {
                for a in [addr, addr + 4] {
                    let i = func_slot(a);
                    if slots.get(&i, 0).is_ok_and(|cur| cur.ip == a) {
                        let _ = slots.set(i, FuncSlot::default(), 0);
                    }
                }
            }
        }
    }

    /// Hooks the notifier of one importer's `struct dma_buf_attach_ops`
    /// (`move_notify`, `invalidate_mappings` from 7.1): the exporter calls it
    /// with the reservation lock held. Returns whether a hook was added. A
    /// table whose notifier does not point at a function is left alone.
    pub fn hook_attach_ops_table(&mut self, ops: u64, name: &str) -> bool {
        if ops == 0 || self.seen_ops.contains_key(&ops) {
            return false;
        }
        self.seen_ops.insert(ops, self.owner_module(ops));
        let Some(member_off) = table::ATTACH_OPS_NOTIFY_MEMBERS
            .iter()
            .find_map(|m| self.btf.member_offset("dma_buf_attach_ops", m).ok())
        else {
            return false;
        };
        let Some(bytes) = self.read_kernel(ops) else {
            return false;
        };
        let off = member_off as usize;
        let Some(ptr) = bytes
            .get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            return false;
        };
        let Some(sym) = self.kallsyms.function_at(ptr).cloned() else {
            return false;
        };
        if ptr == 0 || sym.addr != ptr || self.hooked_addrs.contains_key(&sym.addr) {
            return false;
        }
        self.hook_callback(Callback::MoveNotify, ArgKind::Attachment, &sym, name)
    }

    /// Hooks the callbacks of one `struct dma_buf_ops` (seen at start-up or in
    /// an event). Returns the number of new hooks. A table whose pointers do
    /// not resolve to functions is not an ops table and is left alone.
    pub fn hook_ops_table(&mut self, ops: u64, name: Option<&str>) -> usize {
        if ops == 0 || self.seen_ops.contains_key(&ops) {
            return 0;
        }
        self.seen_ops.insert(ops, self.owner_module(ops));
        let Some(bytes) = self.read_kernel(ops) else {
            self.tally.unreadable += 1;
            // Not examined after all: a later sighting may read it.
            self.seen_ops.remove(&ops);
            return 0;
        };
        let layout = self.ops_layout.clone();
        let slot = |member: &str| -> Option<u64> {
            let off = layout.iter().find(|(n, _)| n == member)?.1 as usize;
            let b = bytes.get(off..off + 8)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        };
        // map_dma_buf and release are mandatory (dma_buf_export WARNs otherwise).
        let valid = |m: &str| {
            slot(m)
                .and_then(|p| {
                    self.kallsyms
                        .function_at(p)
                        .or_else(|| self.kallsyms.function_at(p.wrapping_sub(4)))
                })
                .is_some()
        };
        if !(valid("map_dma_buf") && valid("release")) {
            if let Some(name) = name {
                // Found by name, so meant to be a table: say what it held.
                let ptr = |m: &str| slot(m).map_or("?".to_string(), |p| format!("{p:#x}"));
                self.tally.unresolved.push(format!(
                    "{name} at {ops:#x} (map_dma_buf {}, release {})",
                    ptr("map_dma_buf"),
                    ptr("release")
                ));
                self.seen_ops.remove(&ops);
            }
            return 0;
        }
        let table_name = name
            .map(str::to_string)
            .or_else(|| {
                self.kallsyms
                    .lookup(ops)
                    .filter(|s| s.addr == ops)
                    .map(|s| s.name.clone())
            })
            .unwrap_or_else(|| format!("{ops:#x}"));
        self.tally.tables += 1;
        self.hook_table_callbacks(slot, &table_name)
    }

    /// Hooks the callbacks of one exporter table (`slot`: a member's function pointer);
    /// returns how many were hooked.
    fn hook_table_callbacks(
        &mut self,
        slot: impl Fn(&str) -> Option<u64>,
        table_name: &str,
    ) -> usize {
        let mut added = 0;
        for &(cb, arg) in EXPORTER_CALLBACKS {
            let Some(ptr) = slot(cb.member()) else {
                continue;
            };
            if ptr == 0 {
                continue;
            }
            let Some(sym) = self.kallsyms.function_at(ptr).cloned() else {
                continue;
            };
            self.tally.callbacks += 1;
            if self.hooked_addrs.contains_key(&sym.addr) {
                // One function serving several tables (drm's PRIME helpers).
                self.tally.shared += 1;
                continue;
            }
            if self.hook_callback(cb, arg, &sym, table_name) {
                added += 1;
                self.tally.hooked += 1;
            } else {
                let why = self
                    .status
                    .last()
                    .map(|s| s.reason.clone())
                    .unwrap_or_default();
                self.tally.failed.push(format!("{}: {why}", sym.name));
            }
        }
        added
    }

    fn hook_callback(
        &mut self,
        cb: Callback,
        arg: ArgKind,
        sym: &super::kallsyms::Sym,
        table_name: &str,
    ) -> bool {
        // Ids are never reused: recordings decode every event with the hook table of the
        // whole run, so one id must keep one meaning. The last id refuses, and says so.
        let id = self.next_dynamic_id;
        if id == u16::MAX {
            self.tally.failed.push(format!(
                "{}: no hook id left ({} callbacks hooked since the start; restart the tracer)",
                sym.name,
                u16::MAX - FIRST_DYNAMIC_ID
            ));
            return false;
        }
        self.next_dynamic_id += 1;
        let desc = FuncDesc {
            hook: id,
            arg_kind: arg as u8,
            flags: CALLBACK_FLAGS,
            _pad: 0,
        };
        let res = self.hook_function(&sym.name, sym.addr, desc);
        let ok = res.is_ok();
        // The importer notifier's member was renamed in 7.1: name the one this kernel has.
        let member = if cb == Callback::MoveNotify {
            table::ATTACH_OPS_NOTIFY_MEMBERS
                .iter()
                .copied()
                .find(|m| self.btf.member_offset("dma_buf_attach_ops", m).is_ok())
                .unwrap_or(cb.member())
        } else {
            cb.member()
        };
        let label = format!(
            "{}.{} = {}{}",
            table_name,
            member,
            sym.name,
            sym.module
                .as_ref()
                .map(|m| format!(" [{m}]"))
                .unwrap_or_default()
        );
        self.push_func_status(&label, "callback", res);
        self.hooks.push(HookInfo {
            id,
            kind: HookKind::Callback(cb),
            symbol: sym.name.clone(),
            module: sym.module.clone(),
            addr: sym.addr,
        });
        ok
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let m = self.ebpf.take_map("EVENTS").context("EVENTS map")?;
        Ok(RingBuf::try_from(m)?)
    }

    pub fn take_stacks(&mut self) -> Result<StackTraceMap<MapData>> {
        let m = self.ebpf.take_map("STACKS").context("STACKS map")?;
        Ok(StackTraceMap::try_from(m)?)
    }

    /// Events lost in the kernel (ring buffer full), per CPU.
    pub fn lost_per_cpu(&self) -> Vec<u64> {
        self.lost_counter(0)
    }

    /// Hooked calls made by threads that got no kernel-side state (live
    /// threads held all four of their candidate slots): not tracked, not sent.
    pub fn stateless_calls(&self) -> u64 {
        self.lost_counter(1).iter().sum()
    }

    /// Kretprobe returns the kernel never ran (no free kretprobe instance:
    /// more threads inside hooked functions at once than the kernel allows
    /// for; or the return program skipped): their frames were dropped when a
    /// later return of the thread found its own entry below them.
    pub fn lost_returns(&self) -> u64 {
        self.lost_counter(2).iter().sum()
    }

    /// The kernel's novelty filter (tracer-ebpf/src/novelty.rs): nested acquisitions kept and
    /// released unsent, chain keys recorded as seen, and repeats sent anyway because the
    /// thread's kept entries were full.
    pub fn novelty_counts(&self) -> NoveltyCounts {
        let sum = |i| self.lost_counter(i).iter().sum();
        NoveltyCounts {
            summarised: sum(3),
            chains_seen: sum(4),
            kept_full: sum(5),
            already_dropped: sum(6),
            calls_dropped: sum(7),
            call_keys: sum(8),
        }
    }

    /// The kernel's call filter (tracer-ebpf/src/calls.rs): per hook id of a dma-buf call or
    /// callback hooked, the calls it left unsent since the programs were loaded (summed over
    /// CPUs; those with none are left out). An unreadable entry is an error, not a 0.
    pub fn summarised_calls(&self) -> Result<Vec<(u16, u64)>> {
        if self.floor {
            return Ok(vec![]);
        }
        let m = self
            .ebpf
            .map("CALLS_SUMMARISED")
            .context("CALLS_SUMMARISED map")?;
        let a = PerCpuArray::<_, u64>::try_from(m).context("CALLS_SUMMARISED map")?;
        let mut out = Vec::new();
        for h in &self.hooks {
            if !matches!(h.kind, HookKind::DmaBuf(_) | HookKind::Callback(_))
                || u32::from(h.id) >= tracer_common::SUMMARISED_HOOKS
            {
                continue;
            }
            let v = a
                .get(&u32::from(h.id), 0)
                .with_context(|| format!("reading CALLS_SUMMARISED[{}]", h.id))?;
            let n: u64 = v.iter().sum();
            if n > 0 {
                out.push((h.id, n));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// One index of the `LOST` per-CPU counters (tracer-ebpf/src/emit.rs).
    fn lost_counter(&self, index: u32) -> Vec<u64> {
        let Some(m) = self.ebpf.map("LOST") else {
            return vec![];
        };
        let Ok(a) = PerCpuArray::<_, u64>::try_from(m) else {
            return vec![];
        };
        a.get(&index, 0)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Fill of the per-thread slots (`THREADS`). Reads the whole array: for occasional stats
    /// only.
    pub fn thread_slots(&self) -> Result<SlotFill> {
        let m = self.ebpf.map("THREADS").context("THREADS map")?;
        let a = Array::<_, tracer_common::TaskFrames>::try_from(m)?;
        let mut fill = SlotFill::default();
        for i in 0..tracer_common::THREAD_SLOTS {
            let owner = a.get(&i, 0).context("reading THREADS")?.owner;
            if owner & (1 << 63) != 0 {
                fill.exited += 1;
            } else if owner != 0 {
                fill.live += 1;
                // The owner is a pid_tgid; /proc/<tid> exists for every live thread (listed
                // or not). One that is gone left state behind that no exit marked.
                let tid = owner as u32;
                match std::fs::read(format!("/proc/{tid}/cmdline")) {
                    Err(_) => fill.gone += 1,
                    // A kernel thread's is empty (a kworker that ran a dma-buf release).
                    Ok(c) if c.is_empty() => fill.kernel += 1,
                    Ok(_) => {}
                }
            }
        }
        Ok(fill)
    }

    /// Entries of the call-site cache (`SITES`, an LRU map of 8192).
    pub fn site_entries(&self) -> Result<usize> {
        let m = self.ebpf.map("SITES").context("SITES map")?;
        let h = BpfHashMap::<_, [u64; 3], i64>::try_from(m)?;
        Ok(h.keys().filter(|k| k.is_ok()).count())
    }

    pub fn attached_count(&self) -> usize {
        self.status
            .iter()
            .filter(|s| s.state == ProbeState::Attached)
            .count()
    }
}

/// The first kernel whose verifier takes the call filter (tracer-ebpf/src/calls.rs) in
/// its stride. 6.1's took each dma-buf fentry program from about 5.5 s to 9 s under the
/// lab's emulation (docs/results.md, "The call filter on the matrix"); 6.12's about 0.6-0.9 s
/// either way.
const CALL_FILTER_FROM: (u32, u32) = (6, 2);

/// Whether the call filter runs: as asked, or (`--call-filter auto`) by the kernel's release,
/// said at start when that turns it off.
fn call_filter_choice(opts: &LoadOptions) -> bool {
    if !opts.novelty {
        return false;
    }
    if let Some(on) = opts.call_filter {
        return on;
    }
    let release = super::kernel_release();
    let on = call_filter_by_default(&release);
    if !on && !opts.quiet && !opts.floor {
        eprintln!(
            "tracer: the call filter is off on this kernel ({release}): its verifier takes much \
             longer over every dma-buf hook with it; --call-filter on to have it anyway \
             (docs/probes.md, \"Repeated calls\")"
        );
    }
    on
}

/// `--call-filter auto` for a kernel release: on from `CALL_FILTER_FROM` (and where the
/// release cannot be read).
fn call_filter_by_default(release: &str) -> bool {
    tracer_core::analysis::rules::parse_release(release).is_none_or(|v| v >= CALL_FILTER_FROM)
}

/// What the kernel's novelty filter did in a run (`Tracer::novelty_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoveltyCounts {
    pub summarised: u64,
    pub chains_seen: u64,
    pub kept_full: u64,
    pub already_dropped: u64,
    /// dma-buf calls and callbacks (entry and return) the call filter left unsent.
    pub calls_dropped: u64,
    /// Call keys it recorded as judged once.
    pub call_keys: u64,
}

/// How the per-thread slots are used.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlotFill {
    /// Owned by a thread that has not passed its exit.
    pub live: u32,
    /// Of those, owners that no longer exist (they exited unseen).
    pub gone: u32,
    /// Of those, kernel threads (workers live long and come and go with the load).
    pub kernel: u32,
    /// Owners that exited: any thread may take the slot over.
    pub exited: u32,
}

/// `recursion_misses` of the program behind `fd` (BPF_OBJ_GET_INFO_BY_FD).
fn recursion_misses(fd: std::os::fd::RawFd) -> Option<u64> {
    // union bpf_attr, the `info` member: bpf_fd, info_len, info (pointer).
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // SAFETY: bpf_prog_info is plain C data; all zeroes is its empty value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: &mut info as *mut _ as u64,
    };
    // SAFETY: the kernel writes at most info_len bytes into `info`, which lives
    // across the call; `attr` is a valid bpf_attr prefix for this command.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    (r == 0).then_some(info.recursion_misses)
}

/// The preemption mode `/sys/kernel/debug/sched/preempt` marks as active
/// (`none voluntary (full) lazy` -> `full`), if the file says.
pub fn active_preempt_mode(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('(')?.strip_suffix(')'))
}

/// Whether a program of the object is a function hook (fentry/fexit slots,
/// the kprobe programs) rather than a tracepoint: a skipped run of one can
/// leave a lock or a call looking open; a tracepoint's can only hide an event
/// (mmap_lock events only order, never hold; a lost exit or syscall return
/// hides its finding).
pub fn is_function_hook_program(name: &str) -> bool {
    name.contains("_slot") || name.starts_with("fn_")
}

/// The preemption model the kernel runs, or why it is not known.
#[derive(Debug, PartialEq, Eq)]
pub enum PreemptMode {
    Known(String),
    Unknown(String),
}

/// The running kernel's preemption model: the active mode of a
/// PREEMPT_DYNAMIC kernel from debugfs (`/sys/kernel/debug/sched/preempt`),
/// otherwise the build's model from the version string.
pub fn preempt_mode() -> PreemptMode {
    if let Ok(text) = std::fs::read_to_string("/sys/kernel/debug/sched/preempt") {
        if let Some(m) = active_preempt_mode(&text) {
            return PreemptMode::Known(m.to_string());
        }
    }
    let version = std::fs::read_to_string("/proc/sys/kernel/version").unwrap_or_default();
    preempt_model_of_version(&version)
}

/// The preemption model a kernel's version string (`uname -v`) names:
/// `PREEMPT_RT`, `PREEMPT_LAZY` and `PREEMPT` are fixed models;
/// `PREEMPT_DYNAMIC` is chosen at boot (only debugfs tells); none of them is
/// a kernel built without preemption (`none` or `voluntary`).
pub fn preempt_model_of_version(version: &str) -> PreemptMode {
    let words: Vec<&str> = version.split_whitespace().collect();
    if words.contains(&"PREEMPT_DYNAMIC") {
        return PreemptMode::Unknown(
            "PREEMPT_DYNAMIC kernel and /sys/kernel/debug/sched/preempt unreadable".into(),
        );
    }
    if words.contains(&"PREEMPT_RT") {
        PreemptMode::Known("rt".into())
    } else if words.contains(&"PREEMPT_LAZY") {
        PreemptMode::Known("lazy".into())
    } else if words.contains(&"PREEMPT") {
        PreemptMode::Known("full".into())
    } else {
        PreemptMode::Known("voluntary".into())
    }
}

/// Whether BPF tracing programs can be preempted on this kernel, and so skip
/// the calls other tasks make on that CPU meanwhile: preempt=full or lazy.
pub fn preemptible_bpf(mode: &str) -> bool {
    matches!(mode, "full" | "lazy" | "rt")
}

#[cfg(test)]
mod tests {
    /// `--call-filter auto`: off before 6.2 (6.1's verifier), on from there and where the
    /// release cannot be read.
    #[test]
    fn the_call_filter_is_on_by_default_from_6_2() {
        use super::call_filter_by_default as on;
        assert!(!on("6.1.0-50-amd64"));
        assert!(!on("5.15.0-91-generic"));
        assert!(on("6.2.0"));
        assert!(on("6.12.95+deb12-amd64"));
        assert!(on("7.3.4+deb13-amd64"));
        assert!(on(""));
    }

    #[test]
    fn kernel_errors_are_classified_by_errno() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "bpf_raw_tracepoint_open failed")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let k = KernelError::of(&Wrap(std::io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(k.not_found() && !k.not_permitted());
        assert!(
            k.text.starts_with("bpf_raw_tracepoint_open failed: "),
            "{}",
            k.text
        );
        let k = KernelError::of(&Wrap(std::io::Error::from_raw_os_error(libc::EPERM)));
        assert!(k.not_permitted() && !k.not_found());
        // A message that only mentions a name is no errno.
        let k = KernelError::of(&std::io::Error::other("No such file (not really)"));
        assert!(!k.not_found());
    }

    use super::*;
    use aya_obj::ProgramSection;
    use std::mem::discriminant;

    /// Every program the loader attaches has an empty twin of the same type in
    /// the object: otherwise `--floor` would measure another mechanism (or
    /// silently fall back to one) and the overhead ratio would be wrong.
    #[test]
    fn preemption_modes() {
        assert_eq!(
            active_preempt_mode("none (voluntary) full lazy\n"),
            Some("voluntary")
        );
        assert_eq!(
            active_preempt_mode("none voluntary full (lazy)"),
            Some("lazy")
        );
        assert_eq!(active_preempt_mode("garbage"), None);
        assert!(preemptible_bpf("lazy") && preemptible_bpf("full"));
        assert!(!preemptible_bpf("voluntary") && !preemptible_bpf("none"));
        assert!(is_function_hook_program("unlock_fentry_slot0"));
        assert!(is_function_hook_program("fexit_slot19") && is_function_hook_program("fn_return"));
        assert!(
            !is_function_hook_program("sys_exit") && !is_function_hook_program("mmap_lock_start")
        );
    }

    #[test]
    fn table_tally_says_what_was_hooked_of_what_was_there() {
        assert_eq!(TableTally::default().summary(), None);
        let t = TableTally {
            tables: 2,
            callbacks: 9,
            hooked: 7,
            shared: 1,
            failed: vec!["i915_gem_dmabuf_vmap: kprobe: EINVAL".into()],
            ..Default::default()
        };
        assert_eq!(
            t.summary().unwrap(),
            "8 of 9 dma-buf callback(s) of 2 ops table(s) hooked (1 shared with tables hooked \
             before); 1 could not be hooked: i915_gem_dmabuf_vmap: kprobe: EINVAL"
        );
        let unread = TableTally {
            tables: 1,
            unreadable: 1,
            ..Default::default()
        };
        assert_eq!(
            unread.summary().unwrap(),
            "1 dma-buf ops table(s) found by name could not be read: their callbacks are not hooked"
        );
        let unresolved = TableTally {
            unresolved: vec![
                "amdgpu_dmabuf_ops at 0xffffffffc1000000 (map_dma_buf 0x0, release 0x0)".into(),
            ],
            ..Default::default()
        };
        assert!(unresolved.summary().unwrap().ends_with(
            "not hooked: amdgpu_dmabuf_ops at 0xffffffffc1000000 (map_dma_buf 0x0, release 0x0)"
        ));
        let retried = TableTally {
            tables: 1,
            callbacks: 11,
            hooked: 9,
            shared: 2,
            retried: 1,
            ..Default::default()
        };
        assert_eq!(
            retried.summary().unwrap(),
            "11 of 11 dma-buf callback(s) of 1 ops table(s) hooked (2 shared with tables hooked \
             before) (after 1 re-read(s) of /proc/kallsyms: a read torn by a module's init)"
        );
        let gone = TableTally {
            no_symbols: true,
            ..Default::default()
        };
        assert!(gone
            .summary()
            .unwrap()
            .starts_with("none of its symbols were in /proc/kallsyms"));
        assert_eq!(
            preempt_model_of_version("#1 SMP PREEMPT_DYNAMIC Debian 7.3.4-1~bpo13+1 (2026-11-10)"),
            PreemptMode::Unknown(
                "PREEMPT_DYNAMIC kernel and /sys/kernel/debug/sched/preempt unreadable".into()
            )
        );
        assert_eq!(
            preempt_model_of_version("#1 SMP PREEMPT Fri Jan 1 00:00:00 UTC 2026"),
            PreemptMode::Known("full".into())
        );
        assert_eq!(
            preempt_model_of_version("#1 SMP PREEMPT_RT Debian 6.12.1-1"),
            PreemptMode::Known("rt".into())
        );
        assert_eq!(
            preempt_model_of_version("#1 SMP Debian 6.1.176-1 (2026-10-01)"),
            PreemptMode::Known("voluntary".into())
        );
    }

    #[test]
    fn every_program_has_a_floor_twin_of_the_same_type() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the built eBPF object parses");
        let section = |name: &str| {
            obj.programs
                .get(name)
                .unwrap_or_else(|| panic!("program {name} missing from the object"))
                .section
                .clone()
        };
        let mut names: Vec<String> =
            vec!["fn_entry".into(), "fn_unlock".into(), "fn_return".into()];
        for i in 0..TRACING_SLOTS {
            names.push(format!("fentry_slot{i}"));
            names.push(format!("fexit_slot{i}"));
        }
        for i in 0..LOCK_SLOTS {
            names.push(format!("lock_fentry_slot{i}"));
            names.push(format!("lock_fexit_slot{i}"));
        }
        for i in 0..UNLOCK_SLOTS {
            names.push(format!("unlock_fentry_slot{i}"));
        }
        for tp in TRACEPOINTS {
            names.push(tp.program.into());
            if let Some((older, _)) = tp.older {
                names.push(older.into());
            }
        }
        for name in &names {
            let twin = floor_program(name);
            assert_ne!(&twin, name);
            assert_eq!(
                discriminant(&section(name)),
                discriminant(&section(&twin)),
                "{name} and its floor twin {twin} are different program types"
            );
        }
        // The slot counts the loader assumes exist, and no more are needed.
        assert!(!obj
            .programs
            .contains_key(&format!("lock_fentry_slot{LOCK_SLOTS}")));
        assert!(matches!(
            section("lock_fexit_slot0"),
            ProgramSection::FExit { .. }
        ));
    }
}
