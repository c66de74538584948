//! `cargo xtask layers`: the module import graph of the tracer's crates, checked against
//! the layering docs/architecture.md draws.
//!
//! Every `crate::`, `super::`, `self::` and child-module path in non-test code is an
//! import edge between modules (test modules and `#[test]` functions may reach anywhere).
//! Three rules:
//! - Layers: each top-level module has a rank (the tables below); a module imports only
//!   modules of a lower rank. A module missing from its table is an error, so the table
//!   and the code cannot drift apart.
//! - No circle between the files of a crate (finer than the layers: inside `analysis`,
//!   the checks and the engine).
//! - The core stays pure: `tracer-core` depends on no eBPF, runtime or terminal crate, and
//!   its non-test code names no file-system, process, network or environment API.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use syn::visit::Visit;

/// One crate's layers: (top-level module, rank). Lower ranks are imported by higher.
pub struct Layers {
    pub crate_dir: &'static str,
    pub ranks: &'static [(&'static str, u32)],
}

/// tracer-core: kernel knowledge at the bottom, renderings at the top.
pub const CORE: Layers = Layers {
    crate_dir: "tracer-core",
    ranks: &[
        ("kernel", 0),
        ("events", 1),
        ("analysis", 2),
        ("replay", 3),
        ("gate", 3),
        ("report", 4),
    ],
};

/// tracer (the app): the kernel side at the bottom, the command shells at the top.
pub const APP: Layers = Layers {
    crate_dir: "tracer",
    ranks: &[
        ("probes", 0),
        ("symbolize", 1),
        ("session", 2),
        ("cli", 3),
        ("tui", 4),
        ("commands", 5),
    ],
};

/// Dependencies the core must never have.
const IMPURE_CRATES: &[&str] = &[
    "aya", "aya-log", "aya-obj", "tokio", "libc", "blazesym", "ratatui", "btf-rs",
];
/// Paths the core's non-test code must never name.
const IMPURE_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "tokio",
    "aya",
    "libc",
];

/// A source file: its module path (`["analysis", "checks"]`) and text.
pub struct Source {
    pub module: Vec<String>,
    pub text: String,
    pub path: PathBuf,
}

/// The module of a file under `src/`: `lib.rs`/`main.rs` are the root, `a/mod.rs` is `a`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

pub fn read_crate(root: &Path, crate_dir: &str) -> Result<Vec<Source>> {
    let src = root.join(crate_dir).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&src).unwrap_or(&p).to_path_buf();
                out.push(Source {
                    module: module_of(&rel),
                    text: std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?,
                    path: p,
                });
            }
        }
    }
    out.sort_by(|a, b| a.module.cmp(&b.module));
    Ok(out)
}

/// Whether an item is test-only: `#[cfg(test)]` or `#[test]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

/// Every path a file's non-test code names, with the module it is named in.
#[derive(Default)]
struct Collector {
    /// The file's module plus the inline modules being visited.
    here: Vec<String>,
    paths: Vec<(Vec<String>, Vec<String>)>,
    /// Inside a `pub use`: its leaves are forwardings, not imports.
    in_reexport: bool,
    /// `pub use` leaves: (module, name it is known by, path it forwards to).
    reexports: Vec<(Vec<String>, String, Vec<String>)>,
    /// `pub use x::*`: (module, path of the glob).
    globs: Vec<(Vec<String>, Vec<String>)>,
    /// Items a module defines (for names forwarded by a glob).
    defined: Vec<(Vec<String>, String)>,
}

impl Collector {
    fn new(here: &[String]) -> Self {
        Self {
            here: here.to_vec(),
            ..Default::default()
        }
    }

    fn add(&mut self, segs: Vec<String>) {
        self.paths.push((self.here.clone(), segs));
    }

    fn leaf(&mut self, segs: Vec<String>, alias: String) {
        if self.in_reexport {
            self.reexports.push((self.here.clone(), alias, segs));
        } else {
            self.add(segs);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, t: &syn::UseTree) {
        match t {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut v = prefix.clone();
                if n.ident != "self" {
                    v.push(n.ident.to_string());
                }
                let alias = v.last().cloned().unwrap_or_default();
                self.leaf(v, alias);
            }
            syn::UseTree::Rename(r) => {
                let mut v = prefix.clone();
                if r.ident != "self" {
                    v.push(r.ident.to_string());
                }
                self.leaf(v, r.rename.to_string());
            }
            syn::UseTree::Glob(_) if self.in_reexport => {
                self.globs.push((self.here.clone(), prefix.clone()))
            }
            syn::UseTree::Glob(_) => self.add(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test(&m.attrs) {
            return;
        }
        self.here.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.here.pop();
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_test(&u.attrs) {
            self.in_reexport = matches!(u.vis, syn::Visibility::Public(_));
            self.use_tree(&mut Vec::new(), &u.tree);
            self.in_reexport = false;
        }
    }

    fn visit_item(&mut self, i: &'ast syn::Item) {
        let ident = match i {
            syn::Item::Struct(x) => Some(&x.ident),
            syn::Item::Enum(x) => Some(&x.ident),
            syn::Item::Fn(x) => Some(&x.sig.ident),
            syn::Item::Const(x) => Some(&x.ident),
            syn::Item::Static(x) => Some(&x.ident),
            syn::Item::Type(x) => Some(&x.ident),
            syn::Item::Trait(x) => Some(&x.ident),
            syn::Item::Mod(x) => Some(&x.ident),
            _ => None,
        };
        if let Some(id) = ident {
            self.defined.push((self.here.clone(), id.to_string()));
        }
        syn::visit::visit_item(self, i);
    }

    // `pub(super)` names a module, but imports nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.add(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// `segs` named in module `here` as an absolute path inside the crate, if it points into
/// the crate at all.
fn absolute(
    here: &[String],
    segs: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let first = segs.first()?;
    let (mut base, rest): (Vec<String>, &[String]) = match first.as_str() {
        "crate" => (vec![], &segs[1..]),
        "self" => (here.to_vec(), &segs[1..]),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => {
            // A child module named without `self::` (2018 paths).
            let mut child = here.to_vec();
            child.push(first.clone());
            if !modules.contains(&child) {
                return None;
            }
            (here.to_vec(), segs)
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// What the crate's modules forward and define.
struct Index {
    modules: BTreeSet<Vec<String>>,
    /// (module, name) → absolute path forwarded to (None: outside the crate).
    reexports: BTreeMap<(Vec<String>, String), Option<Vec<String>>>,
    /// module → modules it forwards everything of.
    globs: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    defined: BTreeSet<(Vec<String>, String)>,
}

impl Index {
    /// The module that defines what `abs` names, following `pub use` forwardings; None
    /// when it leads out of the crate.
    fn locate(&self, abs: &[String], depth: u32) -> Option<Vec<String>> {
        let mut n = abs.len();
        while n > 0 && !self.modules.contains(&abs[..n]) {
            n -= 1;
        }
        let m = abs[..n].to_vec();
        let Some(name) = abs.get(n) else {
            return Some(m);
        };
        if depth > 8 || self.defined.contains(&(m.clone(), name.clone())) {
            return Some(m);
        }
        if let Some(target) = self.reexports.get(&(m.clone(), name.clone())) {
            let mut t = target.clone()?;
            t.extend(abs[n + 1..].iter().cloned());
            return self.locate(&t, depth + 1);
        }
        for g in self.globs.get(&m).into_iter().flatten() {
            let forwards = self.defined.contains(&(g.clone(), name.clone()))
                || self.reexports.contains_key(&(g.clone(), name.clone()));
            if forwards {
                let mut t = g.clone();
                t.extend(abs[n..].iter().cloned());
                return self.locate(&t, depth + 1);
            }
        }
        Some(m)
    }
}

/// Module → modules it imports (file modules only; self-edges dropped). A name used
/// through a `pub use` counts as an import of the module that defines it; the forwarding
/// itself is no import.
pub fn import_graph(sources: &[Source]) -> Result<BTreeMap<Vec<String>, BTreeSet<Vec<String>>>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut index = Index {
        modules: modules.clone(),
        reexports: BTreeMap::new(),
        globs: BTreeMap::new(),
        defined: BTreeSet::new(),
    };
    let mut collected = Vec::new();
    for s in sources {
        let file =
            syn::parse_file(&s.text).with_context(|| format!("parsing {}", s.path.display()))?;
        let mut c = Collector::new(&s.module);
        c.visit_file(&file);
        for (here, alias, segs) in &c.reexports {
            let target = absolute(here, segs, &modules);
            index
                .reexports
                .insert((here.clone(), alias.clone()), target);
        }
        for (here, segs) in &c.globs {
            if let Some(t) = absolute(here, segs, &modules) {
                index.globs.entry(here.clone()).or_default().push(t);
            }
        }
        index.defined.extend(c.defined.iter().cloned());
        collected.push((s.module.clone(), c.paths));
    }
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, paths) in collected {
        let edges = graph.entry(module.clone()).or_default();
        for (here, segs) in &paths {
            let Some(abs) = absolute(here, segs, &modules) else {
                continue;
            };
            let Some(to) = index.locate(&abs, 0) else {
                continue;
            };
            if to != module && !to.is_empty() {
                edges.insert(to);
            }
        }
    }
    Ok(graph)
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Layer violations: one line each.
pub fn layer_violations(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    layers: &Layers,
) -> Vec<String> {
    let rank = |top: &str| {
        layers
            .ranks
            .iter()
            .find(|(m, _)| *m == top)
            .map(|(_, r)| *r)
    };
    let mut out = Vec::new();
    for (from, tos) in graph {
        let Some(ftop) = from.first() else { continue };
        let Some(fr) = rank(ftop) else {
            out.push(format!(
                "{}: module `{ftop}` has no layer (add it to xtask/src/layers.rs and docs/architecture.md)",
                layers.crate_dir
            ));
            continue;
        };
        for to in tos {
            let Some(ttop) = to.first() else { continue };
            if ttop == ftop {
                continue;
            }
            match rank(ttop) {
                Some(tr) if tr < fr => {}
                Some(tr) => out.push(format!(
                    "{}: `{}` (layer {fr}) imports `{}` (layer {tr}): a module imports only lower layers",
                    layers.crate_dir,
                    name(from),
                    name(to)
                )),
                None => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every circle between file modules, each as `a -> b -> a`.
pub fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    // Tarjan's strongly connected components; a component of two or more is a circle.
    struct T<'g> {
        g: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        on: BTreeSet<&'g Vec<String>>,
        stack: Vec<&'g Vec<String>>,
        n: usize,
        sccs: Vec<Vec<&'g Vec<String>>>,
    }
    impl<'g> T<'g> {
        fn visit(&mut self, v: &'g Vec<String>) {
            self.index.insert(v, self.n);
            self.low.insert(v, self.n);
            self.n += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.g.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.sccs.push(scc);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: vec![],
        n: 0,
        sccs: vec![],
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.sccs
        .into_iter()
        .map(|mut scc| {
            scc.sort();
            let names: Vec<String> = scc.iter().map(|m| name(m)).collect();
            format!("circle between {}", names.join(", "))
        })
        .collect()
}

/// The core's purity: its manifest and its non-test code.
fn impurities(root: &Path, sources: &[Source]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let manifest = std::fs::read_to_string(root.join("tracer-core/Cargo.toml"))?;
    let doc: toml::Table = manifest.parse().context("parsing tracer-core/Cargo.toml")?;
    for section in ["dependencies", "build-dependencies"] {
        if let Some(deps) = doc.get(section).and_then(|d| d.as_table()) {
            for d in deps.keys().filter(|d| IMPURE_CRATES.contains(&d.as_str())) {
                out.push(format!(
                    "tracer-core depends on `{d}`: the core has no eBPF, runtime or terminal"
                ));
            }
        }
    }
    out.extend(code_impurities(sources)?);
    out.sort();
    out.dedup();
    Ok(out)
}

/// Paths to I/O the core's non-test code names.
fn code_impurities(sources: &[Source]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in sources {
        let file = syn::parse_file(&s.text)?;
        let mut c = Collector::new(&s.module);
        c.visit_file(&file);
        for (_, segs) in &c.paths {
            let p = segs.join("::");
            if let Some(bad) = IMPURE_PATHS
                .iter()
                .find(|b| p == **b || p.starts_with(&format!("{b}::")))
            {
                out.push(format!(
                    "tracer-core: {} names `{p}` ({bad}): the core does no I/O",
                    s.path.display()
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Longest a function in the app crate may be without saying why.
pub const MAX_FN_LINES: usize = 80;

/// Functions longer than `MAX_FN_LINES` with no `// Long:` comment (inside them or in the
/// three lines above) giving the reason; test code excepted. (path, name, lines)
pub fn long_functions(sources: &[Source]) -> Result<Vec<(PathBuf, String, usize)>> {
    struct Fns<'a> {
        lines: Vec<&'a str>,
        out: Vec<(String, usize)>,
    }
    impl Fns<'_> {
        fn check(&mut self, name: &syn::Ident, span: proc_macro2::Span) {
            let (a, b) = (span.start().line, span.end().line);
            let n = b + 1 - a;
            let from = a.saturating_sub(4);
            let said = self.lines[from..b.min(self.lines.len())]
                .iter()
                .any(|l| l.trim_start().starts_with("// Long:"));
            if n > MAX_FN_LINES && !said {
                self.out.push((name.to_string(), n));
            }
        }
    }
    impl<'ast> Visit<'ast> for Fns<'_> {
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            if !is_test(&m.attrs) {
                syn::visit::visit_item_mod(self, m);
            }
        }
        fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
            if !is_test(&f.attrs) {
                use syn::spanned::Spanned;
                self.check(&f.sig.ident, f.span());
                syn::visit::visit_item_fn(self, f);
            }
        }
        fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
            if !is_test(&f.attrs) {
                use syn::spanned::Spanned;
                self.check(&f.sig.ident, f.span());
                syn::visit::visit_impl_item_fn(self, f);
            }
        }
    }
    let mut out = Vec::new();
    for s in sources {
        let file = syn::parse_file(&s.text)?;
        let mut v = Fns {
            lines: s.text.lines().collect(),
            out: vec![],
        };
        v.visit_file(&file);
        out.extend(v.out.into_iter().map(|(n, l)| (s.path.clone(), n, l)));
    }
    Ok(out)
}

/// docs/architecture.md's layer tables (`| RANK | `module` | ...`) against `layers`.
fn doc_drift(doc: &str, layers: &Layers) -> Vec<String> {
    // The section whose heading's first word is the crate's directory.
    let section = doc
        .split("\n### ")
        .skip(1)
        .find(|s| s.split_whitespace().next() == Some(layers.crate_dir))
        .unwrap_or("");
    let rows: Vec<(u32, String)> = section
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let rank = cells.next()?.parse().ok()?;
            let module = cells.next()?.trim_matches('`').to_string();
            Some((rank, module))
        })
        .collect();
    let mut out = Vec::new();
    for (m, r) in layers.ranks {
        if !rows.iter().any(|(dr, dm)| dm == m && dr == r) {
            out.push(format!(
                "docs/architecture.md: {}'s table lacks `| {r} | `{m}` |` (the layer xtask/src/layers.rs gives it)",
                layers.crate_dir
            ));
        }
    }
    for (r, m) in &rows {
        if !layers.ranks.iter().any(|(lm, _)| lm == m) {
            out.push(format!(
                "docs/architecture.md: {}'s table lists `{m}` (layer {r}), which xtask/src/layers.rs does not",
                layers.crate_dir
            ));
        }
    }
    out
}

/// Runs every check over the workspace; prints each crate's module count and edges.
pub fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let doc = std::fs::read_to_string(root.join("docs/architecture.md"))
        .context("reading docs/architecture.md")?;
    for layers in [&CORE, &APP] {
        problems.extend(doc_drift(&doc, layers));
        let sources = read_crate(root, layers.crate_dir)?;
        let g = import_graph(&sources)?;
        let edges: usize = g.values().map(|v| v.len()).sum();
        println!(
            "layers: {}: {} modules, {edges} imports between them",
            layers.crate_dir,
            g.len()
        );
        problems.extend(layer_violations(&g, layers));
        problems.extend(
            cycles(&g)
                .into_iter()
                .map(|c| format!("{}: {c}", layers.crate_dir)),
        );
        if layers.crate_dir == "tracer-core" {
            problems.extend(impurities(root, &sources)?);
        } else {
            for (path, name, n) in long_functions(&sources)? {
                problems.push(format!(
                    "{}: fn {name} is {n} lines (over {MAX_FN_LINES}): split it, or say why in a `// Long:` comment",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
        }
    }
    for p in &problems {
        eprintln!("layers: {p}");
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} layering problem(s)",
        problems.len()
    );
    println!("layers: no upward import, no circle, the core is pure");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(path: &str, text: &str) -> Source {
        Source {
            module: module_of(Path::new(path)),
            text: text.into(),
            path: path.into(),
        }
    }

    const TWO: Layers = Layers {
        crate_dir: "t",
        ranks: &[("low", 0), ("high", 1)],
    };

    #[test]
    fn modules_are_named_by_their_files() {
        assert_eq!(module_of(Path::new("lib.rs")), Vec::<String>::new());
        assert_eq!(module_of(Path::new("a/mod.rs")), ["a"]);
        assert_eq!(module_of(Path::new("a/b.rs")), ["a", "b"]);
    }

    #[test]
    fn an_upward_import_and_a_circle_are_found() {
        let s = vec![
            src("lib.rs", "pub mod low; pub mod high;"),
            src(
                "low/mod.rs",
                "pub mod x; pub mod y; use crate::high::Thing;",
            ),
            src("low/x.rs", "use super::y::Y; pub struct X;"),
            src("low/y.rs", "pub struct Y(crate::low::x::X);"),
            src("high.rs", "use crate::low::{x::X, y};"),
        ];
        let g = import_graph(&s).unwrap();
        let v = layer_violations(&g, &TWO);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("`low` (layer 0) imports `high` (layer 1)"),
            "{v:?}"
        );
        let c = cycles(&g);
        assert_eq!(c, ["circle between low::x, low::y"]);
    }

    #[test]
    fn test_code_and_downward_imports_are_fine() {
        let s = vec![
            src("lib.rs", "pub mod low; pub mod high;"),
            src(
                "low.rs",
                "pub struct L;\n#[cfg(test)]\nmod tests { use crate::high::H; }\n#[test]\nfn t() { crate::high::h(); }",
            ),
            src("high.rs", "use super::low::L; pub struct H; pub fn h() {}"),
        ];
        let g = import_graph(&s).unwrap();
        assert!(layer_violations(&g, &TWO).is_empty());
        assert!(cycles(&g).is_empty());
    }

    #[test]
    fn a_module_without_a_layer_is_an_error() {
        let s = vec![
            src("lib.rs", "pub mod stray;"),
            src("stray.rs", "use crate::low::L;"),
            src("low.rs", ""),
        ];
        let v = layer_violations(&import_graph(&s).unwrap(), &TWO);
        assert!(
            v.iter().any(|l| l.contains("module `stray` has no layer")),
            "{v:?}"
        );
    }

    #[test]
    fn the_architecture_doc_must_match_the_layers() {
        let doc =
            "# A\n### t\n| layer | module |\n|---|---|\n| 0 | `low` | x |\n| 2 | `gone` | y |\n";
        let v = doc_drift(doc, &TWO);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("lacks `| 1 | `high` |`"), "{v:?}");
        assert!(v[1].contains("lists `gone`"), "{v:?}");
    }

    #[test]
    fn io_in_the_core_is_found() {
        let s = vec![src(
            "replay.rs",
            "pub fn f() { let _ = std::fs::read(\"x\"); }\n#[cfg(test)]\nmod tests { fn g() { std::fs::read(\"y\"); } }",
        )];
        let v = code_impurities(&s).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("names `std::fs::read`"), "{v:?}");
    }

    /// The workspace itself: what CI checks.
    #[test]
    fn the_workspace_is_layered() {
        check(&crate::lab::repo_root()).unwrap();
    }
}
