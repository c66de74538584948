//! The analysis engine (pure: typed events in, findings out).
//!
//! - `rules`: the dma-buf locking convention per kernel era, as data.
//! - `identity`: lock instances (address + generation) and classes.
//! - `state`: per-task held locks, ww backoff windows, API/callback frames.
//! - `graph`: the class lock-order graph (primed with dma_resv_lockdep()'s order)
//!   and the instance-level ordering for context-less reservation nesting.
//! - `kinds`: each finding kind's description (data).
//! - `config`: what the engine is told about the kernel and the severities.
//! - `checks`: one module per finding kind.
//! - `store`: deduplication of findings.
//! - `engine`: wires events to state and checks.

pub mod checks;
pub mod config;
pub mod engine;
pub mod finding;
pub mod graph;
pub mod identity;
pub mod kinds;
pub mod rules;
pub mod state;
pub mod store;
pub mod ww_homes;

#[cfg(test)]
pub(crate) mod tests;

pub use config::EngineConfig;
pub use engine::{Engine, HeldLockView, Stats};
pub use finding::{
    BufferRef, CallbackRef, Chain, ChainLink, Finding, FindingKind, LockRef, Severity, TaskRef,
};
pub use rules::{Convention, Era};

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic hasher for the engine's maps (keys are
/// kernel addresses, pids and small ids; no untrusted-key DoS concern since
/// the input is our own kernel probes' output). The final mix spreads the
/// entropy of aligned addresses, whose low bits are all zero, into the low
/// bits the table indexes with.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.hash;
        let h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 29)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Interned strings (driver symbols, exporter names): the hot path stores
/// u32 ids instead of allocating a String per callback event.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FastMap<String, u32>,
    names: Vec<String>,
}

/// Interned strings past this many are folded into one id: a misbehaving
/// stream (random names) must not grow memory without bound.
const MAX_INTERNED: usize = 1 << 16;

impl Interner {
    pub fn new() -> Self {
        let mut i = Interner::default();
        i.intern("");
        i.intern("(too many names)");
        i
    }

    #[inline]
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        if self.names.len() >= MAX_INTERNED {
            return 1;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
