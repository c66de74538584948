//! A recording being written to a file, with the stacks it already holds (a stack is
//! written once per file, before the first event that uses it).
//!
//! The file only ever grows by whole frames: frames are staged in memory and written out
//! between frames (after each batch, and whenever a megabyte is staged). A tracer killed
//! with SIGKILL, or a machine that dies, leaves a recording that reads up to its last
//! complete frame (without an end marker), never one cut inside a frame.

use std::{
    collections::HashSet,
    fs::File,
    io::{self, Write},
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

/// Staged frames written out only when flushed (between frames).
struct FrameAligned {
    file: File,
    staged: Vec<u8>,
}

/// Staged bytes past which a write flushes (at the frame boundary that follows).
const STAGE_LIMIT: usize = 1 << 20;

impl Write for FrameAligned {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.staged.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.staged)?;
        self.staged.clear();
        Ok(())
    }
}

pub struct RecFile {
    path: PathBuf,
    w: Writer<FrameAligned>,
    stacks: HashSet<u32>,
    first_ts: Option<u64>,
    last_ts: u64,
}

impl RecFile {
    pub fn create(path: &Path, meta: &Meta) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = Writer::new(
            FrameAligned {
                file: f,
                staged: Vec::new(),
            },
            meta,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        // The header and metadata on disk at once: the file is a recording from the start.
        w.flush()
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
        if self.w.get_ref().staged.len() >= STAGE_LIMIT {
            self.w.flush().with_context(ctx)?;
        }
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
