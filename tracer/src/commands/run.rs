//! `tracer run -- CMD`: a workload traced from its start to its exit, judged by the CI
//! gate (tracer_core::gate), reported with its verdict.

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::time::Instant as Deadline;
use tracer_core::{
    analysis::Engine,
    events::StackTable,
    gate::{judge, missing_hooks, Outcome, Workload, WorkloadEnd, EXIT_FAILURE},
    replay,
};

use super::analyze::{emit, load_allow};
use crate::{
    cli::RunArgs,
    session::{self, Session, Stop},
};

/// How long a workload gets between SIGTERM and SIGKILL at `--timeout` or
/// Ctrl-C: test runners (igt_runner) write their results on SIGTERM.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

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
    // Everything that can be wrong with the options fails before anything is
    // attached or started.
    let allow = load_allow(&args.gate)?;
    let opts = args.live.session(None, args.record.clone(), true)?;
    let mut s = Session::attach(Stop::install()?, &opts)?;
    let missing = missing_hooks(&s.tracer().status);
    if args.require_hooks && !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(h, _)| h.as_str()).collect();
        eprintln!(
            "tracer: --require-hooks: {} hook(s) could not be attached, workload not started: {}",
            names.len(),
            names.join(", ")
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let mut engine = replay::engine_for(&s.source.meta, StackTable::new());
    s.begin()?;
    let cmdline = command_line(&args.command);
    let started = Instant::now();
    let mut child = spawn(&args.command, &cmdline)?;
    let pgid = child.id();
    session::crash::workload(pgid);
    eprintln!("tracer: tracing `{cmdline}` (pid {})", pgid.unwrap_or(0));
    let traced = trace_until_exit(&mut s, &mut engine, &mut child, args.timeout).await;
    session::crash::workload(None);
    let (end, stopped) = traced?;
    let elapsed = started.elapsed();
    // Whatever the workload left behind in its group does not outlive the run.
    if stopped {
        signal_group(pgid, libc::SIGKILL);
    }
    let fin = s.finish()?;
    fin.warn_losses(true);
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
            end,
            elapsed,
        }),
        allow,
        subject: format!("run: {cmdline}"),
    };
    emit(&engine, &o, &args.gate, args.json)
}

/// Traces until the workload exits, stopping it at `timeout` or on SIGINT/SIGTERM
/// (SIGTERM to its group, SIGKILL `KILL_GRACE` later). Returns how it ended and whether
/// the tracer stopped it.
async fn trace_until_exit(
    s: &mut Session,
    engine: &mut Engine,
    child: &mut tokio::process::Child,
    timeout: Option<Duration>,
) -> Result<(WorkloadEnd, bool)> {
    let pgid = child.id();
    let far = || Deadline::now() + Duration::from_secs(365 * 24 * 3600);
    let timeout_at = timeout.map(|d| Deadline::now() + d).unwrap_or_else(far);
    let mut kill_at = far();
    let mut end: Option<WorkloadEnd> = None;
    let mut stopping: Option<WorkloadEnd> = None;
    while end.is_none() {
        tokio::select! {
            r = s.source.wait() => r?,
            st = child.wait() => {
                let st = st.context("waiting for the workload")?;
                end = Some(match (&stopping, st.code(), st.signal()) {
                    (Some(why), _, _) => why.clone(),
                    (None, Some(c), _) => WorkloadEnd::Exited(c),
                    (None, None, Some(s)) => WorkloadEnd::Signaled(s),
                    (None, None, None) => WorkloadEnd::Exited(-1),
                });
            }
            _ = tokio::time::sleep_until(timeout_at), if stopping.is_none() => {
                let d = timeout.unwrap_or_default();
                eprintln!("tracer: --timeout {}: stopping the workload", humantime::format_duration(d));
                stopping = Some(WorkloadEnd::TimedOut(d));
                signal_group(pgid, libc::SIGTERM);
                kill_at = Deadline::now() + KILL_GRACE;
            }
            _ = tokio::time::sleep_until(kill_at) => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = far();
            }
            _ = s.stop.requested() => {
                stopping.get_or_insert(WorkloadEnd::Interrupted);
                signal_group(pgid, libc::SIGTERM);
                kill_at = kill_at.min(Deadline::now() + KILL_GRACE);
            }
        }
        // What the kernel queued before the exit belongs to this run.
        s.source.pump(end.is_some(), Some(engine))?;
    }
    let stopped = stopping.is_some();
    Ok((end.unwrap_or(WorkloadEnd::Interrupted), stopped))
}

/// The workload in its own process group, so the timeout reaches the processes it starts
/// too (test runners fork one process per test); killed if the tracer goes first.
fn spawn(command: &[OsString], cmdline: &str) -> Result<tokio::process::Child> {
    tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the workload `{cmdline}`"))
}
