//! The module graph of `src/` has no cycle (issue 13).
//!
//! The graph's nodes are the crate's top-level modules (`config`, `llm`,
//! `store`, ...: each file or directory directly under `src/`, except the
//! crate roots `lib.rs` and `main.rs`). There is an edge `a -> b` when code
//! anywhere under `a` names `crate::b` (or `$crate::b`), directly or in a
//! `crate::{..}` group, or climbs with `super::` out of `a` into `b`.
//! Submodules of one top-level module may refer to each other freely; that
//! is the granularity "the module graph of src/" means here. Comments and
//! string literals are not code and are skipped, so a doc comment that
//! mentions another module adds no edge.
//!
//! The test reads the source files themselves; it fails listing each cycle
//! (strongly connected component) with one place per edge in it, and when
//! `domain`, the bottom layer, uses any other module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where one reference was found: the file (relative to `src/`) and line.
type Place = (String, usize);

/// The top-level module graph: `from -> to -> first place seen`.
type Graph = BTreeMap<String, BTreeMap<String, Place>>;

#[test]
fn the_module_graph_of_src_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    // The scan must see the crate at all: the top of the crate reaches
    // the bottom (a scanner that saw nothing would pass any crate).
    assert!(
        reaches(&graph, "app", "config"),
        "the scan found no path from app to config: {graph:?}"
    );
    // The domain types are the bottom: they import nothing of Baton.
    assert_eq!(
        graph.get("domain"),
        None,
        "src/domain uses other modules of the crate"
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "the module graph of src/ has cycles:\n{}",
        describe(&graph, &cycles)
    );
}

#[test]
fn the_scan_sees_groups_supers_and_macros_but_not_comments() {
    let tops: BTreeSet<String> = ["a", "b", "c", "d", "e", "f"]
        .into_iter()
        .map(String::from)
        .collect();
    let text = r#"
        //! Mentions crate::f in a doc comment.
        use crate::{b::Thing, c};
        /* crate::f in a block comment /* nested crate::f */ */
        const S: &str = "crate::f in a string";
        const R: &str = r"crate::f in a raw string";
        fn g<'a>(x: &'a str) -> char { let _ = ('"', '\'', '\u{22}'); $crate::d::go(); 'x' }
        mod inner {
            use super::super::super::e::Other;
            use super::super::Local;
            pub(super) fn h() {}
        }
    "#;
    let found: BTreeSet<String> = references(text, &["a".into(), "x".into()], &tops)
        .into_iter()
        .map(|(module, _)| module)
        .collect();
    let expected: BTreeSet<String> = ["b", "c", "d", "e"].into_iter().map(String::from).collect();
    assert_eq!(found, expected);
}

#[test]
fn a_cycle_is_found_and_a_chain_is_not() {
    let mut graph = Graph::new();
    let place = || ("x.rs".to_string(), 1);
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .insert(to.into(), place());
    }
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    graph.get_mut("c").map(|edges| edges.remove("a"));
    assert!(cycles(&graph).is_empty());
}

/// Every top-level module's references to the others.
fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(src).ok()?;
            Some(module_path(relative)?.first()?.clone())
        })
        .collect();
    let mut graph = Graph::new();
    for file in &files {
        let Ok(relative) = file.strip_prefix(src) else {
            continue;
        };
        let Some(module) = module_path(relative) else {
            continue;
        };
        let Some(top) = module.first() else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (target, line) in references(&text, &module, &tops) {
            if &target != top {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| (relative.display().to_string(), line));
            }
        }
    }
    graph
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

/// The module a file under `src/` is (`config/models.rs` -> `config::models`;
/// `config/mod.rs` -> `config`); `None` for the crate roots.
fn module_path(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// A token of Rust code, with its line.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An identifier or keyword (`$crate` included).
    Word(String),
    /// `::`.
    Path,
    /// Any other punctuation character.
    Punct(char),
}

/// The code's tokens, without comments, string and character literals.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                line += usize::from(chars[i] == '\n');
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if (c == 'r' || c == 'b') && raw_string_start(&chars, i).is_some() {
            let (hashes, body) = raw_string_start(&chars, i).unwrap_or((0, i));
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            i = body;
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += closing.len();
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                // Past the quote, the backslash and the escaped character.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Token::Word(chars[start..i].iter().collect()), line));
        } else if c == ':' && next == Some(':') {
            out.push((Token::Path, line));
            i += 2;
        } else {
            out.push((Token::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// For a raw string starting at `i` (`r"`, `r#"`, `br#"`): its number of
/// `#`s and where its body starts.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    (chars.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// The top-level modules (of `tops`) that code in `module` names, with the
/// line of each reference.
fn references(text: &str, module: &[String], tops: &BTreeSet<String>) -> Vec<(String, usize)> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    // Inline `mod name { .. }` blocks: the module path grows inside them.
    let mut path: Vec<String> = module.to_vec();
    let mut open: Vec<Option<usize>> = Vec::new();
    let word = |at: usize| match tokens.get(at) {
        Some((Token::Word(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let mut i = 0;
    while i < tokens.len() {
        let (token, line) = &tokens[i];
        match token {
            Token::Punct('{') => {
                let inline_mod = i >= 2 && word(i - 2) == Some("mod");
                if inline_mod {
                    path.push(word(i - 1).unwrap_or_default().to_string());
                }
                open.push(inline_mod.then_some(path.len()));
            }
            Token::Punct('}') => {
                if let Some(Some(_)) = open.pop() {
                    path.pop();
                }
            }
            Token::Word(w) if w == "crate" || w == "$crate" || w == "super" => {
                let after_path = i > 0 && tokens[i - 1].0 == Token::Path;
                if !after_path {
                    // Where the path's first segment after `crate::` (or
                    // after the last `super::`) is, when it starts at the root.
                    let mut segment = None;
                    if w == "super" {
                        let mut j = i;
                        let mut climbed = path.clone();
                        while word(j) == Some("super") && is_path(&tokens, j + 1) {
                            climbed.pop();
                            j += 2;
                        }
                        if j > i && climbed.is_empty() {
                            segment = Some(j);
                        }
                    } else if is_path(&tokens, i + 1) {
                        segment = Some(i + 2);
                    }
                    for name in segment
                        .map(|at| first_segments(&tokens, at))
                        .unwrap_or_default()
                    {
                        if tops.contains(&name) {
                            found.push((name, *line));
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Whether the token at `at` is `::`.
fn is_path(tokens: &[(Token, usize)], at: usize) -> bool {
    tokens
        .get(at)
        .is_some_and(|(token, _)| *token == Token::Path)
}

/// The first segment of the path at `at`, or of each path in a `{..}` group.
fn first_segments(tokens: &[(Token, usize)], at: usize) -> Vec<String> {
    match tokens.get(at).map(|t| &t.0) {
        Some(Token::Word(w)) => vec![w.clone()],
        Some(Token::Punct('{')) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut expect_name = true;
            for (token, _) in &tokens[at + 1..] {
                match token {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') if depth == 0 => break,
                    Token::Punct('}') => depth -= 1,
                    Token::Punct(',') if depth == 0 => expect_name = true,
                    Token::Word(w) if depth == 0 && expect_name => {
                        names.push(w.clone());
                        expect_name = false;
                    }
                    _ => {}
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// Whether `to` can be reached from `from`.
fn reaches(graph: &Graph, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if seen.insert(node.clone()) {
            stack.extend(graph.get(&node).into_iter().flat_map(|e| e.keys().cloned()));
        }
    }
    false
}

/// The strongly connected components with more than one module, each
/// sorted (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        found: Vec<Vec<String>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, node: &str) {
            let index = self.index.len();
            self.index.insert(node.into(), index);
            self.low.insert(node.into(), index);
            self.stack.push(node.into());
            self.on_stack.insert(node.into());
            let graph = self.graph;
            for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node.into(), low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node.into(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(&member);
                    let done = member == node;
                    component.push(member);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// Each cycle with the edges inside it and where each edge is made.
fn describe(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut text = String::new();
    for component in cycles {
        text.push_str(&format!("cycle: {}\n", component.join(", ")));
        for from in component {
            for (to, (file, line)) in graph.get(from).into_iter().flatten() {
                if component.contains(to) {
                    text.push_str(&format!("  {from} -> {to}  (src/{file}:{line})\n"));
                }
            }
        }
    }
    text
}
