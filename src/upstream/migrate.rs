//! MIGRATE, as a reshard sends it: the session for a key a command is
//! about to touch, the mover for the keys it scanned. Atomic on the old
//! owner; `+NOKEY` when no key given is there (moved already, or never
//! written), which is as good as moved.

use std::time::Duration;

use crate::resp::write;

/// What a MIGRATE's reply (or failure) says: `+OK` (moved) and `+NOKEY`
/// (nothing to move) are both done.
pub fn moved_by(reply: Result<&[u8], &str>) -> Result<(), String> {
    match reply {
        Ok(r) if r.starts_with(b"+") => Ok(()),
        Ok(r) => Err(String::from_utf8_lossy(r.get(1..).unwrap_or_default())
            .trim_end()
            .to_string()),
        Err(msg) => Err(msg.to_string()),
    }
}

/// MIGRATE's arguments but the keys: to where, which database, how long
/// the old owner may take, and the credentials the new one asks.
pub struct Migrate<'a> {
    pub to: std::net::SocketAddr,
    pub db: u16,
    pub timeout: Duration,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

impl Migrate<'_> {
    /// `MIGRATE host port "" db timeout REPLACE [AUTH pass | AUTH2 user
    /// pass] KEYS key...`. REPLACE: a copy the new owner may hold is stale
    /// (left by an earlier placement, or by an IOERR that is retried).
    pub fn encode(&self, b: &mut Vec<u8>, keys: &[&[u8]]) {
        let auth = match (self.username, self.password) {
            (Some(user), Some(pass)) => vec![&b"AUTH2"[..], user.as_bytes(), pass.as_bytes()],
            (None, Some(pass)) => vec![&b"AUTH"[..], pass.as_bytes()],
            _ => Vec::new(),
        };
        let host = self.to.ip().to_string();
        let port = self.to.port().to_string();
        let db = self.db.to_string();
        let timeout = self.timeout.as_millis().max(1).to_string();
        let head: [&[u8]; 7] = [
            b"MIGRATE",
            host.as_bytes(),
            port.as_bytes(),
            b"",
            db.as_bytes(),
            timeout.as_bytes(),
            b"REPLACE",
        ];
        write::array_header(b, head.len() + auth.len() + 1 + keys.len());
        for arg in head.iter().chain(&auth).chain([&&b"KEYS"[..]]).chain(keys) {
            write::bulk(b, arg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::value::Value;

    fn words(frame: &[u8]) -> Vec<String> {
        let Some((Value::Array(items), _)) = Value::parse(frame) else {
            panic!("not an array: {}", String::from_utf8_lossy(frame));
        };
        items
            .iter()
            .map(|v| match v {
                Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn migrate_names_the_new_owner_its_credentials_and_the_keys() {
        let mut order = Migrate {
            to: "10.0.0.7:6380".parse().unwrap(),
            db: 3,
            timeout: Duration::from_millis(250),
            username: None,
            password: None,
        };
        let mut b = Vec::new();
        order.encode(&mut b, &[b"k1", b"{t}k2"]);
        assert_eq!(
            words(&b),
            ["MIGRATE", "10.0.0.7", "6380", "", "3", "250", "REPLACE", "KEYS", "k1", "{t}k2"]
        );
        order.password = Some("s3cret");
        b.clear();
        order.encode(&mut b, &[b"k"]);
        assert_eq!(words(&b)[7..], ["AUTH", "s3cret", "KEYS", "k"]);
        order.username = Some("app");
        b.clear();
        order.encode(&mut b, &[b"k"]);
        assert_eq!(words(&b)[7..], ["AUTH2", "app", "s3cret", "KEYS", "k"]);
    }

    #[test]
    fn ok_and_nokey_are_moved_errors_are_not() {
        assert_eq!(moved_by(Ok(b"+OK\r\n")), Ok(()));
        assert_eq!(moved_by(Ok(b"+NOKEY\r\n")), Ok(()));
        assert_eq!(
            moved_by(Ok(
                b"-IOERR error or timeout writing to target instance\r\n"
            )),
            Err("IOERR error or timeout writing to target instance".into())
        );
        assert_eq!(
            moved_by(Err("ERR upstream timeout")),
            Err("ERR upstream timeout".into())
        );
    }
}
