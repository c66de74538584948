//! Suppressions (`--allow FILE`): known findings a CI job accepts for now,
//! each with the reason it is accepted, so an allowed finding is a decision
//! someone wrote down rather than a silenced alarm.
//!
//! ```toml
//! [[allow]]
//! kind = "exporter-relock"          # a finding kind id (optional)
//! symbol = "radeon_*"               # glob over location, callback, function, stack symbols (optional)
//! exporter = "radeon"               # glob over the buffer's exporter name (optional)
//! reason = "fixed by ..., not in this kernel yet"   # required, non-empty
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::analysis::{Finding, FindingKind};
use crate::events::StackTable;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    allow: Vec<toml::Spanned<EntryToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryToml {
    kind: Option<String>,
    symbol: Option<String>,
    exporter: Option<String>,
    reason: Option<String>,
}

/// One suppression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Option<FindingKind>,
    pub symbol: Option<String>,
    pub exporter: Option<String>,
    pub reason: String,
    /// 1-based line of the `[[allow]]` entry, for messages.
    pub line: usize,
}

impl Entry {
    /// `kind = "...", symbol = "..."`: how the entry reads in the file.
    pub fn describe(&self) -> String {
        describe(
            self.kind.map(|k| k.id()),
            self.symbol.as_deref(),
            self.exporter.as_deref(),
        )
    }
}

fn describe(kind: Option<&str>, symbol: Option<&str>, exporter: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(k) = kind {
        parts.push(format!("kind = {k:?}"));
    }
    if let Some(s) = symbol {
        parts.push(format!("symbol = {s:?}"));
    }
    if let Some(e) = exporter {
        parts.push(format!("exporter = {e:?}"));
    }
    if parts.is_empty() {
        "empty".into()
    } else {
        parts.join(", ")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl AllowList {
    /// Every error is one line (CI logs show the first line of a failure),
    /// naming the file, the line and the entry.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let p = path.display();
        let file: FileToml = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let at = e
                    .span()
                    .map(|s| format!(":{}", line_of(text, s.start)))
                    .unwrap_or_default();
                bail!("--allow {p}{at}: {}", e.message().replace('\n', " "));
            }
        };
        let mut entries = Vec::new();
        for (i, sp) in file.allow.into_iter().enumerate() {
            let line = line_of(text, sp.span().start);
            let e = sp.into_inner();
            let what = describe(
                e.kind.as_deref(),
                e.symbol.as_deref(),
                e.exporter.as_deref(),
            );
            let n = i + 1;
            let reason = e.reason.as_deref().map(str::trim).unwrap_or_default();
            if reason.is_empty() {
                bail!("--allow {p}:{line}: [[allow]] entry {n} ({what}) has no reason: every suppression needs a non-empty `reason`");
            }
            if e.kind.is_none() && e.symbol.is_none() && e.exporter.is_none() {
                bail!("--allow {p}:{line}: [[allow]] entry {n} names no kind, symbol or exporter: it would allow every finding");
            }
            let kind = match e.kind.as_deref() {
                None => None,
                Some(k) => Some(
                    *FindingKind::ALL
                        .iter()
                        .find(|f| f.id() == k)
                        .with_context(|| {
                            let ids: Vec<&str> = FindingKind::ALL.iter().map(|f| f.id()).collect();
                            format!(
                                "--allow {p}:{line}: [[allow]] entry {n}: unknown kind `{k}` (known: {})",
                                ids.join(", ")
                            )
                        })?,
                ),
            };
            for (field, v) in [("symbol", &e.symbol), ("exporter", &e.exporter)] {
                if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                    bail!("--allow {p}:{line}: [[allow]] entry {n}: `{field}` is empty");
                }
            }
            entries.push(Entry {
                kind,
                symbol: e.symbol,
                exporter: e.exporter,
                reason: reason.to_string(),
                line,
            });
        }
        Ok(AllowList {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The index of the first entry that allows `f`.
    pub fn matches(&self, f: &Finding, stacks: Option<&StackTable>) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| entry_matches(e, f, stacks))
    }
}

/// The symbols a `symbol` glob is tried against: where the engine placed the
/// finding, the callback and API function involved, and every resolved
/// frame of the stacks the finding carries.
pub fn finding_symbols<'a>(f: &'a Finding, stacks: Option<&'a StackTable>) -> Vec<&'a str> {
    let mut v: Vec<&str> = vec![f.location.as_str()];
    if let Some(cb) = &f.callback {
        v.push(&cb.symbol);
    }
    if let Some(func) = &f.function {
        v.push(func);
    }
    if let Some(t) = stacks {
        let ids = f
            .stack
            .into_iter()
            .chain(f.lock.as_ref().and_then(|l| l.stack))
            .chain(f.other_stacks.iter().copied());
        for id in ids {
            for fr in t.get(id).unwrap_or_default() {
                if let Some(s) = &fr.symbol {
                    v.push(s);
                }
            }
        }
    }
    v
}

fn entry_matches(e: &Entry, f: &Finding, stacks: Option<&StackTable>) -> bool {
    if e.kind.is_some_and(|k| k != f.id) {
        return false;
    }
    if let Some(pat) = &e.exporter {
        match &f.buffer {
            Some(b) if glob(pat, &b.exp_name) => {}
            _ => return false,
        }
    }
    if let Some(pat) = &e.symbol {
        if !finding_symbols(f, stacks).iter().any(|s| glob(pat, s)) {
            return false;
        }
    }
    true
}

/// Shell-style glob over a whole string: `*` any run, `?` one character,
/// everything else literal.
pub fn glob(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much of the text it has taken so far:
    // on a mismatch, let it take one more character (linear backtracking).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("radeon_*", "radeon_gem_prime_pin"));
        assert!(!glob("radeon_*", "amdgpu_bo_reserve"));
        assert!(glob("*_pin", "tsc_relock_pin"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*relock*pin", "tsc_relock_the_pin"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn entries_need_reasons() {
        let p = Path::new("allow.toml");
        let ok = AllowList::parse(
            "[[allow]]\nkind = \"exporter-relock\"\nsymbol = \"radeon_*\"\nreason = \"known, fixed upstream\"\n",
            p,
        )
        .unwrap();
        assert_eq!(ok.entries[0].kind, Some(FindingKind::ExporterRelock));
        assert_eq!(ok.entries[0].line, 1);
        for (text, want) in [
            ("[[allow]]\nkind = \"exporter-relock\"\n", "has no reason"),
            (
                "[[allow]]\nkind = \"exporter-relock\"\nreason = \"  \"\n",
                "has no reason",
            ),
            ("[[allow]]\nreason = \"x\"\n", "names no kind"),
            (
                "[[allow]]\nkind = \"nope\"\nreason = \"x\"\n",
                "unknown kind `nope`",
            ),
            (
                "[[allow]]\nkind = \"exporter-relock\"\nreasn = \"x\"\n",
                "allow.toml:",
            ),
            ("[[allow]\n", "allow.toml:1"),
        ] {
            let e = format!("{:#}", AllowList::parse(text, p).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = AllowList::parse(
            "[[allow]]\nkind = \"recursive-lock\"\nreason = \"a\"\n\n[[allow]]\nsymbol = \"x\"\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("allow.toml:5: [[allow]] entry 2 (symbol = \"x\")"),
            "{e}"
        );
    }
}
