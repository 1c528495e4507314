//! TLS sections: a cluster's `tls` (keyway as a client of its nodes) and
//! `[proxy] tls` (keyway as a server to its clients). The certificates are
//! loaded here, so a bad file is a configuration error, not a failed start.

use std::net::SocketAddr;
use std::path::PathBuf;
use toml::Spanned;

use super::model::{DownstreamTlsConfig, UpstreamTlsConfig};
use super::raw::{RawProxyTls, RawTls};
use super::validation::{resolve, Ctx};
use super::ConfigError;
use crate::tls::{DownstreamTls, UpstreamTls};

/// A cluster's `tls`: `true`, `false`, or a table of settings.
pub(super) fn upstream(
    ctx: &Ctx,
    tls: &Option<Spanned<RawTls>>,
    key: &str,
) -> Result<Option<UpstreamTlsConfig>, ConfigError> {
    let t = match tls {
        Some(t) if !matches!(t.get_ref(), RawTls::On(false)) => t,
        _ => return Ok(None),
    };
    let settings = match t.get_ref() {
        RawTls::On(_) => UpstreamTls::default(),
        RawTls::Table(tt) => UpstreamTls {
            ca_file: tt.ca_file.as_ref().map(PathBuf::from),
            server_name: tt.server_name.clone(),
            client_cert: tt.client_cert.as_ref().map(PathBuf::from),
            client_key: tt.client_key.as_ref().map(PathBuf::from),
            insecure_skip_verify: tt.insecure_skip_verify.unwrap_or(false),
        },
    };
    let client = crate::tls::client_config(&settings).map_err(|e| ctx.err(t.span(), key, e))?;
    let files = crate::tls::files_digest(&[
        settings.ca_file.as_deref(),
        settings.client_cert.as_deref(),
        settings.client_key.as_deref(),
    ]);
    Ok(Some(UpstreamTlsConfig {
        settings,
        client,
        files,
    }))
}

/// `[proxy] tls`: its own listener, or `listen` itself speaks TLS.
pub(super) fn downstream(
    ctx: &Ctx,
    tls: &Option<Spanned<RawProxyTls>>,
    listen: SocketAddr,
) -> Result<Option<DownstreamTlsConfig>, ConfigError> {
    let Some(t) = tls else { return Ok(None) };
    let raw = t.get_ref();
    let settings = DownstreamTls {
        cert_file: PathBuf::from(&raw.cert_file),
        key_file: PathBuf::from(&raw.key_file),
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
    };
    let server =
        crate::tls::server_config(&settings).map_err(|e| ctx.err(t.span(), "proxy.tls", e))?;
    let tls_listen = match &raw.listen {
        Some(l) => {
            let addr = resolve(ctx, l, t.span(), "proxy.tls.listen")?;
            if addr == listen {
                return Err(ctx.err(
                    t.span(),
                    "proxy.tls.listen",
                    "must differ from proxy.listen (leave it out to make proxy.listen TLS)",
                ));
            }
            Some(addr)
        }
        None => None,
    };
    let files = crate::tls::files_digest(&[
        Some(settings.cert_file.as_path()),
        Some(settings.key_file.as_path()),
        settings.ca_file.as_deref(),
    ]);
    Ok(Some(DownstreamTlsConfig {
        listen: tls_listen,
        settings,
        server,
        files,
    }))
}
