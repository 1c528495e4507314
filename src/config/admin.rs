//! `[admin]` and `[log]`: the admin endpoint, who may use it, where latency
//! dumps go, and what the log shows.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::raw::{RawAdmin, RawLog};
use super::secret::{read_secret, PasswordDigest};
use super::validation::{resolve, Ctx};
use super::ConfigError;

pub(super) struct Admin {
    pub(super) listen: Option<SocketAddr>,
    pub(super) token: Option<PasswordDigest>,
    pub(super) latency_dir: Option<PathBuf>,
    /// Sample one request in this many for hot keys (0: off).
    pub(super) hot_keys_every: u32,
}

/// Requests per hot-key sample unless `[admin] hot_keys_sample` says.
pub const HOT_KEYS_SAMPLE: u32 = 32;

/// An admin endpoint reachable from other hosts needs a token.
pub(super) fn read(ctx: &Ctx, admin: Option<&RawAdmin>) -> Result<Admin, ConfigError> {
    let listen_spanned = admin.and_then(|a| a.listen.as_ref());
    let listen = match listen_spanned {
        Some(l) => Some(resolve(ctx, l.get_ref(), l.span(), "admin.listen")?),
        None => None,
    };
    let token = match admin.and_then(|a| a.token.as_ref()) {
        None => None,
        Some(t) => Some(PasswordDigest::of(
            read_secret(t.get_ref())
                .map_err(|why| ctx.err(t.span(), "admin.token", why))?
                .as_bytes(),
        )),
    };
    if let (Some(addr), None) = (listen, &token) {
        if !addr.ip().is_loopback() {
            return Err(ctx.err(
                listen_spanned.map_or(0..0, |l| l.span()),
                "admin.listen",
                format!("{addr} is reachable from other hosts: set admin.token = {{ file = \"...\" }} or {{ env = \"...\" }} so that only holders of the token can use it"),
            ));
        }
    }
    let every = match admin.and_then(|a| a.hot_keys_sample.as_ref()) {
        None => HOT_KEYS_SAMPLE,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(n @ 1..=1_000_000) => n,
            _ => {
                return Err(ctx.err(
                    n.span(),
                    "admin.hot_keys_sample",
                    "must be from 1 (every request) to 1000000",
                ))
            }
        },
    };
    let on = admin.and_then(|a| a.hot_keys).unwrap_or(true);
    Ok(Admin {
        listen,
        token,
        latency_dir: admin.and_then(|a| a.latency_dir.clone()).map(PathBuf::from),
        hot_keys_every: if on { every } else { 0 },
    })
}

pub(super) fn log_level(ctx: &Ctx, log: Option<&RawLog>) -> Result<crate::log::Level, ConfigError> {
    match log.and_then(|l| l.level.as_ref()) {
        None => Ok(crate::log::Level::Info),
        Some(l) => crate::log::Level::parse(l.get_ref()).ok_or_else(|| {
            ctx.err(
                l.span(),
                "log.level",
                "must be one of error, warn, info, debug",
            )
        }),
    }
}
