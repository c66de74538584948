//! When a live run stops: SIGINT / SIGTERM, or a time limit.
//!
//! The signal streams are installed once, before the (slow) attach, and kept
//! for the whole run: a signal that arrives while hooks are attached or a
//! batch is processed is kept by the stream, never lost between two
//! `select!`s (a lost Ctrl-C once left tracers running; see tests/lifecycle.rs).

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    pub fn install() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves at the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Resolves after `limit`, or never.
pub async fn deadline(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
