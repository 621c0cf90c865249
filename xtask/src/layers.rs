//! `cargo xtask layers`: the checker's modules against its layers
//! (ARCHITECTURE.md). Reads every `checker/src` file's `crate::` and
//! `super::` paths (comments aside), resolves each to the file of the
//! module it names, and reports:
//!
//! - every cycle between files (a module that imports one that imports
//!   it, directly or through others): none is allowed;
//! - every import of a higher layer than the importer's own: allowed only
//!   with a comment on the same or the line above that says `upward:` and
//!   why, and at most [`MAX_UPWARD`] of them.
//!
//! Text, not rustc: a path in a string literal would count too (there is
//! none), and a doc link (`[x](crate::y)`) is a comment, so it does not.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The layers from the bottom up: each entry is the top-level modules of
/// one layer (`lib.rs` declares them; `main.rs` is the binary, above all).
pub const LAYERS: &[&[&str]] = &[
    &["exit", "failure", "error"],
    &["sys"],
    &["wire"],
    &["xdp"],
    &["probe"],
    &["engine"],
    &["check"],
    &["config"],
    &["daemon"],
    &["front"],
    // Test-only: drives the real stack and checks over a simulated wire.
    &["sim"],
];

/// Imports of a higher layer, each commented with `upward:`.
pub const MAX_UPWARD: usize = 2;

/// One `crate::` import of a file: the line, and the file it names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Import {
    pub from: String,
    pub to: String,
    pub line: usize,
    /// The line above or the line itself says `upward:`.
    pub justified: bool,
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub imports: usize,
    /// Each a list of files, the first imports the second, ..., the last
    /// the first.
    pub cycles: Vec<Vec<String>>,
    pub upward: Vec<Import>,
}

impl Report {
    /// Whether the layering holds.
    pub fn holds(&self) -> bool {
        self.cycles.is_empty()
            && self.upward.iter().all(|i| i.justified)
            && self.upward.len() <= MAX_UPWARD
    }
}

/// Checks the crate whose sources are in `src` (its `lib.rs` root).
pub fn check(src: &Path) -> Result<Report> {
    let mut files = Vec::new();
    collect(src, src, &mut files)?;
    let known: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    for (module, path) in &files {
        if module == "main" || module.is_empty() {
            continue;
        }
        let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        for import in imports(module, &text, &known) {
            report.imports += 1;
            if layer(&import.to) > layer(&import.from) {
                report.upward.push(import.clone());
            }
            edges.entry(import.from).or_default().insert(import.to);
        }
    }
    report.cycles = cycles(&edges);
    Ok(report)
}

/// Every `.rs` file under `dir` as (module path, file): `a/b.rs` and
/// `a/b/mod.rs` are `a::b`; `lib.rs` is the root (`""`).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let module = if parts == ["lib"] {
                String::new()
            } else {
                parts.join("::")
            };
            out.push((module, path));
        }
    }
    Ok(())
}

/// The layer of a module: its top-level module's place in [`LAYERS`].
fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or_default();
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or(LAYERS.len())
}

/// The imports of `module` (whose source is `text`) of other files.
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> Vec<Import> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = BTreeSet::new();
    // A `use` statement may span lines (`use crate::{a, b::{c, d}};`).
    let mut statement = String::new();
    let mut start = 0;
    for (i, raw) in lines.iter().enumerate() {
        let code = match raw.find("//") {
            Some(at) => &raw[..at],
            None => raw,
        };
        let trimmed = code.trim_start();
        if statement.is_empty() && !trimmed.starts_with("use ") && !trimmed.starts_with("pub use ")
        {
            // Paths used inline: `crate::a::b::f(...)`.
            for path in inline_paths(code) {
                add(&mut found, module, parent, &path, raw, i, &lines, known);
            }
            continue;
        }
        if statement.is_empty() {
            start = i;
        }
        statement.push_str(code);
        statement.push(' ');
        if code.contains(';') {
            // `use super::*` inside a file's own `mod tests` names the file.
            let nested = raw.starts_with(char::is_whitespace);
            for path in expand(&statement) {
                if nested && path.first().is_some_and(|p| p == "super") {
                    continue;
                }
                add(
                    &mut found,
                    module,
                    parent,
                    &path.join("::"),
                    lines[start],
                    start,
                    &lines,
                    known,
                );
            }
            statement.clear();
        }
    }
    found.into_iter().collect()
}

#[allow(clippy::too_many_arguments)]
fn add(
    found: &mut BTreeSet<Import>,
    module: &str,
    parent: &str,
    path: &str,
    raw: &str,
    line: usize,
    lines: &[&str],
    known: &BTreeSet<String>,
) {
    let absolute = if let Some(rest) = path.strip_prefix("crate::") {
        rest.to_string()
    } else if let Some(rest) = path.strip_prefix("super::") {
        if parent.is_empty() {
            rest.to_string()
        } else {
            format!("{parent}::{rest}")
        }
    } else {
        return;
    };
    // The longest prefix that is a file.
    let parts: Vec<&str> = absolute.split("::").collect();
    let Some(to) = (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| known.contains(m))
    else {
        return;
    };
    if to == module || module.starts_with(&format!("{to}::")) && to.is_empty() {
        return;
    }
    let said = |l: &str| l.contains("upward:");
    let justified = said(raw) || line.checked_sub(1).is_some_and(|above| said(lines[above]));
    found.insert(Import {
        from: module.to_string(),
        to,
        line: line + 1,
        justified,
    });
}

/// `crate::a::b` and `super::a` paths outside `use` statements.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push(tail[..end].trim_end_matches(':').to_string());
            }
            rest = &tail[end.max(prefix.len())..];
        }
    }
    out
}

/// The paths a `use` statement imports: `use crate::{a, b::{c, d}};` is
/// `crate::a`, `crate::b::c`, `crate::b::d`.
fn expand(statement: &str) -> Vec<Vec<String>> {
    let body = statement
        .trim()
        .trim_start_matches("pub ")
        .trim_start_matches("use ")
        .trim_end()
        .trim_end_matches(';');
    let mut out = Vec::new();
    tree(body, &[], &mut out);
    out
}

fn tree(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let s = s.trim();
    if let Some(open) = s.find('{') {
        let head: Vec<String> = s[..open]
            .split("::")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let close = s
            .rfind('}')
            .filter(|&close| close > open)
            .unwrap_or(s.len());
        let inner = &s[open + 1..close];
        let mut next = prefix.to_vec();
        next.extend(head);
        for part in split_top(inner) {
            tree(part, &next, out);
        }
    } else {
        let name = s.split(" as ").next().unwrap_or(s).trim();
        if name.is_empty() {
            return;
        }
        let mut path = prefix.to_vec();
        path.extend(
            name.split("::")
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "self" && *p != "*")
                .map(String::from),
        );
        out.push(path);
    }
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The cycles of `edges`: each strongly connected component of more than
/// one file, as one path around it.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|v| v.iter()))
        .collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        let component: Vec<String> = nodes
            .iter()
            .filter(|m| reachable[n].contains(**m) && reachable[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

/// `cargo xtask layers`: prints what [`check`] found; false if the
/// layering does not hold.
pub fn run(src: &Path) -> Result<bool> {
    let report = check(src)?;
    for cycle in &report.cycles {
        println!("cycle: {}", cycle.join(" <-> "));
    }
    for up in &report.upward {
        println!(
            "upward{}: {} (line {}) imports {}",
            if up.justified { " (commented)" } else { "" },
            up.from,
            up.line,
            up.to
        );
    }
    println!(
        "layers: {} files, {} imports, {} cycles, {} upward imports (at most {MAX_UPWARD}, each commented)",
        report.files,
        report.imports,
        report.cycles.len(),
        report.upward.len()
    );
    Ok(report.holds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_expand() {
        let paths = expand("use crate::{a, b::{c, d as e}, f::*};");
        let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            joined,
            ["crate::a", "crate::b::c", "crate::b::d", "crate::f"]
        );
    }

    #[test]
    fn finds_a_cycle_and_an_upward_import() {
        let dir = std::env::temp_dir().join(format!("xtask-layers-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("wire")).unwrap();
        fs::write(dir.join("lib.rs"), "pub mod wire;\npub mod sys;\n").unwrap();
        fs::write(dir.join("wire/mod.rs"), "pub mod a;\n").unwrap();
        // wire::a -> sys (down), sys -> wire::a (up, and a cycle).
        fs::write(dir.join("wire/a.rs"), "use crate::sys::X;\n").unwrap();
        fs::write(
            dir.join("sys.rs"),
            "// a doc: crate::wire::a\nfn f() { crate::wire::a::g(); }\n",
        )
        .unwrap();
        let report = check(&dir).unwrap();
        assert_eq!(
            report.cycles,
            vec![vec!["sys".to_string(), "wire::a".into()]]
        );
        assert_eq!(report.upward.len(), 1);
        assert_eq!(
            (report.upward[0].from.as_str(), report.upward[0].to.as_str()),
            ("sys", "wire::a")
        );
        assert!(!report.holds());
        // Commented, and the cycle broken: it holds.
        fs::write(dir.join("wire/a.rs"), "").unwrap();
        fs::write(
            dir.join("sys.rs"),
            "// upward: a test of the rule\nuse crate::wire::a;\n",
        )
        .unwrap();
        assert!(check(&dir).unwrap().holds());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The checker itself holds: no cycle, no upward import uncommented.
    #[test]
    fn the_checker_holds() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../checker/src");
        let report = check(&src).unwrap();
        assert!(report.files > 50, "{} files", report.files);
        assert!(
            report.holds(),
            "cycles: {:?}\nupward: {:?}",
            report.cycles,
            report.upward
        );
    }
}
