//! The modules of `src/` are layered: no import cycle between top-level
//! modules, nor between the files of one module directory. This test reads
//! the sources (comments and `#[cfg(test)] mod tests` left out), finds every
//! `crate::…` and `super::…` path, and fails with the cycle and the lines
//! that make it. Run it alone with `cargo test --test layering`.
//!
//! A path through a re-export counts as a use of the file that defines the
//! item (`crate::supervisor::Shutdown` is a use of the file `Shutdown` lives
//! in), and a module nested deeper counts as the first-level child it is in.
//! A module's facade file (`src/server.rs` for `src/server/`) is its
//! directory's root: it declares and re-exports its children and may define
//! what they share (`supervisor.rs` holds the `Supervisor` actor its
//! children report to); edges between a facade and its own children are not
//! counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The tree to check: `src/`, or `PSVC_LAYERING_SRC` (to check another
/// checkout, e.g. an older commit's `src/`).
fn src_dir() -> PathBuf {
    std::env::var_os("PSVC_LAYERING_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// An edge and where it comes from.
type Edges = BTreeMap<(String, String), String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `a::b`; `src/a.rs` → `a`; `src/lib.rs` → `crate`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] {
        "crate".into()
    } else {
        parts.join("::")
    }
}

/// The source without comments and without a trailing test module.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            // A `//` inside a string literal is rare in this code base; a
            // line with a quote before it is kept whole.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push((i + 1, code.to_owned()));
    }
    out
}

/// Identifiers after `prefix` on `line` (`prefix::a`, `prefix::{a, B}`).
fn names_after(line: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let after = &rest[name.len()..];
            // `crate::a::b`: keep `a::b` to find the file module.
            let full = match after.strip_prefix("::") {
                Some(more) => {
                    let second: String = more
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    format!("{name}::{second}")
                }
                None => name,
            };
            if !full.is_empty() {
                names.push(full);
            }
        }
    }
    names
}

struct Crate {
    modules: BTreeSet<String>,
    /// Re-exports of each module file (the root's as `crate`): `Name` → the
    /// module it comes from, so `crate::supervisor::Shutdown` is seen as a
    /// use of the file that defines `Shutdown`, not of the facade.
    aliases: BTreeMap<String, BTreeMap<String, String>>,
}

impl Crate {
    /// The module a `crate::` path names.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut parts = path.split("::");
        let first = parts.next()?;
        let first = self
            .alias("crate", first)
            .unwrap_or_else(|| first.to_owned());
        if !self.modules.contains(&first) {
            return None;
        }
        match parts.next() {
            Some(second) if !second.is_empty() => Some(self.within(&first, second)),
            _ => Some(first),
        }
    }

    /// The module `name`, used as `module::name`, comes from.
    fn within(&self, module: &str, name: &str) -> String {
        let nested = format!("{module}::{name}");
        if self.modules.contains(&nested) {
            return nested;
        }
        self.alias(module, name)
            .filter(|m| self.modules.contains(m))
            .unwrap_or_else(|| module.to_owned())
    }

    /// Where `module` re-exports `name` from (following re-exports).
    fn alias(&self, module: &str, name: &str) -> Option<String> {
        let mut target = self.aliases.get(module)?.get(name)?.clone();
        for _ in 0..8 {
            let Some((m, n)) = target.rsplit_once("::") else {
                break;
            };
            match self.aliases.get(m).and_then(|a| a.get(n)) {
                Some(next) if *next != target => target = next.clone(),
                _ => break,
            }
        }
        Some(target)
    }
}

/// The `pub use` statements of a module file (`pub use a::{b, C}`,
/// `pub use a::b::C`, `pub use a as b`, over several lines too), as
/// `Name` → module path relative to the crate (`module` is the file's own
/// path, `crate` for the root).
fn aliases(module: &str, text: &str) -> BTreeMap<String, String> {
    let code: String = code_lines(text)
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join(" ");
    let mut map = BTreeMap::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let absolute = |path: &str| -> String {
            let path = path.trim();
            if let Some(p) = path.strip_prefix("crate::") {
                p.to_owned()
            } else if let Some(p) = path.strip_prefix("super::") {
                let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
                if parent.is_empty() {
                    p.to_owned()
                } else {
                    format!("{parent}::{p}")
                }
            } else if module == "crate" {
                path.to_owned()
            } else {
                format!("{module}::{path}")
            }
        };
        if let Some((path, alias)) = rest.split_once(" as ") {
            map.insert(alias.trim().to_owned(), absolute(path));
            continue;
        }
        let (path, group) = match rest.split_once("::{") {
            Some((p, g)) => (p, g.trim_end_matches('}').to_owned()),
            None => match rest.rsplit_once("::") {
                Some((p, name)) => (p, name.to_owned()),
                None => continue,
            },
        };
        let base = absolute(path);
        for name in group.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.split(" as ").last().unwrap_or(name).trim();
            let target = if name.chars().next().is_some_and(char::is_lowercase) {
                format!("{base}::{name}")
            } else {
                base.clone()
            };
            map.insert(name.to_owned(), target);
        }
    }
    map
}

fn edges(src: &Path) -> (Crate, Edges) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let aliases = files
        .iter()
        .map(|f| {
            let module = module_of(src, f);
            let text = std::fs::read_to_string(f).unwrap();
            let map = aliases(&module, &text);
            (module, map)
        })
        .collect();
    let krate = Crate { modules, aliases };
    let mut edges = Edges::new();
    for file in &files {
        let from = module_of(src, file);
        if from == "crate" {
            continue;
        }
        let parent = from.rsplit_once("::").map(|(p, _)| p.to_owned());
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            let mut targets = Vec::new();
            for path in names_after(&line, "crate::") {
                targets.extend(krate.resolve(&path));
            }
            if let Some(parent) = &parent {
                for name in names_after(&line, "super::") {
                    let first = name.split("::").next().unwrap_or_default();
                    targets.push(krate.within(parent, first));
                }
            }
            for to in targets {
                let facade_to_child = to.starts_with(&format!("{from}::"));
                if to != from && !facade_to_child {
                    edges
                        .entry((from.clone(), to))
                        .or_insert_with(|| format!("{}:{n}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    (krate, edges)
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeSet<(String, String)>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit(s: &mut State<'_>, v: &str) {
        s.index.insert(v.to_owned(), s.next);
        s.low.insert(v.to_owned(), s.next);
        s.next += 1;
        s.stack.push(v.to_owned());
        s.on_stack.insert(v.to_owned());
        let next: Vec<String> = s
            .edges
            .iter()
            .filter(|(a, _)| a == v)
            .map(|(_, b)| b.clone())
            .collect();
        for w in next {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.to_owned(), low);
            } else if s.on_stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.to_owned(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// The cycles among the groups `group` maps modules to, with evidence.
fn report(edges: &Edges, group: impl Fn(&str) -> Option<String>, what: &str) -> Vec<String> {
    let mut nodes = BTreeSet::new();
    let mut grouped = BTreeSet::new();
    let mut why: BTreeMap<(String, String), &String> = BTreeMap::new();
    for ((from, to), line) in edges {
        let (Some(a), Some(b)) = (group(from), group(to)) else {
            continue;
        };
        if a != b {
            nodes.insert(a.clone());
            nodes.insert(b.clone());
            why.entry((a.clone(), b.clone())).or_insert(line);
            grouped.insert((a, b));
        }
    }
    cycles(&nodes, &grouped)
        .into_iter()
        .map(|component| {
            let inside: Vec<String> = grouped
                .iter()
                .filter(|(a, b)| component.contains(a) && component.contains(b))
                .map(|e| format!("    {} -> {}   ({})", e.0, e.1, why[e]))
                .collect();
            format!("{what} cycle {component:?}:\n{}", inside.join("\n"))
        })
        .collect()
}

#[test]
fn modules_have_no_import_cycles() {
    let (krate, edges) = edges(&src_dir());
    assert!(
        edges.len() > 20,
        "the scan found too few dependencies to be trusted: {edges:?}"
    );
    let mut problems = report(
        &edges,
        |m| Some(m.split("::").next().unwrap_or(m).to_owned()),
        "top-level",
    );
    let dirs: BTreeSet<String> = krate
        .modules
        .iter()
        .filter_map(|m| m.rsplit_once("::").map(|(p, _)| p.to_owned()))
        .collect();
    for dir in dirs {
        let prefix = format!("{dir}::");
        // A module nested deeper counts as the first-level child it is in.
        problems.extend(report(
            &edges,
            |m| {
                let rest = m.strip_prefix(&prefix)?;
                Some(format!(
                    "{prefix}{}",
                    rest.split("::").next().unwrap_or(rest)
                ))
            },
            &format!("inside {dir}/:"),
        ));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    let nodes: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a")]
        .map(|(x, y)| (x.to_owned(), y.to_owned()))
        .into();
    assert_eq!(cycles(&nodes, &edges), vec![vec!["a", "b", "c"]]);
    let acyclic: BTreeSet<(String, String)> = [("a", "b"), ("b", "c")]
        .map(|(x, y)| (x.to_owned(), y.to_owned()))
        .into();
    assert!(cycles(&nodes, &acyclic).is_empty());
    assert_eq!(
        names_after("use crate::server::{Dispatch, Inbound};", "crate::"),
        vec!["server::"]
    );
}

#[test]
fn the_layers_point_down() {
    // Upward dependencies the layout forbids (design.md §1).
    let (_, edges) = edges(&src_dir());
    let forbidden = [
        (
            "wire",
            ["net", "server", "client", "messaging", "service"].as_slice(),
        ),
        ("net", &["server", "client", "messaging", "service"]),
        ("server", &["client", "messaging", "service"]),
        ("client", &["server", "messaging", "service"]),
        ("messaging", &["service"]),
    ];
    let mut wrong = Vec::new();
    for ((from, to), line) in &edges {
        let (a, b) = (
            from.split("::").next().unwrap_or(from),
            to.split("::").next().unwrap_or(to),
        );
        if forbidden
            .iter()
            .any(|(low, high)| *low == a && high.contains(&b))
        {
            wrong.push(format!("{from} -> {to}   ({line})"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
