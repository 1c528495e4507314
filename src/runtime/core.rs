//! One core: a pinned glommio executor that owns its SO_REUSEPORT listener,
//! its sessions, its upstream connections and its stats. The control thread
//! reaches it only through a channel.

use super::admission::{
    protected_mode_admits, refuse, Admission, Admit, ClientSeats, Seat, MAX_LINGERING_REFUSALS,
};
use super::{CoreStartError, StartError};
use crate::control::cores::{CoreMsg, Generation};
use crate::net::doorbell::{Doorbell, RingingSender};
use crate::net::notify::{race, Either, Notify};
use crate::net::{Listener, Mode, Ring, Socket, Stream};
use crate::resp::errors::ErrorReply;
use crate::resp::Limits;
use crate::session::clients::{Ask, Registry};
use crate::session::{self, CoreContext, Held, Latest, OutputLimits};
use crate::stats::{CoreCounter, CoreStats, RingSnapshot};

use crate::topology::Topology;
use crate::upstream::Upstreams;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_rustls::TlsAcceptor;
use glommio::Placement;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often idle clients are looked for (`client_idle_timeout` counts
/// whole seconds, as Redis's `timeout` does).
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// Sessions that end before a core hands freed memory back (see
/// `memory::return_freed_memory`): rare enough to cost nothing measurable.
const TRIM_AFTER_SESSIONS: u64 = 1000;
/// ... and at most this often, however fast connections churn.
const TRIM_AT_MOST_EVERY: Duration = Duration::from_secs(10);

pub struct CoreSpec {
    pub index: usize,
    /// How this core's io_uring is set up (probed at start-up).
    pub ring_mode: Mode,
    pub cores: usize,
    pub cpu: usize,
    /// The configuration generation it starts with, and the slot maps
    /// found for it.
    pub first: Generation,
    /// Where this core asks for slot map refreshes.
    pub refresh: Sender<usize>,
    pub control: Receiver<CoreMsg>,
    /// Every core's inbox for CLIENT LIST/KILL, and this core's.
    pub client_inboxes: Vec<RingingSender<Ask>>,
    /// Rung after each message to this core (control or client asks).
    pub bell: Arc<Doorbell>,
    pub client_asks: Receiver<Ask>,
    pub started: Sender<Result<usize, StartError>>,
    /// Client connections across all cores, against `max_clients`.
    pub seats: Arc<ClientSeats>,
    /// Where connections report failures and recoveries (health).
    pub reports: crate::upstream::reports::Reports,
}

/// Runs one core on the calling thread until it is told to stop.
pub fn run_core(spec: CoreSpec) {
    let CoreSpec {
        index,
        ring_mode,
        cores,
        cpu,
        first,
        refresh,
        control,
        client_inboxes,
        client_asks,
        bell,
        started,
        seats,
        reports,
    } = spec;
    let builder =
        crate::net::ring::executor(Placement::Fixed(cpu)).name(&format!("keyway-core{index}"));
    let ex = match builder.make() {
        Ok(ex) => ex,
        Err(e) => {
            let why = CoreStartError::Executor(e);
            let _ = started.send(Err(StartError::Core { index, cpu, why }));
            return;
        }
    };
    ex.run(async move {
        crate::log::set_core(index);
        let topo = first.topo.clone();
        let discovered = first.discovered.unwrap_or_default();
        let cfg = &topo.config;
        // The core's own ring: every socket byte of this core goes through
        // it; glommio schedules the tasks and timers around it.
        let ring = match Ring::new(ring_mode, cfg.spin_before_park) {
            Ok(r) => r,
            Err(e) => {
                let mode = ring_mode.describe();
                let why = CoreStartError::Ring { mode, why: e };
                let _ = started.send(Err(StartError::Core { index, cpu, why }));
                return;
            }
        };
        let driver = glommio::spawn_local(ring.clone().drive());
        let bound = match bind_listeners(&ring, cfg) {
            Ok(bound) => bound,
            Err(why) => {
                let _ = started.send(Err(StartError::Core { index, cpu, why }));
                // glommio ends once its tasks do (it never preempts them).
                ring.stop();
                driver.await;
                return;
            }
        };
        let _ = started.send(Ok(index));
        let stats = Rc::new(CoreStats::new(
            index,
            topo.endpoints.len(),
            topo.clusters.len(),
        ));
        let upstreams = Upstreams::new(&topo, &stats, discovered, refresh, &ring, reports);
        let upstreams = Rc::new(upstreams);
        let user = cfg.username.clone().unwrap_or_else(|| "default".into());
        let clients = Rc::new(Registry::new(
            index,
            user,
            client_inboxes,
            client_asks,
            cfg.client_idle_timeout,
        ));
        let latest = Rc::new(Latest::default());
        let kept = Kept::first(&stats, &clients, &latest);
        let ctx = context(&topo, first.number, upstreams, cores, kept);
        // A resumed reshard's: none moved on this core yet, no connection.
        let _none = ctx.moved.borrow_mut().follow(&ctx);
        latest.set(Rc::new(ctx));
        let accept = Rc::new(Accept::new(index, cores, latest.clone(), seats));
        let (loops, stops) = accept.accept_on(bound);
        crate::net::spawn(control_loop(
            control,
            bell,
            accept.clone(),
            clients,
            ring.clone(),
            stops,
        ))
        .detach();
        for l in loops {
            l.await;
        }
        drain(&stats, latest.get().topo.config.drain_timeout).await;
        ring.stop();
        driver.await;
    });
}

impl Accept {
    /// Starts accepting on each listener: the accept loops, and what stops
    /// each of them.
    fn accept_on(
        self: &Rc<Self>,
        bound: Vec<(Listener, Option<TlsAcceptor>)>,
    ) -> (Vec<glommio::Task<()>>, Vec<Rc<Notify>>) {
        let mut stops = Vec::new();
        let mut loops = Vec::new();
        for (listener, tls) in bound {
            let stop = Rc::new(Notify::default());
            stops.push(stop.clone());
            let accept = self.clone();
            loops.push(crate::net::spawn(async move {
                accept.accept_clients(listener, tls, stop).await
            }));
        }
        (loops, stops)
    }

    /// The acceptor of core `index` of `cores`, under the settings of the
    /// context `latest` holds.
    fn new(index: usize, cores: usize, latest: Rc<Latest>, seats: Arc<ClientSeats>) -> Accept {
        let ctx = latest.get();
        let cfg = &ctx.topo.config;
        Accept {
            index,
            stats: ctx.stats.clone(),
            admission: RefCell::new(Admission::new(cfg.connection_rate_limit, cores)),
            rate_limit: Cell::new(cfg.connection_rate_limit),
            cores,
            next_id: Cell::new(1),
            stopping: Rc::new(Cell::new(false)),
            seats,
            protected: Cell::new(cfg.protected_mode && cfg.password.is_none()),
            keepalive: Cell::new(cfg.tcp_keepalive),
            lingering: Rc::new(Cell::new(0)),
            latest,
        }
    }
}

/// This core's listeners: `listen` and, for TLS, `listen` itself or a
/// second address of its own.
fn bind_listeners(
    ring: &Rc<Ring>,
    cfg: &crate::config::Config,
) -> Result<Vec<(Listener, Option<TlsAcceptor>)>, CoreStartError> {
    let mut listeners = Vec::new();
    let tls = cfg.tls.as_ref();
    let main_tls = tls.filter(|t| t.listen.is_none()).map(|t| t.server.clone());
    listeners.push((cfg.listen, main_tls));
    if let Some(t) = tls {
        if let Some(addr) = t.listen {
            listeners.push((addr, Some(t.server.clone())));
        }
    }
    let mut bound = Vec::new();
    for (addr, tls) in listeners {
        let l = Listener::bind(ring, addr).map_err(|why| CoreStartError::Listen { addr, why })?;
        bound.push((l, tls.map(TlsAcceptor::from)));
    }
    Ok(bound)
}

/// Draining: each session closes once it has sent what it owes (see
/// `session::serve`); those left after `timeout` are cut.
async fn drain(stats: &CoreStats, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while stats.get(CoreCounter::ClientConnections) > 0 && Instant::now() < deadline {
        crate::net::sleep(Duration::from_millis(10)).await;
    }
    stats.count(
        CoreCounter::DrainCut,
        stats.get(CoreCounter::ClientConnections),
    );
}

/// What a core's contexts share from one configuration generation to the
/// next.
struct Kept {
    stats: Rc<CoreStats>,
    backend_version: Rc<crate::session::info::BackendVersion>,
    clients: Rc<Registry>,
    /// Reply bytes waiting to be sent, whatever generation they came from.
    held: Rc<Held>,
    latest: Rc<Latest>,
    moved: Rc<RefCell<crate::session::reshard::Moved>>,
}

impl Kept {
    /// What a core's first context starts with.
    fn first(stats: &Rc<CoreStats>, clients: &Rc<Registry>, latest: &Rc<Latest>) -> Kept {
        Kept {
            stats: stats.clone(),
            backend_version: Default::default(),
            clients: clients.clone(),
            held: Rc::new(Held::default()),
            latest: latest.clone(),
            moved: Rc::default(),
        }
    }
}

/// A core's context for configuration generation `generation`.
fn context(
    topo: &Arc<Topology>,
    generation: u64,
    upstreams: Rc<Upstreams>,
    cores: usize,
    kept: Kept,
) -> CoreContext {
    let cfg = &topo.config;
    kept.stats.hot.set_every(cfg.hot_keys_every);
    CoreContext {
        topo: topo.clone(),
        upstreams,
        limits: Limits {
            max_bulk_len: cfg.max_bulk_len,
            max_multibulk_len: cfg.max_multibulk_len,
            max_inline_len: 64 * 1024,
            unauthenticated: false,
        },
        max_pending: cfg.max_pending_per_client,
        output: OutputLimits {
            soft: cfg.client_output_soft_limit,
            hard: cfg.client_output_hard_limit,
            budget: (cfg.max_output_memory / cores.max(1)).max(1),
            held: kept.held,
            pubsub: crate::session::pubsub::Limits {
                hard: [cfg.pubsub_output_hard_limit, cfg.client_output_hard_limit]
                    .into_iter()
                    .filter(|&l| l > 0)
                    .min()
                    .unwrap_or(0),
                soft: cfg.pubsub_output_soft_limit,
                soft_window: cfg.pubsub_output_soft_window,
            },
        },
        stats: kept.stats,
        backend_version: kept.backend_version,
        clients: kept.clients,
        generation,
        version: kept.latest.version() + 1,
        latest: kept.latest,
        resharding: topo.clusters.iter().any(|c| c.migration.is_some()),
        moved: kept.moved,
    }
}

/// What every listener of a core shares.
struct Accept {
    index: usize,
    /// The core's newest context: every new session starts on it.
    latest: Rc<Latest>,
    stats: Rc<CoreStats>,
    admission: RefCell<Option<Admission>>,
    /// `connection_rate_limit` the admission was made for.
    rate_limit: Cell<Option<u64>>,
    cores: usize,
    next_id: Cell<u64>,
    stopping: Rc<Cell<bool>>,
    seats: Arc<ClientSeats>,
    /// Protected mode with no password: loopback clients only.
    protected: Cell<bool>,
    keepalive: Cell<Duration>,
    /// Refused clients still being told why (see `refuse`).
    lingering: Rc<Cell<usize>>,
}

/// Why accept failed, with what to do when keyway is out of descriptors.
/// Logged as an error: the same failure repeated (every retry while out
/// of descriptors) is written once per log repeat window, with a count.
fn log_accept_failure(e: &std::io::Error, max_clients: usize) {
    let hint = match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => format!(
            " (out of file descriptors: max_clients is {max_clients}; raise LimitNOFILE or lower max_clients)"
        ),
        _ => String::new(),
    };
    crate::error!("accept failed: {e}{hint}");
}

/// A TLS client has this long to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Accept {
    /// Takes the client-side settings of a reloaded configuration.
    fn reconfigure(&self, cfg: &crate::config::Config) {
        self.protected
            .set(cfg.protected_mode && cfg.password.is_none());
        self.keepalive.set(cfg.tcp_keepalive);
        if self.rate_limit.replace(cfg.connection_rate_limit) != cfg.connection_rate_limit {
            *self.admission.borrow_mut() = Admission::new(cfg.connection_rate_limit, self.cores);
        }
    }

    /// Tells a refused client why and closes it. A TLS client is closed
    /// without a word (plain text inside its handshake would be noise).
    fn refuse(&self, stream: Socket, tls: bool, why: ErrorReply<'static>) {
        if tls {
            return;
        }
        if self.lingering.get() >= MAX_LINGERING_REFUSALS {
            stream.send_now(&why.frame());
            return;
        }
        self.lingering.set(self.lingering.get() + 1);
        let lingering = self.lingering.clone();
        crate::net::spawn(async move {
            refuse(stream, why).await;
            lingering.set(lingering.get() - 1);
        })
        .detach();
    }

    async fn accept_clients(
        self: Rc<Self>,
        listener: Listener,
        tls: Option<TlsAcceptor>,
        stop: Rc<Notify>,
    ) {
        while !self.stopping.get() {
            match race(listener.accept(), stop.wait()).await {
                Either::Left(Ok(stream)) => {
                    if !self.admission.borrow_mut().admit() {
                        // Over the connection rate: closed at once, counted.
                        self.stats.count(CoreCounter::RejectedConnections, 1);
                        drop(stream);
                        continue;
                    }
                    if self.protected.get() && !protected_mode_admits(stream.peer_addr()) {
                        self.stats.count(CoreCounter::RefusedProtected, 1);
                        self.refuse(stream, tls.is_some(), ErrorReply::ProtectedMode);
                        continue;
                    }
                    let Some(seat) = self.seats.take() else {
                        self.stats.count(CoreCounter::RefusedMaxClients, 1);
                        self.refuse(stream, tls.is_some(), ErrorReply::MaxClients);
                        continue;
                    };
                    stream.set_keepalive(self.keepalive.get());
                    let n = self.next_id.get();
                    self.next_id.set(n + 1);
                    let id = ((self.index as u64) << 48) | n;
                    let ctx = self.latest.get();
                    let stats = self.stats.clone();
                    stats.count(CoreCounter::AcceptedConnections, 1);
                    let connected = Connected::new(stats.clone(), seat);
                    match &tls {
                        None => {
                            let me = ctx.clients.register(id, stream.handle());
                            let run = session::serve(Stream::Plain(stream), ctx, me);
                            crate::net::spawn_holding(run, connected).detach();
                        }
                        // A TLS handshake holds rustls' whole connection
                        // state: boxed, so plain sessions stay small.
                        Some(acceptor) => {
                            let session = tls_session(acceptor.clone(), stream, ctx, stats, id);
                            crate::net::spawn_holding(Box::pin(session), connected).detach();
                        }
                    }
                }
                Either::Left(Err(e)) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    self.stats.count(CoreCounter::AcceptErrors, 1);
                    log_accept_failure(&e, self.seats.max());
                    crate::net::sleep(Duration::from_millis(50)).await;
                }
                Either::Right(()) => {}
            }
        }
    }
}

/// A client of the TLS listener: handshake (within TLS_HANDSHAKE_TIMEOUT),
/// then its session.
async fn tls_session(
    acceptor: TlsAcceptor,
    socket: Socket,
    ctx: Rc<CoreContext>,
    stats: Rc<CoreStats>,
    id: u64,
) {
    let timeout = crate::net::sleep(TLS_HANDSHAKE_TIMEOUT);
    let me = ctx.clients.register(id, socket.handle());
    match race(acceptor.accept(socket), timeout).await {
        Either::Left(Ok(s)) => session::serve(Stream::tls(s), ctx, me).await,
        Either::Left(Err(e)) => {
            stats.count(CoreCounter::TlsClientFailures, 1);
            crate::warn!("TLS client handshake failed: {e}");
        }
        Either::Right(()) => {
            stats.count(CoreCounter::TlsClientFailures, 1);
        }
    }
}

/// A connected client's seat under `max_clients` and its place in the
/// `client_connections` gauge, both given back when its task ends.
struct Connected {
    stats: Rc<CoreStats>,
    _seat: Seat,
}

impl Connected {
    fn new(stats: Rc<CoreStats>, seat: Seat) -> Connected {
        stats.count(CoreCounter::ClientConnections, 1);
        Connected { stats, _seat: seat }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.stats.uncount(CoreCounter::ClientConnections, 1);
    }
}

/// Serves this core's control channel and the other cores' asks, waiting
/// on `bell` (rung after each message to it) between them.
async fn control_loop(
    control: Receiver<CoreMsg>,
    bell: Arc<Doorbell>,
    accept: Rc<Accept>,
    clients: Rc<Registry>,
    ring: Rc<Ring>,
    stops: Vec<Rc<Notify>>,
) {
    let stats = accept.stats.clone();
    let mut next_idle_sweep = Instant::now();
    let mut ended_at_trim = 0u64;
    let mut next_trim = Instant::now();
    loop {
        match control.try_recv() {
            Ok(CoreMsg::Snapshot(reply)) => {
                let ctx = accept.latest.get();
                let mut snap = stats.snapshot(ctx.upstreams.states());
                snap.counts[CoreCounter::OutputHeld as usize] = ctx.output.held.get() as u64;
                let c = ring.counters();
                snap.ring = RingSnapshot {
                    mode: ring.mode().name(),
                    // In RingCounter's order.
                    counts: [
                        c.enters,
                        c.completions,
                        c.parks,
                        c.no_buffers,
                        ring.buffers_in_use(),
                    ],
                };
                let _ = reply.send(snap);
            }
            // Discovery's news of a generation this core no longer (or
            // not yet) serves is not about its endpoints.
            Ok(CoreMsg::SlotMap(map)) => {
                let ctx = accept.latest.get();
                if map.generation == ctx.generation {
                    ctx.upstreams.set_slot_map(map)
                }
            }
            Ok(CoreMsg::DiscoveryFailed {
                generation,
                cluster,
                why,
            }) => {
                let ctx = accept.latest.get();
                if generation == ctx.generation {
                    ctx.upstreams.discovery_failed(cluster, why)
                }
            }
            Ok(CoreMsg::Reload(generation, done)) => {
                let migrated_on = reload(&accept, &clients, *generation);
                let ctx = accept.latest.get();
                let index = accept.index;
                if holds(&ctx) {
                    // Confirmed once nothing sent before the hold is out.
                    crate::net::spawn(async move {
                        fence(&ctx, &migrated_on).await;
                        let _ = done.send(index);
                    })
                    .detach();
                } else {
                    let _ = done.send(index);
                }
            }
            Ok(CoreMsg::Stop) | Err(TryRecvError::Disconnected) => {
                accept.stopping.set(true);
                clients.drain();
                for stop in &stops {
                    stop.notify();
                }
                return;
            }
            Err(TryRecvError::Empty) => {
                clients.serve(&stats);
                if Instant::now() >= next_idle_sweep {
                    let closed = clients.close_idle();
                    stats.count(CoreCounter::IdleClosed, closed);
                    next_idle_sweep = Instant::now() + IDLE_SWEEP;
                    crate::log::flush_repeats();
                    // Sessions that ended left their memory with the
                    // allocator; after many, give it back to the system.
                    let ended = stats.get(CoreCounter::AcceptedConnections)
                        - stats.get(CoreCounter::ClientConnections);
                    let now = Instant::now();
                    if ended >= ended_at_trim + TRIM_AFTER_SESSIONS && now >= next_trim {
                        ended_at_trim = ended;
                        next_trim = now + TRIM_AT_MOST_EVERY;
                        super::memory::return_freed_memory();
                    }
                }
                // Until told something (a message rings the bell) or the
                // next sweep is due.
                let sweep_in = next_idle_sweep.saturating_duration_since(Instant::now());
                bell.wait(&ring, sweep_in).await
            }
        }
    }
}

/// Swaps the core to a reloaded configuration: a new context that sessions
/// move to before their next request; unchanged endpoints keep their
/// connections, connections of removed ones close once answered, and so
/// do those keys were moved on for a migration no longer served: returned
/// for a hold to fence (a PING behind them holds their closing off too).
fn reload(accept: &Accept, clients: &Registry, r: Generation) -> crate::upstream::Retired {
    let old = accept.latest.get();
    let cfg = &r.topo.config;
    // A health change keeps the generation's endpoint numbers, and the
    // slot maps this core has (MOVED may have updated them since).
    let discovered = r.discovered.unwrap_or_else(|| old.upstreams.discovered());
    let (upstreams, mut retired) = old.upstreams.reloaded(&r.topo, discovered);
    let kept = Kept {
        stats: old.stats.clone(),
        backend_version: old.backend_version.clone(),
        clients: old.clients.clone(),
        held: old.output.held.clone(),
        latest: old.latest.clone(),
        moved: old.moved.clone(),
    };
    let next = context(&r.topo, r.number, Rc::new(upstreams), accept.cores, kept);
    let migrated_on = next.moved.borrow_mut().follow(&next);
    accept.latest.set(Rc::new(next));
    accept.reconfigure(cfg);
    clients.set_idle_timeout(cfg.client_idle_timeout);
    crate::debug!(
        "serving configuration generation {}; {} connection(s) of removed endpoints close once answered",
        r.number,
        retired.len()
    );
    retired.extend(migrated_on.iter().cloned());
    if !retired.is_empty() {
        // Requests on them run on the old op_timeout.
        let patience = cfg.op_timeout.max(old.topo.config.op_timeout) + Duration::from_secs(1);
        crate::net::spawn(retire(retired, patience)).detach();
    }
    migrated_on
}

/// Whether `ctx` holds requests touching moving keys (see `reshard`).
fn holds(ctx: &CoreContext) -> bool {
    let hold = |c: &crate::topology::ClusterRing| {
        (c.migration.as_ref()).is_some_and(|m| m.phase == crate::topology::Phase::Hold)
    };
    ctx.topo.clusters.iter().any(hold)
}

/// Before a core confirms a hold: every request it sent to an endpoint
/// keys move from is answered, so no write of the old placement can land
/// there after a key moved, and every MIGRATE it sent on `migrated_on`
/// (an aborted reshard's) too. A PING goes behind them on each of those
/// connections (answered in order; a failed one counts as answered: the
/// connection is gone, and its requests with it).
async fn fence(ctx: &CoreContext, migrated_on: &crate::upstream::Retired) {
    let mut from: Vec<usize> = (ctx.topo.clusters.iter())
        .filter_map(|c| c.migration.as_ref())
        .flat_map(|m| m.previous.shards.iter().map(|s| s.primary))
        .collect();
    from.sort_unstable();
    from.dedup();
    let answered = Rc::new(Cell::new(0usize));
    let notify = Rc::new(Notify::default());
    let mut sent = 0;
    let pooled = from.iter().flat_map(|&e| ctx.upstreams.pooled(e));
    for conn in pooled.chain(migrated_on.iter().cloned()) {
        sent += 1;
        let (answered, notify) = (answered.clone(), notify.clone());
        let then = crate::upstream::waiter::Waiter::Then(Box::new(move |_| {
            answered.set(answered.get() + 1);
            notify.notify();
        }));
        conn.send(
            |b| {
                crate::resp::write::array_header(b, 1);
                crate::resp::write::bulk(b, b"PING");
            },
            then,
        );
    }
    while answered.get() < sent {
        notify.wait().await;
    }
}

/// Closes connections a reload left behind once the requests on them are
/// answered (or timed out: `patience` is past op_timeout).
async fn retire(conns: crate::upstream::Retired, patience: Duration) {
    let deadline = Instant::now() + patience;
    while conns.iter().any(|c| c.pending() > 0) && Instant::now() < deadline {
        crate::net::sleep(Duration::from_millis(20)).await;
    }
    for c in conns {
        c.shut_down();
    }
}
