//! A connection that may be TLS: plain (received bytes are read in place
//! from provided buffers) or TLS from rustls over the same ring socket
//! (plaintext is decrypted into a small buffer of the connection's). One
//! type, so sessions and upstream connections run the same code either way.

use super::socket::{Outflow, Socket};
use futures_lite::{AsyncRead, AsyncWrite};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

/// rustls over a ring socket, either direction.
pub trait TlsIo: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> TlsIo for T {}

/// Plaintext read from TLS per call.
const TLS_CHUNK: usize = 16 * 1024;

pub enum Stream {
    Plain(Socket),
    Tls {
        io: RefCell<Box<dyn TlsIo>>,
        plaintext: RefCell<Vec<u8>>,
    },
}

impl Stream {
    pub fn tls(io: impl TlsIo + 'static) -> Stream {
        Stream::Tls {
            io: RefCell::new(Box::new(io)),
            plaintext: RefCell::new(Vec::new()),
        }
    }

    /// Waits until bytes arrived, then hands each received piece to `sink`
    /// in order. Ok(false): the peer closed the connection.
    #[inline(always)]
    pub async fn recv(&self, mut sink: impl FnMut(&[u8])) -> io::Result<bool> {
        match self {
            Stream::Plain(s) => s.recv(sink).await,
            Stream::Tls { io, plaintext } => {
                poll_fn(|cx| {
                    let mut buf = plaintext.borrow_mut();
                    if buf.len() < TLS_CHUNK {
                        buf.resize(TLS_CHUNK, 0);
                    }
                    match Pin::new(&mut **io.borrow_mut()).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
                        Poll::Ready(Ok(n)) => {
                            sink(&buf[..n]);
                            Poll::Ready(Ok(true))
                        }
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await
            }
        }
    }

    /// Sends all of `buf` and waits until it is sent. `buf` comes back
    /// empty (for a plain socket, holding the allocation of an earlier
    /// send: the bytes themselves were handed over, not copied).
    pub async fn send(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.send(buf).await,
            Stream::Tls { io, .. } => {
                let mut rest: &[u8] = buf;
                while !rest.is_empty() {
                    let n =
                        poll_fn(|cx| Pin::new(&mut **io.borrow_mut()).poll_write(cx, rest)).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    rest = &rest[n..];
                }
                buf.clear();
                poll_fn(|cx| Pin::new(&mut **io.borrow_mut()).poll_flush(cx)).await
            }
        }
    }

    /// Sends all of `buf` (leaving it empty) once the previous send is
    /// done, without waiting for this one on a plain socket: `outflow` is
    /// told of its bytes as they leave (see `Socket::hand_over`). A TLS
    /// stream waits until they are sent, then tells `outflow`.
    pub async fn hand_over<O: Outflow + 'static>(
        &self,
        buf: &mut Vec<u8>,
        outflow: &Rc<O>,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                // A failed send fails this one too: `Socket::hand_over`
                // returns its error and tells the bytes gone.
                let _ = s.flush().await;
                s.hand_over(buf, outflow)
            }
            Stream::Tls { .. } => {
                let len = buf.len();
                let sent = self.send(buf).await;
                outflow.gone(len);
                buf.clear();
                sent
            }
        }
    }

    /// Waits until everything handed over was sent (or a send failed).
    pub async fn flush(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            // A TLS send returns once sent.
            Stream::Tls { .. } => Ok(()),
        }
    }

    /// Ends the connection after everything was sent: half-closes it (`fd`
    /// is its socket) and reads and drops what the peer still sends until
    /// it closes or `linger` passes. Closing with unread input would reset
    /// the connection, which can destroy what the peer has not read yet.
    pub async fn linger_close(&self, fd: i32, linger: std::time::Duration) {
        super::shutdown_write(fd);
        let discard = async { while let Ok(true) = self.recv(|_| {}).await {} };
        super::notify::race(std::pin::pin!(discard), super::sleep(linger)).await;
    }
}
