//! TCP connections on the core's ring: they receive with a multishot recv
//! into provided buffers and send with one SEND in flight at a time. The
//! listener that accepts them is in `listener`; the plain socket calls
//! (options, half-close, addresses) in `sockopt`.
//!
//! Every descriptor is closed through the ring (`Ring::close`), after the
//! operations queued before it, so a number the kernel may still look up is
//! never reused under it.

use super::ring::{Completion, Keep, Ring};
use super::sockopt::{address, set_nodelay, sockaddr, tcp_socket};
pub use super::sockopt::{reset_on_close, shutdown_write, End};
use super::task::KeptWaker;
use futures_lite::{AsyncRead, AsyncWrite};
use io_uring::{cqueue, opcode, types::Fd};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Which provided buffers a socket receives into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A client of the proxy: requests, small buffers.
    Client,
    /// A backend: coalesced replies, large buffers.
    Upstream,
}

/// Received chunks a socket may hold in provided buffers while its reader
/// is busy; beyond that they are copied to the socket's own memory and
/// receiving pauses until the reader catches up, so a client that stops
/// reading can never take the core's buffers from the others.
const MAX_HELD: usize = 4;

/// The most a reader is handed in one `recv` from a backlog (a huge
/// request received while it was busy), its next `recv` letting the core's
/// other tasks run first: scanning it takes a fraction of a millisecond,
/// so no other client of the core waits long for its turn.
const RECV_TURN: usize = 64 * 1024;

/// A socket's receive side: the multishot recv's completions, in order.
struct Receiver {
    side: Side,
    fd: i32,
    /// Provided buffers received and not yet read: (id, length).
    held: RefCell<VecDeque<(u16, u32)>>,
    /// Bytes received before anything in `held`, copied out of provided
    /// buffers (the reader fell behind). Non-empty only when `held` is empty.
    spilled: RefCell<Vec<u8>>,
    /// How much of the oldest piece (spilled bytes, else `held`'s front) was
    /// already read by a partial read.
    read_off: Cell<usize>,
    /// The last `poll_recv` handed over `RECV_TURN` bytes of a backlog.
    turn_taken: Cell<bool>,
    /// The end of the stream: 0 for EOF, -errno for an error.
    end: Cell<Option<i32>>,
    /// user_data of the multishot recv while it is armed.
    armed: Cell<Option<u64>>,
    pausing: Cell<bool>,
    /// The kernel ran out of provided buffers for this socket.
    starved: Cell<bool>,
    waker: KeptWaker,
    /// The socket was dropped: whatever still arrives goes straight back.
    closed: Cell<bool>,
    /// Told to stop (a drain): the next wait for bytes ends as if the peer
    /// had closed, once; what was received before is still read.
    interrupted: Cell<bool>,
}

/// A client socket as the rest of its core may reach it while its session
/// runs: its descriptor and a way to end the session's wait for bytes.
#[derive(Clone)]
pub struct ClientHandle {
    fd: i32,
    rx: std::rc::Weak<Receiver>,
}

impl ClientHandle {
    /// The client's address (`peer`) or the one it connected to.
    pub fn addr(&self, end: End) -> Option<SocketAddr> {
        address(self.fd, end)
    }

    /// A handle to no socket (unit tests of what keeps handles).
    #[cfg(test)]
    pub fn detached() -> ClientHandle {
        ClientHandle {
            fd: -1,
            rx: std::rc::Weak::new(),
        }
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Ends the connection both ways: a send the peer never reads fails,
    /// the next wait for bytes ends. The descriptor stays the socket's.
    pub fn shut_down(&self) {
        // SAFETY: shutdown on a descriptor this handle's socket owns; the
        // registry drops handles before their sockets close.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        self.interrupt();
    }

    /// The session's next wait for bytes ends as at the peer's close
    /// (nothing is done to the socket: bytes still arriving stay readable).
    pub fn interrupt(&self) {
        if let Some(rx) = self.rx.upgrade() {
            rx.interrupted.set(true);
            rx.waker.wake();
        }
    }
}

impl Receiver {
    fn bufs<'r>(&self, ring: &'r Ring) -> &'r super::bufs::BufRing {
        match self.side {
            Side::Client => &ring.client_bufs,
            Side::Upstream => &ring.upstream_bufs,
        }
    }

    fn wake(&self) {
        self.waker.wake();
    }

    fn set_waker(&self, cx: &Context<'_>) {
        self.waker.wait(cx.waker());
    }

    /// Copies every held buffer into `spilled` and gives the buffers back.
    fn spill(&self, ring: &Ring) {
        if self.held.borrow().is_empty() {
            // Already spilled (read_off then belongs to `spilled`).
            return;
        }
        let bufs = self.bufs(ring);
        let mut spilled = self.spilled.borrow_mut();
        let mut off = self.read_off.replace(0);
        for (id, len) in self.held.borrow_mut().drain(..) {
            // SAFETY: `id` came from a completion and is not recycled yet;
            // `len` is what that completion reported.
            spilled.extend_from_slice(&unsafe { bufs.bytes(id, len as usize) }[off..]);
            off = 0;
            bufs.recycle(id);
        }
    }

    fn arm(self: &Rc<Self>, ring: &Ring) {
        let sqe = opcode::RecvMulti::new(Fd(self.fd), self.bufs(ring).group()).build();
        // SAFETY: the kernel writes only into provided buffers, which live
        // as long as the ring; the slot holds this receiver until the end.
        let ud = unsafe { ring.start_owned(self.clone(), sqe) };
        self.armed.set(Some(ud));
        self.starved.set(false);
    }
}

impl Completion for Receiver {
    fn completed(self: Rc<Self>, ring: &Ring, res: i32, flags: u32) {
        let bufs = self.bufs(ring);
        if res > 0 {
            let Some(id) = cqueue::buffer_select(flags) else {
                debug_assert!(false, "a multishot recv completion without a buffer");
                return;
            };
            bufs.taken();
            if self.closed.get() {
                bufs.recycle(id);
            } else if !self.spilled.borrow().is_empty() || self.held.borrow().len() >= MAX_HELD {
                // The reader is behind: keep the bytes in this socket's own
                // memory and stop receiving until it has read them.
                self.spill(ring);
                // SAFETY: as in `spill`: named by this completion.
                let bytes = unsafe { bufs.bytes(id, res as usize) };
                self.spilled.borrow_mut().extend_from_slice(bytes);
                bufs.recycle(id);
                if cqueue::more(flags) && !self.pausing.get() {
                    if let Some(ud) = self.armed.get() {
                        self.pausing.set(true);
                        ring.cancel(ud);
                    }
                }
            } else {
                self.held.borrow_mut().push_back((id, res as u32));
            }
        }
        if !cqueue::more(flags) {
            self.armed.set(None);
            self.pausing.set(false);
            match res {
                0 => self.end.set(Some(0)),
                e if e == -libc::ENOBUFS => self.starved.set(true),
                e if e == -libc::ECANCELED => {}
                e if e < 0 => self.end.set(Some(e)),
                // Ended with data (the kernel may stop a multishot at any
                // time): the reader arms it again.
                _ => {}
            }
        }
        if !self.closed.get() {
            self.wake();
        }
    }
}

/// The send side: one SEND in flight at a time; what is queued meanwhile
/// waits in `staged` and goes in the next SEND, which the completion of the
/// previous one starts (sending never waits for its owner to poll).
///
/// `inflight` is the only memory the kernel reads: it is touched only while
/// no SEND is in flight, and the ring's slot holds this `Sender` (and so
/// `inflight`) until the SEND completes, even after the socket is dropped.
struct Sender {
    fd: i32,
    inflight: RefCell<Vec<u8>>,
    /// Bytes of `inflight` already sent (a short send continues).
    sent: Cell<usize>,
    /// user_data of the SEND in flight.
    busy: Cell<Option<u64>>,
    staged: RefCell<Vec<u8>>,
    /// A failed send: every later send or flush fails the same way.
    error: Cell<Option<io::ErrorKind>>,
    /// The task waiting for everything queued to be sent.
    waker: KeptWaker,
    closed: Cell<bool>,
    /// Told of bytes handed over (`Socket::hand_over`) as they leave.
    outflow: RefCell<Option<Rc<dyn Outflow>>>,
    /// Bytes handed over that `outflow` has not been told of yet. A
    /// completion reports what it sent against them, whichever way those
    /// bytes were queued: the count is exact once the sender is idle.
    counted: Cell<usize>,
}

/// Where a socket's owner counts the bytes it handed over without waiting
/// for them (`Socket::hand_over`): told of each as the kernel takes it, or
/// as it is dropped with a failed or closed connection.
pub trait Outflow {
    fn gone(&self, bytes: usize);
}

impl Sender {
    /// Starts a SEND of what is staged, unless one is in flight.
    fn launch(self: &Rc<Self>, ring: &Ring) {
        if self.busy.get().is_some() || self.error.get().is_some() || self.closed.get() {
            return;
        }
        {
            let mut staged = self.staged.borrow_mut();
            if staged.is_empty() {
                return;
            }
            let mut inflight = self.inflight.borrow_mut();
            inflight.clear();
            std::mem::swap(&mut *inflight, &mut *staged);
        }
        self.sent.set(0);
        self.submit(ring);
    }

    /// A SEND of `inflight` from `sent` on.
    fn submit(self: &Rc<Self>, ring: &Ring) {
        let (ptr, len) = {
            let b = self.inflight.borrow();
            let rest = &b[self.sent.get()..];
            (rest.as_ptr(), rest.len().min(MAX_SEND) as u32)
        };
        let sqe = opcode::Send::new(Fd(self.fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: `inflight` is not modified while busy, and the slot keeps
        // this Sender (which owns it) alive until the completion.
        let ud = unsafe { ring.start_owned(self.clone(), sqe) };
        self.busy.set(Some(ud));
    }

    fn wake(&self) {
        self.waker.wake();
    }

    /// Up to `bytes` of those handed over have left (every one: `usize::MAX`).
    fn count_gone(&self, bytes: usize) {
        let n = bytes.min(self.counted.get());
        if n > 0 {
            self.counted.set(self.counted.get() - n);
            if let Some(outflow) = &*self.outflow.borrow() {
                outflow.gone(n);
            }
        }
    }
}

impl Completion for Sender {
    fn completed(self: Rc<Self>, ring: &Ring, res: i32, _flags: u32) {
        self.busy.set(None);
        if self.closed.get() {
            self.count_gone(usize::MAX);
            return;
        }
        if res <= 0 {
            let kind = if res == 0 {
                io::ErrorKind::WriteZero
            } else {
                io::Error::from_raw_os_error(-res).kind()
            };
            self.error.set(Some(kind));
            self.count_gone(usize::MAX);
            self.wake();
            return;
        }
        self.count_gone(res as usize);
        let sent = self.sent.get() + res as usize;
        if sent < self.inflight.borrow().len() {
            self.sent.set(sent);
            self.submit(ring);
            return;
        }
        {
            let mut inflight = self.inflight.borrow_mut();
            inflight.clear();
            if inflight.capacity() > KEEP_SEND {
                *inflight = Vec::new();
            }
        }
        self.launch(ring);
        if self.busy.get().is_none() {
            self.wake();
        }
    }
}

/// Buffers above this are not kept for reuse after their send.
const KEEP_SEND: usize = 256 * 1024;
/// One SEND carries at most this much (the kernel takes a u32).
const MAX_SEND: usize = 1 << 30;

pub struct Socket {
    ring: Rc<Ring>,
    fd: i32,
    rx: Rc<Receiver>,
    tx: Rc<Sender>,
}

impl Socket {
    /// What CLIENT LIST/KILL and a drain reach a client socket through.
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            fd: self.fd,
            rx: Rc::downgrade(&self.rx),
        }
    }

    /// Writes `bytes` only if the kernel takes them at once (no waiting,
    /// no SIGPIPE): a last word before closing.
    pub fn send_now(&self, bytes: &[u8]) {
        // SAFETY: a non-blocking send from a valid slice on our descriptor.
        unsafe {
            libc::send(
                self.fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }

    /// Sends end-of-stream to the peer; this side can still read.
    pub fn shutdown_write(&self) {
        shutdown_write(self.fd);
    }

    /// The address of the other end (None once it is gone).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        address(self.fd, End::Peer)
    }

    /// Turns on TCP keepalive: the first probe after `idle` without
    /// traffic, then two more a third of that apart, as Redis's
    /// `tcp-keepalive` does; a peer whose host vanished is noticed.
    pub fn set_keepalive(&self, idle: Duration) {
        if idle.is_zero() {
            return;
        }
        let idle_s = idle.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
        let opts = [
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle_s),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (idle_s / 3).max(1)),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
        ];
        for (level, name, value) in opts {
            // SAFETY: setsockopt with a valid int option value on our fd.
            unsafe {
                libc::setsockopt(
                    self.fd,
                    level,
                    name,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }

    /// Wraps a connected descriptor, which the socket now owns.
    pub(super) fn from_fd(ring: &Rc<Ring>, fd: i32, side: Side) -> Socket {
        Socket {
            ring: ring.clone(),
            fd,
            rx: Rc::new(Receiver {
                side,
                fd,
                held: RefCell::new(VecDeque::new()),
                spilled: RefCell::new(Vec::new()),
                turn_taken: Cell::new(false),
                read_off: Cell::new(0),
                end: Cell::new(None),
                armed: Cell::new(None),
                pausing: Cell::new(false),
                starved: Cell::new(false),
                waker: KeptWaker::default(),
                closed: Cell::new(false),
                interrupted: Cell::new(false),
            }),
            tx: Rc::new(Sender {
                fd,
                inflight: RefCell::new(Vec::new()),
                sent: Cell::new(0),
                busy: Cell::new(None),
                staged: RefCell::new(Vec::new()),
                error: Cell::new(None),
                waker: KeptWaker::default(),
                closed: Cell::new(false),
                outflow: RefCell::new(None),
                counted: Cell::new(0),
            }),
        }
    }

    /// Connects to `addr` through the ring, within `timeout`.
    pub async fn connect(
        ring: &Rc<Ring>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<Socket> {
        let fd = tcp_socket(addr)?;
        let socket = Socket::from_fd(ring, fd, Side::Upstream);
        set_nodelay(fd);
        let (storage, len) = sockaddr(addr);
        let op = ring.start(Box::new((storage, len)), |a: &Keep| {
            opcode::Connect::new(Fd(fd), (&a.0 as *const libc::sockaddr_storage).cast(), a.1)
                .build()
        });
        let mut op = std::pin::pin!(op);
        let timer = crate::net::sleep(timeout);
        match super::notify::race(op.as_mut(), timer).await {
            super::notify::Either::Left((0, _)) => Ok(socket),
            super::notify::Either::Left((e, _)) => Err(io::Error::from_raw_os_error(-e)),
            super::notify::Either::Right(()) => {
                op.cancel();
                Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            }
        }
    }

    /// Waits until bytes arrived, then hands every received piece to
    /// `sink`, oldest first. Ok(false): the peer closed, all was read.
    pub async fn recv(&self, mut sink: impl FnMut(&[u8])) -> io::Result<bool> {
        poll_fn(|cx| self.poll_recv(cx, &mut sink)).await
    }

    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        sink: &mut impl FnMut(&[u8]),
    ) -> Poll<io::Result<bool>> {
        let rx = &self.rx;
        if rx.turn_taken.replace(false) {
            // The last call handed over a turn's worth of a backlog: the
            // core's other tasks run before the next.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let bufs = rx.bufs(&self.ring);
        let mut got = false;
        if !rx.spilled.borrow().is_empty() {
            let mut spilled = std::mem::take(&mut *rx.spilled.borrow_mut());
            let off = rx.read_off.replace(0);
            if spilled.len() - off > RECV_TURN {
                // A long backlog is handed over a turn's worth at a time:
                // its reader lets the core's other tasks run in between.
                let end = off + RECV_TURN;
                sink(&spilled[off..end]);
                let mut keep = rx.spilled.borrow_mut();
                // Spilled while `sink` ran: newer, so after the rest.
                spilled.extend_from_slice(&keep);
                *keep = spilled;
                rx.read_off.set(end);
                rx.turn_taken.set(true);
                return Poll::Ready(Ok(true));
            }
            sink(&spilled[off..]);
            let mut keep = rx.spilled.borrow_mut();
            if keep.is_empty() && spilled.capacity() <= 64 * 1024 {
                *keep = spilled;
                keep.clear();
            }
            got = true;
        }
        loop {
            let next = rx.held.borrow_mut().pop_front();
            let Some((id, len)) = next else { break };
            // SAFETY: named by a completion, not recycled until below.
            let bytes = unsafe { bufs.bytes(id, len as usize) };
            sink(&bytes[rx.read_off.replace(0)..]);
            bufs.recycle(id);
            got = true;
        }
        if got {
            return Poll::Ready(Ok(true));
        }
        // Ready(Ok) from poll_more is the end of the stream.
        self.poll_more(cx).map(|r| r.map(|()| false))
    }

    /// With nothing received: the end of the stream if it came, else arms
    /// the receive (when buffers allow) and waits.
    fn poll_more(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let rx = &self.rx;
        if rx.interrupted.replace(false) {
            return Poll::Ready(Ok(()));
        }
        match rx.end.get() {
            Some(0) => return Poll::Ready(Ok(())),
            Some(e) => return Poll::Ready(Err(io::Error::from_raw_os_error(-e))),
            None => {}
        }
        rx.set_waker(cx);
        if rx.armed.get().is_none() {
            let bufs = rx.bufs(&self.ring);
            if rx.starved.get() && !bufs.can_resume() {
                bufs.wait_for_buffers(cx.waker());
            } else {
                rx.arm(&self.ring);
            }
        }
        Poll::Pending
    }

    /// Copies received bytes into `buf` (for TLS, which wants a reader).
    fn poll_read_into(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let rx = &self.rx;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let off = rx.read_off.get();
        {
            let mut spilled = rx.spilled.borrow_mut();
            if !spilled.is_empty() {
                let n = (spilled.len() - off).min(buf.len());
                buf[..n].copy_from_slice(&spilled[off..off + n]);
                if off + n == spilled.len() {
                    spilled.clear();
                    rx.read_off.set(0);
                } else {
                    rx.read_off.set(off + n);
                }
                return Poll::Ready(Ok(n));
            }
        }
        let front = rx.held.borrow().front().copied();
        if let Some((id, len)) = front {
            let bufs = rx.bufs(&self.ring);
            // SAFETY: named by a completion, recycled only below.
            let bytes = unsafe { bufs.bytes(id, len as usize) };
            let n = (bytes.len() - off).min(buf.len());
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            if off + n == bytes.len() {
                rx.held.borrow_mut().pop_front();
                rx.read_off.set(0);
                bufs.recycle(id);
            } else {
                rx.read_off.set(off + n);
            }
            return Poll::Ready(Ok(n));
        }
        self.poll_more(cx).map(|r| r.map(|()| 0))
    }

    /// Takes `buf`'s bytes for sending (leaving it empty, maybe with the
    /// allocation of an earlier send) and starts a send if none is in
    /// flight. `flush` waits until everything queued was sent.
    pub fn queue(&self, buf: &mut Vec<u8>) {
        {
            let mut staged = self.tx.staged.borrow_mut();
            if staged.is_empty() {
                std::mem::swap(&mut *staged, buf);
            } else {
                staged.extend_from_slice(buf);
            }
        }
        buf.clear();
        self.tx.launch(&self.ring);
    }

    /// Ready once everything queued was sent (or a send failed).
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tx = &self.tx;
        if let Some(kind) = tx.error.get() {
            return Poll::Ready(Err(kind.into()));
        }
        tx.launch(&self.ring);
        if tx.busy.get().is_none() {
            return Poll::Ready(Ok(()));
        }
        tx.waker.wait(cx.waker());
        Poll::Pending
    }

    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_sent(cx)).await
    }

    /// Sends all of `buf` (leaving it empty) without waiting for it:
    /// `outflow` is told of its bytes as the kernel takes them, or as they
    /// are dropped with the connection. The owner's task is not woken for
    /// a send that completes (one task poll less per reply). Err: an
    /// earlier send failed (the bytes are told gone at once).
    pub fn hand_over<O: Outflow + 'static>(
        &self,
        buf: &mut Vec<u8>,
        outflow: &Rc<O>,
    ) -> io::Result<()> {
        let tx = &self.tx;
        if tx.outflow.borrow().is_none() {
            *tx.outflow.borrow_mut() = Some(outflow.clone());
        }
        tx.counted.set(tx.counted.get() + buf.len());
        if let Some(kind) = tx.error.get() {
            buf.clear();
            tx.count_gone(usize::MAX);
            return Err(kind.into());
        }
        self.queue(buf);
        Ok(())
    }

    /// Sends all of `buf` (leaving it empty) and waits until it is sent.
    pub async fn send(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        self.queue(buf);
        self.flush().await
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let rx = &self.rx;
        rx.closed.set(true);
        let bufs = rx.bufs(&self.ring);
        for (id, _) in rx.held.borrow_mut().drain(..) {
            bufs.recycle(id);
        }
        if let Some(ud) = rx.armed.get() {
            self.ring.cancel(ud);
        }
        // A send that cannot finish (the peer stopped reading) must not keep
        // the socket open: cancel it; its bytes stay with its slot.
        self.tx.closed.set(true);
        match self.tx.busy.get() {
            // Its completion tells the outflow of what did not leave.
            Some(ud) => self.ring.cancel(ud),
            None => self.tx.count_gone(usize::MAX),
        }
        self.ring.close(self.fd);
    }
}

// For TLS: rustls reads and writes through these.
impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_into(cx, buf)
    }
}

/// How much TLS output may wait behind a send in flight.
const MAX_STAGED: usize = 256 * 1024;

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let tx = &self.tx;
        if let Some(kind) = tx.error.get() {
            return Poll::Ready(Err(kind.into()));
        }
        if tx.staged.borrow().len() >= MAX_STAGED {
            match self.poll_sent(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        tx.staged.borrow_mut().extend_from_slice(buf);
        tx.launch(&self.ring);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_sent(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_sent(cx)
    }
}
