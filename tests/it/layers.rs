//! keyway's layers, held to `src/lib.rs`: the order of its `pub mod` lines
//! is the order of the layers, bottom-up, and a module may use only the
//! modules above it in that list. Files may not import each other in a
//! circle, within a folder or across. Read from the source text: every
//! `crate::` and `super::` path outside comments, strings and unit-test
//! modules, and a folder's `use` of its own children; a path through a
//! folder's `pub use` re-export counts as an import of the file that
//! defines the name. A folder's `mod.rs` is its front door: its files may
//! use what it defines (e.g. `session::Client`) without that counting as
//! a circle with the folder's own uses of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A source file by its module path: `["upstream", "pool"]` for
/// `src/upstream/pool.rs`, `["upstream"]` for `src/upstream/mod.rs`.
type ModPath = Vec<String>;

struct Tree {
    /// Every file, by module path, with its code (comments removed).
    files: BTreeMap<ModPath, String>,
}

impl Tree {
    fn read(src: &Path) -> Tree {
        let mut files = BTreeMap::new();
        for (rel, text) in rust_files(src) {
            let mut parts: ModPath = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(String::from)
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            files.insert(parts, without_unit_tests(&code_only(&text)));
        }
        Tree { files }
    }

    fn from(files: &[(&str, &str)]) -> Tree {
        let files = files
            .iter()
            .map(|(p, t)| (p.split('/').map(String::from).collect(), code_only(t)))
            .collect();
        Tree { files }
    }

    /// Whether the file at `m` is a folder's `mod.rs` (it has children).
    fn is_folder(&self, m: &ModPath) -> bool {
        self.files
            .keys()
            .any(|k| k.len() == m.len() + 1 && k.starts_with(m))
    }

    /// The file a path names: its longest prefix that is a file, followed
    /// through that folder's `pub use child::name` re-exports.
    fn resolve(&self, path: &[String]) -> Option<ModPath> {
        let mut found = None;
        for n in 1..=path.len() {
            if self.files.contains_key(&path[..n]) {
                found = Some(n);
            }
        }
        let n = found?;
        let file = path[..n].to_vec();
        if let Some(name) = path.get(n) {
            if let Some(child) = self.reexported_from(&file, name) {
                return Some(child);
            }
        }
        Some(file)
    }

    /// The child of folder `m` that its `pub use child::{..name..}` names.
    fn reexported_from(&self, m: &ModPath, name: &str) -> Option<ModPath> {
        let code = self.files.get(m)?;
        for stmt in code.split(';') {
            let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
                continue;
            };
            let Some((child, names)) = rest.split_once("::") else {
                continue;
            };
            let names = names.trim_start_matches('{').trim_end_matches('}');
            if names.split(',').any(|n| n.trim() == name) {
                let mut c = m.clone();
                c.push(child.trim().to_string());
                return self.files.contains_key(&c).then_some(c);
            }
        }
        None
    }

    /// The files `m` imports (itself excluded).
    fn imports(&self, m: &ModPath) -> BTreeSet<ModPath> {
        let code = &self.files[m];
        let mut out = BTreeSet::new();
        let folder = self.is_folder(m);
        for path in paths(&without_reexports(code, folder)) {
            let absolute: Option<Vec<String>> = match path[0].as_str() {
                "crate" => Some(path[1..].to_vec()),
                "super" => {
                    // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` also `a`.
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    m.len().checked_sub(ups).map(|base| {
                        let mut p = m[..base].to_vec();
                        p.extend_from_slice(&path[ups..]);
                        p
                    })
                }
                // A folder's `use child::...`.
                first if folder => {
                    let mut p = m.clone();
                    p.push(first.to_string());
                    self.files
                        .contains_key(&p)
                        .then(|| [p, path[1..].to_vec()].concat())
                }
                _ => None,
            };
            if let Some(target) = absolute.and_then(|a| self.resolve(&log_macros(a))) {
                // A folder's own mod.rs is its front door: what it defines
                // is the folder's vocabulary, which its files may use.
                let own_folder = target.len() + 1 == m.len() && m.starts_with(&target);
                if &target != m && !own_folder {
                    out.insert(target);
                }
            }
        }
        out
    }

    /// (file, what it imports from a later module) for every import that
    /// runs against the order of `layers`.
    fn upward(&self, layers: &[String]) -> Vec<(ModPath, ModPath)> {
        let rank = |m: &ModPath| layers.iter().position(|l| *l == m[0]);
        let mut bad = Vec::new();
        for m in self.files.keys() {
            let Some(own) = rank(m) else { continue };
            for t in self.imports(m) {
                if rank(&t).is_some_and(|r| r > own) {
                    bad.push((m.clone(), t));
                }
            }
        }
        bad
    }

    /// Each circle of files (a strongly connected set of more than one).
    fn circles(&self) -> Vec<Vec<ModPath>> {
        let graph: BTreeMap<&ModPath, BTreeSet<ModPath>> =
            self.files.keys().map(|m| (m, self.imports(m))).collect();
        let reach = |from: &ModPath| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(n) = todo.pop() {
                for t in graph.get(&n).into_iter().flatten() {
                    if seen.insert(t.clone()) {
                        todo.push(t.clone());
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&ModPath, BTreeSet<ModPath>> =
            graph.keys().map(|m| (*m, reach(m))).collect();
        let mut circles: Vec<Vec<ModPath>> = Vec::new();
        for (m, r) in &reaches {
            if !r.contains(*m) || circles.iter().any(|c| c.contains(m)) {
                continue;
            }
            let circle = reaches
                .iter()
                .filter(|(o, ro)| r.contains(**o) && ro.contains(*m))
                .map(|(o, _)| (*o).clone())
                .collect();
            circles.push(circle);
        }
        circles
    }
}

/// A folder's code without its `pub use child::...` re-exports: they
/// declare what the folder offers; whoever uses a name through one is
/// counted as importing the child that defines it.
fn without_reexports(code: &str, folder: bool) -> String {
    if !folder {
        return code.to_string();
    }
    code.split_inclusive(';')
        .filter(|stmt| !stmt.trim_start().starts_with("pub use ") || stmt.contains("crate::"))
        .collect()
}

/// Every `.rs` file below `src`: its path from there, and its text.
fn rust_files(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src/");
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push((rel.to_string_lossy().to_string(), text));
            }
        }
    }
    out
}

/// The log macros are exported at the crate root: they belong to `log`.
fn log_macros(mut path: Vec<String>) -> Vec<String> {
    if path.len() == 1 && ["error", "warn", "info", "debug", "trace"].contains(&path[0].as_str()) {
        path.insert(0, "log".into());
    }
    path
}

/// Every `a::b::c` path in `code` that starts with `crate`, `super` or a
/// plain name followed by `::`, with `{x, y}` groups expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !word(bytes[i]) || (i > 0 && (word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while end < bytes.len() && (word(bytes[end]) || bytes[end] == b':') {
            end += 1;
        }
        let text = &code[start..end];
        if text.contains("::") {
            let mut parts: Vec<String> = text
                .split("::")
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
            if end < bytes.len() && bytes[end] == b'{' && text.ends_with("::") {
                // A group: one path per member (its first name is enough).
                let close = code[end..].find('}').map_or(code.len(), |c| end + c);
                for member in code[end + 1..close].split(',') {
                    let name: String = member
                        .trim()
                        .chars()
                        .take_while(|c| word(*c as u8))
                        .collect();
                    if !name.is_empty() {
                        out.push([parts.clone(), vec![name]].concat());
                    }
                }
                parts.clear();
            }
            if !parts.is_empty() {
                out.push(parts);
            }
        }
        i = end.max(i + 1);
    }
    out
}

/// `text` without its comments, string and char literals (a doc comment
/// or a message may name any module).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let find = |from: usize, pat: &str| text[from..].find(pat).map_or(b.len(), |n| from + n);
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i = find(i, "\n");
        } else if rest.starts_with("/*") {
            i = find(i + 2, "*/") + 2;
        } else if rest.starts_with("r#") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|c| *c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            i = find(i + 2 + hashes, &close) + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (rest.starts_with("'\\") || rest.chars().nth(2) == Some('\'')) {
            // A char literal ('x', '\n', '\''), not a lifetime.
            let len = if rest.starts_with("'\\") { 2 } else { 1 };
            i = find(i + 1 + len, "'") + 1;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `code` without its `#[cfg(test)]` modules: their `super` is the file
/// itself, and what a unit test uses is not what the file depends on.
fn without_unit_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            return out;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The layer order: the `pub mod` lines of `lib.rs`, in order.
fn layers(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

fn show(m: &ModPath) -> String {
    m.join("/")
}

#[test]
fn no_module_imports_a_higher_layer_and_no_files_import_each_other_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    let layers = layers(&lib);
    assert!(layers.len() > 8, "lib.rs lists the modules: {layers:?}");
    let tree = Tree::read(&root.join("src"));
    for m in tree.files.keys() {
        assert!(
            layers.contains(&m[0]),
            "src/{} belongs to no module lib.rs lists",
            show(m)
        );
    }
    let upward: Vec<String> = tree
        .upward(&layers)
        .iter()
        .map(|(f, t)| format!("src/{} imports src/{}", show(f), show(t)))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that run up the layers of lib.rs:\n{}",
        upward.join("\n")
    );
    let circles: Vec<String> = tree
        .circles()
        .iter()
        .map(|c| c.iter().map(show).collect::<Vec<_>>().join(" ↔ "))
        .collect();
    let edges: Vec<String> = tree
        .circles()
        .iter()
        .flat_map(|c| {
            c.iter()
                .flat_map(|f| {
                    tree.imports(f)
                        .into_iter()
                        .filter(|t| c.contains(t))
                        .map(move |t| format!("  {} -> {}", show(f), show(&t)))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        circles.is_empty(),
        "files in a circle:\n{}\nwhat ties them:\n{}",
        circles.join("\n"),
        edges.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import_a_circle_and_a_path_through_a_reexport() {
    let layers: Vec<String> = ["resp", "net", "upstream", "session"]
        .map(String::from)
        .to_vec();
    let tree = Tree::from(&[
        ("resp", "pub fn scan() {}"),
        ("net", "use crate::resp::scan; // crate::session is only named here\nconst S: &str = \"crate::session\";"),
        ("upstream", "pub mod conn;\npub mod pool;\npub use pool::{Pool, Retired};"),
        ("upstream/conn", "use super::pool::Pool;"),
        ("upstream/pool", "use crate::net::{self, x}; pub struct Pool; pub type Retired = ();"),
        ("session", "use crate::upstream::Retired;"),
    ]);
    assert!(tree.upward(&layers).is_empty());
    assert!(tree.circles().is_empty());
    let imports = tree.imports(&vec!["session".to_string()]);
    assert_eq!(
        imports.into_iter().collect::<Vec<_>>(),
        [vec!["upstream".to_string(), "pool".to_string()]],
        "a path through the folder's re-export names the file that defines it"
    );

    // A deliberately added upward import, and the circle it closes.
    let tree = Tree::from(&[
        ("resp", "pub fn scan() {}"),
        (
            "upstream",
            "pub mod conn;\npub mod pool;\npub use pool::Pool;",
        ),
        (
            "upstream/conn",
            "use super::pool::Pool;\nuse crate::session::Slots;",
        ),
        ("upstream/pool", "pub struct Pool;"),
        (
            "session",
            "use crate::upstream::Pool;\nfn f() { crate::upstream::conn::send(); }",
        ),
    ]);
    let bad = tree.upward(&layers);
    assert_eq!(bad.len(), 1, "{:?}", bad);
    assert_eq!(show(&bad[0].0), "upstream/conn");
    assert_eq!(show(&bad[0].1), "session");
    let circles = tree.circles();
    assert_eq!(circles.len(), 1);
    assert_eq!(
        circles[0].iter().map(show).collect::<Vec<_>>(),
        ["session", "upstream/conn"]
    );
}

/// Error codes a reply keyway writes may start with.
const ERROR_CODES: [&str; 10] = [
    "ERR",
    "NOAUTH",
    "WRONGPASS",
    "NOPROTO",
    "CROSSSLOT",
    "EXECABORT",
    "CLUSTERDOWN",
    "DENIED",
    "NOPERM",
    "WRONGTYPE",
];

/// The string literals of `line` that read as an error reply's text: an
/// error code and a space (a code alone is a backend's, matched).
fn error_texts(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in line.match_indices('"') {
        let rest = line[at + 1..].trim_start_matches('-');
        if let Some(code) = ERROR_CODES
            .iter()
            .find(|c| rest.starts_with(&format!("{c} ")))
        {
            let message: String = rest[code.len() + 1..]
                .chars()
                .take_while(|c| *c != '"')
                .take(40)
                .collect();
            found.push(format!("{code} {message}"));
        }
    }
    found
}

#[test]
fn every_error_reply_text_lives_in_resp_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut strays = Vec::new();
    for (rel, text) in rust_files(&src) {
        // The one place, and the reference decoders' test vectors.
        if rel == "resp/errors.rs" || rel == "resp/reference.rs" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for t in error_texts(line) {
                strays.push(format!("src/{rel}:{}: \"{t}...\"", n + 1));
            }
        }
    }
    assert!(
        strays.is_empty(),
        "error reply texts outside src/resp/errors.rs (add a variant to ErrorReply):\n{}",
        strays.join("\n")
    );
    assert_eq!(
        error_texts(r#"client.error("ERR syntax error"); b"-NOAUTH x"; Some("CLUSTERDOWN")"#),
        ["ERR syntax error", "NOAUTH x"],
        "the guard sees a stray text"
    );
}
