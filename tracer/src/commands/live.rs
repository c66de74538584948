//! `tracer live` (and `tracer` piped): each new finding printed as it is found, a
//! summary at the end.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use tracer_core::{analysis::Engine, events::StackTable, replay, report};

use super::EXIT_FINDINGS;
use crate::{
    cli::LiveCmd,
    session::{Consumer, Session, Stop},
};

/// The engine, printing each finding as the engine reports it.
struct Printer<W: Write> {
    engine: Engine,
    json: bool,
    out: W,
}

impl<W: Write> Consumer for Printer<W> {
    fn stack(&mut self, id: u32, frames: Vec<tracer_core::events::Frame>) {
        self.engine.stacks_mut().insert(id, frames);
    }

    fn event(&mut self, ev: &tracer_core::events::Event) -> Result<()> {
        for f in self.engine.feed(ev) {
            if self.json {
                writeln!(self.out, "{}", report::json::finding_line(&f))?;
            } else {
                write!(
                    self.out,
                    "{}",
                    report::text::finding(&f, self.engine.stacks())
                )?;
            }
        }
        Ok(())
    }
}

pub async fn live(args: LiveCmd) -> Result<ExitCode> {
    let opts = args
        .live
        .session(args.duration, args.record.clone(), true)?;
    let mut s = Session::attach(Stop::install()?, &opts)?;
    let meta = &s.source.meta;
    eprintln!(
        "tracer: kernel {} follows the {} dma-buf convention",
        meta.kernel_release,
        replay::convention_of(meta).era.range()
    );
    s.begin()?;
    eprintln!("tracer: tracing (Ctrl-C to stop)");
    let mut sink = Printer {
        engine: replay::engine_for(&s.source.meta, StackTable::new()),
        json: args.json,
        out: std::io::stdout(),
    };
    let mut stop = false;
    while !stop {
        tokio::select! {
            r = s.source.wait() => r?,
            _ = s.stop.requested() => stop = true,
        }
        s.source.pump(stop, Some(&mut sink))?;
        sink.out.flush()?;
    }
    let end = s.finish()?;
    if !args.json {
        write!(
            sink.out,
            "{}",
            report::text::summary(sink.engine.findings())
        )?;
    }
    end.warn_losses(true);
    Ok(if sink.engine.findings().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}
