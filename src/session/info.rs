//! keyway's answer to INFO: the sections clients read on connect (ioredis's
//! ready check reads `loading`, glide and redis-cli read `redis_version`,
//! `redis-cli --stat` the clients, memory, stats and keyspace lines),
//! rendered from this core's counters. The backends' versions and
//! keyspaces are merged in by `gather` (see `fanout`).

use super::{Client, CoreContext};
use crate::stats::CoreCounter;
use std::cell::RefCell;
use std::fmt::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The Redis version whose command set keyway proxies, reported when no
/// backend has told its own (clients gate features on it).
pub const REDIS_COMPAT_VERSION: &str = "7.2.4";

/// How long a core trusts the backends' version it last saw before HELLO
/// asks them again (a rolling upgrade shows within this).
const VERSION_MAX_AGE: Duration = Duration::from_secs(60);

/// The lowest `redis_version` among the backends, as this core last saw it
/// (in an INFO or HELLO fan-out): HELLO reports it without asking the
/// backends on every new connection.
#[derive(Debug, Default)]
pub struct BackendVersion {
    seen: RefCell<Option<(String, Instant)>>,
}

impl BackendVersion {
    /// The version seen less than `VERSION_MAX_AGE` ago.
    pub fn fresh(&self) -> Option<String> {
        match &*self.seen.borrow() {
            Some((v, at)) if at.elapsed() < VERSION_MAX_AGE => Some(v.clone()),
            _ => None,
        }
    }

    pub fn saw(&self, version: &str) {
        *self.seen.borrow_mut() = Some((version.to_string(), Instant::now()));
    }
}

/// What INFO needs beside the backends' replies (merged by `gather`).
#[derive(Debug)]
pub struct InfoParts {
    /// The server section's lines after `redis_version` (None: not asked).
    pub server: Option<String>,
    /// keyway's other sections, rendered.
    pub rest: String,
    /// Whether the keyspace section was asked for.
    pub keyspace: bool,
    /// Where the core keeps the version seen, for HELLO.
    pub seen: Rc<BackendVersion>,
}

/// The sections keyway renders, in Redis's order (`keyspace` comes from
/// the backends).
const SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
];

/// Which sections an `INFO [section ...]` asks for: none named, `default`,
/// `all` or `everything` mean all of them; unknown names are skipped, as
/// Redis does.
pub fn wanted(names: &[&[u8]]) -> [bool; SECTIONS.len()] {
    if names.is_empty() {
        return [true; SECTIONS.len()];
    }
    let mut want = [false; SECTIONS.len()];
    for n in names {
        if [&b"default"[..], b"all", b"everything"]
            .iter()
            .any(|a| n.eq_ignore_ascii_case(a))
        {
            return [true; SECTIONS.len()];
        }
        for (i, s) in SECTIONS.iter().enumerate() {
            if n.eq_ignore_ascii_case(s.as_bytes()) {
                want[i] = true;
            }
        }
    }
    want
}

/// Whether the backends must be asked (their version or keyspace).
pub fn needs_backends(want: &[bool; SECTIONS.len()]) -> bool {
    want[0] || want[6]
}

/// keyway's sections of an INFO reply.
pub fn render(ctx: &CoreContext, client: &Client, want: &[bool; SECTIONS.len()]) -> InfoParts {
    let cfg = &ctx.topo.config;
    let stats = &ctx.stats;
    let uptime = crate::stats::started_at().elapsed().as_secs();
    let mode = if ctx.topo.has_redis_cluster() {
        "cluster"
    } else {
        "ring"
    };
    let server = want[0].then(|| {
        let mut s = String::new();
        let _ = write!(
            s,
            "keyway_version:{}\r\nkeyway_upstream_mode:{mode}\r\nredis_mode:standalone\r\n\
             os:Linux\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\
             keyway_core:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            cfg.listen.port(),
            uptime / 86_400,
            stats.core,
        );
        s
    });
    let mut rest = String::new();
    // Counters are this core's: each core owns its own (no shared state on
    // the data path); /stats and /metrics give the process's totals.
    if want[1] {
        let _ = write!(
            rest,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:0\r\n\
             keyway_client_id:{}\r\n\r\n",
            stats.get(CoreCounter::ClientConnections),
            client.id,
        );
    }
    if want[2] {
        let rss = rss_bytes();
        let _ = write!(
            rest,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
             maxmemory:0\r\n\r\n",
            human(rss),
        );
    }
    if want[3] {
        rest.push_str(
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_bgsave_in_progress:0\r\n\
             aof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n",
        );
    }
    if want[4] {
        let _ = write!(
            rest,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\
             rejected_connections:{}\r\ntotal_error_replies:{}\r\n\r\n",
            stats.get(CoreCounter::AcceptedConnections),
            stats.commands_total(),
            stats.get(CoreCounter::BytesIn),
            stats.get(CoreCounter::BytesOut),
            stats.get(CoreCounter::RejectedConnections),
            stats.errors_total(),
        );
    }
    if want[5] {
        rest.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    InfoParts {
        server,
        rest,
        keyspace: want[6],
        seen: ctx.backend_version.clone(),
    }
}

/// Resident memory of the process, from /proc (0 when unreadable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2}{}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_asked_for() {
        assert_eq!(wanted(&[]), [true; 7]);
        assert_eq!(wanted(&[b"ALL"]), [true; 7]);
        let w = wanted(&[b"Replication", b"nosuch"]);
        assert_eq!(w, [false, false, false, false, false, true, false]);
        assert!(!needs_backends(&w));
        assert!(needs_backends(&wanted(&[b"keyspace"])));
        assert_eq!(human(1536), "1.50K");
    }
}
