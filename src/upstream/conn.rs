//! One pipelined connection to one endpoint, owned by one core.
//!
//! Sessions append requests to `wbuf` and a waiter to the FIFO; a writer
//! writes whatever accumulated since its last write (many clients' requests
//! in one syscall); a reader scans replies out of large reads and completes
//! waiters in order. Connected lazily; a failure (connect, I/O, op timeout)
//! fails every waiting request with an error and resets the connection,
//! because FIFO order can no longer be trusted. After failed connects,
//! requests fail at once until a backoff ends: a dead backend costs its
//! clients an immediate error, never a hang.

use super::handshake::{handshake, Credentials};
use super::waiter::Waiter;
use crate::net::notify::{race, Either, Notify};
use crate::net::{Input, Ring, Socket, Stream};
use crate::resp::errors::ErrorReply;
use crate::resp::reply::{is_error, ReplyScanner};
use crate::resp::write::Protocol;
use crate::stats::{ConnState, CoreStats, EndpointCounter, EndpointStats, ErrorKind};
use rustls::pki_types::ServerName;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
    /// Credentials sent before anything else: (username, password).
    pub auth: Option<(Option<String>, String)>,
    /// TLS: the cluster's client configuration and the name to verify.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// A Redis Cluster node: READONLY first, so replicas serve reads.
    pub readonly: bool,
    /// The database the connection selects (SELECT n of its clients).
    pub db: u16,
    /// TCP keepalive idle time (`tcp_keepalive`; zero: off).
    pub keepalive: Duration,
    /// Where failures and recoveries are reported (health checking).
    pub reports: Option<super::reports::Reports>,
}

/// The texts of the failures that name no endpoint, made once for every
/// connection (a failing connection fails each of its requests with one).
static TIMED_OUT: LazyLock<String> = LazyLock::new(|| ErrorReply::UpstreamTimeout.to_string());
static NO_DESCRIPTORS: LazyLock<String> =
    LazyLock::new(|| ErrorReply::OutOfDescriptors.to_string());

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    Connecting,
    Up,
    /// Connecting failed: fail requests at once until then.
    Backoff(Instant),
}

/// Why a connection ended.
enum End {
    Timeout,
    Closed,
    Io(io::Error),
    Protocol(crate::resp::reply::ReplyError),
    /// A reply came with no request waiting for it.
    Unsolicited,
    /// The backend refused a set-up command: the credentials (`auth`), or
    /// another (its error).
    Handshake {
        auth: bool,
        msg: String,
    },
    /// `shut_down` was called.
    Shut,
}

struct Inner {
    state: State,
    driver_running: bool,
    wbuf: Vec<u8>,
    waiters: VecDeque<(Waiter, Instant)>,
    failures: u32,
    /// Connecting failed and no connection has come up since: read
    /// policies avoid this endpoint (retries run in the background, so no
    /// client request is spent finding out it is still down).
    failing: bool,
    /// Why connecting failed: what requests get during the backoff.
    backoff_failure: Failure,
}

/// How a request failed upstream: decides its error reply and counters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    Timeout,
    Unavailable,
    /// keyway itself is out of file descriptors: the backend may be fine.
    NoDescriptors,
    AuthFailed,
    TlsFailed,
}

/// Where a subscriber connection's frames go: a subscribed client.
pub trait Subscriber {
    /// A frame from the backend; None: the connection was lost.
    fn push(&self, frame: Option<&[u8]>);
    /// Ready while the client keeps up; pending while the connection
    /// should stop reading (the backend holds what comes meanwhile).
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()>;
}

pub struct Conn {
    ring: Rc<Ring>,
    stats: Rc<CoreStats>,
    es: Rc<EndpointStats>,
    addr: SocketAddr,
    label: String,
    unavailable: String,
    auth_failed: String,
    tls_failed: String,
    /// Sent first on every connection (HELLO 3, AUTH, READONLY), and how
    /// many replies it gets.
    handshake: Vec<u8>,
    handshake_replies: usize,
    /// What the first of them carries.
    credentials: Credentials,
    settings: ConnSettings,
    /// How long a request may wait for its reply (`op_timeout`; longer on
    /// a connection that carries one blocking command).
    op_timeout: Cell<Duration>,
    /// Closed for good (a blocking command's connection, once done).
    shut: Cell<bool>,
    /// A subscriber connection: every frame after the handshake goes here
    /// (None once the connection is lost), not to a waiter.
    push: RefCell<Option<Rc<dyn Subscriber>>>,
    inner: RefCell<Inner>,
    wakeup: Notify,
    /// When this connection last gave up on its backend (op_timeout).
    gave_up_at: Cell<Option<Instant>>,
}

impl Conn {
    pub fn new(
        endpoint: usize,
        addr: SocketAddr,
        label: String,
        proto: Protocol,
        settings: ConnSettings,
        stats: Rc<CoreStats>,
        ring: Rc<Ring>,
    ) -> Conn {
        let (handshake, handshake_replies, credentials) =
            handshake(proto, &settings.auth, settings.readonly, settings.db);
        Conn {
            ring,
            es: stats.endpoint(endpoint),
            stats,
            addr,
            unavailable: ErrorReply::UpstreamUnavailable(&label).to_string(),
            auth_failed: ErrorReply::UpstreamAuthFailed(&label).to_string(),
            tls_failed: ErrorReply::UpstreamTlsFailed(&label).to_string(),
            handshake,
            handshake_replies,
            credentials,
            label,
            op_timeout: Cell::new(settings.op_timeout),
            shut: Cell::new(false),
            push: RefCell::new(None),
            settings,
            inner: RefCell::new(Inner {
                state: State::Idle,
                driver_running: false,
                wbuf: Vec::with_capacity(16 * 1024),
                waiters: VecDeque::with_capacity(256),
                failures: 0,
                failing: false,
                backoff_failure: Failure::Unavailable,
            }),
            wakeup: Notify::default(),
            gave_up_at: Cell::new(None),
        }
    }

    /// Whether this connection gave up on its backend (an op_timeout)
    /// after `arrived`: a request that reached keyway before that already
    /// waited its turn behind requests that got no answer, so it fails at
    /// once rather than waiting another op_timeout (a client pipelining
    /// hundreds of requests to a silent backend gets every error within
    /// about op_timeout, not one op_timeout per window of requests).
    pub fn gave_up_on(&self, arrived: Instant) -> bool {
        self.gave_up_at.get().is_some_and(|at| at > arrived)
    }

    /// Queues a request (`encode` appends its RESP bytes) whose reply goes
    /// to `waiter`. Never blocks: the writer task sends it.
    pub fn send(self: &Rc<Self>, encode: impl FnOnce(&mut Vec<u8>), waiter: Waiter) {
        let now = crate::net::now();
        self.es.count(EndpointCounter::Requests);
        if self.shut.get() {
            return self.fail_one(waiter, Failure::Unavailable);
        }
        if waiter.arrived().is_some_and(|a| self.gave_up_on(a)) {
            return self.fail_one(waiter, Failure::Timeout);
        }
        let mut inner = self.inner.borrow_mut();
        if let State::Backoff(until) = inner.state {
            if now < until {
                let failure = inner.backoff_failure;
                drop(inner);
                self.fail_one(waiter, failure);
                return;
            }
            inner.state = State::Idle;
        }
        encode(&mut inner.wbuf);
        inner.waiters.push_back((waiter, now));
        drop(inner);
        self.kick();
    }

    /// Starts the driver unless it runs, and wakes the writer.
    fn kick(self: &Rc<Self>) {
        let start = !std::mem::replace(&mut self.inner.borrow_mut().driver_running, true);
        if start {
            let conn = self.clone();
            crate::net::spawn(async move { conn.drive(false).await }).detach();
        }
        self.wakeup.notify();
    }

    /// Connects, serves, and on failure fails the waiters; ends when no
    /// request is waiting (the next request starts it again). A `retry`
    /// connects even without requests: the endpoint failed and keyway
    /// finds out by itself when it is back.
    async fn drive(self: Rc<Self>, retry: bool) {
        let mut retry = retry;
        loop {
            {
                let mut inner = self.inner.borrow_mut();
                let pushing = self.push.borrow().is_some();
                if self.shut.get()
                    || (inner.waiters.is_empty() && !pushing && !std::mem::take(&mut retry))
                {
                    inner.driver_running = false;
                    inner.state = State::Idle;
                    inner.wbuf.clear();
                    return;
                }
                inner.state = State::Connecting;
            }
            let Some(stream) = self.connect().await else {
                return;
            };
            self.es.count(EndpointCounter::Reconnects);
            self.inner.borrow_mut().state = State::Up;
            if self.handshake_replies == 0 {
                self.came_up();
            }
            let end = self.serve(stream).await;
            if let Some(sink) = self.push.borrow().as_ref() {
                // Subscriptions die with their connection: the client is
                // told (its connection closes; clients subscribe again).
                self.shut.set(true);
                sink.push(None);
            }
            if !self.lost(end) {
                return;
            }
            self.inner.borrow_mut().failures = 0;
        }
    }

    /// Opens the connection (TCP, then TLS if the cluster has it); None
    /// when that failed (counted and backed off, see `connect_failed`).
    async fn connect(self: &Rc<Self>) -> Option<Stream> {
        let socket =
            match Socket::connect(&self.ring, self.addr, self.settings.connect_timeout).await {
                Ok(s) => s,
                Err(e) => {
                    let failure = match e.raw_os_error() {
                        Some(libc::EMFILE) | Some(libc::ENFILE) => Failure::NoDescriptors,
                        _ => Failure::Unavailable,
                    };
                    self.connect_failed(&format!("connect failed: {e}"), failure);
                    return None;
                }
            };
        socket.set_keepalive(self.settings.keepalive);
        match &self.settings.tls {
            None => Some(Stream::Plain(socket)),
            Some((config, name)) => {
                let connector = futures_rustls::TlsConnector::from(config.clone());
                let handshake = connector.connect(name.clone(), socket);
                let timeout = crate::net::sleep(self.settings.connect_timeout);
                match race(handshake, timeout).await {
                    Either::Left(Ok(tls)) => Some(Stream::tls(tls)),
                    Either::Left(Err(e)) => {
                        self.es.count(EndpointCounter::TlsFailures);
                        self.connect_failed(
                            &format!("TLS handshake failed: {e}"),
                            Failure::TlsFailed,
                        );
                        None
                    }
                    Either::Right(()) => {
                        self.es.count(EndpointCounter::TlsFailures);
                        self.connect_failed("TLS handshake failed: timed out", Failure::TlsFailed);
                        None
                    }
                }
            }
        }
    }

    /// After a connection ended: a refused set-up backs off (false: the
    /// driver stops until the backoff ends); any other end fails what was
    /// waiting on it (true: connect again).
    fn lost(self: &Rc<Self>, end: End) -> bool {
        match end {
            End::Handshake { auth: true, msg } => {
                self.es.count(EndpointCounter::AuthFailures);
                self.connect_failed(
                    &format!("authentication failed: {msg}"),
                    Failure::AuthFailed,
                );
                return false;
            }
            End::Handshake { auth: false, msg } => {
                self.connect_failed(
                    &format!("connection set-up refused: {msg}"),
                    Failure::Unavailable,
                );
                return false;
            }
            End::Timeout => {
                self.gave_up_at.set(Some(crate::net::now()));
                self.report_failure();
                crate::warn!(endpoint: &self.label, "op timeout, resetting the connection");
                self.fail_all(Failure::Timeout);
            }
            End::Closed => {
                crate::info!(endpoint: &self.label, "connection closed by the server");
                self.fail_all(Failure::Unavailable);
            }
            End::Io(e) => {
                self.report_failure();
                crate::warn!(endpoint: &self.label, "connection lost: {e}");
                self.fail_all(Failure::Unavailable);
            }
            End::Protocol(why) => {
                crate::error!(endpoint: &self.label, "protocol error: {why}");
                self.fail_all(Failure::Unavailable);
            }
            End::Unsolicited => {
                crate::error!(endpoint: &self.label, "protocol error: reply without a request");
                self.fail_all(Failure::Unavailable);
            }
            End::Shut => self.fail_all(Failure::Unavailable),
        }
        true
    }

    /// Backs off (requests fail at once with `failure` until it ends),
    /// tries again when it ends, and logs it (the log holds back repeats).
    fn connect_failed(self: &Rc<Self>, why: &str, failure: Failure) {
        if let Some(sink) = self.push.borrow().as_ref() {
            self.shut.set(true);
            sink.push(None);
        }
        let backoff = {
            let mut inner = self.inner.borrow_mut();
            inner.failures = inner.failures.saturating_add(1);
            let backoff =
                (BACKOFF_MIN * 2u32.saturating_pow(inner.failures.min(16) - 1)).min(BACKOFF_MAX);
            inner.state = State::Backoff(Instant::now() + backoff);
            inner.backoff_failure = failure;
            inner.driver_running = false;
            inner.failing = true;
            backoff
        };
        let conn = self.clone();
        crate::net::spawn(async move {
            crate::net::sleep(backoff).await;
            conn.retry();
        })
        .detach();
        self.es.count(EndpointCounter::ConnectFailures);
        self.report_failure();
        // Every failure: the log writes a repeated one once per window.
        crate::warn!(
            endpoint: &self.label,
            "{why}; failing its requests until it answers"
        );
        self.fail_all(failure);
    }

    /// The backoff ended: connect again unless a request already did.
    fn retry(self: &Rc<Self>) {
        let mut inner = self.inner.borrow_mut();
        if !matches!(inner.state, State::Backoff(_)) || inner.driver_running {
            return;
        }
        inner.driver_running = true;
        inner.state = State::Idle;
        drop(inner);
        let conn = self.clone();
        crate::net::spawn(async move { conn.drive(true).await }).detach();
    }

    /// The connection is up and its handshake answered.
    fn came_up(&self) {
        crate::debug!(endpoint: &self.label, "connected");
        self.inner.borrow_mut().failing = false;
    }

    /// The first reply on a connection: the server answers (a TCP connect
    /// alone says nothing; a stopped server still completes it).
    fn answered(&self) {
        if let Some(r) = &self.settings.reports {
            r.answered(self.addr);
        }
    }

    /// A failure that says the endpoint may be down (not a clean close:
    /// servers close idle connections).
    fn report_failure(&self) {
        if let Some(r) = &self.settings.reports {
            r.failed(self.addr);
        }
    }

    /// Completes one request with `failure`'s error and counts it.
    fn fail_one(&self, waiter: Waiter, failure: Failure) {
        let es = &self.es;
        es.count(EndpointCounter::Errors);
        let (kind, msg) = match failure {
            Failure::Timeout => {
                es.count(EndpointCounter::Timeouts);
                (ErrorKind::UpstreamTimeout, TIMED_OUT.as_str())
            }
            Failure::Unavailable => (ErrorKind::UpstreamUnavailable, self.unavailable.as_str()),
            Failure::NoDescriptors => (ErrorKind::UpstreamUnavailable, NO_DESCRIPTORS.as_str()),
            Failure::AuthFailed => (ErrorKind::UpstreamUnavailable, self.auth_failed.as_str()),
            Failure::TlsFailed => (ErrorKind::UpstreamUnavailable, self.tls_failed.as_str()),
        };
        if !waiter.is_mirror() {
            self.stats.error(kind);
        }
        waiter.fail(msg);
    }

    fn fail_all(&self, failure: Failure) {
        loop {
            // Never hold our borrow while completing: the waiter's session
            // may send again from its own code.
            let next = {
                let mut inner = self.inner.borrow_mut();
                let w = inner.waiters.pop_front();
                if w.is_none() {
                    inner.wbuf.clear();
                }
                w
            };
            match next {
                Some((w, _)) => self.fail_one(w, failure),
                None => return,
            }
        }
    }

    async fn serve(&self, stream: Stream) -> End {
        let io = race(self.read_loop(&stream), self.write_loop(&stream));
        match race(io, self.watchdog()).await {
            Either::Left(Either::Left(end)) | Either::Left(Either::Right(end)) => end,
            Either::Right(end) => end,
        }
    }

    /// Sends whatever accumulated since the last send, in one SEND: the
    /// requests of every session on the core that went to this endpoint.
    async fn write_loop(&self, stream: &Stream) -> End {
        let mut batch: Vec<u8> = Vec::new();
        // Shut while connecting (a blocked client left): send nothing, so
        // the backend never runs a command for a client that is gone.
        if self.shut.get() {
            return End::Shut;
        }
        if !self.handshake.is_empty() {
            batch.extend_from_slice(&self.handshake);
            if let Err(e) = stream.send(&mut batch).await {
                return End::Io(e);
            }
        }
        loop {
            while self.inner.borrow().wbuf.is_empty() {
                if self.shut.get() {
                    return End::Shut;
                }
                self.wakeup.wait().await;
            }
            // Let the other sessions of this turn add their requests.
            self.ring.settle().await;
            if self.shut.get() {
                return End::Shut;
            }
            std::mem::swap(&mut batch, &mut self.inner.borrow_mut().wbuf);
            // `batch` comes back empty (with an earlier send's allocation).
            if let Err(e) = stream.send(&mut batch).await {
                return End::Io(e);
            }
            if batch.capacity() > 4 * 1024 * 1024 {
                batch = Vec::new();
            }
        }
    }

    /// Scans replies where they arrived and completes waiters in order.
    async fn read_loop(&self, stream: &Stream) -> End {
        let mut input = Input::new();
        let mut replies = ReplyReader {
            scanner: ReplyScanner::new(),
            handshake_pending: self.handshake_replies,
            answered: false,
            end: None,
        };
        let subscriber = self.push.borrow().clone();
        loop {
            if let Some(s) = &subscriber {
                // A subscriber that does not keep up is not read for: the
                // backend holds its messages (and applies its own limit).
                poll_fn(|cx| s.poll_room(cx)).await;
            }
            let received = stream
                .recv(|piece| input.feed(piece, |bytes| replies.absorb(self, bytes)))
                .await;
            if let Some(end) = replies.end.take() {
                return end;
            }
            match received {
                Ok(true) => {}
                Ok(false) => return End::Closed,
                Err(e) => return End::Io(e),
            }
        }
    }

    /// Lets requests on this connection wait `timeout` for their replies
    /// (a blocking command's own timeout, plus op_timeout).
    pub fn set_op_timeout(&self, timeout: Duration) {
        self.op_timeout.set(timeout);
    }

    /// Makes this a subscriber connection: frames go to `sink`.
    pub fn set_push(&self, sink: Rc<dyn Subscriber>) {
        *self.push.borrow_mut() = Some(sink);
    }

    /// Queues a command whose replies come as pushed frames (SUBSCRIBE and
    /// the like, on a subscriber connection).
    pub fn send_push(self: &Rc<Self>, encode: impl FnOnce(&mut Vec<u8>)) {
        if self.shut.get() {
            return;
        }
        encode(&mut self.inner.borrow_mut().wbuf);
        self.kick();
    }

    /// Closes the connection for good: a blocking command's connection
    /// once its reply came, or once its client left (the backend then
    /// unblocks nothing for a client that is gone). Requests still waiting
    /// fail; new ones fail at once.
    pub fn shut_down(&self) {
        self.shut.set(true);
        self.wakeup.notify();
    }

    /// Closed for good (see `shut_down`).
    pub fn is_shut(&self) -> bool {
        self.shut.get()
    }

    /// The counters of this connection's endpoint.
    pub fn endpoint_stats(&self) -> Rc<EndpointStats> {
        self.es.clone()
    }

    /// Requests sent or queued and not answered yet.
    pub fn pending(&self) -> usize {
        self.inner.borrow().waiters.len()
    }

    /// False from a failed connect until a connection comes up again.
    pub fn healthy(&self) -> bool {
        !self.inner.borrow().failing
    }

    pub fn state(&self) -> ConnState {
        match self.inner.borrow().state {
            State::Idle => ConnState::Idle,
            State::Connecting => ConnState::Connecting,
            State::Up => ConnState::Up,
            State::Backoff(until) if Instant::now() < until => ConnState::Backoff,
            State::Backoff(_) => ConnState::Idle,
        }
    }

    /// Ends the connection when its oldest request has waited op_timeout.
    async fn watchdog(&self) -> End {
        let tick =
            |op: Duration| (op / 8).clamp(Duration::from_millis(5), Duration::from_millis(250));
        loop {
            crate::net::sleep(tick(self.op_timeout.get())).await;
            let oldest = self.inner.borrow().waiters.front().map(|(_, t)| *t);
            if let Some(t) = oldest {
                if t.elapsed() >= self.op_timeout.get() {
                    return End::Timeout;
                }
            }
        }
    }
}

/// The reply side of a connection: the scanner, the handshake replies still
/// expected, and why reading must stop.
struct ReplyReader {
    scanner: ReplyScanner,
    handshake_pending: usize,
    end: Option<End>,
    /// A reply came on this connection (reported once, see `answered`).
    answered: bool,
}

impl ReplyReader {
    /// Completes a waiter for every whole reply at the start of `bytes`;
    /// returns how many bytes they took.
    fn absorb(&mut self, conn: &Conn, bytes: &[u8]) -> usize {
        let now = crate::net::now();
        // Requests queued in the same turn share their send time, so
        // their round trips are one value: recorded once, with a count.
        let mut round_trips: Option<(Instant, u64)> = None;
        let mut pos = 0;
        while pos < bytes.len() && self.end.is_none() {
            let len = match self.scanner.scan(&bytes[pos..]) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    self.end = Some(End::Protocol(e));
                    break;
                }
            };
            let reply = &bytes[pos..pos + len];
            pos += len;
            if !self.answered && !is_error(reply) {
                self.answered = true;
                conn.answered();
            }
            if self.handshake_pending > 0 {
                let first = self.handshake_pending == conn.handshake_replies;
                self.handshake_pending -= 1;
                if is_error(reply) {
                    self.end = Some(End::Handshake {
                        auth: first && conn.credentials.refused_by(reply),
                        msg: String::from_utf8_lossy(reply).trim().to_string(),
                    });
                } else if self.handshake_pending == 0 {
                    conn.came_up();
                }
                continue;
            }
            if let Some(sink) = conn.push.borrow().as_ref() {
                sink.push(Some(reply));
                continue;
            }
            if reply[0] == b'>' {
                // RESP3 push data is not the answer to any request.
                continue;
            }
            // Never hold our borrow while completing: the waiter's session
            // may send again from its own code.
            let waiter = conn.inner.borrow_mut().waiters.pop_front();
            match waiter {
                Some((w, sent)) => {
                    match &mut round_trips {
                        Some((at, n)) if *at == sent => *n += 1,
                        other => {
                            if let Some((at, n)) = other.replace((sent, 1)) {
                                conn.es.rtt(now.saturating_duration_since(at), n);
                            }
                        }
                    }
                    w.complete(reply)
                }
                None => self.end = Some(End::Unsolicited),
            }
        }
        if let Some((at, n)) = round_trips {
            conn.es.rtt(now.saturating_duration_since(at), n);
        }
        pos
    }
}

/// A connection driven against a scripted server, on a real core (a
/// glommio executor with its own ring, as `runtime::core` sets one up).
#[cfg(test)]
mod scripted {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the scripted server does with each connection it accepts.
    #[derive(Clone, Copy)]
    enum Script {
        /// Answers every request `+OK`, in the order read.
        Answer,
        /// Reads and never answers.
        Silent,
        /// Answers the first request, then closes the connection.
        AnswerOnceThenClose,
    }

    /// A server on a free port that follows `script` on every connection;
    /// counts connections accepted.
    fn server(script: Script) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, script));
            }
        });
        (addr, accepted)
    }

    /// Counts whole requests (`*N` arrays of bulk strings) and answers them.
    fn serve(mut stream: TcpStream, script: Script) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut answered = 0;
        loop {
            let Ok(n) = stream.read(&mut chunk) else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut scanner = crate::resp::request::RequestScanner::new(Default::default());
            let mut out = Vec::new();
            while let Ok(crate::resp::request::Scanned::Frame { len }) = scanner.scan(&buf) {
                buf.drain(..len);
                match script {
                    Script::Silent => {}
                    Script::Answer => out.extend_from_slice(b"+OK\r\n"),
                    Script::AnswerOnceThenClose => {
                        let _ = stream.write_all(b"+OK\r\n");
                        answered += 1;
                        if answered == 1 {
                            return;
                        }
                    }
                }
            }
            if !out.is_empty() && stream.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// Runs `test` on a core of its own with a connection to `addr`.
    fn on_a_core<F: std::future::Future<Output = ()>>(
        addr: SocketAddr,
        op_timeout: Duration,
        test: impl FnOnce(Rc<Conn>, Rc<CoreStats>) -> F + Send + 'static,
    ) {
        let mode = crate::net::probe().expect("io_uring");
        crate::net::ring::executor(glommio::Placement::Unbound)
            .spawn(move || async move {
                let ring = Ring::new(mode, Duration::ZERO).expect("ring");
                let driver = glommio::spawn_local(ring.clone().drive());
                let stats = Rc::new(CoreStats::new(0, 1, 1));
                let settings = ConnSettings {
                    op_timeout,
                    connect_timeout: Duration::from_secs(1),
                    auth: None,
                    tls: None,
                    readonly: false,
                    db: 0,
                    keepalive: Duration::ZERO,
                    reports: None,
                };
                let conn = Rc::new(Conn::new(
                    0,
                    addr,
                    addr.to_string(),
                    Protocol::Resp2,
                    settings,
                    stats.clone(),
                    ring.clone(),
                ));
                test(conn.clone(), stats).await;
                conn.shut_down();
                ring.stop();
                driver.await;
            })
            .expect("executor")
            .join()
            .expect("the core's thread");
    }

    type Got = Rc<RefCell<Vec<Result<Vec<u8>, String>>>>;

    /// Sends PING with a waiter that records what it got.
    fn ping(conn: &Rc<Conn>, got: &Got) {
        let got = got.clone();
        conn.send(
            |b| b.extend_from_slice(b"*1\r\n$4\r\nPING\r\n"),
            Waiter::Then(Box::new(move |a| {
                got.borrow_mut()
                    .push(a.map(<[u8]>::to_vec).map_err(String::from))
            })),
        );
    }

    async fn until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() && Instant::now() < deadline {
            crate::net::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn pipelined_requests_get_their_replies_in_order_over_one_connection() {
        let (addr, accepted) = server(Script::Answer);
        on_a_core(addr, Duration::from_secs(5), |conn, stats| async move {
            let got: Got = Default::default();
            for _ in 0..500 {
                ping(&conn, &got);
            }
            until(|| got.borrow().len() == 500).await;
            assert_eq!(got.borrow().len(), 500);
            assert!(got
                .borrow()
                .iter()
                .all(|r| r.as_deref() == Ok(&b"+OK\r\n"[..])));
            assert_eq!(stats.endpoint(0).get(EndpointCounter::Requests), 500);
            assert_eq!(conn.pending(), 0);
            // Every reply's round trip is in the histogram (requests sent
            // in one turn are recorded together, with their count).
            let endpoint = stats.endpoint(0);
            let rtt = endpoint.rtt.borrow();
            assert_eq!(rtt.as_ref().map(|h| h.len()), Some(500));
        });
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection carried them all"
        );
    }

    #[test]
    fn a_silent_server_gets_each_request_its_timeout_error() {
        let (addr, _) = server(Script::Silent);
        on_a_core(addr, Duration::from_millis(200), |conn, stats| async move {
            let got: Got = Default::default();
            for _ in 0..3 {
                ping(&conn, &got);
            }
            until(|| got.borrow().len() == 3).await;
            let timeout = ErrorReply::UpstreamTimeout.to_string();
            assert_eq!(*got.borrow(), vec![Err(timeout); 3]);
            assert_eq!(stats.endpoint(0).get(EndpointCounter::Timeouts), 3);
            assert_eq!(stats.endpoint(0).get(EndpointCounter::Errors), 3);
        });
    }

    #[test]
    fn a_closed_connection_is_opened_again_for_the_next_request() {
        let (addr, accepted) = server(Script::AnswerOnceThenClose);
        on_a_core(addr, Duration::from_secs(5), |conn, _| async move {
            let got: Got = Default::default();
            ping(&conn, &got);
            until(|| got.borrow().len() == 1).await;
            // The server closes: the connection goes idle, and the next
            // request opens a new one.
            until(|| conn.state() != ConnState::Up).await;
            assert_eq!(conn.state(), ConnState::Idle);
            ping(&conn, &got);
            until(|| got.borrow().len() == 2).await;
            assert_eq!(
                *got.borrow(),
                vec![Ok(b"+OK\r\n".to_vec()), Ok(b"+OK\r\n".to_vec())]
            );
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
