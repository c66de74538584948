//! The live source: the ring buffer read asynchronously, kernel stacks
//! resolved once per id, exporter ops tables hooked when first seen.

use std::collections::HashSet;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf, StackTraceMap};
use tokio::io::unix::AsyncFd;
use tracer_common::{RawEvent, RawKind};

use tracer_core::events::{
    decode::{cstr, Decoder},
    Frame, StackTable,
};

use tracer_core::kernel::HookInfo;

use crate::{
    probes::{LoadOptions, Tracer},
    symbolize::KernelSymbolizer,
};

/// errno of a stack walk whose stack-map bucket held another stack.
const EEXIST: i64 = 17;
/// Ids of the one-frame call-site stacks start here, far above the stack map's ids (its
/// size is 16384).
const CALL_SITE_STACKS: u32 = 0x8000_0000;

pub struct Live {
    pub tracer: Tracer,
    /// Loading the object, verifying and attaching every program.
    pub startup: std::time::Duration,
    ring: AsyncFd<RingBuf<MapData>>,
    stack_map: StackTraceMap<MapData>,
    symbolizer: KernelSymbolizer,
    pub decoder: Decoder,
    pub stacks: StackTable,
    seen_ops: HashSet<u64>,
    /// Records shorter than RawEvent (never expected; counted, not fatal).
    pub short_records: u64,
    /// Kept-back acquisitions sent without their call site (docs/probes.md,
    /// "Call sites of lone acquisitions"): said at exit.
    pub skipped_sites: u64,
    /// Stack walks the kernel refused, by error: -EEXIST (17) when the stack
    /// map's bucket holds another stack (it is never overwritten: an id
    /// always means one stack), -EFAULT, -ENOMEM. Said at exit.
    pub failed_stacks: std::collections::BTreeMap<i64, u64>,
    /// One-frame stacks of call sites standing in for failed stack walks, by call site.
    call_site_ids: std::collections::HashMap<u64, u32>,
    /// Events taken from the ring so far (counted by `Source::pump`, per batch).
    pub processed: u64,
    /// Per hook id, the summarised calls already written into the stream
    /// (`summaries`).
    summarised_written: std::collections::HashMap<u16, u64>,
}

/// What one raw event brought beyond itself.
#[derive(Default)]
pub struct Extras {
    /// A stack resolved for the first time: (id, frames).
    pub new_stack: Option<(u32, Vec<Frame>)>,
    /// Callbacks hooked because this event showed a new exporter.
    pub new_hooks: Vec<HookInfo>,
}

impl Live {
    /// Loads, attaches everything this kernel allows, and opens the ring.
    pub fn start(opts: &LoadOptions) -> Result<Self> {
        let t0 = std::time::Instant::now();
        let mut tracer = Tracer::load(opts)?;
        tracer.attach_all()?;
        let startup = t0.elapsed();
        let ring = tracer.take_ring()?;
        let stack_map = tracer.take_stacks()?;
        let decoder = Decoder::new(&tracer.hooks);
        Ok(Self {
            tracer,
            startup,
            // SAFETY: the ring buffer owns its fd and outlives the registration
            // (both live in this struct; AsyncFd drops its registration first).
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
                .map_err(|e| {
                anyhow::anyhow!("registering the ring buffer with the runtime: {e}")
            })?,
            stack_map,
            symbolizer: KernelSymbolizer::new(),
            decoder,
            stacks: StackTable::new(),
            seen_ops: HashSet::new(),
            short_records: 0,
            skipped_sites: 0,
            failed_stacks: Default::default(),
            call_site_ids: Default::default(),
            summarised_written: Default::default(),
            processed: 0,
        })
    }

    /// Waits until the ring has data, then appends everything available.
    pub async fn next_batch(&mut self, out: &mut Vec<RawEvent>) -> Result<()> {
        let mut guard = self
            .ring
            .readable_mut()
            .await
            .context("waiting on the ring buffer")?;
        self.short_records += drain_ring(guard.get_inner_mut(), out);
        guard.clear_ready();
        Ok(())
    }

    /// Whatever is still queued (at shutdown, or before a control command), then the
    /// calls the kernel summarised since the last drain (`summaries`).
    pub fn drain(&mut self, out: &mut Vec<RawEvent>) {
        self.short_records += drain_ring(self.ring.get_mut(), out);
        self.summaries(out);
    }

    /// One `CallsSummarised` record per hooked function whose summarised calls grew since
    /// the last one (tracer-ebpf/src/calls.rs counts them per hook in the kernel): written
    /// into the stream like a kernel event, so recordings, segments and the engine count
    /// every call. A map that cannot be read is said once per drain, not taken for 0.
    fn summaries(&mut self, out: &mut Vec<RawEvent>) {
        let counts = match self.tracer.summarised_calls() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tracer: the call filter's counts could not be read: {e:#}");
                return;
            }
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given. CLOCK_MONOTONIC is the
        // kernel's bpf_ktime_get_ns clock, so the record sorts after what was drained.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        for (hook, total) in counts {
            let written = self.summarised_written.entry(hook).or_insert(0);
            if total > *written {
                let mut r =
                    tracer_core::events::decode::raw(RawKind::CallsSummarised, hook, 0, now);
                r.comm = *b"tracer\0\0\0\0\0\0\0\0\0\0";
                r.args[0] = total - *written;
                *written = total;
                out.push(r);
            }
        }
    }

    /// Resolves the event's stack if new and hooks a new exporter's callbacks. An event
    /// that carries its call site instead of a stack (a stack walk that failed with EEXIST,
    /// `tracer_common::call_site_of`) gets a one-frame stack of that call site, under an id
    /// of its own above the stack map's (`r.stack_id` is rewritten to it), so recordings and
    /// the engine see an ordinary stack.
    pub fn process(&mut self, r: &mut RawEvent) -> Extras {
        let mut x = Extras::default();
        if let Some(site) = tracer_common::call_site_of(r.stack_id) {
            *self.failed_stacks.entry(EEXIST).or_default() += 1;
            let next = CALL_SITE_STACKS + self.call_site_ids.len() as u32;
            let id = *self.call_site_ids.entry(site).or_insert(next);
            if !self.stacks.contains(id) {
                let frames = self.symbolizer.frames(&[site], &self.tracer.kallsyms);
                self.stacks.insert(id, frames.clone());
                x.new_stack = Some((id, frames));
            }
            r.stack_id = id as i64;
        } else if r.stack_id == tracer_common::STACK_SKIPPED {
            self.skipped_sites += 1;
        } else if r.stack_id < -1 {
            *self.failed_stacks.entry(-r.stack_id).or_default() += 1;
        }
        if r.stack_id >= 0 {
            let id = r.stack_id as u32;
            if !self.stacks.contains(id) {
                let addrs: Vec<u64> = self
                    .stack_map
                    .get(&id, 0)
                    .map(|st| st.frames().iter().map(|f| f.ip).collect())
                    .unwrap_or_default();
                let frames = self.symbolizer.frames(&addrs, &self.tracer.kallsyms);
                self.stacks.insert(id, frames.clone());
                x.new_stack = Some((id, frames));
            }
        }
        if r.kind == RawKind::ModuleLoad as u16 || r.kind == RawKind::ModuleFree as u16 {
            self.follow_module(r, &mut x);
        }
        if r.ops != 0 && self.seen_ops.insert(r.ops) {
            let before = self.tracer.hooks.len();
            if self.tracer.hook_ops_table(r.ops, None) > 0 {
                for h in &self.tracer.hooks[before..] {
                    self.decoder.add_hook(h.clone());
                    x.new_hooks.push(h.clone());
                }
            }
        }
        x
    }

    /// A module loaded or freed after the start (the dev-box loop: rmmod,
    /// modprobe the driver under test, run the test): hooks its dma-buf ops
    /// tables, or forgets its hooks, and says so on stderr.
    fn follow_module(&mut self, r: &RawEvent, x: &mut Extras) {
        let name = cstr(&r.exp_name);
        if r.kind == RawKind::ModuleLoad as u16 {
            let before = self.tracer.hooks.len();
            match self.tracer.module_loaded(&name) {
                Ok(tally) => {
                    for h in &self.tracer.hooks[before..] {
                        self.decoder.add_hook(h.clone());
                        x.new_hooks.push(h.clone());
                    }
                    if let Some(s) = tally.summary() {
                        eprintln!("tracer: module {name} loaded: {s}");
                    }
                }
                Err(e) => eprintln!(
                    "tracer: module {name} loaded, but its dma-buf callbacks could not be hooked: {e:#}"
                ),
            }
            // Stacks through the new module's text resolve against a fresh index.
            self.symbolizer = KernelSymbolizer::new();
        } else {
            // Ops tables the module owned may be reused by the next one.
            self.seen_ops.clear();
            match self.tracer.module_freed(&name) {
                Ok(0) => {}
                Ok(n) => eprintln!("tracer: module {name} unloaded: its {n} hook(s) are gone"),
                Err(e) => eprintln!("tracer: module {name} unloaded: {e:#}"),
            }
            self.symbolizer = KernelSymbolizer::new();
        }
    }

    /// One line of `key=value` figures a long run is watched by (the `stats` control command
    /// of `tracer record`): what the process holds and how full the kernel side's bounded
    /// maps are. A map that cannot be read says `unreadable` rather than a made-up 0.
    pub fn stats_line(&self) -> String {
        let t = &self.tracer;
        let slots = match t.thread_slots() {
            Ok(f) => format!(
                "thread_slots={} thread_slots_kernel={} thread_slots_gone={} thread_slots_exited={}",
                f.live, f.kernel, f.gone, f.exited
            ),
            Err(_) => "thread_slots=unreadable".into(),
        };
        let novelty = t.novelty_counts();
        let sites = t
            .site_entries()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "unreadable".into());
        format!(
            "events={} lost={} untracked={} lost_returns={} summarised={} already_dropped={} chains_seen={} kept_full={} calls_dropped={} call_keys={} stacks={} failed_stacks={} {slots} thread_slots_max={} sites={sites} hooks={} rss_kib={}",
            self.processed,
            self.lost_per_cpu().iter().sum::<u64>(),
            t.stateless_calls(),
            t.lost_returns(),
            novelty.summarised,
            novelty.already_dropped,
            novelty.chains_seen,
            novelty.kept_full,
            novelty.calls_dropped,
            novelty.call_keys,
            self.stacks.len(),
            self.failed_stacks.values().sum::<u64>(),
            tracer_common::THREAD_SLOTS,
            t.attached_count(),
            rss_kib().map(|k| k.to_string()).unwrap_or_else(|| "unreadable".into()),
        )
    }

    pub fn lost_per_cpu(&self) -> Vec<u64> {
        self.tracer.lost_per_cpu()
    }

    /// Prints, at the end of a run, what the kernel side could not deliver:
    /// events lost to a full ring buffer, and calls of threads it had no
    /// state for. Silent when both are zero.
    pub fn warn_kernel_losses(&self, lost: &[u64]) {
        let lost_total: u64 = lost.iter().sum();
        if lost_total > 0 {
            eprintln!("tracer: {lost_total} events lost in the kernel (ring buffer full, per cpu {lost:?}): raise --ring-mib");
        }
        let stateless = self.tracer.stateless_calls();
        if stateless > 0 {
            eprintln!(
                "tracer: {stateless} hooked calls were not tracked: their threads found all four of \
                 their kernel-side slots (of {}) taken by other live threads; findings may be missing",
                tracer_common::THREAD_SLOTS
            );
        }
        let lost_returns = self.tracer.lost_returns();
        if lost_returns > 0 {
            eprintln!(
                "tracer: the kernel ran no return probe for {lost_returns} hooked call(s) (more threads \
                 inside hooked functions at once than it has kretprobe instances for): their calls \
                 were closed at the caller's next return; findings inside them may be missing"
            );
        }
        for line in [
            novelty_line(&self.tracer.novelty_counts()),
            skipped_runs_line(&self.tracer.skipped_runs()),
            failed_stacks_line(&self.failed_stacks),
        ]
        .into_iter()
        .flatten()
        {
            eprintln!("tracer: {line}");
        }
        if self.skipped_sites > 0 {
            eprintln!(
                "tracer: {} held lock(s) came without their acquisition stack: their threads were past \
                 their first {} un-nested locks and none had been needed, so call sites were no longer \
                 read (docs/probes.md; --lone-sites reads every one)",
                self.skipped_sites,
                tracer_common::LONE_SITE_BUDGET
            );
        }
    }
}

/// What the kernel's novelty filter left unsent, said at exit so that a run's event count is
/// read right. Silent when it summarised nothing.
fn novelty_line(n: &crate::probes::loader::NoveltyCounts) -> Option<String> {
    if n.summarised == 0 && n.kept_full == 0 && n.already_dropped == 0 && n.calls_dropped == 0 {
        return None;
    }
    let full = if n.kept_full > 0 {
        format!(
            "; {} repeat(s) were sent anyway: their threads held more than {} kept locks",
            n.kept_full,
            tracer_common::KEPT_PER_THREAD
        )
    } else {
        String::new()
    };
    // The call part only where the call filter ran (it is off by default before 6.2).
    let calls = if n.calls_dropped > 0 || n.call_keys > 0 {
        format!(
            ", and {} dma-buf call(s) and callback(s) repeated a judgement already made (same \
             call site, buffer and held state; {} judged once)",
            n.calls_dropped, n.call_keys
        )
    } else {
        String::new()
    };
    Some(format!(
        "{} nested lock acquisition(s) and {} -EALREADY return(s) repeated a transaction \
         already sent ({} lock chain outcome(s) sent once){calls}; none of them were sent (the \
         novelty filter, docs/probes.md; the report counts the calls per function; --novelty \
         off or --all-events sends every one){full}",
        n.summarised, n.already_dropped, n.chains_seen
    ))
}

/// Runs of the tracer's programs the kernel skipped (a program preempted on a CPU is not
/// run again there until it finishes), and what that means for the findings.
fn skipped_runs_line(skipped: &[(String, u64)]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let total: u64 = skipped.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = skipped.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let function_hooks: u64 = skipped
        .iter()
        .filter(|(p, _)| crate::probes::loader::is_function_hook_program(p))
        .map(|(_, n)| n)
        .sum();
    let consequence = if function_hooks > 0 {
        format!(
            "{function_hooks} of them function hooks: a lost unlock or return leaves a \
             lock or call looking open, and findings about it may be false (--hooks \
             kprobes avoids this)"
        )
    } else {
        "all of them tracepoints: those events went unseen (findings may be missing), \
         no lock or call was left looking open"
            .to_string()
    };
    Some(format!(
        "the kernel skipped {total} run(s) of the tracer's programs ({}): a program \
         preempted on a CPU is not run again there until it finishes, so those calls were \
         not seen; {consequence} (docs/probes.md, \"Preemptible kernels\")",
        list.join(", ")
    ))
}

/// Stack walks the kernel refused, by errno, and what stands in for them.
fn failed_stacks_line(failed: &std::collections::BTreeMap<i64, u64>) -> Option<String> {
    if failed.is_empty() {
        return None;
    }
    let total: u64 = failed.values().sum();
    let by: Vec<String> = failed
        .iter()
        .map(|(errno, n)| {
            let why = match errno {
                &EEXIST => "the stack map's bucket held another stack",
                14 => "a frame could not be read",
                12 => "the stack map was full",
                _ => "another error",
            };
            format!("{n} with errno {errno} ({why})")
        })
        .collect();
    Some(format!(
        "{total} event(s) came without a stack because the kernel's stack walk \
         failed: {}; a function hook's event then carries its call site as a one-frame \
         stack where the bucket was taken, otherwise its findings are located by the \
         hooked function or callback",
        by.join(", ")
    ))
}

/// Moves every queued record to `out`; returns the number of short records.
fn drain_ring(ring: &mut RingBuf<MapData>, out: &mut Vec<RawEvent>) -> u64 {
    let mut short = 0;
    while let Some(item) = ring.next() {
        match RawEvent::from_bytes(&item) {
            Some(r) => out.push(r),
            None => short += 1,
        }
    }
    short
}

/// This process's resident set (`VmRSS` of `/proc/self/status`, in KiB there).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::novelty_line;
    use crate::probes::loader::NoveltyCounts;

    #[test]
    fn the_novelty_line_says_what_was_left_out_and_only_then() {
        assert_eq!(novelty_line(&NoveltyCounts::default()), None);
        let l = novelty_line(&NoveltyCounts {
            summarised: 424,
            chains_seen: 58,
            kept_full: 0,
            already_dropped: 37_707,
            calls_dropped: 0,
            call_keys: 0,
        })
        .unwrap();
        assert!(
            l.starts_with("424 nested lock acquisition(s) and 37707 -EALREADY return(s)"),
            "{l}"
        );
        assert!(l.contains("--novelty off or --all-events"), "{l}");
        // No call filter ran: no word of calls.
        assert!(!l.contains("dma-buf call"), "{l}");
        assert!(!l.contains("sent anyway"), "{l}");
        let l = novelty_line(&NoveltyCounts {
            kept_full: 3,
            ..Default::default()
        })
        .unwrap();
        assert!(l.contains("3 repeat(s) were sent anyway"), "{l}");
        // Calls alone are said too.
        let l = novelty_line(&NoveltyCounts {
            calls_dropped: 80_000,
            call_keys: 6,
            ..Default::default()
        })
        .unwrap();
        assert!(
            l.contains("and 80000 dma-buf call(s) and callback(s) repeated"),
            "{l}"
        );
    }
}
