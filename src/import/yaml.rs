//! Read access to a YAML document that remembers where each node came
//! from, so that every import error and every "not imported" comment can
//! name the file, the line and the key path (`clusters[1].lb_policy`).

use super::model::{ImportError, ImportProblem};
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// Parses `text`; exactly one document is expected.
pub fn load<'i>(text: &'i str, file: &str) -> Result<MarkedYaml<'i>, ImportError> {
    let mut docs = MarkedYaml::load_from_str(text).map_err(|e| ImportError {
        file: file.to_string(),
        line: Some(e.marker().line()),
        path: None,
        problem: ImportProblem::NotYaml(e.info().to_string()),
    })?;
    match docs.len() {
        0 => Err(ImportError::in_file(file, ImportProblem::Empty)),
        1 => Ok(docs.remove(0)),
        n => Err(ImportError::in_file(file, ImportProblem::Documents(n))),
    }
}

/// A node, its file and the path of keys that led to it.
#[derive(Clone, Debug)]
pub struct Node<'a> {
    y: &'a MarkedYaml<'a>,
    file: &'a str,
    path: String,
}

/// A scalar, whatever YAML resolved it to.
enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl<'a> Node<'a> {
    pub fn root(y: &'a MarkedYaml<'a>, file: &'a str) -> Node<'a> {
        Node {
            y,
            file,
            path: String::new(),
        }
    }

    /// The same node, its children's paths starting afresh at `path`.
    pub fn rebased(&self, path: &str) -> Node<'a> {
        Node {
            path: path.to_string(),
            ..self.clone()
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn line(&self) -> usize {
        self.y.span.start.line()
    }

    /// `file:line`, for comments that say where a setting came from.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line())
    }

    /// The comment for a setting left out: `not imported: path: value
    /// (file:line) — why.`
    pub fn not_imported(&self, why: &str) -> String {
        format!(
            "not imported: {}: {} ({}) — {why}.",
            self.path,
            self.render(),
            self.at()
        )
    }

    pub fn err(&self, why: impl std::fmt::Display) -> ImportError {
        ImportError {
            file: self.file.to_string(),
            line: Some(self.line()),
            path: Some(self.path.clone()).filter(|p| !p.is_empty()),
            problem: ImportProblem::Rule(why.to_string()),
        }
    }

    /// The node's data, through any `!tag`.
    fn data(&self) -> &'a YamlData<'a, MarkedYaml<'a>> {
        let mut y = self.y;
        while let YamlData::Tagged(_, inner) = &y.data {
            y = inner;
        }
        &y.data
    }

    fn child(&self, y: &'a MarkedYaml<'a>, key: &str) -> Node<'a> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Node {
            y,
            file: self.file,
            path,
        }
    }

    fn value(&self) -> Option<Value<'a>> {
        let y = self.data();
        match y {
            YamlData::Value(s) => Some(match s {
                Scalar::Null => Value::Null,
                Scalar::Boolean(b) => Value::Bool(*b),
                Scalar::Integer(i) => Value::Int(*i),
                Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
                Scalar::String(s) => Value::Str(s.as_ref()),
            }),
            // Left unresolved by the loader: read as text.
            YamlData::Representation(s, _, _) => Some(Value::Str(s.as_ref())),
            _ => None,
        }
    }

    pub fn is_mapping(&self) -> bool {
        matches!(self.data(), YamlData::Mapping(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value(), Some(Value::Null))
    }

    /// The entries of a mapping, in file order, keys as text.
    pub fn entries(&self) -> Result<Vec<(String, Node<'a>)>, ImportError> {
        match self.data() {
            YamlData::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    let key = Node::root(k, self.file).scalar().map_err(|_| {
                        Node::root(k, self.file).err(format!(
                            "{}: a key must be a scalar",
                            if self.path.is_empty() {
                                "(top)"
                            } else {
                                &self.path
                            }
                        ))
                    })?;
                    let child = self.child(v, &key);
                    Ok((key, child))
                })
                .collect(),
            // `key:` with nothing after it: an empty mapping.
            YamlData::Value(Scalar::Null) => Ok(Vec::new()),
            _ => Err(self.err("expected a mapping (key: value lines)")),
        }
    }

    /// The entry `key` of a mapping, if present and not null.
    pub fn get(&self, key: &str) -> Result<Option<Node<'a>>, ImportError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null()))
    }

    pub fn require(&self, key: &str) -> Result<Node<'a>, ImportError> {
        self.get(key)?
            .ok_or_else(|| self.err(format!("`{key}` is missing")))
    }

    /// The items of a sequence (`key:` with nothing after it: none).
    pub fn items(&self) -> Result<Vec<Node<'a>>, ImportError> {
        match self.data() {
            YamlData::Sequence(s) => Ok(s
                .iter()
                .enumerate()
                .map(|(i, y)| Node {
                    y,
                    file: self.file,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            YamlData::Value(Scalar::Null) => Ok(Vec::new()),
            _ => Err(self.err("expected a list (- item lines)")),
        }
    }

    /// A scalar as text, as a C program reading it with libyaml sees it
    /// (twemproxy) or protobuf's JSON mapping accepts it (Envoy: numbers
    /// may be written as strings).
    pub fn scalar(&self) -> Result<String, ImportError> {
        match self.value() {
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(Value::Int(i)) => Ok(i.to_string()),
            Some(Value::Float(f)) => Ok(f.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Null) => Err(self.err("a value is missing")),
            None => Err(self.err("expected a single value, not a list or mapping")),
        }
    }

    pub fn u64(&self) -> Result<u64, ImportError> {
        match self.value() {
            Some(Value::Int(i)) if i >= 0 => Ok(i as u64),
            Some(Value::Str(s)) => s
                .trim()
                .parse()
                .map_err(|_| self.err(format!("`{s}` is not a whole number"))),
            _ => Err(self.err(format!("`{}` is not a whole number", self.render()))),
        }
    }

    pub fn bool(&self) -> Result<bool, ImportError> {
        match self.value() {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::Str("true")) => Ok(true),
            Some(Value::Str("false")) => Ok(false),
            _ => Err(self.err(format!("`{}` is not true or false", self.render()))),
        }
    }

    /// The entries whose keys are not in `known`: what the caller does
    /// not map, to be written as comments (never dropped silently).
    pub fn others(&self, known: &[&str]) -> Result<Vec<(String, Node<'a>)>, ImportError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .collect())
    }

    /// The node in YAML flow style on one line, cut short when long: what
    /// a comment shows of a setting that is not imported.
    pub fn render(&self) -> String {
        const MAX: usize = 160;
        let mut out = String::new();
        self.render_into(&mut out, MAX);
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str(" ...");
        }
        out
    }

    fn render_into(&self, out: &mut String, max: usize) {
        if out.len() > max {
            return;
        }
        match self.data() {
            YamlData::Mapping(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    Node::root(k, self.file).render_into(out, max);
                    out.push_str(": ");
                    Node::root(v, self.file).render_into(out, max);
                }
                out.push('}');
            }
            YamlData::Sequence(s) => {
                out.push('[');
                for (i, v) in s.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    Node::root(v, self.file).render_into(out, max);
                }
                out.push(']');
            }
            _ => match self.value() {
                Some(Value::Null) | None => out.push_str("null"),
                Some(Value::Bool(b)) => out.push_str(&b.to_string()),
                Some(Value::Int(i)) => out.push_str(&i.to_string()),
                Some(Value::Float(f)) => out.push_str(&f.to_string()),
                Some(Value::Str(s)) => out.push_str(s),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lines_and_values() {
        let text = "a:\n  b: 3\n  c: [x, {d: true}]\n  e: \"7\"\n  f:\n";
        let y = load(text, "t.yaml").unwrap();
        let root = Node::root(&y, "t.yaml");
        let a = root.require("a").unwrap();
        let b = a.require("b").unwrap();
        assert_eq!((b.line(), b.path(), b.u64().unwrap()), (2, "a.b", 3));
        assert_eq!(a.require("e").unwrap().u64().unwrap(), 7);
        let c = a.require("c").unwrap().items().unwrap();
        assert_eq!(c[1].path(), "a.c[1]");
        assert!(c[1].require("d").unwrap().bool().unwrap());
        assert!(a.get("f").unwrap().is_none());
        assert_eq!(a.render(), "{b: 3, c: [x, {d: true}], e: 7, f: null}");
        let e = a.require("zz").unwrap_err().to_string();
        assert_eq!(e, "t.yaml:2: a: `zz` is missing");
        let e = c[0].u64().unwrap_err().to_string();
        assert_eq!(e, "t.yaml:3: a.c[0]: `x` is not a whole number");
        assert_eq!(a.others(&["b", "c"]).unwrap().len(), 2);
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let e = load("a: 1\nb: [1, 2\nc: 3\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.yaml:") && e.contains("not valid YAML"),
            "{e}"
        );
        let e = load("a: 1\na: 2\n", "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:2:"), "{e}");
        let e = load("", "t.yaml").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
