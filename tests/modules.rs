//! The crate's module graph has no cycle: no source file uses, through any chain of `crate::` and
//! `super::` paths, a file that uses it back. Read from the sources, no device: a path is resolved to
//! the deepest module file it names, and through a parent's `pub use` re-exports to the file that
//! defines the name; a parent's re-exports of its own submodules and `mod` lines are not uses, nor are
//! comments or a file's unit-test module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (segments) → source file, for every file of the library under `src/` (the binary's
/// `src/bin/` is another crate).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue;
                }
                let mut next = prefix.to_vec();
                next.push(name);
                walk(&p, &next, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let mut path = prefix.to_vec();
                if name != "mod" && !(prefix.is_empty() && name == "lib") {
                    path.push(name);
                }
                out.insert(path, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The code of a file: its lines without comments, cut where its unit-test module starts.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The paths (segments after `crate::`, or made absolute from `super::`) that `code` uses, with one
/// level of `{…}` groups expanded; `pub use` and `mod` lines are left out.
fn used_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for line in code.split(';') {
        let t = line.trim_start();
        // A parent's re-export of its own submodules is a facade, not a use; a re-export of another
        // part of the crate (`pub use crate::…`) is one.
        let reexport = (t.starts_with("pub use") || t.starts_with("pub(crate) use")) && !t.contains("crate::");
        if reexport || t.starts_with("mod ") || t.contains("\nmod ") {
            continue;
        }
        for (root, base) in [("crate::", Vec::new()), ("super::", here[..here.len().saturating_sub(1)].to_vec())] {
            let mut rest = line;
            while let Some(i) = rest.find(root) {
                let before = rest[..i].chars().next_back();
                rest = &rest[i + root.len()..];
                if before.is_some_and(|c| ident(c) || c == ':') {
                    continue;
                }
                let mut segs = base.clone();
                let mut s = rest;
                loop {
                    let end = s.find(|c: char| !ident(c)).unwrap_or(s.len());
                    if end == 0 {
                        break;
                    }
                    segs.push(s[..end].to_string());
                    s = &s[end..];
                    if let Some(next) = s.strip_prefix("::") {
                        s = next;
                    } else {
                        break;
                    }
                }
                if let Some(group) = s.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    for item in group.split(',') {
                        let mut p = segs.clone();
                        p.extend(item.split("::").map(|x| x.split_whitespace().next().unwrap_or("").to_string()));
                        p.retain(|x| !x.is_empty() && x != "self");
                        out.push(p);
                    }
                } else {
                    out.push(segs);
                }
            }
        }
    }
    out
}

/// `name` → the module path it is re-exported from, for a parent file's `pub use a::b::{X, Y}` lines.
fn reexports(path: &Path, module: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for stmt in code(path).split(';') {
        let Some(rest) = stmt.trim_start().strip_prefix("pub use ") else { continue };
        let (prefix, names) = match rest.split_once("::{") {
            Some((p, n)) => (p, n.trim_end_matches('}').split(',').collect::<Vec<_>>()),
            None => match rest.rsplit_once("::") {
                Some((p, n)) => (p, vec![n]),
                None => continue,
            },
        };
        let mut target: Vec<String> = module.to_vec();
        target.extend(prefix.trim().split("::").filter(|s| *s != "crate").map(str::to_string));
        if prefix.trim().starts_with("crate::") {
            target = prefix.trim().split("::").skip(1).map(str::to_string).collect();
        }
        for n in names {
            let n = n.split_whitespace().next().unwrap_or_default();
            if !n.is_empty() {
                out.insert(n.to_string(), target.clone());
            }
        }
    }
    out
}

/// The file a used path lands in: the deepest module it names, then through re-exports.
fn resolve(mods: &BTreeMap<Vec<String>, PathBuf>, path: &[String], depth: usize) -> Option<Vec<String>> {
    let k = (0..=path.len()).rev().find(|&k| mods.contains_key(&path[..k]))?;
    let module = path[..k].to_vec();
    if depth < 8
        && let Some(name) = path.get(k)
        && let Some(target) = reexports(&mods[&module], &module).get(name)
    {
        let mut next = target.clone();
        next.push(name.clone());
        return resolve(mods, &next, depth + 1).or(Some(module));
    }
    Some(module)
}

/// The graph: file → files it uses.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut g = BTreeMap::new();
    for (m, file) in &mods {
        let uses: BTreeSet<Vec<String>> = used_paths(&code(file), m)
            .iter()
            .filter_map(|p| resolve(&mods, p, 0))
            .filter(|t| t != m && !t.is_empty())
            .collect();
        g.insert(m.clone(), uses);
    }
    g
}

/// A cycle through `start`, if any (depth-first).
fn cycle_from(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, start: &Vec<String>) -> Option<Vec<Vec<String>>> {
    fn dfs(
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        at: &Vec<String>,
        start: &Vec<String>,
        path: &mut Vec<Vec<String>>,
        seen: &mut BTreeSet<Vec<String>>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if dfs(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::new();
    dfs(g, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    let name = |m: &Vec<String>| m.join("::");
    let mut cycles = Vec::new();
    for m in g.keys() {
        if let Some(c) = cycle_from(&g, m) {
            cycles.push(c.iter().map(name).collect::<Vec<_>>().join(" → ") + " → " + &name(m));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The reader above finds what it should: known uses of a few files.
#[test]
fn the_reader_sees_known_uses() {
    let g = graph();
    let uses = |a: &str, b: &str| {
        let k = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
        g.get(&k(a)).is_some_and(|s| s.contains(&k(b)))
    };
    assert!(uses("gpu::ops", "gpu::context"), "{:?}", g.get(&vec!["gpu".to_string(), "ops".to_string()]));
    assert!(uses("gpu::tune", "tune::state"));
    assert!(uses("plan::bindings", "plan"), "super:: paths");
    assert!(uses("bench", "gpu::context"), "through gpu's re-export of Context");
    assert!(!uses("plan::forward", "gpu::context"));
}

/// `impl Context` only where the public API is defined: the context itself (construction, settings),
/// its tensors, and its operations. Everything else is a free function over a `&Context` or a method
/// of its own type, so that a reader finds what a `Context` can do in three files. And no encoder
/// fills a uniform block: under `src/gpu/` no uniform is built or has a field set (`plan/uniform.rs`
/// computes each family's block, and programs carry it as bytes).
#[test]
fn context_methods_live_in_the_public_api_files_and_gpu_fills_no_uniform() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut with_impl = BTreeSet::new();
    let mut fills = Vec::new();
    for (module, path) in modules(&src) {
        let code = code(&path);
        if code.lines().any(|l| l.trim_start().starts_with("impl Context")) {
            with_impl.insert(module.join("::"));
        }
        if module.first().is_some_and(|m| m == "gpu") {
            for l in code.lines() {
                let t = l.trim();
                let literal = t.contains("Uniform {") && !t.starts_with("struct") && !t.contains("struct ");
                let set = t.starts_with("u.") && t.contains(" = ");
                let built = t.contains("Uniform::") && !t.contains("::WGSL") && !t.contains("size_of::<");
                if literal || set || built {
                    fills.push(format!("{}: {t}", path.display()));
                }
            }
        }
    }
    let allowed: BTreeSet<String> = ["gpu::context", "gpu::tensor", "gpu::ops"].map(String::from).into();
    assert!(with_impl.is_subset(&allowed), "impl Context in {with_impl:?}");
    assert!(with_impl.contains("gpu::ops"), "the reader found no impl Context at all: {with_impl:?}");
    assert!(fills.is_empty(), "uniforms filled under src/gpu:\n{}", fills.join("\n"));
}
