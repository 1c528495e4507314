//! A configuration error: where it is (file, line, key) and what is wrong,
//! typed by where it came from. Display words it for the operator.

use std::path::PathBuf;

use crate::tls::TlsError;

#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Unreadable { path: PathBuf, why: std::io::Error },
    /// Not TOML, or not the shape keyway reads (an unknown key, a wrong
    /// type), as the TOML reader words it, with secret values hidden.
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// A value keyway cannot accept.
    Value {
        file: String,
        line: usize,
        key: String,
        problem: Problem,
    },
    /// Something about the file as a whole, not one line of it.
    File { file: String, problem: Problem },
}

/// What is wrong with a value.
#[derive(Debug)]
pub enum Problem {
    /// One of keyway's rules for this value, worded for the operator.
    Rule(String),
    /// Not of the form the key takes.
    NotA {
        given: String,
        expected: &'static str,
    },
    /// A count outside `1..=max`.
    OutOfRange {
        max: u64,
    },
    /// An address that does not resolve; `shown` leaves credentials out,
    /// `why` is None when it resolved to nothing.
    Address {
        shown: String,
        why: Option<std::io::Error>,
    },
    /// Boxed: rustls's errors are large, and a Result carrying a
    /// ConfigError should stay small.
    Tls(Box<TlsError>),
    Secret(SecretError),
}

impl From<&str> for Problem {
    fn from(rule: &str) -> Problem {
        Problem::Rule(rule.to_string())
    }
}

impl From<String> for Problem {
    fn from(rule: String) -> Problem {
        Problem::Rule(rule)
    }
}

impl From<TlsError> for Problem {
    fn from(e: TlsError) -> Problem {
        Problem::Tls(Box::new(e))
    }
}

impl From<SecretError> for Problem {
    fn from(e: SecretError) -> Problem {
        Problem::Secret(e)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Rule(rule) => f.write_str(rule),
            Problem::NotA { given, expected } => write!(f, "`{given}` is not {expected}"),
            Problem::OutOfRange { max } => write!(f, "must be between 1 and {max}"),
            Problem::Address { shown, why: None } => {
                write!(f, "`{shown}` is not a usable host:port (no address)")
            }
            Problem::Address {
                shown,
                why: Some(why),
            } => write!(f, "`{shown}` is not a usable host:port ({why})"),
            Problem::Tls(e) => write!(f, "{e}"),
            Problem::Secret(e) => write!(f, "{e}"),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Unreadable { path, why } => {
                write!(f, "{}: cannot read: {why}", path.display())
            }
            ConfigError::Syntax {
                file,
                line,
                message,
            } => write!(f, "{file}:{line}: {message}"),
            ConfigError::Value {
                file,
                line,
                key,
                problem,
            } => write!(f, "{file}:{line}: `{key}`: {problem}"),
            ConfigError::File { file, problem } => write!(f, "{file}: {problem}"),
        }
    }
}

/// Why a secret could not be read; never shows the secret.
#[derive(Debug)]
pub enum SecretError {
    Unreadable { path: String, why: std::io::Error },
    Unset { variable: String },
    NotExactlyOne,
    Empty,
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::Unreadable { path, why } => {
                write!(f, "cannot read the file `{path}`: {why}")
            }
            SecretError::Unset { variable } => {
                write!(f, "the environment variable `{variable}` is not set")
            }
            SecretError::NotExactlyOne => f.write_str("give exactly one of `file` or `env`"),
            SecretError::Empty => f.write_str("is empty"),
        }
    }
}

impl std::error::Error for ConfigError {}
