//! A recording being written to a file, with the stacks it already holds (a stack is
//! written once per file, before the first event that uses it).

use std::{
    collections::HashSet,
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tracer_common::RawEvent;
use tracer_core::{
    events::{
        record::{Meta, Summary, Writer},
        StackTable,
    },
    kernel::HookInfo,
};

pub struct RecFile {
    path: PathBuf,
    w: Writer<BufWriter<File>>,
    stacks: HashSet<u32>,
    first_ts: Option<u64>,
    last_ts: u64,
}

impl RecFile {
    pub fn create(path: &Path, meta: &Meta) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let w = Writer::new(BufWriter::new(f), meta)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            w,
            stacks: Default::default(),
            first_ts: None,
            last_ts: 0,
        })
    }

    /// One raw event, after the hooks it brought and its stack if the file lacks it.
    pub fn write(
        &mut self,
        r: &RawEvent,
        new_hooks: &[HookInfo],
        stacks: &StackTable,
    ) -> Result<()> {
        let ctx = || format!("writing {}", self.path.display());
        for h in new_hooks {
            self.w.hook(h).with_context(ctx)?;
        }
        if r.stack_id >= 0 {
            let id = r.stack_id as u32;
            if self.stacks.insert(id) {
                if let Some(frames) = stacks.get(id) {
                    self.w.stack(id, frames).with_context(ctx)?;
                }
            }
        }
        self.w.event(r).with_context(ctx)?;
        self.first_ts.get_or_insert(r.ts_ns);
        self.last_ts = r.ts_ns;
        Ok(())
    }

    /// Everything written so far reaches the file (readable if the tracer dies next).
    pub fn flush(&mut self) -> Result<()> {
        self.w
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// The end marker; returns the number of events written.
    pub fn finish(self, lost: Vec<u64>, decode_errors: u64) -> Result<u64> {
        let events = self.w.events;
        let summary = Summary {
            events,
            lost_per_cpu: lost,
            decode_errors,
            duration_ns: self
                .first_ts
                .map(|f| self.last_ts.saturating_sub(f))
                .unwrap_or(0),
        };
        self.w
            .end(&summary)
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(events)
    }
}
