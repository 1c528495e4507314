//! One client connection: read what is available, scan every complete
//! request, dispatch them all (to upstreams or answered locally), wait for
//! their replies, and write them back in request order in one write.
pub mod local;
pub mod plan;
pub mod replies;

use crate::command::{key_indices, lookup, CommandSpec, Exec, Local, Split};
use crate::resp::request::{Arg, RequestScanner, Scanned};
use crate::resp::write::{quoted, Protocol};
use crate::resp::Limits;
use crate::stats::{CoreStats, ErrorKind, Group};
use crate::tls::Stream;
use crate::topology::Topology;
use crate::upstream::Upstreams;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use replies::Replies;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

const READ_CHUNK: usize = 16 * 1024;

/// What a core gives each of its sessions.
pub struct CoreContext {
    pub topo: Arc<Topology>,
    pub upstreams: Rc<Upstreams>,
    pub limits: Limits,
    pub max_pending: usize,
    pub stats: Rc<CoreStats>,
}

/// Per-client state the dispatcher works on (everything but the read buffer,
/// whose slices the requests are).
pub struct Client {
    pub id: u64,
    pub proto: Protocol,
    pub name: Option<Vec<u8>>,
    pub close: bool,
    /// False until AUTH succeeds when the proxy has a password.
    pub authenticated: bool,
    replies: Rc<RefCell<Replies>>,
    keys: Vec<usize>,
    targets: Vec<plan::Target>,
    /// xorshift state for mirror fractions.
    rng: u64,
    stats: Rc<CoreStats>,
    /// Requests of the current batch per latency group.
    groups: [u64; 4],
}

impl Client {
    pub fn reply(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.replies.borrow_mut().push_local(encode);
    }

    pub fn error(&self, msg: &str) {
        self.fail(ErrorKind::Other, msg);
    }

    /// A uniform draw in [0, 1) (xorshift64*), for mirror fractions.
    pub fn next_fraction(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn fail(&self, kind: ErrorKind, msg: &str) {
        self.stats.error(kind);
        self.replies.borrow_mut().push_error(msg);
    }
}

pub async fn run(mut stream: Stream, ctx: Rc<CoreContext>, id: u64) {
    let mut scanner = RequestScanner::new(ctx.limits);
    let mut client = Client {
        id,
        proto: Protocol::Resp2,
        name: None,
        close: false,
        authenticated: ctx.topo.config.password.is_none(),
        replies: Replies::new(),
        keys: Vec::with_capacity(16),
        targets: Vec::with_capacity(16),
        rng: id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        stats: ctx.stats.clone(),
        groups: [0; 4],
    };
    let mut read_at = Instant::now();
    let mut rbuf = vec![0u8; READ_CHUNK];
    let (mut start, mut end, mut need) = (0usize, 0usize, 1usize);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        // Dispatch every complete request already read (up to the limit).
        let mut more_ready = false;
        while end - start >= need && !client.close {
            if client.replies.borrow().len() >= ctx.max_pending {
                more_ready = true;
                break;
            }
            // Until a client authenticates, Redis's tighter limits apply.
            scanner.set_limits(if client.authenticated {
                ctx.limits
            } else {
                Limits::UNAUTHENTICATED
            });
            match scanner.scan(&rbuf[start..end]) {
                Ok(Scanned::Frame { len }) => {
                    dispatch(&ctx, &mut client, &rbuf[start..start + len], scanner.args());
                    start += len;
                    need = 1;
                }
                Ok(Scanned::Inline { len }) => {
                    dispatch(&ctx, &mut client, scanner.inline_frame(), scanner.args());
                    start += len;
                    need = 1;
                }
                Ok(Scanned::Empty { len }) => {
                    start += len;
                    need = 1;
                }
                Ok(Scanned::Incomplete { need: n }) => need = n,
                Err(e) => {
                    client.fail(ErrorKind::Protocol, &format!("ERR Protocol error: {}", e.0));
                    client.close = true;
                }
            }
        }
        if !client.replies.borrow().is_empty() {
            wait_for_replies(&client.replies).await;
            client.replies.borrow_mut().take_output(&mut out);
            if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                return;
            }
            CoreStats::add(&ctx.stats.bytes_out, out.len() as u64);
            ctx.stats.record_batch(&client.groups, read_at.elapsed());
            client.groups = [0; 4];
            if out.capacity() > 4 * 1024 * 1024 {
                out = Vec::with_capacity(READ_CHUNK);
            }
            // Scratch space grown by a huge request goes back too.
            scanner.trim();
            if client.keys.capacity() > 4096 {
                client.keys = Vec::with_capacity(16);
            }
            if client.targets.capacity() > 4096 {
                client.targets = Vec::with_capacity(16);
            }
        }
        if client.close {
            return;
        }
        if more_ready {
            continue;
        }
        // Make room for the rest of the request, then read.
        if start == end {
            start = 0;
            end = 0;
            if rbuf.len() > 64 * READ_CHUNK {
                rbuf = vec![0u8; READ_CHUNK];
            }
        } else if start > 0 {
            rbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        // Grow with the data that arrives, never by a size the client only
        // announced: at most double per read (a 21-byte header declaring a
        // 512 MB value must not commit 512 MB).
        if rbuf.len() - end < READ_CHUNK / 4 {
            let grown = (rbuf.len() * 2).min(need.max(end + READ_CHUNK));
            rbuf.resize(grown.max(end + READ_CHUNK / 4), 0);
        }
        match stream.read(&mut rbuf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                end += n;
                read_at = Instant::now();
                CoreStats::add(&ctx.stats.bytes_in, n as u64);
            }
        }
    }
}

async fn wait_for_replies(replies: &Rc<RefCell<Replies>>) {
    poll_fn(|cx| {
        let mut r = replies.borrow_mut();
        if r.outstanding() == 0 {
            Poll::Ready(())
        } else {
            r.set_waker(cx.waker());
            Poll::Pending
        }
    })
    .await
}

/// Executes one request: `frame` is its RESP encoding, `args` index into it.
pub fn dispatch(ctx: &CoreContext, client: &mut Client, frame: &[u8], args: &[Arg]) {
    let arg = |i: usize| &frame[args[i].start..args[i].end];
    let name = arg(0);
    let spec = lookup(name);
    ctx.stats.command(spec);
    let group = match spec.map(|s| (s.exec, s.write)) {
        Some((Exec::Forward, false)) => Group::Read,
        Some((Exec::Forward, true)) => Group::Write,
        Some((Exec::Split(_), _)) => Group::Multi,
        _ => Group::Other,
    };
    client.groups[group as usize] += 1;
    let Some(spec) = spec else {
        client.fail(ErrorKind::UnknownCommand, &unknown_command(frame, args));
        return;
    };
    if !spec.arity_ok(args.len()) {
        client.fail(
            ErrorKind::WrongArity,
            &format!("ERR wrong number of arguments for '{}' command", spec.name),
        );
        return;
    }
    if !client.authenticated
        && !matches!(
            spec.exec,
            Exec::Local(Local::Auth | Local::Hello | Local::Quit)
        )
    {
        client.fail(ErrorKind::Auth, "NOAUTH Authentication required.");
        return;
    }
    match spec.exec {
        Exec::Local(l) => local::run(l, ctx, client, frame, args),
        Exec::Unsupported => {
            client.fail(
                ErrorKind::Unsupported,
                &format!("ERR unsupported command '{}'", quoted(name, 128)),
            );
        }
        Exec::Forward => routed(ctx, client, frame, args, spec, None),
        Exec::Split(kind) => {
            if kind == Split::Mset && args.len().is_multiple_of(2) {
                client.fail(
                    ErrorKind::WrongArity,
                    &format!("ERR wrong number of arguments for '{}' command", spec.name),
                );
                return;
            }
            routed(ctx, client, frame, args, spec, Some(kind));
        }
    }
}

/// A command served by the keys' endpoints.
fn routed(
    ctx: &CoreContext,
    client: &mut Client,
    frame: &[u8],
    args: &[Arg],
    spec: &CommandSpec,
    kind: Option<Split>,
) {
    let mut keys = std::mem::take(&mut client.keys);
    let mut targets = std::mem::take(&mut client.targets);
    if find_keys(client, spec, frame, args, &mut keys) {
        if keys.is_empty() {
            client.error(&format!(
                "ERR '{}' without keys cannot be routed: keyway routes by key",
                spec.name
            ));
        } else {
            plan::execute(ctx, client, frame, args, spec, kind, &keys, &mut targets);
        }
    }
    client.keys = keys;
    client.targets = targets;
}

/// Fills `keys` with the argument indices of the request's keys; on a bad
/// numkeys, answers the client and returns false.
fn find_keys(
    client: &Client,
    spec: &CommandSpec,
    frame: &[u8],
    args: &[Arg],
    keys: &mut Vec<usize>,
) -> bool {
    match key_indices(
        spec,
        args.len(),
        |i| &frame[args[i].start..args[i].end],
        keys,
    ) {
        Ok(()) => true,
        Err(e) => {
            client.error(e.message());
            false
        }
    }
}

/// Redis's words for a command it does not know.
fn unknown_command(frame: &[u8], args: &[Arg]) -> String {
    let arg = |i: usize| &frame[args[i].start..args[i].end];
    let mut shown = String::new();
    for i in 1..args.len() {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push('\'');
        shown.push_str(&quoted(arg(i), room));
        shown.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        quoted(arg(0), 128),
        shown
    )
}
