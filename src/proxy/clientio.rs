//! The client side of a connection as hyper sees it: every byte read is fed to
//! the request-smuggling [`Scanner`], every write is bounded by an idle
//! timeout (`--send-timeout`, as nginx's `send_timeout`: a client that stops
//! reading cannot hold the connection, and the upstream one behind it,
//! forever), and when hyper is done with the socket it is handed back to
//! [`super::server`] instead of being closed, so that it can be closed with a
//! [lingering close](linger) after an error answer.

use std::cell::{Cell, RefCell};
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::smuggle::Scanner;

/// What the connection's task and its I/O share.
#[derive(Default)]
pub struct ConnShared {
    pub scanner: RefCell<Scanner>,
    /// An error answer was sent while the request (body) may still be
    /// arriving: close with a lingering close.
    pub linger: Cell<bool>,
    /// The socket, once hyper has dropped its I/O.
    returned: Cell<Option<TcpStream>>,
}

impl ConnShared {
    /// The socket, after the hyper connection that used it was dropped.
    pub fn take_stream(&self) -> Option<TcpStream> {
        self.returned.take()
    }
}

/// A client connection as given to hyper.
pub struct ClientIo {
    /// Always `Some` until dropped (then handed to [`ConnShared`]).
    stream: Option<TcpStream>,
    shared: std::rc::Rc<ConnShared>,
    send_timeout: Duration,
    /// Armed when a write could not proceed; created on the first such write.
    write_timer: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
}

impl ClientIo {
    /// Wraps an accepted client socket; `send_timeout` bounds each stalled write.
    pub fn new(stream: TcpStream, shared: std::rc::Rc<ConnShared>, send_timeout: Duration) -> Self {
        ClientIo {
            stream: Some(stream),
            shared,
            send_timeout,
            write_timer: None,
            write_stalled: false,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Bounds a write that did not proceed: `Pending` until the client has
    /// taken nothing for `send_timeout`, then an error (hyper closes).
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.write_stalled = false;
            return res;
        }
        let deadline = Instant::now() + self.send_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.write_stalled {
            self.write_stalled = true;
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client took nothing for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        self.shared.returned.set(self.stream.take());
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = this.stream()?.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                this.shared.scanner.borrow_mut().feed(fresh);
            }
        }
        res
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = this.stream()?.poll_write(cx, buf);
        this.on_write(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = this.stream()?.poll_write_vectored(cx, bufs);
        this.on_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = this.stream()?.poll_flush(cx);
        this.on_write(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = this.stream()?.poll_shutdown(cx);
        this.on_write(cx, res)
    }
}

/// Longest lingering close: nginx's `lingering_time` (30 s).
pub const LINGER_TIME: Duration = Duration::from_secs(30);
/// Longest pause of the client during a lingering close: nginx's
/// `lingering_timeout` (5 s).
pub const LINGER_IDLE: Duration = Duration::from_secs(5);

/// Lingering close: after an error answer, the client may still be sending
/// the request (a body the proxy refused). Closing at once with unread bytes
/// makes the kernel send a reset, and a client that has not read the answer
/// yet loses it. So: end our side (FIN after the answer), then read and
/// discard until the client closes, pauses for [`LINGER_IDLE`], or
/// [`LINGER_TIME`] has passed; then close. nginx does the same
/// (`lingering_close on`, same bounds). Ends early when `stop` resolves (a
/// drain does not wait for lingering clients).
pub async fn linger(mut stream: TcpStream, stop: impl std::future::Future<Output = ()>) {
    let _ = stream.shutdown().await;
    let end = Instant::now() + LINGER_TIME;
    let discard = async {
        let mut buf = [0u8; 4096];
        loop {
            let idle = (Instant::now() + LINGER_IDLE).min(end);
            match tokio::time::timeout_at(idle, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
    };
    tokio::select! {
        () = discard => {}
        () = stop => {}
    }
}
