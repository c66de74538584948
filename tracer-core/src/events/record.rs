//! The recording format (docs/recording-format.md): everything needed to
//! analyse a run on another machine.
//!
//! ```text
//! file   := magic "DMABUFTR" | format u32 LE | writer | frame*
//! writer := len u8 | the writing tracer's version (UTF-8; from format 2, absent in 1)
//! frame  := tag u8 | len u32 LE | payload[len]
//! tags   := 1 meta (JSON)  2 raw event (RawEvent bytes)  3 stack (JSON)
//!           4 hook (JSON, a callback discovered mid-run)  5 end (JSON summary)
//! ```
//! Raw events are stored as the kernel wrote them, so a recording replays
//! through exactly the decoder the live path uses.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use tracer_common::RawEvent;

use super::{decode::Decoder, model::Event, stacks::Frame, StackTable};
use crate::kernel::{HookInfo, ProbeStatus};

pub const MAGIC: &[u8; 8] = b"DMABUFTR";
/// The format written. Bump on any change of a frame's encoding or of RawEvent's layout;
/// the header up to the writer's version (magic, format, writer) stays as it is from
/// format 2 on, so a tracer can always name the version that wrote a newer file.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this tracer reads (1: no writer field in the header).
pub const FIRST_FORMAT_READ: u32 = 1;
/// Longest writer version accepted in a header.
const MAX_WRITER: usize = 64;

const TAG_META: u8 = 1;
const TAG_EVENT: u8 = 2;
const TAG_STACK: u8 = 3;
const TAG_HOOK: u8 = 4;
const TAG_END: u8 = 5;
/// Largest frame accepted when reading (a corrupt length must not allocate GiBs).
const MAX_FRAME: u32 = 16 << 20;

/// Where the run happened and how the kernel was hooked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub tracer_version: String,
    pub kernel_release: String,
    /// Convention-relevant dma-buf symbols present in the kernel (the rule
    /// table's era is derived from these and the release).
    pub kernel_symbols: Vec<String>,
    /// BTF offsets handed to the programs: (struct.member, offset).
    pub offsets: Vec<(String, u32)>,
    pub hooks: Vec<HookInfo>,
    pub probes: Vec<ProbeStatus>,
    pub mechanisms: Vec<String>,
    /// true: every lock event was sent; false: lock entries only while nested.
    pub full_stream: bool,
    /// Address of `init_mm` (kallsyms): its mmap_lock is a lock class of its
    /// own, apart from user mms'. Absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_mm: Option<u64>,
}

/// Written last; absent if the tracer was killed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub events: u64,
    /// Events the kernel could not queue (ring buffer full), per CPU.
    pub lost_per_cpu: Vec<u64>,
    pub decode_errors: u64,
    pub duration_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct StackRecord {
    id: u32,
    frames: Vec<Frame>,
}

pub struct Writer<W: Write> {
    w: W,
    pub events: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut w: W, meta: &Meta) -> io::Result<Self> {
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let writer = meta.tracer_version.as_bytes();
        let writer = &writer[..writer.len().min(MAX_WRITER)];
        w.write_all(&[writer.len() as u8])?;
        w.write_all(writer)?;
        let mut s = Self { w, events: 0 };
        s.frame(TAG_META, &serde_json::to_vec(meta)?)?;
        Ok(s)
    }

    fn frame(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        self.w.write_all(&[tag])?;
        self.w.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.w.write_all(payload)
    }

    pub fn event(&mut self, r: &RawEvent) -> io::Result<()> {
        // SAFETY: RawEvent is repr(C) plain data with explicit padding fields.
        let bytes = unsafe {
            std::slice::from_raw_parts(r as *const RawEvent as *const u8, RawEvent::SIZE)
        };
        self.events += 1;
        self.frame(TAG_EVENT, bytes)
    }

    pub fn stack(&mut self, id: u32, frames: &[Frame]) -> io::Result<()> {
        let rec = StackRecord {
            id,
            frames: frames.to_vec(),
        };
        self.frame(TAG_STACK, &serde_json::to_vec(&rec)?)
    }

    pub fn hook(&mut self, h: &HookInfo) -> io::Result<()> {
        self.frame(TAG_HOOK, &serde_json::to_vec(h)?)
    }

    pub fn end(mut self, s: &Summary) -> io::Result<W> {
        self.frame(TAG_END, &serde_json::to_vec(s)?)?;
        self.w.flush()?;
        Ok(self.w)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The sink, e.g. to see how much a buffering sink holds.
    pub fn get_ref(&self) -> &W {
        &self.w
    }
}

/// A malformed recording, with the byte offset where reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: not a tracer recording (bad magic at byte 0)")]
    BadMagic { path: String },
    #[error(
        "{path}: made by {}, recording format {found}; this tracer ({}) reads formats \
         {FIRST_FORMAT_READ} to {FORMAT_VERSION}{}",
        writer.as_deref().map_or("an unknown tracer".to_string(), |w| format!("tracer {w}")),
        env!("CARGO_PKG_VERSION"),
        if *found > FORMAT_VERSION { ": read it with a tracer at least as new as the one that made it" } else { "" }
    )]
    Version {
        path: String,
        found: u32,
        /// The writing tracer's version, when the header names it (format 2 on).
        writer: Option<String>,
    },
    #[error("{path}: truncated at byte {offset}: {what}")]
    Truncated {
        path: String,
        offset: u64,
        what: String,
    },
    #[error("{path}: corrupt at byte {offset}: {what}")]
    Corrupt {
        path: String,
        offset: u64,
        what: String,
    },
    /// Not `source`: the message carries the I/O error itself, and a chained source would
    /// say it twice (`x.rec: No such file ...: No such file ...`).
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
}

/// The header's writer version and where the frames start, if it is whole and text.
fn writer_of(bytes: &[u8]) -> Option<(String, usize)> {
    let len = *bytes.get(12)? as usize;
    if len > MAX_WRITER {
        return None;
    }
    let w = bytes.get(13..13 + len)?;
    let w = std::str::from_utf8(w).ok()?;
    w.chars()
        .all(|c| c.is_ascii_graphic())
        .then(|| (w.to_string(), 13 + len))
}

#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// The format it was written in (`FIRST_FORMAT_READ..=FORMAT_VERSION`).
    pub format: u32,
    pub meta: Meta,
    pub raw: Vec<RawEvent>,
    pub stacks: StackTable,
    /// None when the recording has no end marker (tracer killed).
    pub summary: Option<Summary>,
    /// Where a last frame cut short starts (the tracer was killed while writing it): the
    /// recording is read up to there.
    pub cut_at: Option<u64>,
}

impl Recording {
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self, FormatError> {
        let path = path.to_string();
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic { path });
        }
        if bytes.len() < 12 {
            return Err(FormatError::Truncated {
                path,
                offset: bytes.len() as u64,
                what: "no version field".into(),
            });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        // From format 2 on the writer's version follows; a newer format keeps that prefix.
        let writer = (version >= 2).then(|| writer_of(bytes)).flatten();
        if !(FIRST_FORMAT_READ..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::Version {
                path,
                found: version,
                writer: writer.map(|(w, _)| w),
            });
        }
        let mut off = 12usize;
        if version >= 2 {
            match writer {
                Some((_, end)) => off = end,
                None => {
                    return Err(FormatError::Truncated {
                        path,
                        offset: bytes.len().min(12 + 1 + MAX_WRITER) as u64,
                        what: "the header's writer version is cut or not text".into(),
                    })
                }
            }
        }
        let mut rec = Recording {
            format: version,
            ..Default::default()
        };
        let mut have_meta = false;
        while off < bytes.len() {
            if rec.summary.is_some() {
                return Err(FormatError::Corrupt {
                    path,
                    offset: off as u64,
                    what: "data after the end marker".into(),
                });
            }
            if bytes.len() - off < 5 {
                if have_meta {
                    // The writer was stopped inside its last frame (SIGKILL can cut a write
                    // to a file short): everything before it is whole.
                    rec.cut_at = Some(off as u64);
                    break;
                }
                return Err(FormatError::Truncated {
                    path,
                    offset: off as u64,
                    what: "partial frame header".into(),
                });
            }
            let tag = bytes[off];
            let len = u32::from_le_bytes(bytes[off + 1..off + 5].try_into().unwrap());
            if len > MAX_FRAME {
                return Err(FormatError::Corrupt {
                    path,
                    offset: off as u64,
                    what: format!("frame length {len} exceeds {MAX_FRAME}"),
                });
            }
            let start = off + 5;
            let end = start + len as usize;
            // A last frame cut short after the metadata: the run's recording up to it. Only a
            // frame that could be whole (an event of its size; a known tag) counts as cut;
            // anything else is damage.
            let plausible = match tag {
                TAG_EVENT => len as usize == RawEvent::SIZE,
                TAG_STACK | TAG_HOOK | TAG_END => true,
                _ => false,
            };
            if end > bytes.len() && have_meta && plausible {
                rec.cut_at = Some(off as u64);
                break;
            }
            if end > bytes.len() {
                return Err(FormatError::Truncated {
                    path,
                    offset: bytes.len() as u64,
                    what: format!(
                        "frame at byte {off} declares {len} bytes, {} present",
                        bytes.len() - start
                    ),
                });
            }
            let payload = &bytes[start..end];
            let corrupt = |what: String| FormatError::Corrupt {
                path: path.clone(),
                offset: off as u64,
                what,
            };
            if !have_meta && tag != TAG_META {
                return Err(corrupt(format!(
                    "first frame has tag {tag}, expected the meta frame"
                )));
            }
            match tag {
                TAG_META => {
                    if have_meta {
                        return Err(corrupt("second meta frame".into()));
                    }
                    rec.meta = serde_json::from_slice(payload)
                        .map_err(|e| corrupt(format!("meta: {e}")))?;
                    have_meta = true;
                }
                TAG_EVENT => {
                    if payload.len() != RawEvent::SIZE {
                        return Err(corrupt(format!(
                            "event of {} bytes, expected {}",
                            payload.len(),
                            RawEvent::SIZE
                        )));
                    }
                    rec.raw
                        .push(RawEvent::from_bytes(payload).expect("length checked"));
                }
                TAG_STACK => {
                    let s: StackRecord = serde_json::from_slice(payload)
                        .map_err(|e| corrupt(format!("stack: {e}")))?;
                    rec.stacks.insert(s.id, s.frames);
                }
                TAG_HOOK => {
                    let h: HookInfo = serde_json::from_slice(payload)
                        .map_err(|e| corrupt(format!("hook: {e}")))?;
                    rec.meta.hooks.push(h);
                }
                TAG_END => {
                    rec.summary = Some(
                        serde_json::from_slice(payload)
                            .map_err(|e| corrupt(format!("end: {e}")))?,
                    );
                }
                t => return Err(corrupt(format!("unknown frame tag {t}"))),
            }
            off = end;
        }
        if !have_meta {
            return Err(FormatError::Truncated {
                path,
                offset: off as u64,
                what: "no meta frame".into(),
            });
        }
        Ok(rec)
    }

    pub fn decoder(&self) -> Decoder {
        Decoder::new(&self.meta.hooks)
    }

    /// Decoded events, in file order, which is the order the live engine saw them (one
    /// ring buffer, read in order and written in order): every replay feeds this order
    /// (`crate::replay`), so a recording is judged as its run was. Undecodable records
    /// are counted, not fatal.
    pub fn events(&self) -> (Vec<Event>, u64) {
        let d = self.decoder();
        let mut errors = 0;
        let evs = self
            .raw
            .iter()
            .filter_map(|r| d.decode(r).map_err(|_| errors += 1).ok())
            .collect();
        (evs, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode::raw;
    use tracer_common::RawKind;

    fn sample() -> Vec<u8> {
        let meta = Meta {
            kernel_release: "6.12.95-test".into(),
            ..Default::default()
        };
        let mut w = Writer::new(Vec::new(), &meta).unwrap();
        w.event(&raw(RawKind::FenceWaitStart, 0, 7, 10)).unwrap();
        w.stack(
            3,
            &[Frame {
                addr: 0xffffffff81000010,
                symbol: Some("f".into()),
                offset: 0x10,
                module: None,
            }],
        )
        .unwrap();
        w.event(&raw(RawKind::FenceWaitEnd, 0, 7, 20)).unwrap();
        w.end(&Summary {
            events: 2,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let b = sample();
        let r = Recording::parse(&b, "mem").unwrap();
        assert_eq!(r.meta.kernel_release, "6.12.95-test");
        assert_eq!(r.raw.len(), 2);
        assert_eq!(r.raw[1].ts_ns, 20);
        assert_eq!(r.stacks.get(3).unwrap()[0].symbol.as_deref(), Some("f"));
        assert_eq!(r.summary.as_ref().unwrap().events, 2);
        let (evs, errs) = r.events();
        assert_eq!((evs.len(), errs), (2, 0));
    }

    #[test]
    fn every_truncation_is_an_error_with_an_offset() {
        let b = sample();
        // Cutting anywhere strictly inside the file must fail cleanly (the
        // only valid shorter file would end exactly on a frame boundary, and
        // then it lacks the end marker and parses with summary None).
        for cut in 0..b.len() {
            match Recording::parse(&b[..cut], "cut") {
                Ok(r) => assert!(r.summary.is_none(), "cut at {cut} parsed as complete"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains("byte"), "no offset in {msg:?}");
                }
            }
        }
    }

    #[test]
    fn corruption_is_reported() {
        let mut b = sample();
        // Corrupt the tag of the second frame (first event).
        let header = 13 + b[12] as usize;
        let meta_len = u32::from_le_bytes(b[header + 1..header + 5].try_into().unwrap()) as usize;
        let ev_off = header + 5 + meta_len;
        b[ev_off] = 99;
        let e = Recording::parse(&b, "x").unwrap_err().to_string();
        assert!(
            e.contains(&format!("corrupt at byte {ev_off}")) && e.contains("unknown frame tag 99"),
            "{e}"
        );
        // A huge length.
        let mut b = sample();
        b[ev_off + 1..ev_off + 5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Recording::parse(&b, "x")
            .unwrap_err()
            .to_string()
            .contains("exceeds"));
        // Bad magic and version.
        assert!(matches!(
            Recording::parse(b"NOTATRACE\0\0\0\0", "x"),
            Err(FormatError::BadMagic { .. })
        ));
        let mut b = sample();
        b[8] = 9;
        assert!(matches!(
            Recording::parse(&b, "x"),
            Err(FormatError::Version { found: 9, .. })
        ));
    }

    /// A newer tracer's recording: refused, naming the tracer that made it and the
    /// formats this one reads, never misparsed.
    #[test]
    fn a_newer_format_names_its_writer() {
        let meta = Meta {
            tracer_version: "9.4.0".into(),
            ..Default::default()
        };
        let mut b = Writer::new(Vec::new(), &meta)
            .unwrap()
            .end(&Summary::default())
            .unwrap();
        assert_eq!(&b[8..12], &FORMAT_VERSION.to_le_bytes());
        assert_eq!(&b[12..18], b"\x059.4.0");
        b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let e = Recording::parse(&b, "new.rec").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "new.rec: made by tracer 9.4.0, recording format {}; this tracer ({}) reads \
                 formats 1 to {FORMAT_VERSION}: read it with a tracer at least as new as the one \
                 that made it",
                FORMAT_VERSION + 1,
                env!("CARGO_PKG_VERSION")
            )
        );
        // Format 0 (or garbage in the field) is no tracer's.
        b[8..12].copy_from_slice(&0u32.to_le_bytes());
        let e = Recording::parse(&b, "zero.rec").unwrap_err().to_string();
        assert!(
            e.starts_with("zero.rec: made by an unknown tracer, recording format 0;"),
            "{e}"
        );
    }

    /// A tracer killed while writing leaves its last frame cut: the recording reads up to
    /// it, and says where; a cut inside the metadata, or a frame that could never be whole,
    /// is still an error.
    #[test]
    fn a_last_frame_cut_short_reads_up_to_it() {
        let b = sample();
        let full = Recording::parse(&b, "s").unwrap();
        let header = 13 + b[12] as usize;
        let meta_len = u32::from_le_bytes(b[header + 1..header + 5].try_into().unwrap()) as usize;
        let ev_off = header + 5 + meta_len;
        for cut in [ev_off + 3, ev_off + 100] {
            let r = Recording::parse(&b[..cut], "cut").unwrap();
            assert_eq!(r.cut_at, Some(ev_off as u64));
            assert!(r.raw.is_empty() && r.summary.is_none());
        }
        // Cut in the end frame: every event is there.
        let r = Recording::parse(&b[..b.len() - 3], "cut").unwrap();
        assert_eq!(r.raw.len(), full.raw.len());
        assert!(r.cut_at.is_some() && r.summary.is_none());
        // Inside the metadata: an error.
        assert!(Recording::parse(&b[..header + 9], "cut").is_err());
        // An event frame of the wrong size running past the end: damage, not a cut.
        let mut bad = b[..ev_off + 20].to_vec();
        bad[ev_off + 1..ev_off + 5].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Recording::parse(&bad, "bad").is_err());
    }

    /// Format 1 (no writer field; the lab recordings kept as test data) still reads.
    #[test]
    fn format_1_still_reads() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/abba-no-ctx.rec");
        let b = std::fs::read(p).unwrap();
        assert_eq!(&b[8..12], &1u32.to_le_bytes());
        let r = Recording::parse(&b, "abba").unwrap();
        assert_eq!(r.format, 1);
        assert!(!r.raw.is_empty() && r.summary.is_some());
        assert_eq!(
            Recording::parse(&sample(), "s").unwrap().format,
            FORMAT_VERSION
        );
    }
}
