//! Small readers of Envoy values the other files share: lists that may be
//! absent, socket addresses, secrets written inline, durations and the
//! file names of certificates.

use crate::import::model::{host_port, ImportError};
use crate::import::yaml::Node;
use std::time::Duration;

/// The items of the list at `key`; none when it is absent.
pub(super) fn items_of<'a>(n: &Node<'a>, key: &str) -> Result<Vec<Node<'a>>, ImportError> {
    match n.get(key)? {
        Some(v) => v.items(),
        None => Ok(Vec::new()),
    }
}

/// `address: { socket_address: { address, port_value } }` as `host:port`.
pub(super) fn socket_address(a: &Node) -> Result<String, ImportError> {
    if let Some(p) = a.get("pipe")? {
        return Err(p.err("a unix socket; keyway speaks TCP only"));
    }
    let sa = a.require("socket_address")?;
    if let Some(np) = sa.get("named_port")? {
        return Err(np.err("a named port; give port_value"));
    }
    let host = sa.require("address")?.scalar()?;
    let port_node = sa.require("port_value")?;
    let port = port_node.u64()?;
    if port == 0 || port > 65535 {
        return Err(port_node.err(format!("{port} is not a TCP port")));
    }
    Ok(host_port(&host, port))
}

/// A listener's `address` as the `host:port` keyway listens on.
pub(super) fn listen_address(a: &Node) -> Result<String, ImportError> {
    socket_address(a)
}

/// A secret written inline. A file or environment variable is refused:
/// importing without it would let clients in without AUTH, or lock
/// keyway out of its servers.
pub(super) fn data_source(n: &Node) -> Result<String, ImportError> {
    if let Some(s) = n.get("inline_string")? {
        return s.scalar();
    }
    Err(n.err(
        "keyway takes credentials written in its configuration: give them as inline_string here, or set them in the imported file",
    ))
}

/// An Envoy duration ("5s", "0.25s") exactly.
pub(super) fn duration(n: &Node) -> Result<Duration, ImportError> {
    let text = n.scalar()?;
    let bad = || {
        n.err(format!(
            "`{text}` is not an Envoy duration such as \"5s\" or \"0.25s\""
        ))
    };
    let secs = text.trim().strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.is_empty() && frac.is_empty()
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    Ok(Duration::new(whole, nanos))
}

/// Whether an endpoint's address is an `ip:port` (not a name to resolve).
pub(super) fn is_ip_port(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok()
}

/// A certificate or key given as `filename`.
pub(super) fn file_name(n: &Node) -> Result<String, ImportError> {
    match n.get("filename")? {
        Some(f) => f.scalar(),
        None => Err(n.err(
            "keyway reads certificates and keys from files: give filename (write inline ones to a file)",
        )),
    }
}
