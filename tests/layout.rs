//! The house rules that a compiler does not check: no import circle among the files of
//! `src/` (a file that imports another must not be imported back, directly or through
//! others), and every module named in `src/lib.rs`'s map (as `path`, linked or not:
//! private modules cannot be linked).
//!
//! Imports are read from the source text (`crate::` and `super::` paths outside
//! comments and test modules) and resolved to the file that defines the longest
//! matching module path, so `use crate::store::dynamo::schema` names
//! `src/store/dynamo/schema.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["store", "dynamo"]`) -> its file, for every file of `src/` except
/// the binaries, which no module imports.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src/");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            found.insert(parts, path);
        }
    }
    found
}

/// The source a file imports from: its text before its test module, without comments.
/// (Only the `mod tests` that follows `#[cfg(test)]` ends it: a test-only module
/// declared higher up, like `store::memory`, does not.)
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a readable source file");
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file's code names: `crate::a::b::Item` and `super::a::Item`.
fn named_paths(code: &str, own: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[start..];
        let words: Vec<String> = rest
            .split("::")
            .map(|word| {
                word.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|word| !word.is_empty())
            .collect();
        let Some((head, tail)) = words.split_first() else {
            continue;
        };
        let mut path: Vec<String> = if head == "crate" {
            Vec::new()
        } else {
            // `super` of module `a::b` (`a/b.rs` or `a/b/mod.rs`) is `a`.
            own[..own.len().saturating_sub(1)].to_vec()
        };
        path.extend(tail.iter().cloned());
        paths.push(path);
    }
    paths
}

fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (own, file) in &modules {
        let mut targets = BTreeSet::new();
        for path in named_paths(&code(file), own) {
            let target = (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]));
            if let Some(target) = target.filter(|target| *target != file) {
                targets.insert(target.clone());
            }
        }
        graph.insert(file.clone(), targets);
    }
    graph
}

/// One circle through `start`, if any (depth-first).
fn circle_through(
    graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    start: &PathBuf,
) -> Option<Vec<PathBuf>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_import_circle_among_src_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(graph.len() > 20, "read {} files", graph.len());
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|file| circle_through(&graph, file))
        .map(|circle| {
            circle
                .iter()
                .map(|file| {
                    file.strip_prefix(&src)
                        .unwrap_or(file)
                        .display()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" -> ")
        })
        .collect();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let dir = std::env::temp_dir().join(format!("firehose-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("http")).expect("temp dir");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("lib.rs", "pub mod a;\npub mod http;\n");
    write("a.rs", "use crate::http::body::full;\n");
    write("http/mod.rs", "pub mod body;\npub mod cors;\n");
    write(
        "http/body.rs",
        "// use crate::a; (a comment is not an import)\nuse super::cors::add;\n",
    );
    write(
        "http/cors.rs",
        "use super::body::empty;\n#[cfg(test)]\nmod tests { use crate::a::X; }\n",
    );
    let graph = import_graph(&dir);
    let body = dir.join("http/body.rs");
    let circle = circle_through(&graph, &body).expect("body <-> cors");
    assert_eq!(circle, vec![body.clone(), dir.join("http/cors.rs")]);
    assert!(circle_through(&graph, &dir.join("a.rs")).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_module_is_on_the_map_in_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let map: String = lib
        .lines()
        .filter(|line| line.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<String> = modules(&src)
        .keys()
        .filter(|path| !path.is_empty() && path.as_slice() != ["main"])
        .map(|path| path.join("::"))
        .filter(|name| !map.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from src/lib.rs's map: {missing:?}"
    );
}
