//! The code's shape, as docs/ARCHITECTURE.md states it: the stages of an
//! event's trip import only stages to their left, and no two modules import
//! each other, directly or around a circle. Read from the source (`crate::`,
//! `super::` and `self::` paths), so a new import that breaks either fails
//! here with the files that do it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, leftmost first: each may use only the
/// ones before it. `event` and `lograte` are leaves every stage uses;
/// `pull` is a source beside `ingest`; `admin` and `serve` compose.
const STAGES: [&str; 11] = [
    "event", "lograte", "ingest", "pull", "filter", "journal", "dispatch", "runtime", "plugin",
    "admin", "serve",
];

type Module = Vec<String>;

/// Every module of the library crate, by path, with its source.
fn modules() -> BTreeMap<Module, (PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path != src.join("cli") {
                    dirs.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let mut module: Module = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            let text = std::fs::read_to_string(&path).expect("source");
            found.insert(module, (path, text));
        }
    }
    found
}

/// The source without comments (line comments are enough: the code has no
/// block comments), so paths in doc links are not imports.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts with `crate`, `super` or `self`, with grouped
/// imports (`use super::{a, b::c}`) expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| bytes[at..].starts_with(p.as_bytes()));
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if starts && boundary {
            let (found, end) = path_at(code, at);
            out.extend(found);
            at = end.max(at + 1);
        } else {
            at += 1;
        }
    }
    out
}

/// The paths written at `at` (one, or a group's), and where they end.
fn path_at(code: &str, mut at: usize) -> (Vec<Vec<String>>, usize) {
    let bytes = code.as_bytes();
    let mut prefix = Vec::new();
    loop {
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            at += 1;
        }
        if at > start {
            prefix.push(code[start..at].to_string());
        }
        if code[at..].starts_with("::{") {
            // A group: each item is a path relative to the prefix.
            let mut depth = 0;
            let open = at + 2;
            let mut close = open;
            for (i, b) in bytes[open..].iter().enumerate() {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            for item in split_top_level(&code[open + 1..close]) {
                let item = item.trim();
                let (inner, _) = path_at(item, 0);
                for rest in inner {
                    out.push(prefix.iter().cloned().chain(rest).collect());
                }
            }
            return (out, close + 1);
        }
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// A group's items, split at commas outside nested groups.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// The module a path written in `from` names (its longest prefix that is a
/// module), if any.
fn resolve(
    from: &Module,
    path: &[String],
    known: &BTreeMap<Module, (PathBuf, String)>,
) -> Option<Module> {
    let mut base = from.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => base.clear(),
        Some("self") => {}
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            return longest(base, rest, known);
        }
        _ => return None,
    }
    longest(base, &rest[1..], known)
}

fn longest(
    base: Module,
    rest: &[String],
    known: &BTreeMap<Module, (PathBuf, String)>,
) -> Option<Module> {
    (0..=rest.len()).rev().find_map(|n| {
        let candidate: Module = base.iter().chain(&rest[..n]).cloned().collect();
        known.contains_key(&candidate).then_some(candidate)
    })
}

/// Each import between two modules, seen from their nearest common parent:
/// (parent, the child `from` is in, the child `to` is in) → the files that
/// import. Imports of an ancestor or a descendant are the module tree
/// itself, not dependencies between siblings.
type Edges = BTreeMap<(Module, String, String), BTreeSet<PathBuf>>;

fn edges() -> Edges {
    let known = modules();
    let mut edges = Edges::new();
    for (from, (file, text)) in &known {
        for path in paths(&code(text)) {
            let Some(to) = resolve(from, &path, &known) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let key = (
                from[..common].to_vec(),
                from[common].clone(),
                to[common].clone(),
            );
            edges.entry(key).or_default().insert(file.clone());
        }
    }
    edges
}

#[test]
fn each_stage_imports_only_stages_to_its_left() {
    let rank = |name: &str| STAGES.iter().position(|s| *s == name);
    let mut wrong = Vec::new();
    for ((parent, from, to), files) in edges() {
        if !parent.is_empty() {
            continue;
        }
        let (Some(a), Some(b)) = (rank(&from), rank(&to)) else {
            wrong.push(format!("{from} → {to}: not a stage in STAGES ({files:?})"));
            continue;
        };
        if b > a {
            wrong.push(format!(
                "{from} imports {to}, a stage to its right: {files:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    // Per parent, the graph of its children; a circle is a strongly
    // connected part with more than one child.
    let mut graphs: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let edges = edges();
    for (parent, from, to) in edges.keys() {
        graphs
            .entry(parent.clone())
            .or_default()
            .entry(from.clone())
            .or_default()
            .insert(to.clone());
    }
    let mut circles = Vec::new();
    for (parent, graph) in &graphs {
        for part in strongly_connected(graph) {
            if part.len() > 1 {
                let files: BTreeSet<_> = edges
                    .iter()
                    .filter(|((p, a, b), _)| p == parent && part.contains(a) && part.contains(b))
                    .flat_map(|(_, files)| files.iter().cloned())
                    .collect();
                circles.push(format!(
                    "in `{}`: {part:?} import each other ({files:?})",
                    parent.join("::")
                ));
            }
        }
    }
    assert!(circles.is_empty(), "{}", circles.join("\n"));
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        parts: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in w.graph.get(v).into_iter().flatten() {
            if !w.index.contains_key(next.as_str()) {
                visit(w, next);
                let low = w.low[v].min(w.low[next.as_str()]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next.as_str()) {
                let low = w.low[v].min(w.index[next.as_str()]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut part = BTreeSet::new();
            while let Some(top) = w.stack.pop() {
                part.insert(top.to_string());
                if top == v {
                    break;
                }
            }
            w.parts.push(part);
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        parts: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.parts
}

/// The reading itself: a grouped import names each module in it, and a
/// doc link is not an import.
#[test]
fn grouped_imports_are_read_and_comments_are_not() {
    let text = "//! see [`super::gone`]\nuse super::{a::{B, c::D}, e};\nfn f() { crate::x::y(); }";
    let found = paths(&code(text));
    let want: Vec<Vec<String>> = [
        &["super", "a", "B"][..],
        &["super", "a", "c", "D"],
        &["super", "e"],
        &["crate", "x", "y"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(found, want);
}
