//! Command line: clap definitions only; `main.rs` wires each command to its
//! source, the engine and a sink.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tracer_core::analysis::Severity;

use crate::{probes::LoadOptions, session};

/// lockdep for dma-buf reservation locks, on stock kernels, over eBPF.
///
/// Hooks ww_mutex lock/unlock, the dma-buf API and exporters' dma_buf_ops
/// callbacks, and checks the dma-buf locking convention (Linux 6.2+, with the
/// older rules on older kernels) and lockdep's ordering rules. Needs root.
///
/// Start with `sudo tracer probes` to see what this kernel lets the tracer hook.
/// Without a command: trace live; on a terminal in an interactive view
/// (findings, lock graph, held locks), otherwise printing findings as they
/// appear (`tracer live`). `--replay FILE` shows a recording in the view.
#[derive(Parser, Debug)]
#[command(name = "tracer", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub live: LiveCmd,
    /// Replay a recording in the interactive view (stdout not a terminal:
    /// print its report, as `tracer analyze`).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Replay speed: event time divided by this factor; 0 = as fast as possible.
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "replay")]
    pub speed: f64,
}

/// Options of live tracing (also usable without the `live` word).
#[derive(Args, Debug, Clone)]
pub struct LiveCmd {
    /// Findings as JSON lines instead of lockdep-style text.
    #[arg(long, global = false)]
    pub json: bool,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C / SIGTERM.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub duration: Option<std::time::Duration>,
    /// Also write the event stream to this recording.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show every hook for the running kernel: mechanism, status and, for
    /// hooks that cannot be attached, the kernel's reason.
    Probes {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Trace live: analyse the event stream as it comes and print each new
    /// finding (lockdep-style text, or --json), then a summary at the end.
    Live(LiveCmd),
    /// Analyse a recording with the same engine the live tracer runs.
    ///
    /// Exit status: 0 no finding at or above --fail-on (not allowed by
    /// --allow), 1 such findings, 2 the tracer failed; with --expect: 0 when
    /// the finding kinds are exactly the expected ones.
    Analyze {
        /// The recording.
        file: PathBuf,
        /// One JSON document (findings, lock-order graph, stacks, stats).
        #[arg(long)]
        json: bool,
        /// Comma-separated finding kinds that must be exactly the ones found
        /// (`none` for a clean run), e.g. `exporter-relock`.
        #[arg(long, value_name = "KINDS", conflicts_with_all = ["allow", "junit", "sarif"])]
        expect: Option<String>,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Trace a workload from its start to its exit and gate on the findings
    /// (for CI jobs; docs/ci.md).
    ///
    /// Attaches the hooks, starts CMD in its own process group, analyses the
    /// events while it runs, stops when it exits (at --timeout: SIGTERM, then
    /// SIGKILL 5 s later), then prints the report and the verdict.
    ///
    /// Exit status: 0 no finding at or above --fail-on (default warning);
    /// 1 findings at or above it; 2 the tracer failed (cannot load, bad
    /// option or allow file, the workload could not be started, a hook
    /// missing with --require-hooks); 3 no failing finding but the workload
    /// failed (non-zero exit, killed by a signal, stopped at --timeout).
    Run(RunArgs),
    /// The lock-order graph of a recording: classes as nodes, "held while
    /// acquiring" edges with the task that first did it; --dot for Graphviz
    /// (primed edges dashed, cycles red; docs/graph.md).
    Graph(GraphArgs),
    /// Print the dma-buf locking rule table for the running kernel (or a
    /// given kernel release) with the kernel ranges each rule holds for.
    Rules {
        /// A kernel release such as 6.1.0-28-amd64 (default: the running kernel).
        #[arg(long, value_name = "RELEASE")]
        kernel: Option<String>,
    },
    /// Record the event stream to a file for later analysis (`tracer dump`,
    /// `tracer analyze`), on this or another machine.
    Record(RecordArgs),
    /// Check this machine: privileges, kernel BTF, symbols, the kernel options the
    /// tracer needs and the GPU drivers present; for each thing missing, what to enable.
    /// Exit status 1 if a requirement is missing. Loads nothing.
    Doctor,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout,
    /// e.g. `tracer completions bash > /etc/bash_completion.d/tracer`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (tracer.1 and one per command) into DIR (packaging).
    #[command(hide = true)]
    Manpages {
        /// Output directory.
        dir: PathBuf,
    },
    /// Print a recording for humans: its kernel, hooks and every event with
    /// symbolized stacks.
    Dump {
        /// The recording.
        file: PathBuf,
        /// JSON lines (one decoded event per line) instead of text.
        #[arg(long)]
        json: bool,
        /// Print at most N events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Do not print stacks.
        #[arg(long)]
        no_stacks: bool,
        /// Instead of events: for every dma-buf call, whether the same task
        /// locked that buffer's resv (read in-kernel) during the call. Exit
        /// status 1 if no call locked its resv.
        #[arg(long)]
        resv_links: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Ring buffer size in MiB (power of two; kernel memory for as long as
    /// the tracer runs). Events that do not fit are counted per CPU and
    /// reported. 64 MiB holds about 400,000 events: a loop that only takes
    /// reservation locks as fast as it can lost none over 640,000 events
    /// (docs/overhead.md); 16 MiB lost a fifth of them.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub ring_mib: u32,
    /// Send every lock event to user space, not only those of tasks already
    /// holding a hooked lock, plus every tracepoint hit. Costs more; useful for
    /// debugging the tracer and on hosts with no dma-buf traffic.
    #[arg(long)]
    pub all_events: bool,
    /// Take a kernel stack at every function event (slow; default: where it
    /// adds evidence).
    #[arg(long)]
    pub all_stacks: bool,
    /// Read the call site (and its stack, once per site) of every un-nested
    /// lock, so a lock found held later always shows where it was taken. By
    /// default a thread stops reading them after 64 un-nested locks none of
    /// which was needed, until one is (docs/probes.md): a one-off leak in
    /// such a thread is then reported without its acquisition stack. An
    /// un-nested lock/unlock pair then costs 1.6-1.8x the hooks' floor instead
    /// of 1.4x (docs/overhead.md).
    #[arg(long)]
    pub lone_sites: bool,
    /// Create this file once every hook is attached (for scripts that must
    /// not start their workload earlier).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// Overhead measurement: attach programs that only return, on exactly
    /// the hooks and through exactly the mechanisms a normal run uses, and
    /// record nothing. Timing a workload under `--floor` and under a normal
    /// run tells the hook mechanism's cost from the tracer's (docs/overhead.md).
    #[arg(long)]
    pub floor: bool,
    /// Hook the ww_mutex functions with kprobes even where the kernel allows
    /// fentry/fexit (which cost about half as much). For comparisons; the
    /// tracer falls back to kprobes by itself where fentry is refused.
    #[arg(long)]
    pub lock_kprobes: bool,
    /// Mechanism of the function hooks (dma-buf API, resv lifetimes, ww_mutex
    /// functions). auto: fentry/fexit, or kprobes on a kernel that preempts
    /// BPF programs (preempt=full/lazy/rt, e.g. Debian's 7.3 default), where
    /// a preempted fentry program makes the kernel skip other tasks' calls on
    /// that CPU (lost unlocks, locks that look held). fentry: fentry/fexit
    /// even there (cheaper, lossy: skipped runs are reported at exit).
    /// kprobes: kprobes everywhere.
    #[arg(long, value_enum, default_value_t = crate::probes::loader::HookChoice::Auto)]
    pub hooks: crate::probes::loader::HookChoice,
    /// Check every held lock against the kernel's owner word before judging
    /// an event, even on a kernel that does not preempt BPF programs (there
    /// it is off: no hook run is skipped, and old verifiers take minutes
    /// longer over it). A lock released where no hook sees it is then
    /// forgotten instead of reported.
    #[arg(long)]
    pub owner_check: bool,
    /// The kernel side's novelty filter: a nested lock acquisition that
    /// repeats a transaction already sent (same call sites, same order, one
    /// acquire context) is kept in the kernel and sent only if something is
    /// judged while it is held; a dma-buf call or callback made again from
    /// the same call site on the same buffer in the same held state is
    /// counted in the kernel and sent only if something inside it has to be
    /// (docs/probes.md). off: send every one (the events `--all-events`
    /// also sends; findings are the same either way, their repeat counts
    /// higher).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub novelty: Switch,
    /// The dma-buf call part of the novelty filter alone (docs/probes.md,
    /// "Repeated calls"): off sends every dma-buf call and callback while
    /// repeated lock transactions stay in the kernel (`--novelty off` turns
    /// both off). auto: on, except on kernels before 6.2, whose verifier
    /// takes about 60% longer over each dma-buf hook with it (minutes more
    /// at start-up under emulation; said at start).
    #[arg(long, value_enum, default_value_t = AutoSwitch::Auto)]
    pub call_filter: AutoSwitch,
    /// Turn on the kernel's BPF run-time statistics while running and print,
    /// at exit, each program's runs and nanoseconds per run: where the
    /// tracer's in-kernel cost goes. The statistics themselves add two clock
    /// reads per program run.
    #[arg(long)]
    pub prog_stats: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// Output file (the whole run).
    #[arg(short, long, value_name = "FILE", required_unless_present = "segments")]
    pub output: Option<PathBuf>,
    /// Also cut the run into named segments, one recording each
    /// (DIR/NAME.rec), started and stopped through --control. Lets one
    /// attached tracer serve many workloads (the lab runs every scenario of
    /// a boot this way).
    #[arg(long, value_name = "DIR", requires = "control")]
    pub segments: Option<PathBuf>,
    /// A FIFO the tracer creates and reads commands from, one per line:
    /// `start NAME` opens DIR/NAME.rec; `stop` drains every event the kernel
    /// has queued so far into it and closes it; `sync` returns once every
    /// event queued before it is processed (a module just loaded is then
    /// hooked); `stats` answers `stats key=value ...` (events, lost,
    /// untracked, stacks, thread_slots, sites, hooks, rss_kib: what a long
    /// run is watched by). Each command is acknowledged by a line on --ack
    /// (`ready` once attached, `started NAME`, `stopped NAME EVENTS`,
    /// `synced`, `stats ...`, or `error: ...`).
    #[arg(long, value_name = "FIFO", requires = "ack")]
    pub control: Option<PathBuf>,
    /// The FIFO (created by the tracer) acknowledgements are written to.
    #[arg(long, value_name = "FIFO")]
    pub ack: Option<PathBuf>,
    /// Stop after this long (e.g. 10s, 2m); default: until Ctrl-C / SIGTERM.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub duration: Option<std::time::Duration>,
    #[command(flatten)]
    pub live: LiveArgs,
}

impl LiveArgs {
    /// What the loader is asked for (`--ring-mib` checked here).
    pub fn load_options(&self) -> Result<LoadOptions> {
        let a = self;
        let bytes = a
            .ring_mib
            .checked_mul(1 << 20)
            .filter(|b| b.is_power_of_two())
            .with_context(|| {
                format!(
                    "--ring-mib {}: must be a power of two between 1 and 2048",
                    a.ring_mib
                )
            })?;
        Ok(LoadOptions {
            ring_bytes: bytes,
            full_stream: a.all_events,
            stack_all: a.all_stacks,
            lone_sites: a.lone_sites,
            floor: a.floor,
            lock_kprobes: a.lock_kprobes,
            hooks: a.hooks,
            owner_check: a.owner_check,
            novelty: a.novelty == Switch::On,
            call_filter: match (a.novelty, a.call_filter) {
                (Switch::Off, _) | (_, AutoSwitch::Off) => Some(false),
                (_, AutoSwitch::On) => Some(true),
                (_, AutoSwitch::Auto) => None,
            },
            quiet: false,
        })
    }

    /// A live session with these options, `duration` and `record` from the command.
    pub fn session(
        &self,
        duration: Option<std::time::Duration>,
        record: Option<PathBuf>,
        announce: bool,
    ) -> Result<session::Options> {
        Ok(session::Options {
            load: self.load_options()?,
            prog_stats: self.prog_stats,
            ready_file: self.ready_file.clone(),
            duration,
            record,
            announce,
        })
    }
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    match s {
        "error" => Ok(Severity::Error),
        "warning" => Ok(Severity::Warning),
        "info" => Ok(Severity::Info),
        _ => Err(format!("`{s}`: expected error, warning or info")),
    }
}

/// The gate shared by `run` and `analyze`.
#[derive(Args, Debug, Clone)]
pub struct GateArgs {
    /// Fail (exit 1) on findings of this severity or worse: error, warning
    /// or info. The default fails on every finding the default engine
    /// configuration reports (it reports no info findings).
    #[arg(long, value_name = "SEVERITY", default_value = "warning", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Suppressions (TOML, `[[allow]]` entries with kind / symbol / exporter
    /// and a required reason); allowed findings are listed, not failing.
    #[arg(long, value_name = "FILE")]
    pub allow: Option<PathBuf>,
    /// Also write a JUnit XML report (one testcase per finding kind checked).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 report.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
}

/// `tracer run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Stop the workload after this long (SIGTERM to its process group, then
    /// SIGKILL 5 s later); the run then exits 3 unless findings make it 1.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub timeout: Option<Duration>,
    /// Exit 2 before starting the workload if any hook could not be attached
    /// (a hook absent from this kernel's symbols is not missing).
    #[arg(long)]
    pub require_hooks: bool,
    /// One JSON document (the `analyze --json` document plus a `ci` object)
    /// instead of lockdep-style text.
    #[arg(long)]
    pub json: bool,
    /// Also write the event stream to this recording.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    /// The workload and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `tracer graph`.
#[derive(Args, Debug, Clone)]
pub struct GraphArgs {
    /// The recording.
    pub file: PathBuf,
    /// Graphviz DOT (the default is one line per edge).
    #[arg(long)]
    pub dot: bool,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// An on/off option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoSwitch {
    /// Decided per kernel.
    Auto,
    On,
    Off,
}
