//! What a connection says first: credentials (`AUTH`, or `HELLO 3 AUTH`
//! for RESP3), `READONLY` for Redis Cluster replicas, `SELECT` for a
//! database, and how to tell a refusal of the credentials from other
//! errors.

use crate::resp::reply::error_code;
use crate::resp::write::{self, Protocol};

/// The first requests on a connection: `HELLO 3 [AUTH user pass]` for
/// RESP3 connections, `AUTH [user] pass` for RESP2 ones with credentials,
/// then READONLY for Redis Cluster nodes. Returns them, their count and
/// what the first carries.
pub(super) fn handshake(
    proto: Protocol,
    auth: &Option<(Option<String>, String)>,
    readonly: bool,
    db: u16,
) -> (Vec<u8>, usize, Credentials) {
    let credentials = match (proto, auth) {
        (_, None) => Credentials::None,
        (Protocol::Resp3, Some(_)) => Credentials::Hello,
        (Protocol::Resp2, Some(_)) => Credentials::Auth,
    };
    let mut out = Vec::new();
    let user = auth
        .as_ref()
        .map(|(u, _)| u.as_deref().unwrap_or("default"));
    match (proto, auth) {
        (Protocol::Resp3, Some((_, pass))) => {
            write::array_header(&mut out, 5);
            for a in ["HELLO", "3", "AUTH", user.unwrap_or("default"), pass] {
                write::bulk(&mut out, a.as_bytes());
            }
        }
        (Protocol::Resp3, None) => {
            write::array_header(&mut out, 2);
            write::bulk(&mut out, b"HELLO");
            write::bulk(&mut out, b"3");
        }
        (Protocol::Resp2, Some((Some(u), pass))) => {
            write::array_header(&mut out, 3);
            for a in ["AUTH", u, pass] {
                write::bulk(&mut out, a.as_bytes());
            }
        }
        (Protocol::Resp2, Some((None, pass))) => {
            write::array_header(&mut out, 2);
            write::bulk(&mut out, b"AUTH");
            write::bulk(&mut out, pass.as_bytes());
        }
        (Protocol::Resp2, None) => {}
    }
    let mut n = usize::from(!out.is_empty());
    if readonly {
        write::array_header(&mut out, 1);
        write::bulk(&mut out, b"READONLY");
        n += 1;
    }
    if db != 0 {
        write::array_header(&mut out, 2);
        write::bulk(&mut out, b"SELECT");
        let mut digits = Vec::new();
        write::push_decimal(&mut digits, db.into());
        write::bulk(&mut out, &digits);
        n += 1;
    }
    (out, n, credentials)
}

/// What the first set-up command of a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credentials {
    None,
    /// `AUTH [user] pass` (RESP2).
    Auth,
    /// `HELLO 3 AUTH user pass` (RESP3).
    Hello,
}

impl Credentials {
    /// Whether `error`, the reply to the first set-up command, refuses the
    /// credentials: any error to AUTH; to HELLO, the credential errors (a
    /// server without HELLO answers an unknown-command error instead).
    pub(super) fn refused_by(self, error: &[u8]) -> bool {
        match self {
            Credentials::None => false,
            Credentials::Auth => true,
            Credentials::Hello => matches!(error_code(error), b"WRONGPASS" | b"NOAUTH"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_told_by_the_command_and_the_error_code() {
        let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
        let old_redis = b"-ERR invalid password\r\n";
        // Found in review: the error's text was searched for "AUTH", so a
        // server without HELLO ("unknown command 'HELLO', with args
        // beginning with: '3' 'AUTH' ...") counted as refusing the password.
        let no_hello = b"-ERR unknown command 'HELLO', with args beginning with: '3' 'AUTH' \r\n";
        assert!(Credentials::Auth.refused_by(wrongpass));
        assert!(Credentials::Auth.refused_by(old_redis));
        assert!(Credentials::Hello.refused_by(wrongpass));
        assert!(Credentials::Hello
            .refused_by(b"-NOAUTH HELLO must be called with the client already authenticated\r\n"));
        assert!(!Credentials::Hello.refused_by(no_hello));
        assert!(!Credentials::None.refused_by(wrongpass));
    }

    #[test]
    fn the_handshake_says_what_its_first_command_carries() {
        let auth = Some((None, "pw".to_string()));
        assert_eq!(
            handshake(Protocol::Resp2, &auth, false, 0).2,
            Credentials::Auth
        );
        assert_eq!(handshake(Protocol::Resp3, &auth, true, 1).1, 3);
        assert_eq!(
            handshake(Protocol::Resp3, &auth, false, 0).2,
            Credentials::Hello
        );
        assert_eq!(
            handshake(Protocol::Resp3, &None, false, 0).2,
            Credentials::None
        );
        assert_eq!(handshake(Protocol::Resp2, &None, false, 0).1, 0);
    }
}
