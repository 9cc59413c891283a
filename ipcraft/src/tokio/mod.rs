//! Async ends for [tokio](https://docs.rs/tokio) (feature `tokio`): pipes,
//! FIFOs, message queues, Unix sockets, the shared-memory channel, topics
//! and services.
//!
//! Everything here registers a descriptor with tokio's reactor, so it must
//! be made inside a runtime with IO enabled (`enable_io`, or `enable_all`).
//! Errors are the blocking API's [`Error`]s, with the same causes and
//! limits.
//!
//! | transport | async type | made from |
//! |---|---|---|
//! | pipe | [`PipeReceiver`] / [`PipeSender`] (`AsyncRead` / `AsyncWrite`) | [`pipe`], [`receiver`], [`sender`] |
//! | FIFO | the same | [`open_fifo_read`], [`open_fifo_write`] |
//! | message queue | [`AsyncMessageQueue`] | [`AsyncMessageQueue::new`] |
//! | Unix socket | [`tokio::net::UnixStream`] | [`send_with_fds`], [`recv_with_fds`], [`peer_credentials`] |
//! | channel | [`AsyncSender`] / [`AsyncReceiver`] | [`AsyncSender::new`], [`AsyncReceiver::open`], … |
//! | topic | [`AsyncPublisher`] / [`AsyncSubscriber`] | [`AsyncPublisher::new`], [`AsyncSubscriber::open`], … |
//! | service | [`AsyncServer`] / [`AsyncClient`] | [`AsyncServer::create`], [`AsyncClient::connect`], … |
//!
//! # Cancellation
//!
//! As in tokio, an operation is *cancel-safe* when dropping its future
//! before it completes (in `select!`, or through
//! [`timeout`](::tokio::time::timeout)) loses and duplicates nothing:
//!
//! - Cancel-safe: [`AsyncReceiver::recv`], [`AsyncReceiver::recv_view`],
//!   [`AsyncReceiver::recv_pod`], [`AsyncReceiver::recv_vec`],
//!   [`AsyncSender::send`], [`AsyncSender::send_pod`],
//!   [`AsyncSender::reserve`], [`AsyncSender::flush`],
//!   [`AsyncMessageQueue::send`], [`AsyncMessageQueue::recv`],
//!   [`AsyncPublisher::send`], [`AsyncSubscriber::recv`],
//!   [`AsyncSubscriber::recv_vec`], [`AsyncSubscriber::recv_pod`],
//!   [`AsyncServer::recv`], [`AsyncServer::recv_into`],
//!   [`AsyncServer::reply`], [`AsyncClient::send_request`],
//!   [`AsyncClient::recv_response`], [`AsyncClient::recv_response_into`],
//!   [`send_with_fds`], [`recv_with_fds`], and tokio's own `read`/`write`
//!   on the pipe ends. Each moves its data in the one poll that completes
//!   it, or not at all.
//! - Not cancel-safe: `write_all`/`read_exact` on the pipe ends (as in
//!   tokio: part may have moved), [`open_fifo_write`] and
//!   [`open_fifo_read`] (dropping one only abandons the open),
//!   [`AsyncSender::close`]/[`abort`](AsyncSender::abort) and
//!   [`AsyncPublisher::close`]/[`abort`](AsyncPublisher::abort) (a dropped
//!   close leaves the end to end the stream when it drops),
//!   [`AsyncClient::call`] as a whole (cancelled after its request went,
//!   its response is the next [`AsyncClient::recv_response`] returns).
//!
//! ```
//! # fn main() -> ipcraft::Result<()> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use ipcraft::channel::ChannelOptions;
//! use ipcraft::tokio::{AsyncReceiver, AsyncSender};
//!
//! let (tx, rx) = ChannelOptions::new().capacity(64 * 1024).pair()?; // fork here to cross processes
//! let (mut tx, mut rx) = (AsyncSender::new(tx)?, AsyncReceiver::new(rx)?);
//! let sending = tokio::spawn(async move {
//!     tx.send(b"hello").await?;
//!     tx.close().await
//! });
//! assert_eq!(rx.recv_vec().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(rx.recv_vec().await?, None); // end of stream
//! sending.await.unwrap()
//! # })
//! # }
//! ```

mod channel;
mod service;
mod topic;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
pub use ::tokio::net::unix::pipe::{Receiver as PipeReceiver, Sender as PipeSender};
use ::tokio::net::UnixStream;

pub use self::channel::{AsyncReceiver, AsyncSender};
pub use self::service::{AsyncClient, AsyncServer};
pub use self::topic::{AsyncPublisher, AsyncSubscriber};
use crate::channel::Bell;
use crate::error::{Cause, Context, Error, Result};
use crate::fifo::FifoOptions;
use crate::mq::MessageQueue;
use crate::pipe::{PipeReader, PipeWriter};
use crate::sys;
use crate::unix_socket::PeerCred;

/// Registers `inner`'s descriptor with the runtime's reactor.
fn register<T: AsRawFd>(inner: T, interest: Interest) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: every `T` used here (OwnedFd, the channel's doorbell, a
    // MessageQueue) owns its descriptor for its whole life and never
    // swaps it, so the descriptor stays open and the same while the
    // AsyncFd holds it, as `register_with_interest` requires.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(std::io::Error::from)
}

/// How many datagram rings one wake-up takes at most (a flood of them
/// cannot keep an end from its work; the rest stay readable).
const DRAIN_MOST: usize = 64;

/// A doorbell registered with the runtime: its socket and its eventfd
/// each, watched directly rather than through an epoll descriptor over
/// both, which would add a wake-up callback to every ring (see
/// `channel::bell`).
#[derive(Debug)]
struct AsyncBell {
    nonce: u64,
    socket: AsyncFd<OwnedFd>,
    event: AsyncFd<OwnedFd>,
}

impl AsyncBell {
    /// Registers `bell`'s descriptors with the runtime.
    fn new(bell: Bell) -> std::io::Result<Self> {
        let (socket, event, nonce) = bell.into_parts();
        let socket = register(socket, Interest::READABLE)?;
        let event = register(event, Interest::READABLE)?;
        Ok(Self { nonce, socket, event })
    }

    /// The nonce peers ring.
    fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Ready once a ring has come (through either descriptor) since the
    /// last time this was ready; the rings themselves stay until
    /// [`drain`](Self::drain) takes them (each new ring wakes all the same:
    /// the runtime watches edges).
    fn poll_rung(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let mut rung = false;
        for fd in [&self.socket, &self.event] {
            if let std::task::Poll::Ready(guard) = fd.poll_read_ready(cx) {
                guard?.clear_ready();
                rung = true;
            }
        }
        if rung {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    /// Takes pending rings ([`Bell::drain`]).
    fn drain(&self, most: usize) -> std::io::Result<usize> {
        crate::channel::bell::drain(self.socket.get_ref().as_fd(), self.event.get_ref().as_fd(), most)
    }
}

/// Waits until `bell` is rung, then takes every ring pending there.
async fn wait_and_drain(bell: &AsyncBell) -> std::io::Result<()> {
    std::future::poll_fn(|cx| bell.poll_rung(cx)).await?;
    bell.drain(DRAIN_MOST)?;
    Ok(())
}

/// A pipe whose ends are async ([`pipe(2)`](https://man7.org/linux/man-pages/man2/pipe.2.html)):
/// `AsyncRead` on the receiver, `AsyncWrite` on the sender.
pub fn pipe() -> Result<(PipeReceiver, PipeSender)> {
    let (r, w) = crate::pipe::pipe()?;
    Ok((receiver(r)?, sender(w)?))
}

/// Makes a blocking pipe (or FIFO) read end async: it becomes
/// non-blocking and is registered with the runtime.
pub fn receiver(end: PipeReader) -> Result<PipeReceiver> {
    const OP: &str = "register pipe read end";
    let fd = OwnedFd::from(end);
    sys::set_nonblocking(&fd, true).context(OP, "pipe")?;
    PipeReceiver::from_owned_fd_unchecked(fd).context(OP, "pipe")
}

/// Makes a blocking pipe (or FIFO) write end async.
pub fn sender(end: PipeWriter) -> Result<PipeSender> {
    const OP: &str = "register pipe write end";
    let fd = OwnedFd::from(end);
    sys::set_nonblocking(&fd, true).context(OP, "pipe")?;
    PipeSender::from_owned_fd_unchecked(fd).context(OP, "pipe")
}

/// Opens the FIFO at `path` for reading with the checks of
/// [`FifoOptions::open_read`] (no symbolic link, a FIFO, this user's unless
/// allowed), then waits — at most `options`' timeout, else until one comes
/// — for a writer to send data or to come and go, so the first read never
/// mistakes "no writer yet" for the end of the stream. Without a timeout
/// this waits as the blocking open does. [`Cause::NoWriter`] when the
/// timeout passes.
///
/// See [`fifo(7)`](https://man7.org/linux/man-pages/man7/fifo.7.html).
pub async fn open_fifo_read(options: &FifoOptions, path: impl AsRef<Path>) -> Result<PipeReceiver> {
    const OP: &str = "open fifo";
    let path = path.as_ref();
    let fd = options.open_nonblocking(path, false)?;
    let rx = PipeReceiver::from_owned_fd_unchecked(fd).context(OP, path.display())?;
    let ready = rx.ready(Interest::READABLE);
    match options.timeout_value() {
        Some(t) => match ::tokio::time::timeout(t, ready).await {
            Ok(r) => r.context(OP, path.display()).map(drop)?,
            Err(_) => return Err(Error::new(OP, path.display(), Cause::NoWriter)),
        },
        None => ready.await.context(OP, path.display()).map(drop)?,
    }
    Ok(rx)
}

/// Opens the FIFO at `path` for writing with the checks of
/// [`FifoOptions::open_write`], waiting — at most `options`' timeout, else
/// until one comes — for a reader. Linux has no readiness event for "a
/// reader opened this FIFO", so the wait retries the non-blocking open
/// with a growing pause (at most 10 ms) on the runtime's timer.
/// [`Cause::NoReader`] when the timeout passes.
///
/// See [`open(2)`](https://man7.org/linux/man-pages/man2/open.2.html)
/// (`ENXIO`) and [`fifo(7)`](https://man7.org/linux/man-pages/man7/fifo.7.html).
pub async fn open_fifo_write(options: &FifoOptions, path: impl AsRef<Path>) -> Result<PipeSender> {
    const OP: &str = "open fifo";
    let path = path.as_ref();
    let deadline = options.timeout_value().map(|t| ::tokio::time::Instant::now() + t);
    let mut pause = Duration::from_micros(200);
    let fd = loop {
        match options.open_nonblocking(path, true) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                let now = ::tokio::time::Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(Error::new(OP, path.display(), Cause::NoReader));
                }
                let wake = deadline.map_or(now + pause, |d| d.min(now + pause));
                ::tokio::time::sleep_until(wake).await;
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    };
    PipeSender::from_owned_fd_unchecked(fd).context(OP, path.display())
}

/// A POSIX message queue for tokio: on Linux a queue descriptor can be
/// polled, so the queue is registered with the reactor like a socket.
///
/// See [`mq_overview(7)`](https://man7.org/linux/man-pages/man7/mq_overview.7.html).
#[derive(Debug)]
pub struct AsyncMessageQueue {
    queue: AsyncFd<MessageQueue>,
}

impl AsyncMessageQueue {
    /// Makes `queue` async: its descriptor becomes non-blocking
    /// ([`MessageQueue::set_nonblocking`]) and is registered.
    pub fn new(queue: MessageQueue) -> Result<Self> {
        queue.set_nonblocking(true)?;
        let name = queue.name().to_string();
        let queue = register(queue, Interest::READABLE | Interest::WRITABLE).context("register queue", name)?;
        Ok(Self { queue })
    }

    /// The blocking queue.
    pub fn get_ref(&self) -> &MessageQueue {
        self.queue.get_ref()
    }

    /// Sends `msg` with `priority`, waiting while the queue is full. Errors
    /// as [`MessageQueue::send`].
    /// See [`mq_send(3)`](https://man7.org/linux/man-pages/man3/mq_send.3.html).
    pub async fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.io(Interest::WRITABLE, |q| q.try_send(msg, priority)).await
    }

    /// Receives the oldest message of the highest priority into `buf`
    /// (which must hold the queue's message size): its length and priority.
    /// See [`mq_receive(3)`](https://man7.org/linux/man-pages/man3/mq_receive.3.html).
    pub async fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.io(Interest::READABLE, |q| q.try_recv(buf)).await
    }

    /// Runs `op` whenever the queue is ready for `interest`, until it does
    /// not report a full or empty queue.
    async fn io<T>(&self, interest: Interest, mut op: impl FnMut(&MessageQueue) -> Result<T>) -> Result<T> {
        loop {
            let mut guard = self
                .queue
                .ready(interest)
                .await
                .context("wait for queue", self.queue.get_ref().name())?;
            match guard.try_io(|q| match op(q.get_ref()) {
                Err(e) if matches!(e.cause(), Cause::Full | Cause::Empty) => Err(std::io::ErrorKind::WouldBlock.into()),
                done => Ok(done),
            }) {
                Ok(Ok(done)) => return done,
                Ok(Err(e)) => return Err(Error::new("wait for queue", self.queue.get_ref().name(), e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsFd for AsyncMessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.get_ref().as_fd()
    }
}

/// Converts a would-block error of a non-blocking socket call back into
/// what tokio's `async_io` expects.
fn socket_io<T>(r: Result<T>) -> std::io::Result<Result<T>> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(std::io::ErrorKind::WouldBlock.into()),
        done => Ok(done),
    }
}

/// [`unix_socket::send_with_fds`](crate::unix_socket::send_with_fds) on a
/// tokio socket, waiting while its buffer is full.
/// See [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html).
pub async fn send_with_fds(socket: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
    socket
        .async_io(Interest::WRITABLE, || {
            socket_io(crate::unix_socket::send_with_fds(socket, data, fds))
        })
        .await
        .context("send descriptors over", "socket")?
}

/// [`unix_socket::recv_with_fds`](crate::unix_socket::recv_with_fds) on a
/// tokio socket, waiting for data.
/// See [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html).
pub async fn recv_with_fds(socket: &UnixStream, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
    socket
        .async_io(Interest::READABLE, || {
            socket_io(crate::unix_socket::recv_with_fds(socket, &mut *buf, max_fds))
        })
        .await
        .context("receive descriptors from", "socket")?
}

/// The peer's pid, uid and gid ([`SO_PEERCRED`](https://man7.org/linux/man-pages/man7/unix.7.html)),
/// as [`unix_socket::peer_credentials`](crate::unix_socket::peer_credentials).
pub fn peer_credentials(socket: &UnixStream) -> Result<PeerCred> {
    crate::unix_socket::peer_credentials(socket)
}
