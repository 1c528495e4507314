//! keyway's own clients, as CLIENT LIST, CLIENT INFO and CLIENT KILL see
//! them. Each core keeps the entries of its sessions (nothing shared); a
//! LIST or KILL asks the other cores over their inboxes, which each core's
//! control loop serves between requests.

use crate::command::CommandSpec;
use crate::net::doorbell::RingingSender;
use crate::net::{ClientHandle, End};
use crate::resp::errors::ErrorReply;
use crate::resp::write::Protocol;
use crossbeam_channel::{Receiver, Sender};
use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::rc::Rc;
use std::time::Instant;

/// What a session shows of itself. The session updates it as it goes
/// (name, database, last command, ...); the registry only reads it. Kept
/// small: every connection, idle ones included, has one.
pub struct Entry {
    pub id: u64,
    /// The client socket. It stays open while the entry is registered: the
    /// session removes its entry before its socket is dropped.
    socket: ClientHandle,
    /// Seconds since keyway started, when the client connected.
    created: u32,
    /// When it last sent something or took a reply: an instant, stored as
    /// is (a request pays no arithmetic for it), turned into whole seconds
    /// since start only when idleness is judged.
    active: Cell<Instant>,
    pub db: Cell<u16>,
    pub resp: Cell<Protocol>,
    pub blocked: Cell<bool>,
    /// Waiting for replies from upstream: not idle, however long it takes.
    pub waiting: Cell<bool>,
    /// Closed by the idle timeout, its session not yet gone.
    closing: Cell<bool>,
    /// Commands queued in an open MULTI (`NO_MULTI`: none open).
    multi: Cell<u32>,
    /// Channel and pattern subscriptions (pub/sub mode when either is > 0).
    subs: Cell<(u32, u32)>,
    /// The last command run (CLIENT LIST's `cmd`).
    pub cmd: Cell<Option<&'static CommandSpec>>,
    /// Where the registry keeps it.
    slot: u32,
    /// Set by few clients: allocated when one is.
    names: RefCell<Option<Box<Names>>>,
}

#[derive(Default)]
struct Names {
    name: Option<Vec<u8>>,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
}

/// Which of a client's names CLIENT SETNAME/SETINFO sets.
#[derive(Clone, Copy)]
pub enum Named {
    Name,
    LibName,
    LibVer,
}

const NO_MULTI: u32 = u32::MAX;

fn seconds_since_start(at: Instant) -> u32 {
    at.saturating_duration_since(crate::stats::started_at())
        .as_secs()
        .min(u32::MAX as u64) as u32
}

impl Entry {
    /// The client's address (None once its socket is gone).
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.socket.addr(End::Peer)
    }

    pub fn fd(&self) -> i32 {
        self.socket.fd()
    }

    /// The client sent something, or took a reply, at `at`.
    #[inline]
    pub fn touch(&self, at: Instant) {
        self.active.set(at);
    }

    /// An empty value clears the name.
    pub fn set(&self, which: Named, value: &[u8]) {
        let mut names = self.names.borrow_mut();
        let n = names.get_or_insert_with(Default::default);
        let slot = match which {
            Named::Name => &mut n.name,
            Named::LibName => &mut n.lib_name,
            Named::LibVer => &mut n.lib_ver,
        };
        *slot = (!value.is_empty()).then(|| value.to_vec());
    }

    pub fn get(&self, which: Named) -> Option<Vec<u8>> {
        let names = self.names.borrow();
        let n = names.as_ref()?;
        match which {
            Named::Name => n.name.clone(),
            Named::LibName => n.lib_name.clone(),
            Named::LibVer => n.lib_ver.clone(),
        }
    }

    /// The state CLIENT LIST shows beside the names: commands queued in a
    /// MULTI (None: no MULTI), blocked, (channels, patterns) subscribed.
    pub fn show(&self, multi: Option<usize>, blocked: bool, subs: (usize, usize)) {
        let small = |n: usize| n.min(u32::MAX as usize - 1) as u32;
        self.multi.set(multi.map_or(NO_MULTI, small));
        self.blocked.set(blocked);
        self.subs.set((small(subs.0), small(subs.1)));
    }
}

/// Which clients a LIST or KILL is about (all filters must match).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub ids: Option<Vec<u64>>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<String>,
    pub kind: Option<Kind>,
    pub max_age: Option<u64>,
    /// The asking client, left alone (KILL's SKIPME yes, the default).
    pub skip: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    PubSub,
    /// master, replica, slave: keyway has none of those clients.
    Replication,
}

/// How long an `Ask` waits for the other cores (their control loops look
/// at their inboxes every 20 ms).
const CORES_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Hands each of the `asked` other cores' answers arriving on `rx` to
/// `each`, as they come, for `CORES_ANSWER_WITHIN` at most; returns how
/// many came (a core that did not answer in time is stuck).
pub async fn answers<T>(rx: Receiver<T>, asked: usize, mut each: impl FnMut(T)) -> usize {
    let deadline = Instant::now() + CORES_ANSWER_WITHIN;
    let mut got = 0;
    while got < asked && Instant::now() < deadline {
        match rx.try_recv() {
            Ok(answer) => {
                each(answer);
                got += 1;
            }
            Err(_) => crate::net::sleep(std::time::Duration::from_millis(2)).await,
        }
    }
    got
}

/// A LIST or KILL for another core, or its hot keys (HOTKEYS GET),
/// answered on `reply`.
pub enum Ask {
    List(Filter, Sender<String>),
    Kill(Filter, Sender<usize>),
    HotKeys(Sender<Vec<crate::stats::hot::HotKey>>),
}

/// This core's clients, and every core's inbox.
pub struct Registry {
    core: usize,
    /// By client id: a session leaving must not cost a scan of all.
    entries: RefCell<Slab>,
    /// The user every client is (the proxy's username, or "default").
    user: String,
    /// Every core's inbox, this one's included (indexed by core).
    inboxes: Vec<RingingSender<Ask>>,
    inbox: Receiver<Ask>,
    /// SIGTERM came: sessions close once their replies are sent.
    draining: Cell<bool>,
    /// `client_idle_timeout` (zero: clients may idle forever).
    idle_timeout: Cell<std::time::Duration>,
}

/// The entries, in slots reused as sessions come and go (a session
/// leaving costs no search; an idle connection costs one pointer here).
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Rc<Entry>>>,
    free: Vec<u32>,
}

impl Slab {
    /// Stores `entry`, telling it its slot.
    fn insert(&mut self, mut entry: Entry) -> Rc<Entry> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        entry.slot = slot;
        let entry = Rc::new(entry);
        self.slots[slot as usize] = Some(entry.clone());
        entry
    }

    fn remove(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            if s.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Rc<Entry>> {
        self.slots.iter().flatten()
    }
}

/// A session's entry, removed from the registry on drop.
pub struct Registered {
    pub entry: Rc<Entry>,
    registry: Rc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.entries.borrow_mut().remove(self.entry.slot);
    }
}

impl Registry {
    pub fn new(
        core: usize,
        user: String,
        inboxes: Vec<RingingSender<Ask>>,
        inbox: Receiver<Ask>,
        idle_timeout: std::time::Duration,
    ) -> Registry {
        Registry {
            core,
            entries: RefCell::new(Slab::default()),
            user,
            inboxes,
            inbox,
            draining: Cell::new(false),
            idle_timeout: Cell::new(idle_timeout),
        }
    }

    /// Starts a drain: every session ends its wait for requests, sends the
    /// replies it owes, and closes (see `session::serve`).
    /// `client_idle_timeout` after a reload.
    pub fn set_idle_timeout(&self, timeout: std::time::Duration) {
        self.idle_timeout.set(timeout);
    }

    pub fn drain(&self) {
        self.draining.set(true);
        for e in self.entries.borrow().iter() {
            e.socket.interrupt();
        }
    }

    /// Closes clients that neither sent nor took anything for
    /// `client_idle_timeout`, as Redis's `timeout` does: subscribers,
    /// clients blocked in a command and clients waiting for a backend's
    /// reply stay. A client that stopped reading its replies is idle too:
    /// the socket is shut down, which ends a send that would never finish.
    /// Returns how many.
    pub fn close_idle(&self) -> u64 {
        let idle_timeout = self.idle_timeout.get();
        if idle_timeout.is_zero() {
            return 0;
        }
        let now = seconds_since_start(Instant::now());
        let limit = idle_timeout.as_secs().max(1).min(u32::MAX as u64) as u32;
        let mut closed = 0;
        for e in self.entries.borrow().iter() {
            let subscribed = e.subs.get() != (0, 0);
            // Whole seconds, strictly more than the limit (as Redis counts).
            let busy = e.blocked.get() || e.waiting.get() || e.closing.get();
            let active = seconds_since_start(e.active.get());
            if !subscribed && !busy && now.saturating_sub(active) > limit {
                e.closing.set(true);
                e.socket.shut_down();
                closed += 1;
            }
        }
        closed
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Registers a new session whose socket is `fd`.
    pub fn register(self: &Rc<Self>, id: u64, socket: ClientHandle) -> Registered {
        let at = Instant::now();
        let entry = Entry {
            id,
            socket,
            created: seconds_since_start(at),
            active: Cell::new(at),
            db: Cell::new(0),
            resp: Cell::new(Protocol::Resp2),
            blocked: Cell::new(false),
            waiting: Cell::new(false),
            closing: Cell::new(false),
            multi: Cell::new(NO_MULTI),
            subs: Cell::new((0, 0)),
            cmd: Cell::new(None),
            slot: 0,
            names: RefCell::new(None),
        };
        let entry = self.entries.borrow_mut().insert(entry);
        if self.draining.get() {
            // Accepted as the drain began: closed like the others.
            entry.socket.interrupt();
        }
        Registered {
            entry,
            registry: self.clone(),
        }
    }

    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }

    pub fn core(&self) -> usize {
        self.core
    }

    /// Sends `ask` to every other core; returns how many took it.
    pub fn ask_others(&self, ask: impl Fn() -> Ask) -> usize {
        self.inboxes
            .iter()
            .enumerate()
            .filter(|(i, tx)| *i != self.core && tx.try_send(ask()).is_ok())
            .count()
    }

    /// Answers what other cores asked (called by the control loop, with
    /// this core's stats).
    pub fn serve(&self, stats: &crate::stats::CoreStats) {
        while let Ok(ask) = self.inbox.try_recv() {
            match ask {
                Ask::HotKeys(reply) => {
                    let _ = reply.send(stats.hot.top(Instant::now()));
                }
                Ask::List(filter, reply) => {
                    let _ = reply.send(self.list(&filter));
                }
                Ask::Kill(filter, reply) => {
                    let _ = reply.send(self.kill(&filter));
                }
            }
        }
    }

    /// CLIENT LIST lines of this core's clients matching `filter`.
    pub fn list(&self, filter: &Filter) -> String {
        let mut out = String::new();
        let entries = self.entries.borrow();
        let mut listed: Vec<&Rc<Entry>> = entries.iter().collect();
        listed.sort_unstable_by_key(|e| e.id);
        for e in listed {
            if self.matches(e, filter) {
                self.line(e, &mut out);
                out.push('\n');
            }
        }
        out
    }

    /// Closes this core's clients matching `filter`; how many.
    pub fn kill(&self, filter: &Filter) -> usize {
        let mut n = 0;
        for e in self.entries.borrow().iter() {
            if self.matches(e, filter) {
                // The session sees end-of-stream on its next read and ends
                // (shutdown, not close: the session still owns the fd).
                // SAFETY: the fd is the registered session's open socket.
                unsafe { libc::shutdown(e.socket.fd(), libc::SHUT_RDWR) };
                n += 1;
            }
        }
        n
    }

    /// Whether `e` is one of the clients `f` is about.
    pub fn matches(&self, e: &Entry, f: &Filter) -> bool {
        if f.skip == Some(e.id) {
            return false;
        }
        if let Some(ids) = &f.ids {
            if !ids.contains(&e.id) {
                return false;
            }
        }
        if let Some(a) = &f.addr {
            if e.socket.addr(End::Peer).map(|a| a.to_string()).as_ref() != Some(a) {
                return false;
            }
        }
        if let Some(a) = &f.laddr {
            if e.socket.addr(End::Local).map(|a| a.to_string()).as_ref() != Some(a) {
                return false;
            }
        }
        if let Some(u) = &f.user {
            if *u != self.user {
                return false;
            }
        }
        if let Some(k) = f.kind {
            let subscribed = e.subs.get() != (0, 0);
            let kind = if subscribed {
                Kind::PubSub
            } else {
                Kind::Normal
            };
            if k != kind {
                return false;
            }
        }
        if let Some(max) = f.max_age {
            if u64::from(now_seconds().saturating_sub(e.created)) < max {
                return false;
            }
        }
        true
    }

    /// One client as Redis's CLIENT LIST shows it (the fields keyway
    /// knows; memory fields are left out rather than made up).
    pub fn line(&self, e: &Entry, out: &mut String) {
        let text = |which| {
            e.get(which)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let (sub, psub) = e.subs.get();
        let multi = e.multi.get();
        let mut flags = String::new();
        if sub + psub > 0 {
            flags.push('P');
        }
        if multi != NO_MULTI {
            flags.push('x');
        }
        if e.blocked.get() {
            flags.push('b');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let multi = if multi == NO_MULTI { -1 } else { multi as i64 };
        let now = now_seconds();
        let _ = write!(
            out,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={} \
             sub={sub} psub={psub} ssub=0 multi={multi} watch=0 events=r cmd={} user={} \
             redir=-1 resp={} lib-name={} lib-ver={} keyway-core={}",
            e.id,
            e.socket
                .addr(End::Peer)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            e.socket
                .addr(End::Local)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            e.socket.fd(),
            text(Named::Name),
            now.saturating_sub(e.created),
            now.saturating_sub(seconds_since_start(e.active.get())),
            e.db.get(),
            e.cmd.get().map_or("NULL", |c| c.name),
            self.user,
            if e.resp.get() == Protocol::Resp3 {
                3
            } else {
                2
            },
            text(Named::LibName),
            text(Named::LibVer),
            self.core,
        );
    }
}

fn now_seconds() -> u32 {
    seconds_since_start(Instant::now())
}

/// Why CLIENT LIST or KILL filter arguments are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    Syntax,
    InvalidClientId,
    ClientIdNotPositive,
    UnknownType(String),
}

impl FilterError {
    /// What the client is answered.
    pub fn reply(&self) -> ErrorReply<'_> {
        match self {
            FilterError::Syntax => ErrorReply::Syntax,
            FilterError::InvalidClientId => ErrorReply::InvalidClientId,
            FilterError::ClientIdNotPositive => ErrorReply::ClientIdNotPositive,
            FilterError::UnknownType(t) => ErrorReply::UnknownClientType(t),
        }
    }
}

/// Parses CLIENT LIST's `[TYPE t] [ID id ...]` or CLIENT KILL's filters
/// (`ID`, `ADDR`, `LADDR`, `USER`, `TYPE`, `MAXAGE`, `SKIPME`); `me` is
/// the asking client, skipped unless `SKIPME no`.
pub fn parse_filter(args: &[&[u8]], kill: bool, me: u64) -> Result<Filter, FilterError> {
    let mut f = Filter {
        skip: kill.then_some(me),
        ..Filter::default()
    };
    let mut i = 0;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    while i < args.len() {
        let opt = args[i];
        let is = |s: &[u8]| opt.eq_ignore_ascii_case(s);
        if is(b"id") && !kill {
            // LIST: ID takes every id after it.
            let ids: Option<Vec<u64>> = args[i + 1..]
                .iter()
                .map(|a| std::str::from_utf8(a).ok()?.parse().ok())
                .collect();
            match ids {
                Some(ids) if !ids.is_empty() => f.ids = Some(ids),
                _ => return Err(FilterError::InvalidClientId),
            }
            return Ok(f);
        }
        let Some(value) = args.get(i + 1) else {
            return Err(FilterError::Syntax);
        };
        if is(b"id") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(id) => f.ids = Some(vec![id]),
                None => return Err(FilterError::ClientIdNotPositive),
            }
        } else if is(b"type") {
            let v = *value;
            let is_v = |s: &[u8]| v.eq_ignore_ascii_case(s);
            f.kind = Some(if is_v(b"normal") {
                Kind::Normal
            } else if is_v(b"pubsub") {
                Kind::PubSub
            } else if is_v(b"master") || is_v(b"replica") || is_v(b"slave") {
                Kind::Replication
            } else {
                return Err(FilterError::UnknownType(text(v)));
            });
        } else if is(b"addr") && kill {
            f.addr = Some(text(value));
        } else if is(b"laddr") && kill {
            f.laddr = Some(text(value));
        } else if is(b"user") && kill {
            f.user = Some(text(value));
        } else if is(b"maxage") && kill {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => f.max_age = Some(n),
                None => return Err(FilterError::Syntax),
            }
        } else if is(b"skipme") && kill {
            if value.eq_ignore_ascii_case(b"yes") {
                f.skip = Some(me);
            } else if value.eq_ignore_ascii_case(b"no") {
                f.skip = None;
            } else {
                return Err(FilterError::Syntax);
            }
        } else {
            return Err(FilterError::Syntax);
        }
        i += 2;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::doorbell::Doorbell;
    use std::time::Duration;

    #[test]
    fn filters_parse_as_redis_reads_them() {
        let f = parse_filter(&[b"ID", b"3", b"7"], false, 1).unwrap();
        assert_eq!(f.ids, Some(vec![3, 7]));
        assert_eq!(f.skip, None);
        let f = parse_filter(&[b"type", b"PUBSUB"], false, 1).unwrap();
        assert_eq!(f.kind, Some(Kind::PubSub));
        let f = parse_filter(&[b"ADDR", b"127.0.0.1:5", b"SKIPME", b"no"], true, 9).unwrap();
        assert_eq!(f.addr.as_deref(), Some("127.0.0.1:5"));
        assert_eq!(f.skip, None);
        assert_eq!(parse_filter(&[b"ID", b"4"], true, 9).unwrap().skip, Some(9));
        assert!(parse_filter(&[b"ID"], false, 1).is_err());
        assert!(parse_filter(&[b"ID", b"x"], true, 1).is_err());
        assert!(parse_filter(&[b"TYPE", b"nope"], false, 1).is_err());
        assert!(parse_filter(&[b"MAXAGE"], true, 1).is_err());
        assert!(parse_filter(&[b"ADDR", b"a"], false, 1).is_err());
    }

    #[test]
    fn a_registered_client_is_listed_until_it_leaves() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let reg = Rc::new(Registry::new(
            0,
            "default".into(),
            vec![RingingSender::new(tx, Doorbell::new().unwrap())],
            rx,
            Duration::ZERO,
        ));
        let a = reg.register(5, ClientHandle::detached());
        a.entry.set(Named::Name, b"app");
        a.entry.show(Some(2), false, (0, 0));
        let b = reg.register(6, ClientHandle::detached());
        let all = reg.list(&Filter::default());
        assert!(all.starts_with("id=5 addr= laddr= fd=-1 name=app age=0 idle=0 flags=x db=0"));
        assert!(all.contains(" multi=2 "), "{all}");
        assert_eq!(all.lines().count(), 2);
        let only6 = Filter {
            ids: Some(vec![6]),
            ..Filter::default()
        };
        assert!(reg.list(&only6).starts_with("id=6 "));
        drop(b);
        assert_eq!(reg.list(&Filter::default()).lines().count(), 1);
        drop(a);
        assert_eq!(reg.list(&Filter::default()), "");
    }
}
