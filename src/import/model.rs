//! What an import takes and gives (options, the TOML and its notes, the
//! error naming the file and line at fault), and the text forms every
//! importer writes.

use std::time::Duration;

/// A refusal: where (the file, the line and key path when one node is at
/// fault) and why. Display words it `file:line: key.path: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub line: Option<usize>,
    /// The key path of the node at fault (`clusters[1].lb_policy`).
    pub path: Option<String>,
    pub problem: ImportProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProblem {
    /// A setting keyway cannot carry over, and why, worded for the operator.
    Rule(String),
    /// The YAML reader's own message.
    NotYaml(String),
    Empty,
    /// More than one YAML document.
    Documents(usize),
    /// `--pool` or `--listener` names nothing the file has.
    NoneNamed(Box<Unmatched>),
}

/// What `--pool` or `--listener` asked for, and what there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub what: &'static str,
    pub want: String,
    pub known: Vec<String>,
}

impl ImportError {
    /// A problem with the file as a whole.
    pub fn in_file(file: &str, problem: ImportProblem) -> ImportError {
        ImportError {
            file: file.to_string(),
            line: None,
            path: None,
            problem,
        }
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        match &self.problem {
            ImportProblem::Rule(why) => write!(f, ": {why}"),
            ImportProblem::NotYaml(why) => write!(f, ": not valid YAML: {why}"),
            ImportProblem::Empty => f.write_str(": the file is empty"),
            ImportProblem::Documents(n) => {
                write!(f, ": {n} YAML documents; one configuration is expected")
            }
            ImportProblem::NoneNamed(u) => {
                let Unmatched { what, want, known } = &**u;
                write!(f, ": no {what} named `{want}`")?;
                if known.is_empty() {
                    return Ok(());
                }
                write!(f, " ({what}s: {})", known.join(", "))
            }
        }
    }
}

/// What the operator chose on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The Envoy listener or twemproxy pool to import (default: the first).
    pub select: Option<String>,
    /// Listen here instead of the source's address (to run beside it).
    pub listen: Option<String>,
}

/// An import's result: the TOML, and what to tell the operator besides.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// One line each, for stderr (what was chosen or left out).
    pub notes: Vec<String>,
}

/// A duration as keyway writes it: whole seconds, milliseconds or
/// microseconds, the largest unit that keeps it exact (sub-microsecond
/// rests are rounded up, to stay positive).
pub fn duration_text(d: Duration) -> String {
    let us = d.as_nanos().div_ceil(1000);
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// A `host:port` as keyway's configuration reads it (IPv6 in brackets).
pub fn host_port(host: &str, port: u64) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_addresses() {
        assert_eq!(duration_text(Duration::from_secs(5)), "5s");
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::from_micros(1500)), "1500us");
        assert_eq!(duration_text(Duration::from_nanos(1)), "1us");
        assert_eq!(host_port("127.0.0.1", 6379), "127.0.0.1:6379");
        assert_eq!(host_port("::1", 6379), "[::1]:6379");
        assert_eq!(host_port("redis.local", 1), "redis.local:1");
    }
}
