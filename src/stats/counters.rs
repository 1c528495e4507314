//! Counters named once. Each family of counters is an enum whose rows say
//! how the counter is shown (its `/stats` key, its Prometheus family and
//! help); a core's cells, the snapshot, the totals and both renderings are
//! derived from those rows, so a new counter is one line here.

use std::cell::Cell;

/// How Prometheus reads a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One counter of a family: its id and how it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Row<Id> {
    pub id: Id,
    /// Its key in `/stats`.
    pub json: &'static str,
    /// Its Prometheus family.
    pub metric: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Defines a family: the enum (variants numbered from 0 in the order
/// written) and `ROWS`, in the same order, so `id as usize` indexes both.
macro_rules! family {
    ($(#[$doc:meta])* $name:ident {
        $($variant:ident => $json:literal, $metric:literal, $kind:ident, $help:literal;)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            pub const ROWS: &'static [Row<$name>] = &[$(Row {
                id: $name::$variant,
                json: $json,
                metric: $metric,
                kind: Kind::$kind,
                help: $help,
            }),*];
            pub const N: usize = Self::ROWS.len();
        }
    };
}

family! {
    /// A core's own counters (client connections, bytes, refusals).
    CoreCounter {
        ClientConnections => "client_connections", "keyway_client_connections", Gauge,
            "Client connections open.";
        AcceptedConnections => "accepted_connections", "keyway_client_connections_accepted_total", Counter,
            "Client connections accepted.";
        RejectedConnections => "rejected_connections", "keyway_client_connections_rejected_total", Counter,
            "Client connections closed at once by the connection rate limit.";
        BytesIn => "bytes_in", "keyway_client_bytes_received_total", Counter,
            "Bytes read from clients.";
        BytesOut => "bytes_out", "keyway_client_bytes_sent_total", Counter,
            "Bytes written to clients.";
        OutputHeld => "output_held_bytes", "keyway_client_output_held_bytes", Gauge,
            "Reply and message bytes this core's clients have waiting to be sent (max_output_memory bounds them).";
        TlsClientFailures => "tls_client_failures", "keyway_client_tls_handshake_failures_total", Counter,
            "Client connections whose TLS handshake failed or timed out.";
        DrainClosed => "drain_closed", "keyway_drain_closed_total", Counter,
            "Client connections a drain (SIGTERM) closed once their replies were sent.";
        DrainCut => "drain_cut", "keyway_drain_cut_total", Counter,
            "Client connections still open when drain_timeout ran out.";
        RefusedMaxClients => "refused_max_clients", "keyway_client_connections_refused_max_clients_total", Counter,
            "Client connections refused because max_clients were connected.";
        RefusedProtected => "refused_protected", "keyway_client_connections_refused_protected_total", Counter,
            "Client connections from beyond loopback refused by protected_mode.";
        IdleClosed => "idle_closed", "keyway_client_idle_closed_total", Counter,
            "Client connections closed by client_idle_timeout.";
        AcceptErrors => "accept_errors", "keyway_accept_errors_total", Counter,
            "Accept calls that failed (out of file descriptors, mostly).";
        OutputLimitClosed => "output_limit_closed", "keyway_client_output_limit_closed_total", Counter,
            "Clients closed because their buffered replies passed client_output_hard_limit.";
        AuthFailures => "auth_failures", "keyway_client_auth_failures_total", Counter,
            "AUTH and HELLO AUTH attempts with a wrong username or password.";
        AuthClosed => "auth_closed", "keyway_client_auth_closed_total", Counter,
            "Client connections closed after auth_failure_limit failed AUTH attempts.";
        ReloadMoved => "reload_moved", "keyway_reload_moved_total", Counter,
            "Blocking commands unblocked and subscribers closed because a reload moved the keys or channels they waited on.";
    }
}

family! {
    /// One endpoint's counters on one core.
    EndpointCounter {
        Requests => "requests", "keyway_upstream_requests_total", Counter,
            "Requests sent to an endpoint.";
        Errors => "errors", "keyway_upstream_errors_total", Counter,
            "Requests to an endpoint that failed.";
        Timeouts => "timeouts", "keyway_upstream_timeouts_total", Counter,
            "Requests to an endpoint that timed out.";
        Reconnects => "reconnects", "keyway_upstream_reconnects_total", Counter,
            "Connections made to an endpoint.";
        ConnectFailures => "connect_failures", "keyway_upstream_connect_failures_total", Counter,
            "Failed connection attempts to an endpoint.";
        TlsFailures => "tls_failures", "keyway_upstream_tls_handshake_failures_total", Counter,
            "TLS handshakes with an endpoint that failed.";
        AuthFailures => "auth_failures", "keyway_upstream_auth_failures_total", Counter,
            "Connections an endpoint refused the credentials of.";
    }
}

family! {
    /// A cluster's counters as a mirror target.
    MirrorCounter {
        Sent => "sent", "keyway_mirror_requests_total", Counter,
            "Requests mirrored to a cluster.";
        Failed => "failed", "keyway_mirror_failures_total", Counter,
            "Mirrored requests that failed or got an error reply.";
        Dropped => "dropped", "keyway_mirror_dropped_total", Counter,
            "Mirrored requests dropped because the mirror queue was full.";
    }
}

family! {
    /// Redirections met by requests to one redis_cluster cluster.
    RedirectCounter {
        Moved => "moved", "keyway_cluster_moved_total", Counter,
            "MOVED redirections followed.";
        Ask => "ask", "keyway_cluster_ask_total", Counter,
            "ASK redirections followed.";
        Retried => "retried", "keyway_cluster_retries_total", Counter,
            "Requests sent again after TRYAGAIN or CLUSTERDOWN.";
    }
}

family! {
    /// How much work a core's io_uring did.
    RingCounter {
        Enters => "enters", "keyway_ring_enters_total", Counter,
            "io_uring_enter calls of the core's driver (submit and reap).";
        Completions => "completions", "keyway_ring_completions_total", Counter,
            "Completions the core's ring delivered.";
        Parks => "parks", "keyway_ring_parks_total", Counter,
            "Times the core's driver slept with nothing to do.";
        NoBuffers => "no_buffers", "keyway_ring_no_buffers_total", Counter,
            "Receives ended because every provided buffer was in use.";
        BuffersInUse => "buffers_in_use", "keyway_ring_buffers_in_use", Gauge,
            "Provided buffers holding received bytes not read yet.";
    }
}

/// A family's cells on one core: plain `Cell`s, the core owns them.
pub struct Cells<const N: usize>([Cell<u64>; N]);

impl<const N: usize> Default for Cells<N> {
    fn default() -> Self {
        Cells(std::array::from_fn(|_| Cell::new(0)))
    }
}

impl<const N: usize> Cells<N> {
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        add_to(&self.0[i], n);
    }

    #[inline]
    pub fn sub(&self, i: usize, n: u64) {
        let c = &self.0[i];
        c.set(c.get().wrapping_sub(n));
    }

    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        self.0[i].get()
    }

    pub fn values(&self) -> [u64; N] {
        std::array::from_fn(|i| self.0[i].get())
    }
}

/// Adds `n` to one counter; wraps as Redis's INFO counters do.
#[inline]
pub fn add_to(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Adds `b` into `a`, counter by counter.
pub fn add_into<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed<Id: Copy + PartialEq + std::fmt::Debug>(
        rows: &[Row<Id>],
        index: fn(Id) -> usize,
    ) {
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(index(r.id), i, "{:?} is not at its own index", r.id);
            assert!(r.metric.starts_with("keyway_"), "{}", r.metric);
            assert_eq!(
                r.metric.ends_with("_total"),
                r.kind == Kind::Counter,
                "{}",
                r.metric
            );
            assert!(!r.help.is_empty() && r.help.ends_with('.'), "{}", r.metric);
        }
        let mut names: Vec<_> = rows.iter().flat_map(|r| [r.json, r.metric]).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a name is used twice");
    }

    #[test]
    fn every_family_is_indexed_by_its_ids_and_named_once() {
        well_formed(CoreCounter::ROWS, |c| c as usize);
        well_formed(EndpointCounter::ROWS, |c| c as usize);
        well_formed(MirrorCounter::ROWS, |c| c as usize);
        well_formed(RedirectCounter::ROWS, |c| c as usize);
        well_formed(RingCounter::ROWS, |c| c as usize);
    }

    #[test]
    fn cells_count_and_read_back() {
        let c: Cells<3> = Cells::default();
        c.add(1, 5);
        c.add(1, 2);
        c.sub(1, 1);
        c.add(2, 1);
        assert_eq!(c.values(), [0, 6, 1]);
        let mut total = [1, 1, 1];
        add_into(&mut total, &c.values());
        assert_eq!(total, [1, 7, 2]);
    }
}
