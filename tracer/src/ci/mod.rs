//! The CI-facing side: `tracer run -- CMD` traces a workload from its start
//! to its exit and turns the findings into an exit status a job can gate on;
//! the same gate (`--fail-on`, `--allow`, `--junit`, `--sarif`) serves
//! `tracer analyze` on a recording; `tracer graph` draws a recording's
//! lock-order graph.
//!
//! Exit status (both commands): 0 nothing at or above `--fail-on` (findings
//! below it and allowed ones are reported, not failing); 1 findings at or
//! above it; 2 the tracer failed (cannot load, bad options or allow file, the
//! workload could not be started, a required hook missing); 3 (run only) no
//! failing finding but the workload failed: non-zero exit, killed by a
//! signal, or stopped at `--timeout`. Findings win over a failed workload:
//! the tracer's verdict is about locking, the workload's own failures are its
//! test runner's to report.

pub mod allow;

use std::{
    ffi::OsString,
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;

use crate::{
    analysis::{Engine, Finding, Severity},
    cli::LiveArgs,
    commands::{self, EXIT_FAILURE},
    events::{live::Live, record::Recording, StackTable},
    probes::{ProbeState, ProbeStatus},
    report,
};

pub use allow::AllowList;

/// Exit status: no failing finding, but the workload failed or timed out.
pub const EXIT_WORKLOAD: u8 = 3;

/// How long a workload gets between SIGTERM and SIGKILL at `--timeout` or
/// Ctrl-C: test runners (igt_runner) write their results on SIGTERM.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

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

/// What the gate decided for one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// At or above `--fail-on`, not allowed.
    Failing,
    /// Below `--fail-on`: reported, not failing.
    Below,
    /// Allowed by entry `entry` (0-based) of the allow file.
    Suppressed { entry: usize, reason: String },
}

#[derive(Clone, Debug)]
pub struct Judged {
    pub finding: Finding,
    pub status: Status,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    /// The tracer was asked to stop (Ctrl-C, SIGTERM) and stopped the workload.
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct Workload {
    /// The command line as typed (for messages).
    pub command: String,
    pub end: WorkloadEnd,
    pub elapsed: Duration,
}

impl Workload {
    pub fn failed(&self) -> bool {
        self.end != WorkloadEnd::Exited(0)
    }

    /// `exited with status 0 after 0.004 s`, ...
    pub fn describe(&self) -> String {
        let after = format!("after {:.3} s", self.elapsed.as_secs_f64());
        match &self.end {
            WorkloadEnd::Exited(c) => format!("exited with status {c} {after}"),
            WorkloadEnd::Signaled(s) => format!("was killed by signal {s} {after}"),
            WorkloadEnd::TimedOut(d) => format!(
                "timed out after {} and was stopped ({after})",
                humantime::format_duration(*d)
            ),
            WorkloadEnd::Interrupted => {
                format!("was stopped: the tracer was interrupted ({after})")
            }
        }
    }
}

/// Everything the reports need besides the stacks.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub judged: Vec<Judged>,
    pub fail_on: Severity,
    /// Hooks that could not be attached (state FAILED), with the kernel's reason.
    pub hooks_missing: Vec<(String, String)>,
    pub workload: Option<Workload>,
    pub allow: Option<AllowList>,
    /// What was analysed: the recording, or `run: CMD`.
    pub subject: String,
}

impl Outcome {
    pub fn count(&self, want: fn(&Status) -> bool) -> usize {
        self.judged.iter().filter(|j| want(&j.status)).count()
    }

    pub fn failing(&self) -> usize {
        self.count(|s| *s == Status::Failing)
    }

    pub fn suppressed(&self) -> usize {
        self.count(|s| matches!(s, Status::Suppressed { .. }))
    }

    pub fn exit_code(&self) -> u8 {
        if self.failing() > 0 {
            commands::EXIT_FINDINGS
        } else if self.workload.as_ref().is_some_and(Workload::failed) {
            EXIT_WORKLOAD
        } else {
            0
        }
    }

    /// The last line of a report: the verdict and why.
    pub fn verdict_line(&self) -> String {
        let code = self.exit_code();
        let mut s = format!(
            "verdict: {} (exit {code}): {} finding{} at or above {}, {} below, {} suppressed",
            if code == 0 { "pass" } else { "FAIL" },
            self.failing(),
            if self.failing() == 1 { "" } else { "s" },
            self.fail_on.as_str(),
            self.count(|s| *s == Status::Below),
            self.suppressed()
        );
        if let Some(w) = &self.workload {
            s.push_str(&format!("; workload {}", w.describe()));
        }
        if !self.hooks_missing.is_empty() {
            s.push_str(&format!(
                "; {} hook{} unavailable",
                self.hooks_missing.len(),
                if self.hooks_missing.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        s
    }
}

/// Severity threshold and allow list applied to findings, in order.
pub fn judge(
    findings: &[Finding],
    fail_on: Severity,
    allow: Option<&AllowList>,
    stacks: Option<&StackTable>,
) -> Vec<Judged> {
    findings
        .iter()
        .map(|f| {
            let status = match allow.and_then(|a| a.matches(f, stacks).map(|i| (i, a))) {
                Some((entry, a)) => Status::Suppressed {
                    entry,
                    reason: a.entries[entry].reason.clone(),
                },
                None if f.severity >= fail_on => Status::Failing,
                None => Status::Below,
            };
            Judged {
                finding: f.clone(),
                status,
            }
        })
        .collect()
}

fn missing_hooks(probes: &[ProbeStatus]) -> Vec<(String, String)> {
    probes
        .iter()
        .filter(|p| p.state == ProbeState::Failed)
        .map(|p| (p.hook.clone(), p.reason.clone()))
        .collect()
}

fn load_allow(gate: &GateArgs) -> Result<Option<AllowList>> {
    gate.allow.as_deref().map(AllowList::load).transpose()
}

/// The text report: every finding not allowed as a lockdep block, the
/// summary table, the allowed ones in one line each, the verdict.
pub fn text_report(o: &Outcome, stacks: Option<&StackTable>) -> String {
    let active: Vec<Finding> = o
        .judged
        .iter()
        .filter(|j| !matches!(j.status, Status::Suppressed { .. }))
        .map(|j| j.finding.clone())
        .collect();
    let sup: Vec<&Judged> = o
        .judged
        .iter()
        .filter(|j| matches!(j.status, Status::Suppressed { .. }))
        .collect();
    let mut s = if active.is_empty() && !sup.is_empty() {
        "no findings besides the suppressed ones\n".to_string()
    } else {
        report::text::report(&active, stacks)
    };
    if !sup.is_empty() {
        let file = o
            .allow
            .as_ref()
            .map(|a| a.path.display().to_string())
            .unwrap_or_default();
        s.push_str(&format!("\nsuppressed by {file}:\n"));
        for j in sup {
            if let Status::Suppressed { entry, reason } = &j.status {
                let line = o
                    .allow
                    .as_ref()
                    .map(|a| a.entries[*entry].line)
                    .unwrap_or(0);
                s.push_str(&format!(
                    "  [{}] {} at {} (seen {}): allowed at line {line}: {reason}\n",
                    j.finding.severity.as_str(),
                    j.finding.id.id(),
                    j.finding.location,
                    j.finding.count
                ));
            }
        }
    }
    s.push_str(&o.verdict_line());
    s.push('\n');
    s
}

/// `ci` object added to the JSON document.
fn ci_json(o: &Outcome) -> serde_json::Value {
    let suppressed: Vec<serde_json::Value> = o
        .judged
        .iter()
        .filter_map(|j| match &j.status {
            Status::Suppressed { entry, reason } => Some(serde_json::json!({
                "finding": j.finding,
                "allow_line": o.allow.as_ref().map(|a| a.entries[*entry].line),
                "reason": reason,
            })),
            _ => None,
        })
        .collect();
    serde_json::json!({
        "fail_on": o.fail_on.as_str(),
        "exit_code": o.exit_code(),
        "failing": o.failing(),
        "below_threshold": o.count(|s| *s == Status::Below),
        "suppressed": suppressed,
        "hooks_missing": o.hooks_missing.iter().map(|(h, _)| h).collect::<Vec<_>>(),
        "workload": o.workload.as_ref().map(|w| serde_json::json!({
            "command": w.command,
            "exit_status": match w.end { WorkloadEnd::Exited(c) => Some(c), _ => None },
            "signal": match w.end { WorkloadEnd::Signaled(s) => Some(s), _ => None },
            "timed_out": matches!(w.end, WorkloadEnd::TimedOut(_)),
            "interrupted": w.end == WorkloadEnd::Interrupted,
            "elapsed_ns": w.elapsed.as_nanos() as u64,
        })),
    })
}

/// Prints the report, writes the JUnit/SARIF files, returns the exit status.
fn emit(engine: &Engine, o: &Outcome, gate: &GateArgs, json: bool) -> Result<ExitCode> {
    let stacks = engine.stacks();
    let mut out = std::io::stdout().lock();
    if json {
        let active: Vec<Finding> = o
            .judged
            .iter()
            .filter(|j| !matches!(j.status, Status::Suppressed { .. }))
            .map(|j| j.finding.clone())
            .collect();
        let stats = engine.stats();
        let doc = report::json::document(
            &active,
            Some(engine.config().convention),
            Some((engine.graph(), engine.classes())),
            stacks,
            Some(&stats),
        );
        let mut v = serde_json::to_value(&doc)?;
        v["ci"] = ci_json(o);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        eprintln!("tracer: {}", o.verdict_line());
    } else {
        write!(out, "{}", text_report(o, stacks))?;
    }
    out.flush()?;
    for n in engine.stats().notes() {
        eprintln!("tracer: {n}");
    }
    if let Some(a) = &o.allow {
        for (i, e) in a.entries.iter().enumerate() {
            if !o
                .judged
                .iter()
                .any(|j| matches!(j.status, Status::Suppressed { entry, .. } if entry == i))
            {
                eprintln!(
                    "tracer: {}:{}: allow entry ({}) matched no finding",
                    a.path.display(),
                    e.line,
                    e.describe()
                );
            }
        }
    }
    if let Some(p) = &gate.junit {
        std::fs::write(p, report::junit::render(o, stacks))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &gate.sarif {
        std::fs::write(p, report::sarif::render(o, stacks))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::from(o.exit_code()))
}

/// A recording replayed through the engine (with the warnings `analyze` gives).
pub fn replay(file: &Path) -> Result<(Recording, Engine)> {
    let rec = Recording::read(file)?;
    if rec.summary.is_none() {
        eprintln!(
            "tracer: {}: no end marker (recording was cut short); analysing what was recorded",
            file.display()
        );
    }
    let (events, errors) = rec.events();
    if errors > 0 {
        eprintln!("tracer: {errors} undecodable events skipped");
    }
    let mut engine = commands::engine_for(&rec.meta, rec.stacks.clone());
    for e in &events {
        engine.feed(e);
    }
    if let Some(s) = &rec.summary {
        let lost: u64 = s.lost_per_cpu.iter().sum();
        if lost > 0 {
            eprintln!("tracer: the recording lost {lost} events in the kernel (ring buffer full): findings may be missing");
        }
    }
    Ok((rec, engine))
}

/// `tracer analyze FILE` with the gate.
pub fn analyze(file: &Path, json: bool, gate: &GateArgs) -> Result<ExitCode> {
    let allow = load_allow(gate)?;
    let (rec, engine) = replay(file)?;
    let o = Outcome {
        judged: judge(
            engine.findings(),
            gate.fail_on,
            allow.as_ref(),
            engine.stacks(),
        ),
        fail_on: gate.fail_on,
        hooks_missing: missing_hooks(&rec.meta.probes),
        workload: None,
        allow,
        subject: file.display().to_string(),
    };
    emit(&engine, &o, gate, json)
}

/// `tracer graph FILE [--dot] [-o OUT]`.
pub fn graph(args: &GraphArgs) -> Result<ExitCode> {
    let (_, engine) = replay(&args.file)?;
    let edges = report::json::graph_edges(engine.graph(), engine.classes());
    let text = if args.dot {
        report::dot::render(&edges, &args.file.display().to_string())
    } else {
        report::dot::edge_lines(&edges)
    };
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn command_line(cmd: &[OsString]) -> String {
    cmd.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn signal_group(pgid: Option<u32>, sig: i32) {
    if let Some(p) = pgid {
        // SAFETY: kill(2) on a process group we created; no memory involved.
        // A group already gone (ESRCH) is fine.
        unsafe { libc::kill(-(p as i32), sig) };
    }
}

/// `tracer run [options] -- CMD ARGS...`.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    use std::os::unix::process::ExitStatusExt;
    // Everything that can be wrong with the options fails before anything is
    // attached or started.
    let allow = load_allow(&args.gate)?;
    let opts = commands::load_options(&args.live)?;
    let mut stop_signals = crate::stop::StopSignals::install()?;
    let _stats = commands::enable_prog_stats(args.live.prog_stats)?;
    let mut live = Live::start(&opts)?;
    commands::announce(&live.tracer.status, live.startup, live.tracer.is_floor());
    let missing = missing_hooks(&live.tracer.status);
    if args.require_hooks && !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(h, _)| h.as_str()).collect();
        eprintln!(
            "tracer: --require-hooks: {} hook(s) could not be attached, workload not started: {}",
            names.len(),
            names.join(", ")
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let meta = commands::meta_of(&live.tracer, opts.full_stream);
    let mut writer = match &args.record {
        Some(p) => Some(commands::RecFile::create(p, &meta)?),
        None => None,
    };
    let mut engine = Engine::with_stacks(commands::engine_config(&meta), StackTable::new());
    if let Some(p) = &args.live.ready_file {
        std::fs::File::create(p).with_context(|| format!("creating ready file {}", p.display()))?;
    }
    let cmdline = command_line(&args.command);
    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        // Its own process group, so the timeout reaches the processes it
        // starts too (test runners fork one process per test).
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the workload `{cmdline}`"))?;
    let pgid = child.id();
    eprintln!("tracer: tracing `{cmdline}` (pid {})", pgid.unwrap_or(0));
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let timeout_at = args
        .timeout
        .map(|d| tokio::time::Instant::now() + d)
        .unwrap_or_else(far);
    let mut kill_at = far();
    let mut end: Option<WorkloadEnd> = None;
    let mut stopping: Option<WorkloadEnd> = None;
    let mut batch = Vec::with_capacity(1024);
    let mut decode_errors = 0u64;
    let mut exited = false;
    while !exited {
        tokio::select! {
            r = live.next_batch(&mut batch) => r?,
            st = child.wait() => {
                let st = st.context("waiting for the workload")?;
                end = Some(match (&stopping, st.code(), st.signal()) {
                    (Some(why), _, _) => why.clone(),
                    (None, Some(c), _) => WorkloadEnd::Exited(c),
                    (None, None, Some(s)) => WorkloadEnd::Signaled(s),
                    (None, None, None) => WorkloadEnd::Exited(-1),
                });
                exited = true;
            }
            _ = tokio::time::sleep_until(timeout_at), if stopping.is_none() => {
                let d = args.timeout.unwrap_or_default();
                eprintln!("tracer: --timeout {}: stopping the workload", humantime::format_duration(d));
                stopping = Some(WorkloadEnd::TimedOut(d));
                signal_group(pgid, libc::SIGTERM);
                kill_at = tokio::time::Instant::now() + KILL_GRACE;
            }
            _ = tokio::time::sleep_until(kill_at) => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = far();
            }
            _ = stop_signals.recv() => {
                stopping.get_or_insert(WorkloadEnd::Interrupted);
                signal_group(pgid, libc::SIGTERM);
                kill_at = kill_at.min(tokio::time::Instant::now() + KILL_GRACE);
            }
        }
        if exited {
            // What the kernel queued before the exit belongs to this run.
            live.drain(&mut batch);
        }
        for mut r in batch.drain(..) {
            commands::take_record(&mut live, &mut r, writer.as_mut(), engine.stacks_mut())?;
            match live.decoder.decode(&r) {
                Ok(ev) => {
                    engine.feed(&ev);
                }
                Err(_) => decode_errors += 1,
            }
        }
    }
    let elapsed = started.elapsed();
    // Whatever the workload left behind in its group does not outlive the run.
    if stopping.is_some() {
        signal_group(pgid, libc::SIGKILL);
    }
    if args.live.prog_stats {
        commands::print_prog_stats(&live.tracer);
    }
    let lost = live.lost_per_cpu();
    if let Some(w) = writer {
        w.finish(lost.clone(), decode_errors + live.short_records)?;
    }
    live.warn_kernel_losses(&lost);
    let o = Outcome {
        judged: judge(
            engine.findings(),
            args.gate.fail_on,
            allow.as_ref(),
            engine.stacks(),
        ),
        fail_on: args.gate.fail_on,
        hooks_missing: missing,
        workload: Some(Workload {
            command: cmdline.clone(),
            end: end.unwrap_or(WorkloadEnd::Interrupted),
            elapsed,
        }),
        allow,
        subject: format!("run: {cmdline}"),
    };
    emit(&engine, &o, &args.gate, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::FindingKind;

    /// A lab recording (6.12, scenario return-to-user-holding): two error
    /// findings, held-at-return-to-user and lock-order-inversion.
    pub(crate) fn lab() -> (Vec<Finding>, Option<StackTable>) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/return-to-user-holding.rec");
        let (_, e) = replay(&p).unwrap();
        (e.findings().to_vec(), e.stacks().cloned())
    }

    fn mk(judged: Vec<Judged>, workload: Option<Workload>) -> Outcome {
        Outcome {
            judged,
            fail_on: Severity::Error,
            hooks_missing: vec![],
            workload,
            allow: None,
            subject: "t".into(),
        }
    }

    #[test]
    fn threshold_and_allow_decide_the_exit_code() {
        let (fs, st) = lab();
        assert!(fs.iter().any(|f| f.id == FindingKind::HeldAtReturnToUser));
        let o = mk(judge(&fs, Severity::Error, None, st.as_ref()), None);
        assert_eq!(o.exit_code(), 1);
        assert_eq!(o.failing(), fs.len());
        // One by a stack symbol glob, one by kind.
        let allow = AllowList::parse(
            "[[allow]]\nkind = \"held-at-return-to-user\"\nsymbol = \"tsc_return_*\"\nreason = \"scenario\"\n[[allow]]\nkind = \"lock-order-inversion\"\nreason = \"scenario too\"\n",
            Path::new("a.toml"),
        )
        .unwrap();
        let mut o = mk(judge(&fs, Severity::Error, Some(&allow), st.as_ref()), None);
        o.allow = Some(allow);
        assert_eq!(o.failing(), 0);
        assert_eq!(o.suppressed(), 2);
        assert_eq!(o.exit_code(), 0);
        let text = text_report(&o, st.as_ref());
        assert!(text.contains("suppressed by a.toml:"), "{text}");
        assert!(text.contains("allowed at line 5: scenario too"), "{text}");
        assert!(text.ends_with("suppressed\n"), "{text}");
        let failed = Workload {
            command: "w".into(),
            end: WorkloadEnd::Exited(4),
            elapsed: Duration::from_millis(5),
        };
        let o = mk(vec![], Some(failed.clone()));
        assert_eq!(o.exit_code(), EXIT_WORKLOAD);
        assert!(o.verdict_line().contains("workload exited with status 4"));
        // Findings win over the workload's failure.
        let o = mk(judge(&fs, Severity::Error, None, st.as_ref()), Some(failed));
        assert_eq!(o.exit_code(), 1);
    }

    #[test]
    fn below_threshold_is_reported_not_failing() {
        let (mut fs, st) = lab();
        for f in &mut fs {
            f.severity = Severity::Warning;
        }
        let j = judge(&fs, Severity::Error, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Below));
        assert_eq!(mk(j, None).exit_code(), 0);
        let j = judge(&fs, Severity::Warning, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Failing));
        let j = judge(&fs, Severity::Info, None, st.as_ref());
        assert!(j.iter().all(|j| j.status == Status::Failing));
    }
}
