//! Plain system calls on a socket's descriptor, outside the ring: a new or
//! bound TCP socket, TCP_NODELAY, half-close, a reset on close, and
//! addresses to and from the kernel's layout.
//!
//! Separate from `socket` (connections on the ring) and `listener` (the
//! accepting side) because both use them; they use nothing of either, or
//! of the ring.

use std::io;
use std::net::SocketAddr;

/// Half-closes a socket: the peer reads what was sent, then end-of-stream;
/// this side can still read.
pub fn shutdown_write(fd: i32) {
    // SAFETY: shutdown touches no memory; on a bad descriptor it fails.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Makes the socket's close a reset: what the kernel still holds for the
/// peer is dropped with it. For a client closed past its output limit,
/// whose unread megabytes would otherwise trickle out after the close.
pub fn reset_on_close(fd: i32) {
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `abort` is a valid linger for the size given; on a bad
    // descriptor setsockopt fails and touches nothing.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &abort as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

pub(super) fn set_nodelay(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A socket address in the kernel's layout.
pub(crate) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // sockaddr type.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A new TCP socket of `addr`'s family (blocking: io_uring never blocks on
/// it, and accepted sockets are blocking too).
pub(super) fn tcp_socket(addr: SocketAddr) -> io::Result<i32> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A TCP socket bound to `addr` (SO_REUSEADDR; SO_REUSEPORT when asked).
pub(super) fn bound_socket(addr: SocketAddr, reuseport: bool) -> io::Result<i32> {
    let fd = tcp_socket(addr)?;
    let fail = |fd: i32| {
        let e = io::Error::last_os_error();
        // SAFETY: closing the descriptor we just created.
        unsafe { libc::close(fd) };
        Err(e)
    };
    let one: libc::c_int = 1;
    let opt = |name| {
        // SAFETY: setsockopt with a valid int option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if opt(libc::SO_REUSEADDR) != 0 || (reuseport && opt(libc::SO_REUSEPORT) != 0) {
        return fail(fd);
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return fail(fd);
    }
    Ok(fd)
}

/// Which end of a connection an address is asked for.
#[derive(Clone, Copy)]
pub enum End {
    Peer,
    Local,
}

/// The address of a socket's peer or local end.
pub(super) fn address(fd: i32, end: End) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is large enough for any address;
    // the kernel writes at most `len` bytes into it.
    let (storage, len) = unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = (&mut storage as *mut libc::sockaddr_storage).cast();
        let rc = match end {
            End::Peer => libc::getpeername(fd, p, &mut len),
            End::Local => libc::getsockname(fd, p, &mut len),
        };
        if rc != 0 {
            return None;
        }
        (storage, len)
    };
    match storage.ss_family as i32 {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(&storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(&storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}
