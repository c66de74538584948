//! The source layer: "a kernel or a recording". A live `Session` owns everything
//! between the kernel and a consumer (the engine, the live view): the stop signals, the
//! attach and its announcement, the metadata, the recording files, the ring buffer pump,
//! and the end (losses, statistics, the recordings' end markers). `tracer live`,
//! `record`, `run` and the live view are loops over it that differ only in what else they
//! wait for (keys, a workload, a control FIFO) and where findings go.
//!
//! A recording is the other source: `read_recording` and `replay_file`, which judge it
//! through `tracer_core::replay` (one order, one configuration, for every command).

pub mod crash;
pub mod live;
pub mod recfile;
pub mod stop;

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use tracer_common::RawEvent;
use tracer_core::{
    analysis::Engine,
    events::{
        record::{FormatError, Meta, Recording},
        Event, Frame,
    },
    kernel::{btf, ProbeState, ProbeStatus, CONVENTION_SYMBOLS},
    replay,
};

use crate::probes::{LoadOptions, Tracer};
pub use live::Live;
pub use recfile::RecFile;
pub use stop::Stop;

/// How a live session is set up (from `LiveArgs` and the command's own options).
#[derive(Clone, Debug)]
pub struct Options {
    pub load: LoadOptions,
    /// `--prog-stats`: the kernel's BPF run-time statistics, printed at the end.
    pub prog_stats: bool,
    /// Created once every hook is attached.
    pub ready_file: Option<PathBuf>,
    /// Stop after this long (armed when tracing starts).
    pub duration: Option<Duration>,
    /// The whole run's recording.
    pub record: Option<PathBuf>,
    /// Say what is hooked on stderr (not under the live view, which owns the screen).
    pub announce: bool,
}

/// Where the events of a live session go besides the recordings.
pub trait Consumer {
    /// A stack resolved for the first time (before the first event that uses it).
    fn stack(&mut self, id: u32, frames: Vec<Frame>);
    /// One decoded event, in ring order.
    fn event(&mut self, ev: &Event) -> Result<()>;
}

impl Consumer for Engine {
    fn stack(&mut self, id: u32, frames: Vec<Frame>) {
        self.stacks_mut().insert(id, frames);
    }

    fn event(&mut self, ev: &Event) -> Result<()> {
        self.feed(ev);
        Ok(())
    }
}

/// The kernel side of a session: the ring, the recordings, the decode count.
pub struct Source {
    pub live: Live,
    pub meta: Meta,
    /// The whole run's recording, and the current segment's (`tracer record --segments`).
    pub recording: Option<RecFile>,
    pub segment: Option<(String, RecFile)>,
    /// Records the decoder could not read (counted into the recordings' summaries).
    pub undecodable: u64,
    batch: Vec<RawEvent>,
}

impl Source {
    /// Waits until the ring has data and takes it (cancel-safe: call it in `select!`).
    pub async fn wait(&mut self) -> Result<()> {
        self.live.next_batch(&mut self.batch).await
    }

    /// Everything taken so far, plus with `drain` everything the kernel has queued: each
    /// record's new hooks and stack fetched, written to the recordings, and, decoded, to
    /// `to` (the recording-only `tracer record` decodes nothing). Returns the number of
    /// records.
    pub fn pump(&mut self, drain: bool, mut to: Option<&mut dyn Consumer>) -> Result<usize> {
        if drain {
            self.live.drain(&mut self.batch);
        }
        let mut batch = std::mem::take(&mut self.batch);
        // Counted per batch, not per event (the `stats` command's `events`).
        self.live.processed += batch.len() as u64;
        for r in &mut batch {
            let x = self.live.process(r);
            if let Some(f) = self.recording.as_mut() {
                f.write(r, &x.new_hooks, &self.live.stacks)?;
            }
            if let Some((_, f)) = self.segment.as_mut() {
                f.write(r, &x.new_hooks, &self.live.stacks)?;
            }
            // Tests: a panic in the middle of a batch, its frames staged but not written.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("pump-event");
            let Some(c) = to.as_deref_mut() else { continue };
            if let Some((id, frames)) = x.new_stack {
                c.stack(id, frames);
            }
            match self.live.decoder.decode(r) {
                Ok(ev) => c.event(&ev)?,
                Err(_) => self.undecodable += 1,
            }
        }
        let n = batch.len();
        batch.clear();
        self.batch = batch;
        if let Some(f) = self.recording.as_mut() {
            f.flush()?;
        }
        if let Some((_, f)) = self.segment.as_mut() {
            f.flush()?;
        }
        // Tests: a panic between two batches, the last one just written out.
        #[cfg(feature = "failpoints")]
        if n > 0 {
            fail::fail_point!("pump-batch");
        }
        Ok(n)
    }

    /// Records lost to short reads and undecodable ones: the recordings' error count.
    pub fn errors(&self) -> u64 {
        self.undecodable + self.live.short_records
    }

    /// Opens segment `name` at `path`, with the metadata of now (the hooks discovered so
    /// far; later ones are written as they come).
    pub fn open_segment(&mut self, name: &str, path: &Path) -> Result<()> {
        let meta = meta_of(&self.live.tracer, self.meta.full_stream);
        self.segment = Some((name.to_string(), RecFile::create(path, &meta)?));
        crash::segment(Some(path));
        Ok(())
    }

    /// Closes the current segment; returns its name and event count.
    pub fn close_segment(&mut self) -> Result<Option<(String, u64)>> {
        let lost = self.live.lost_per_cpu();
        let errors = self.errors();
        crash::segment(None);
        match self.segment.take() {
            Some((name, f)) => Ok(Some((name, f.finish(lost, errors)?))),
            None => Ok(None),
        }
    }
}

/// A live session: stop conditions and the kernel source.
pub struct Session {
    pub source: Source,
    pub stop: Stop,
    prog_stats: Option<OwnedFd>,
    ready_file: Option<PathBuf>,
    duration: Option<Duration>,
    record: Option<PathBuf>,
}

impl Session {
    /// Loads and attaches everything this kernel allows (saying so on stderr if
    /// `announce`). `stop` was installed by the caller before anything slow (a signal
    /// during the attach is kept). No recording or ready file exists until `begin`, so
    /// a command can still refuse to go on (`run --require-hooks`).
    pub fn attach(stop: Stop, o: &Options) -> Result<Self> {
        let prog_stats = enable_prog_stats(o.prog_stats)?;
        let live = Live::start(&o.load)?;
        if o.announce {
            announce(&live.tracer.status, live.startup, live.tracer.is_floor());
        }
        if prog_stats.is_some() {
            print_load_times(&live.tracer);
        }
        let meta = meta_of(&live.tracer, o.load.full_stream);
        Ok(Self {
            source: Source {
                live,
                meta,
                recording: None,
                segment: None,
                undecodable: 0,
                batch: Vec::with_capacity(1024),
            },
            stop,
            prog_stats,
            ready_file: o.ready_file.clone(),
            duration: o.duration,
            record: o.record.clone(),
        })
    }

    /// Tracing starts: the recording is created, then the ready file, and the time
    /// limit is armed.
    pub fn begin(&mut self) -> Result<()> {
        if let Some(p) = &self.record {
            self.source.recording = Some(RecFile::create(p, &self.source.meta)?);
            crash::recording(Some(p));
        }
        if let Some(p) = &self.ready_file {
            std::fs::File::create(p)
                .with_context(|| format!("creating ready file {}", p.display()))?;
        }
        self.stop.arm(self.duration);
        Ok(())
    }

    pub fn tracer(&self) -> &Tracer {
        &self.source.live.tracer
    }

    /// The end: program statistics (`--prog-stats`), the recordings' end markers. The
    /// kernel's losses are said by `Finished::warn_losses`, after the caller's report.
    pub fn finish(mut self) -> Result<Finished> {
        if self.prog_stats.is_some() {
            print_prog_stats(&self.source.live.tracer);
        }
        let lost = self.source.live.lost_per_cpu();
        self.source.close_segment()?;
        let errors = self.source.errors();
        crash::recording(None);
        let recorded = match self.source.recording.take() {
            Some(f) => Some(f.finish(lost.clone(), errors)?),
            None => None,
        };
        Ok(Finished {
            lost,
            recorded,
            live: self.source.live,
        })
    }
}

/// A session after its end; the programs stay attached until it drops.
pub struct Finished {
    pub lost: Vec<u64>,
    /// Events written to the whole run's recording, if there was one.
    pub recorded: Option<u64>,
    pub live: Live,
}

impl Finished {
    /// What the kernel side could not deliver (lost events with `with_lost`; thread slots,
    /// return probes, skipped runs always).
    pub fn warn_losses(&self, with_lost: bool) {
        self.live
            .warn_kernel_losses(if with_lost { &self.lost } else { &[] });
    }
}

/// The async runtime of live sessions: one thread (the ring, signals, keys, a workload).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A recording file, read whole.
pub fn read_recording(path: &Path) -> Result<Recording, FormatError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| FormatError::Io {
        path: p.clone(),
        error,
    })?;
    Recording::parse(&bytes, &p)
}

/// A recording judged by the engine, its caveats said on stderr.
pub fn replay_file(path: &Path) -> Result<(Recording, Engine)> {
    let rec = read_recording(path)?;
    let r = replay::replay(&rec);
    for l in r.caveats.lines(&path.display().to_string()) {
        eprintln!("tracer: {l}");
    }
    Ok((rec, r.engine))
}

pub use crate::probes::kernel_release;

/// What a recording of this session says about where it ran and what was hooked.
pub fn meta_of(t: &Tracer, full_stream: bool) -> Meta {
    Meta {
        tracer_version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: kernel_release(),
        kernel_symbols: CONVENTION_SYMBOLS
            .iter()
            .filter(|s| t.kallsyms.has(s))
            .map(|s| s.to_string())
            .collect(),
        offsets: btf::FIELDS
            .iter()
            .filter_map(|f| {
                t.btf
                    .member_offset(f.strukt, f.member)
                    .ok()
                    .map(|o| (f.name(), o))
            })
            .collect(),
        hooks: t.hooks.clone(),
        probes: t.status.clone(),
        mechanisms: t.mechanism_summary(),
        full_stream,
        init_mm: t
            .kallsyms
            .get("init_mm")
            .map(|s| s.addr)
            .filter(|&a| a != 0),
    }
}

/// `--prog-stats`: the kernel counts program runs and run time while the
/// returned descriptor is open.
fn enable_prog_stats(on: bool) -> Result<Option<std::os::fd::OwnedFd>> {
    if !on {
        return Ok(None);
    }
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(Some)
        .map_err(|e| {
            anyhow::anyhow!(
                "--prog-stats: the kernel refused BPF_ENABLE_STATS ({e}); it needs Linux 5.8+"
            )
        })
}

/// `--prog-stats` at the start: what the start-up spent loading (verifying) each program,
/// slowest first, with the instructions the verifier processed for it, and the total.
fn print_load_times(t: &Tracer) {
    let mut v = t.load_times.clone();
    v.sort_by_key(|(_, _, d)| std::cmp::Reverse(*d));
    let total: std::time::Duration = v.iter().map(|(_, _, d)| *d).sum();
    eprintln!(
        "tracer: prog-load: {} program loads took {:.3} s",
        v.len(),
        total.as_secs_f64()
    );
    for (prog, target, d) in v {
        // A program loaded for several targets (a kprobe) reports its one load.
        let insns = t
            .verified_insns(&prog)
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        eprintln!(
            "tracer: prog-load: {prog:<24} {target:<40} {:>9.3} ms {insns:>8} insns verified",
            d.as_secs_f64() * 1e3
        );
    }
}

/// `--prog-stats` output: one stderr line per program that ran.
fn print_prog_stats(t: &Tracer) {
    let stats = t.program_stats();
    if stats.is_empty() {
        eprintln!("tracer: prog-stats: no program ran");
    }
    for s in stats {
        eprintln!(
            "tracer: prog-stats: {:<24} {:>10} runs {:>8} ns/run {:>10.3} ms total",
            s.name,
            s.runs,
            s.run_time.as_nanos() as u64 / s.runs.max(1),
            s.run_time.as_secs_f64() * 1e3
        );
    }
}

/// One line on stderr: what is hooked and what cannot be seen.
fn announce(statuses: &[ProbeStatus], startup: std::time::Duration, floor: bool) {
    if floor {
        eprintln!(
            "tracer: floor mode: every hook runs a program that only returns; nothing is recorded"
        );
    }
    let attached = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Attached)
        .count();
    let failed: Vec<&ProbeStatus> = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Failed)
        .collect();
    eprintln!(
        "tracer: {attached} hooks attached in {:.2} s (load, verify, attach), {} unavailable{}",
        startup.as_secs_f64(),
        failed.len(),
        absent_summary(statuses)
    );
    if let Some(first) = failed.first() {
        let funcs = failed
            .iter()
            .filter(|p| p.family == "function" || p.family == "callback")
            .count();
        eprintln!(
            "tracer: cannot see {} hook(s), e.g. {}: {} (`tracer probes` lists them)",
            failed.len(),
            first.hook,
            first.reason
        );
        if funcs > 0 && attached > 0 && failed.iter().all(|p| p.reason == first.reason) {
            eprintln!("tracer: without function hooks no dma-buf or ww_mutex event can be seen; tracepoint events only");
        }
    }
}

/// What the attach line says of hooks whose function or tracepoint this
/// kernel does not have: those the hook table says exist only on other
/// kernels (renamed, added or removed: expected), and those it says should
/// be here (a rename the table does not know yet: the tracer is blind there).
fn absent_summary(statuses: &[ProbeStatus]) -> String {
    let absent: Vec<&ProbeStatus> = statuses
        .iter()
        .filter(|p| p.state == ProbeState::Absent)
        .collect();
    if absent.is_empty() {
        return String::new();
    }
    let (tracepoints, functions): (Vec<&ProbeStatus>, Vec<&ProbeStatus>) =
        absent.iter().partition(|p| p.family == "tracepoint");
    let (unexpected, expected): (Vec<&ProbeStatus>, Vec<&ProbeStatus>) =
        functions.iter().partition(|p| {
            tracer_core::kernel::hooks::FUNC_HOOKS
                .iter()
                .any(|h| h.func == p.hook && h.exists == "all")
        });
    let names = |v: &[&ProbeStatus]| {
        v.iter()
            .map(|p| p.hook.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !expected.is_empty() {
        parts.push(format!(
            "{} renamed or of other kernel versions: {}",
            expected.len(),
            names(&expected)
        ));
    }
    if !tracepoints.is_empty() {
        parts.push(format!(
            "{} tracepoint(s): {}",
            tracepoints.len(),
            names(&tracepoints)
        ));
    }
    let mut s = format!(
        ", {} not in this kernel ({}",
        absent.len(),
        parts.join("; ")
    );
    if !unexpected.is_empty() {
        s.push_str(&format!(
            "{}{} expected on every kernel, missing here (renamed?), not seen: {}",
            if parts.is_empty() { "" } else { "; " },
            unexpected.len(),
            names(&unexpected)
        ));
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(hook: &str, state: ProbeState) -> ProbeStatus {
        ProbeStatus {
            hook: hook.into(),
            family: "function".into(),
            mechanism: "-".into(),
            state,
            reason: String::new(),
        }
    }

    #[test]
    fn the_attach_line_counts_renamed_and_unexpectedly_missing_hooks() {
        assert_eq!(
            absent_summary(&[st("ww_mutex_lock", ProbeState::Attached)]),
            ""
        );
        let s = absent_summary(&[
            st("ww_mutex_lock", ProbeState::Attached),
            st("dma_buf_move_notify", ProbeState::Absent),
            st("dma_buf_vmap_unlocked", ProbeState::Absent),
        ]);
        assert_eq!(
            s,
            ", 2 not in this kernel (2 renamed or of other kernel versions: \
             dma_buf_move_notify, dma_buf_vmap_unlocked)"
        );
        let mut tp = st("module:module_load", ProbeState::Absent);
        tp.family = "tracepoint".into();
        assert_eq!(
            absent_summary(&[tp]),
            ", 1 not in this kernel (1 tracepoint(s): module:module_load)"
        );
        let s = absent_summary(&[st("dma_buf_pin", ProbeState::Absent)]);
        assert!(
            s.contains(
                "1 expected on every kernel, missing here (renamed?), not seen: dma_buf_pin"
            ),
            "{s}"
        );
    }
}
