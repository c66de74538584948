//! Lock identity and lock classes.
//!
//! A lock instance is `(address, generation)`: kernel objects are freed and
//! their addresses reused (test modules get the same dma_resv address buffer
//! after buffer), so an address alone would join unrelated objects into one
//! node and invent orderings. The generation changes at every `dma_resv_fini`.
//!
//! Generations come from one global counter instead of a per-address counter:
//! distinctness is all that matters, and forgetting an address at fini keeps
//! memory proportional to the live objects rather than to every address ever
//! seen.

use serde::{Deserialize, Serialize};

use super::FastMap;

/// One lock instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockId {
    pub addr: u64,
    /// 0 = an address the tracer never saw initialised (not a known resv).
    pub generation: u64,
}

/// A lock class: what lockdep would key its graph on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "class", content = "detail", rename_all = "snake_case")]
pub enum LockClass {
    /// The ww_mutex of a known `struct dma_resv` (lockdep's `reservation_ww_class_mutex`).
    Reservation,
    /// The reservation acquire context (`reservation_ww_class_acquire`): lockdep
    /// models `ww_acquire_init` as taking it, which is why "resv held, then a
    /// new transaction" inverts the primed order.
    ReservationCtx,
    /// A static ww class the kernel defines (`DEFINE_WW_CLASS`), known from
    /// the function that locked it (`ww_homes::HOMES`), e.g. `crtc_ww_class`.
    WwClass(String),
    /// Another ww class, told apart by the acquiring function (the best guess
    /// when neither the object nor the function names the class).
    WwSite(String),
    /// A ww_mutex that is not a known resv and whose acquisition had no resolvable stack.
    WwUnknown,
    /// `mm->mmap_lock` of a user mm (from the `mmap_lock:*` tracepoints): every
    /// mm made by `mm_init` shares lockdep's one class.
    MmapLock,
    /// `init_mm.mmap_lock`: a static lock, its own lockdep class (the kernel's
    /// page-table updates, e.g. `set_memory_wc`, take it under other locks).
    InitMmMmapLock,
    /// A kernel lock seen only through `lock:contention_begin` (keyed by address).
    Other(u64),
}

impl LockClass {
    /// Name as shown in reports (lockdep's names where one exists).
    pub fn name(&self) -> String {
        match self {
            LockClass::Reservation => "reservation_ww_class_mutex".into(),
            LockClass::ReservationCtx => "reservation_ww_class_acquire".into(),
            LockClass::WwClass(s) => format!("{s}_mutex"),
            LockClass::WwSite(s) => format!("ww_mutex@{s}"),
            LockClass::WwUnknown => "ww_mutex (unknown class)".into(),
            LockClass::MmapLock => "&mm->mmap_lock".into(),
            LockClass::InitMmMmapLock => "init_mm.mmap_lock".into(),
            LockClass::Other(a) => format!("lock@{a:#x}"),
        }
    }

    /// Whether this class is a ww_mutex class (hooked lock functions).
    pub fn is_ww(&self) -> bool {
        matches!(
            self,
            LockClass::Reservation
                | LockClass::WwClass(_)
                | LockClass::WwSite(_)
                | LockClass::WwUnknown
        )
    }
}

/// Dense class number (index into `ClassTable`).
pub type ClassId = u32;

pub const RESERVATION: ClassId = 0;
pub const RESERVATION_CTX: ClassId = 1;
pub const MMAP_LOCK: ClassId = 2;
pub const WW_UNKNOWN: ClassId = 3;
pub const INIT_MM_MMAP_LOCK: ClassId = 4;

/// Interns classes so the hot path handles small integers.
#[derive(Debug)]
pub struct ClassTable {
    classes: Vec<LockClass>,
    ids: FastMap<LockClass, ClassId>,
    others: usize,
    max_others: usize,
}

impl ClassTable {
    pub fn new(max_others: usize) -> Self {
        let mut t = ClassTable {
            classes: Vec::new(),
            ids: FastMap::default(),
            others: 0,
            max_others,
        };
        for c in [
            LockClass::Reservation,
            LockClass::ReservationCtx,
            LockClass::MmapLock,
            LockClass::WwUnknown,
            LockClass::InitMmMmapLock,
        ] {
            t.intern(c);
        }
        t
    }

    /// The id of `c`, creating it. `Other` classes are capped (one per contended
    /// kernel lock address would grow without bound): None when over the cap.
    pub fn intern(&mut self, c: LockClass) -> Option<ClassId> {
        if let Some(&id) = self.ids.get(&c) {
            return Some(id);
        }
        if matches!(c, LockClass::Other(_)) {
            if self.others >= self.max_others {
                return None;
            }
            self.others += 1;
        }
        let id = self.classes.len() as ClassId;
        self.classes.push(c.clone());
        self.ids.insert(c, id);
        Some(id)
    }

    pub fn get(&self, id: ClassId) -> &LockClass {
        &self.classes[id as usize]
    }

    pub fn name(&self, id: ClassId) -> String {
        self.get(id).name()
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// The live reservation objects by address.
#[derive(Debug, Default)]
pub struct ObjectTable {
    live: FastMap<u64, u64>,
    next_generation: u64,
}

impl ObjectTable {
    pub fn new() -> Self {
        ObjectTable {
            live: FastMap::default(),
            next_generation: 1,
        }
    }

    fn fresh(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    /// `dma_resv_init`: a new object at `addr`. A live entry there means the
    /// fini was missed (attached mid-flight or lost): it is replaced, which is
    /// the same as an implicit fini.
    pub fn init(&mut self, addr: u64) -> (LockId, Option<LockId>) {
        let g = self.fresh();
        let old = self.live.insert(addr, g).map(|og| LockId {
            addr,
            generation: og,
        });
        (
            LockId {
                addr,
                generation: g,
            },
            old,
        )
    }

    /// A resv address learnt from a dma-buf call or callback (`buf.resv`):
    /// registered if unknown (its init predates the trace).
    pub fn learn(&mut self, addr: u64) -> LockId {
        if let Some(&g) = self.live.get(&addr) {
            return LockId {
                addr,
                generation: g,
            };
        }
        let g = self.fresh();
        self.live.insert(addr, g);
        LockId {
            addr,
            generation: g,
        }
    }

    /// `dma_resv_fini`: the identity that ends, if it was known.
    pub fn fini(&mut self, addr: u64) -> Option<LockId> {
        self.live.remove(&addr).map(|g| LockId {
            addr,
            generation: g,
        })
    }

    /// The live resv at `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: u64) -> Option<LockId> {
        self.live.get(&addr).map(|&g| LockId {
            addr,
            generation: g,
        })
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_address_gets_a_new_identity() {
        let mut t = ObjectTable::new();
        let (a, _) = t.init(0x1000);
        assert_eq!(t.fini(0x1000), Some(a));
        let (b, old) = t.init(0x1000);
        assert_eq!(old, None);
        assert_eq!(a.addr, b.addr);
        assert_ne!(a, b);
        assert!(t.lookup(0x2000).is_none());
        assert_eq!(t.learn(0x1000), b);
    }

    #[test]
    fn other_classes_are_capped() {
        let mut c = ClassTable::new(1);
        assert!(c.intern(LockClass::Other(1)).is_some());
        assert!(c.intern(LockClass::Other(1)).is_some());
        assert!(c.intern(LockClass::Other(2)).is_none());
        assert_eq!(c.intern(LockClass::Reservation), Some(RESERVATION));
        assert_eq!(c.get(MMAP_LOCK), &LockClass::MmapLock);
    }
}
