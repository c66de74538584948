//! When a live session stops: SIGINT / SIGTERM, or a time limit.
//!
//! The signal streams are installed once, before the (slow) attach, and kept for the
//! whole run: a signal that arrives while hooks are attached or a batch is processed is
//! kept by the stream, never lost between two `select!`s (a lost Ctrl-C once left
//! tracers running; see tests/lifecycle.rs). The time limit is armed when tracing
//! starts, after the attach.

use std::{pin::Pin, time::Duration};

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::Sleep,
};

pub struct Stop {
    int: Signal,
    term: Signal,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Stop {
    pub fn install() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            deadline: None,
        })
    }

    /// Stop `after` from now too (`--duration`); `None`: only on a signal.
    pub fn arm(&mut self, after: Option<Duration>) {
        self.deadline = after.map(|d| Box::pin(tokio::time::sleep(d)));
    }

    /// Resolves at the next SIGINT or SIGTERM, or at the armed time limit.
    pub async fn requested(&mut self) {
        let deadline = async {
            match self.deadline.as_mut() {
                Some(d) => d.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = deadline => {}
        }
    }
}
