//! `tracer record`: the event stream to a file, and with `--segments` cut into named
//! recordings through a control FIFO (the lab runs every scenario of a boot this way).

use std::{path::Path, process::ExitCode, time::Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::{
    cli::RecordArgs,
    session::{Session, Stop},
};

/// Control FIFO commands for segmented recording.
enum Control {
    Start(String),
    Stop,
    /// Answered once every event the kernel queued before the command was
    /// read has been processed: a script that loaded a module can wait until
    /// its callbacks are hooked.
    Sync,
    /// Answered `stats key=value ...` (memory, map fill, events, losses): what a long run
    /// is watched by (`cargo xtask lab --soak`).
    Stats,
}

fn parse_control(line: &str) -> Result<Control, String> {
    let line = line.trim();
    match line.split_once(' ') {
        Some(("start", name)) if valid_segment_name(name.trim()) => {
            Ok(Control::Start(name.trim().to_string()))
        }
        Some(("start", name)) => Err(format!(
            "bad segment name `{name}` (letters, digits, - _ . only)"
        )),
        None if line == "stop" => Ok(Control::Stop),
        None if line == "sync" => Ok(Control::Sync),
        None if line == "stats" => Ok(Control::Stats),
        _ => Err(format!(
            "unknown command `{line}` (expected `start NAME`, `stop`, `sync` or `stats`)"
        )),
    }
}

fn valid_segment_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn make_fifo(path: &std::path::Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).context("FIFO path")?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("creating FIFO {}", path.display()));
    }
    Ok(())
}

pub async fn record(args: RecordArgs) -> Result<ExitCode> {
    let opts = args
        .live
        .session(args.duration, args.output.clone(), true)?;
    // Installed first and kept for the whole run (session::stop).
    let stop = Stop::install()?;
    // Control FIFOs exist before the (slow) attach so a script can open them.
    let mut control = None;
    let mut ack = None;
    if let (Some(ctl), Some(ackp), Some(dir)) = (&args.control, &args.ack, &args.segments) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        make_fifo(ctl)?;
        make_fifo(ackp)?;
        // Read-write opens never block and never see EOF when a writer leaves.
        let rx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(ctl)
            .with_context(|| format!("opening {}", ctl.display()))?;
        let tx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(ackp)
            .with_context(|| format!("opening {}", ackp.display()))?;
        control = Some(tokio::io::BufReader::new(rx).lines());
        ack = Some(tx);
    }
    let mut s = Session::attach(stop, &opts)?;
    s.begin()?;
    if let Some(a) = ack.as_mut() {
        a.write_all(b"ready\n")
            .await
            .context("writing the ack FIFO")?;
    }
    match &args.output {
        Some(p) => eprintln!("tracer: recording to {} (Ctrl-C to stop)", p.display()),
        None => eprintln!("tracer: recording segments (Ctrl-C to stop)"),
    }
    let started = Instant::now();
    let mut stop = false;
    while !stop {
        let mut cmd = None;
        tokio::select! {
            r = s.source.wait() => r?,
            _ = s.stop.requested() => stop = true,
            l = async { control.as_mut().unwrap().next_line().await }, if control.is_some() => {
                cmd = Some(l.context("reading the control FIFO")?.unwrap_or_default());
            }
        }
        // At a stop or a command, everything the kernel queued before it belongs before it.
        s.source.pump(stop || cmd.is_some(), None)?;
        if let Some(line) = cmd {
            let dir = args.segments.as_deref().expect("control requires segments");
            let reply = control_reply(&mut s, dir, &line)?;
            if let Some(a) = ack.as_mut() {
                a.write_all(format!("{reply}\n").as_bytes())
                    .await
                    .context("writing the ack FIFO")?;
            }
        }
    }
    let stacks = s.source.live.stacks.len();
    // Without a whole-run recording (segments only), the events taken from the ring.
    let processed = s.source.live.processed;
    let end = s.finish()?;
    let lost_total: u64 = end.lost.iter().sum();
    eprintln!(
        "tracer: {} events in {:.1}s, {stacks} stacks, {lost_total} lost{}",
        end.recorded.unwrap_or(processed),
        started.elapsed().as_secs_f64(),
        if lost_total > 0 {
            " (ring buffer full: raise --ring-mib)"
        } else {
            ""
        }
    );
    // Lost events are in the line above; this adds untracked threads' calls.
    end.warn_losses(false);
    Ok(ExitCode::SUCCESS)
}

/// Carries out one control command; the line to acknowledge it with.
fn control_reply(s: &mut Session, dir: &Path, line: &str) -> Result<String> {
    Ok(match parse_control(line) {
        Err(e) => format!("error: {e}"),
        Ok(Control::Start(name)) => {
            if let Some((old, _)) = s.source.close_segment()? {
                eprintln!("tracer: segment {old} closed by the start of {name}");
            }
            s.source
                .open_segment(&name, &dir.join(format!("{name}.rec")))?;
            format!("started {name}")
        }
        Ok(Control::Stop) => match s.source.close_segment()? {
            Some((name, n)) => format!("stopped {name} {n}"),
            None => "error: no segment started".into(),
        },
        Ok(Control::Sync) => "synced".into(),
        Ok(Control::Stats) => format!("stats {}", s.source.live.stats_line()),
    })
}
