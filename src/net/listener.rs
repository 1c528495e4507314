//! The accepting side: a core's listener (SO_REUSEPORT, one per core on
//! the same address) with a multishot accept on its ring, and the bound,
//! listening sockets it, the start-up `probe` and the port check use.
//!
//! Separate from `socket`, which holds the connections a listener hands
//! out: the listener only wraps what it accepted in a `Socket`.

use super::ring::{Completion, Ring};
use super::socket::{Side, Socket};
use super::sockopt::{bound_socket, set_nodelay};
use io_uring::{cqueue, opcode, types::Fd};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A listening socket of the core (SO_REUSEPORT: one per core on the same
/// address) with a multishot accept.
pub struct Listener {
    ring: Rc<Ring>,
    fd: i32,
    acceptor: Rc<Acceptor>,
}

struct Acceptor {
    fd: i32,
    accepted: RefCell<VecDeque<i32>>,
    error: Cell<Option<i32>>,
    armed: Cell<Option<u64>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Completion for Acceptor {
    fn completed(self: Rc<Self>, ring: &Ring, res: i32, flags: u32) {
        if res >= 0 {
            if self.closed.get() {
                ring.close(res);
            } else {
                self.accepted.borrow_mut().push_back(res);
            }
        } else if res != -libc::ECANCELED {
            self.error.set(Some(res));
        }
        if !cqueue::more(flags) {
            self.armed.set(None);
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl Listener {
    /// Binds `addr` with SO_REUSEPORT and listens.
    pub fn bind(ring: &Rc<Ring>, addr: SocketAddr) -> io::Result<Listener> {
        let fd = listen_socket(addr, true)?;
        Ok(Listener {
            ring: ring.clone(),
            fd,
            acceptor: Rc::new(Acceptor {
                fd,
                accepted: RefCell::new(VecDeque::new()),
                error: Cell::new(None),
                armed: Cell::new(None),
                waker: RefCell::new(None),
                closed: Cell::new(false),
            }),
        })
    }

    /// The next client connection.
    pub async fn accept(&self) -> io::Result<Socket> {
        poll_fn(|cx| {
            let a = &self.acceptor;
            if let Some(fd) = a.accepted.borrow_mut().pop_front() {
                set_nodelay(fd);
                return Poll::Ready(Ok(Socket::from_fd(&self.ring, fd, Side::Client)));
            }
            if let Some(e) = a.error.take() {
                return Poll::Ready(Err(io::Error::from_raw_os_error(-e)));
            }
            *a.waker.borrow_mut() = Some(cx.waker().clone());
            if a.armed.get().is_none() {
                let sqe = opcode::AcceptMulti::new(Fd(a.fd))
                    .flags(libc::SOCK_CLOEXEC)
                    .build();
                // SAFETY: a multishot accept writes into no memory of ours.
                let ud = unsafe { self.ring.start_owned(a.clone(), sqe) };
                a.armed.set(Some(ud));
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let a = &self.acceptor;
        a.closed.set(true);
        for fd in a.accepted.borrow_mut().drain(..) {
            self.ring.close(fd);
        }
        if let Some(ud) = a.armed.get() {
            self.ring.cancel(ud);
        }
        self.ring.close(self.fd);
    }
}

/// A bound, listening TCP socket (SO_REUSEADDR; SO_REUSEPORT when asked).
pub(crate) fn listen_socket(addr: SocketAddr, reuseport: bool) -> io::Result<i32> {
    let fd = bound_socket(addr, reuseport)?;
    // SAFETY: listen(2) on our socket.
    if unsafe { libc::listen(fd, 1024) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing the descriptor we just created.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// Whether `addr` can be listened on: a bind without SO_REUSEPORT fails
/// while another socket listens there. It never listens itself, so no
/// client can connect to it in the meantime (and find it gone).
pub(crate) fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    let fd = bound_socket(addr, false)?;
    // SAFETY: closing the descriptor we just created.
    unsafe { libc::close(fd) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_check_never_accepts_a_connection() {
        // Found by a review of test races: the check was a listening bind,
        // so a client connecting at start-up could be accepted by it and
        // then find the port closed.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = check_port_free(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(taken);

        let fd = bound_socket(addr, false).unwrap();
        let connect = std::net::TcpStream::connect(addr);
        // SAFETY: closing the descriptor bound_socket made.
        unsafe { libc::close(fd) };
        assert_eq!(
            connect.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert!(check_port_free(addr).is_ok());
    }
}
