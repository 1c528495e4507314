//! The keyway TOML an import prints: sections in the order keyway's own
//! config.toml uses, values quoted by the toml crate (so any string the
//! source held stays valid TOML), and comments kept on one line each (a
//! newline inside a comment would end it and break the file).

/// One line of a section.
enum Line {
    Comment(String),
    Set(String, String),
}

/// The lines of one table.
#[derive(Default)]
pub struct Section {
    lines: Vec<Line>,
}

impl Section {
    pub fn comment(&mut self, text: impl AsRef<str>) {
        self.lines.push(Line::Comment(one_line(text.as_ref())));
    }

    /// `key = value`, `value` already TOML (see `string`, `inline`).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push(Line::Set(key.to_string(), value.into()));
    }

    pub fn set_str(&mut self, key: &str, value: &str) {
        self.set(key, string(value));
    }

    fn write(&self, out: &mut String) {
        for l in &self.lines {
            match l {
                Line::Comment(c) if c.is_empty() => out.push_str("#\n"),
                Line::Comment(c) => {
                    out.push_str("# ");
                    out.push_str(c);
                    out.push('\n');
                }
                Line::Set(k, v) => {
                    out.push_str(k);
                    out.push_str(" = ");
                    out.push_str(v);
                    out.push('\n');
                }
            }
        }
    }
}

/// A whole keyway configuration.
#[derive(Default)]
pub struct Doc {
    pub header: Section,
    pub proxy: Section,
    pub clusters: Vec<Section>,
    pub routes: Section,
    pub prefixes: Vec<Section>,
    /// What was not imported and belongs to no section above.
    pub trailer: Section,
}

impl Doc {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.header.write(&mut out);
        out.push_str("\n[proxy]\n");
        self.proxy.write(&mut out);
        for c in &self.clusters {
            out.push_str("\n[[clusters]]\n");
            c.write(&mut out);
        }
        out.push_str("\n[routes]\n");
        self.routes.write(&mut out);
        for p in &self.prefixes {
            out.push_str("\n[[routes.prefix]]\n");
            p.write(&mut out);
        }
        if !self.trailer.lines.is_empty() {
            out.push('\n');
            self.trailer.write(&mut out);
        }
        out
    }
}

/// A TOML string literal.
pub fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML float (always with a decimal point, as TOML wants).
pub fn float(f: f64) -> String {
    toml::Value::Float(f).to_string()
}

/// An inline table from `key = value` pairs whose values are TOML already.
pub fn inline(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", body.join(", "))
}

/// A TOML array, one item per line when there are several.
pub fn array(items: &[String]) -> String {
    match items {
        [] => "[]".to_string(),
        [one] => format!("[{one}]"),
        many => format!("[\n  {},\n]", many.join(",\n  ")),
    }
}

/// Comment text on one line: control characters (newlines included) as
/// spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_comments_stay_valid_toml() {
        let mut d = Doc::default();
        d.header.comment("imported\nfrom \"x\"\u{7f}");
        d.proxy.set_str("listen", "127.0.0.1:1");
        d.proxy.set_str("password", "a\"b\\c\nd");
        let mut c = Section::default();
        c.set_str("name", "main");
        c.set(
            "endpoints",
            array(&[
                string("127.0.0.1:2"),
                inline(&[("address", string("127.0.0.1:3")), ("weight", "2".into())]),
            ]),
        );
        d.clusters.push(c);
        d.routes.set_str("catch_all", "main");
        d.routes.set("fraction", float(1.0));
        let text = d.render();
        assert!(text.starts_with("# imported from \"x\" \n"), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["proxy"]["password"].as_str(), Some("a\"b\\c\nd"));
        assert_eq!(
            v["clusters"][0]["endpoints"][1]["weight"].as_integer(),
            Some(2)
        );
        assert_eq!(v["routes"]["fraction"].as_float(), Some(1.0));
    }
}
