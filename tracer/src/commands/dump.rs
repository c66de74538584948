//! `tracer dump`: a recording for humans (its kernel, hooks, every event with its
//! stack), and `--resv-links`: which dma-buf calls locked their own buffer's resv.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use tracer_core::{
    events::{Event, StackTable},
    kernel::ProbeState,
    report::events::event_line,
};

use super::EXIT_FINDINGS;
use crate::session::read_recording;

pub fn dump(
    file: &std::path::Path,
    json: bool,
    limit: Option<usize>,
    stacks: bool,
) -> Result<ExitCode> {
    let rec = read_recording(file)?;
    let (events, errors) = rec.events();
    let mut out = std::io::stdout().lock();
    let n = limit.unwrap_or(usize::MAX);
    if json {
        for e in events.iter().take(n) {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        }
    } else {
        let m = &rec.meta;
        writeln!(
            out,
            "recording {} (tracer {}, format {}, kernel {})",
            file.display(),
            m.tracer_version,
            rec.format,
            m.kernel_release
        )?;
        writeln!(out, "convention symbols: {}", m.kernel_symbols.join(", "))?;
        let attached = m
            .probes
            .iter()
            .filter(|p| p.state == ProbeState::Attached)
            .count();
        writeln!(
            out,
            "hooks: {attached} attached of {}; stream: {}",
            m.probes.len(),
            if m.full_stream {
                "full"
            } else {
                "filtered (lock entries only while nested)"
            }
        )?;
        match &rec.summary {
            Some(s) => writeln!(
                out,
                "events: {} in {:.3}s, lost {} (per cpu {:?}), undecodable {}",
                s.events,
                s.duration_ns as f64 / 1e9,
                s.lost_per_cpu.iter().sum::<u64>(),
                s.lost_per_cpu,
                s.decode_errors + errors
            )?,
            None => writeln!(
                out,
                "events: {} (no end marker: the tracer did not stop cleanly)",
                rec.raw.len()
            )?,
        }
        writeln!(out)?;
        let t0 = events.first().map(|e| e.ts_ns).unwrap_or(0);
        for e in events.iter().take(n) {
            writeln!(out, "{}", event_line(e, t0))?;
            if stacks {
                write_stack(&mut out, &rec.stacks, e)?;
            }
        }
    }
    if rec.summary.is_none() {
        eprintln!(
            "tracer: {}: no end marker (recording was cut short); showing what was recorded",
            file.display()
        );
    }
    if let Some(at) = rec.cut_at {
        eprintln!(
            "tracer: {}: its last frame is cut at byte {at} (the tracer was killed while writing it): read up to there",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stack(out: &mut impl Write, stacks: &StackTable, e: &Event) -> Result<()> {
    if let Some(frames) = e.stack.and_then(|id| stacks.get(id)) {
        for f in frames {
            writeln!(out, "        {}", f.display())?;
        }
    }
    Ok(())
}

pub fn resv_links(file: &std::path::Path, json: bool) -> Result<ExitCode> {
    let rec = read_recording(file)?;
    let (events, _) = rec.events();
    let links = tracer_core::events::links::resv_links(&events);
    let mut out = std::io::stdout().lock();
    for l in &links {
        if json {
            serde_json::to_writer(&mut out, l)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{:>7} {:<34} exp={:<20} resv={:#x} {}",
                l.pid,
                l.func.kernel_name(),
                l.exp_name,
                l.resv,
                if l.locked {
                    "locked by the same task during the call"
                } else {
                    "-"
                }
            )?;
        }
    }
    let locked = links.iter().filter(|l| l.locked).count();
    eprintln!("tracer: {} dma-buf calls, {locked} locked their buffer's resv (same address) during the call", links.len());
    Ok(if locked > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}
