//! The crate's modules form layers: no module reaches a module that reaches it back.
//!
//! Reads `src/**/*.rs`, takes every `crate::…` and `super::…` path outside comments and
//! test modules as an edge from the file's module to the module the path names, and looks
//! for circles. `cargo test --test module_graph -- --nocapture` prints the graph.
//!
//! A folder's `mod.rs` re-exporting its own children (`pub use complete::…`) is the folder's
//! face, not an import: edges from a module to its own descendants are left out, and so are
//! edges to the crate root (`lib.rs` re-exports everything).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`, `src/lib.rs` → `` (the root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

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

/// The source without comments and without the `#[cfg(test)]` module at its end.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
}

/// The paths named after each `crate::` / `super::` in `line`, as segment lists; a group
/// (`crate::{a::X, b}`) gives one path per item.
fn paths_in(line: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in line.match_indices(prefix) {
        // `super::` inside `crate::a::super::` cannot happen; skip `xsuper::` and the like.
        if line[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &line[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                out.push(segments(item.trim()));
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

fn segments(path: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = path;
    loop {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        segs.push(name);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    segs
}

/// The longest known module that `segs` (from the root) starts with.
fn resolve(modules: &BTreeSet<String>, segs: &[String]) -> Option<String> {
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module.is_empty() {
            continue;
        }
        let parent: Vec<String> = {
            let mut p: Vec<String> = module.split("::").map(str::to_owned).collect();
            p.pop();
            p
        };
        let text = std::fs::read_to_string(file).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in code_lines(&text) {
            let from_root = paths_in(line, "crate::");
            let from_parent = paths_in(line, "super::").into_iter().map(|segs| {
                let mut full = parent.clone();
                full.extend(segs);
                full
            });
            for segs in from_root.into_iter().chain(from_parent) {
                let Some(target) = resolve(&modules, &segs) else {
                    continue;
                };
                let own_descendant = target.starts_with(&format!("{module}::"));
                if target != module && !target.is_empty() && !own_descendant {
                    deps.insert(target);
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
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
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_parser_reads_the_import_forms_the_crate_uses() {
    // (line, prefix, paths found)
    let rows: [(&str, &str, Vec<Vec<&str>>); 4] = [
        (
            "use crate::config::{Config, SessionMode};",
            "crate::",
            vec![vec!["config"]],
        ),
        (
            "use crate::{body::RequestBody, cors};",
            "crate::",
            vec![vec!["body", "RequestBody"], vec!["cors"]],
        ),
        (
            "if crate::router::wraps_one_route::<S>() {",
            "crate::",
            vec![vec!["router", "wraps_one_route"]],
        ),
        (
            "use super::answers::see_other;",
            "super::",
            vec![vec!["answers", "see_other"]],
        ),
    ];
    for (line, prefix, want) in rows {
        let got = paths_in(line, prefix);
        let got: Vec<Vec<&str>> = got
            .iter()
            .map(|p| p.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(got, want, "{line}");
    }
}

#[test]
fn a_circle_is_found() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let graph = graph();
    assert!(graph.len() > 20, "read the source tree: {graph:?}");
    println!("module imports (module -> the modules it uses):");
    for (module, deps) in &graph {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("  {module} -> {}", deps.join(", "));
    }
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "import circles between modules: {found:?}"
    );
}
