//! Secrets: client passwords kept as digests, and tokens read from a file
//! or the environment, never from the configuration itself.

use super::error::SecretError;
use super::raw::RawSecret;

/// A client password as keyway keeps it: its SHA-256 digest, as Redis
/// keeps ACL passwords. Comparing digests in constant time tells an
/// attacker neither where a guess differs nor how long the password is.
#[derive(Clone)]
pub struct PasswordDigest([u8; 32]);

impl PasswordDigest {
    pub fn of(password: &[u8]) -> PasswordDigest {
        let d = ring::digest::digest(&ring::digest::SHA256, password);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        PasswordDigest(out)
    }

    /// Whether `candidate` is this password; the time taken does not
    /// depend on the candidate's bytes or length beyond hashing it.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let other = PasswordDigest::of(candidate);
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for PasswordDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordDigest(..)")
    }
}

/// The secret a `{ file = ... }` or `{ env = ... }` table names, trimmed.
pub(super) fn read_secret(raw: &RawSecret) -> Result<String, SecretError> {
    let secret = match (&raw.file, &raw.env) {
        (Some(path), None) => {
            std::fs::read_to_string(path).map_err(|why| SecretError::Unreadable {
                path: path.clone(),
                why,
            })?
        }
        (None, Some(name)) => std::env::var(name).map_err(|_| SecretError::Unset {
            variable: name.clone(),
        })?,
        _ => return Err(SecretError::NotExactlyOne),
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_as_digests_and_compared_whole() {
        let d = PasswordDigest::of(b"s3cret");
        assert!(d.matches(b"s3cret"));
        assert!(!d.matches(b"s3creT"));
        assert!(!d.matches(b"s3cret!"));
        assert!(!d.matches(b""));
        assert!(PasswordDigest::of(b"").matches(b""));
        // The digest is SHA-256 (what Redis keeps for ACL passwords).
        let hex: String = d.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
        );
        assert_eq!(format!("{d:?}"), "PasswordDigest(..)");
    }
}
