//! Async ends of a topic ([`crate::topic`]).
//!
//! An [`AsyncSubscriber`] sleeps on a doorbell its slot names: its
//! sleeping bit is the flag, and the publisher (blocking or async) rings
//! the doorbell and clears the bit instead of the futex — one ring per
//! sleep. The publisher's death reaches it through a pidfd. An
//! [`AsyncPublisher`] of a block-policy topic waiting for its slowest
//! subscriber sleeps on a doorbell the subscribers ring as they free room;
//! while it waits it also looks for subscribers that died every 50 ms (it
//! has many peers and no single process to watch).

use std::ffi::OsStr;
use std::time::Duration;

use super::channel::{empty, until, Doorbell};
use super::AsyncBell;
use crate::channel::object::Wait;
use crate::channel::{Bell, Park};
use crate::error::{Cause, Error, Result};
use crate::topic::{Publisher, Subscriber};

/// How often a publisher waiting for room looks for dead subscribers (as
/// the blocking publisher does after each 50 ms sleep).
const SUBSCRIBER_CHECK: Duration = Duration::from_millis(50);

/// A subscribing end of a topic, for tokio.
///
/// Made from a [`Subscriber`] in a tokio runtime with IO enabled (and
/// time, for a publisher that cannot be watched through a pidfd). The
/// publisher can be blocking or async, in any process. While it waits it
/// costs no CPU: no timer runs.
///
/// Cancel-safe: every method takes a message only in the poll that
/// completes it.
///
/// ```no_run
/// # async fn demo() -> ipcraft::Result<()> {
/// use ipcraft::tokio::AsyncSubscriber;
///
/// let mut sub = AsyncSubscriber::open("/my-topic")?;
/// while let Some(msg) = sub.recv_vec().await? {
///     println!("{} bytes", msg.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSubscriber {
    sub: Subscriber,
    bell: Doorbell,
}

impl AsyncSubscriber {
    /// Makes `sub` async: binds its doorbell and names it in its slot.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`](::tokio::io::unix::AsyncFd::new)).
    pub fn new(mut sub: Subscriber) -> Result<Self> {
        let bell = Doorbell::bind(&mut sub)?;
        Ok(Self { sub, bell })
    }

    /// Opens the named topic as a subscriber ([`Subscriber::open`]).
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        Self::new(Subscriber::open(name)?)
    }

    /// The slot this subscriber holds.
    pub fn slot(&self) -> u32 {
        self.sub.slot()
    }

    /// Receives the next message into `buf`: its length, or `None` at the
    /// end of the stream. Errors as [`Subscriber::recv`] (including
    /// [`Cause::Lagged`] under the overwrite policy).
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        until(&mut self.sub, &mut self.bell, empty, |s| s.try_recv(buf)).await
    }

    /// Receives the next message as a new vector (`None` at the end).
    pub async fn recv_vec(&mut self) -> Result<Option<Vec<u8>>> {
        until(&mut self.sub, &mut self.bell, empty, |s| s.vec_with(Wait::No)).await
    }

    /// Receives a plain-old-data value ([`Subscriber::recv_pod`]).
    pub async fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<Option<T>> {
        until(&mut self.sub, &mut self.bell, empty, |s| s.pod_with(Wait::No)).await
    }

    /// The blocking subscriber back (its doorbell withdrawn).
    pub fn into_inner(mut self) -> Subscriber {
        self.sub.park_release();
        self.sub
    }
}

/// The publishing end of a topic, for tokio.
///
/// Made from a [`Publisher`] in a tokio runtime with IO and time enabled.
/// Only a block-policy topic ever waits (for its slowest live subscriber);
/// while it does, it looks for subscribers that died every 50 ms.
///
/// Cancel-safe: [`send`](Self::send) writes the whole message in the poll
/// that completes it, or nothing. Dropping an `AsyncPublisher` ends the
/// stream as dropping a [`Publisher`] does (never waiting);
/// [`close`](Self::close) waits for room for the end marker.
///
/// ```no_run
/// # async fn demo() -> ipcraft::Result<()> {
/// use ipcraft::tokio::AsyncPublisher;
/// use ipcraft::topic::Publisher;
///
/// let mut publisher = AsyncPublisher::new(Publisher::create("/my-topic", 1 << 20)?)?;
/// publisher.send(b"frame 1").await?;
/// publisher.close().await
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncPublisher {
    publisher: Publisher,
    bell: AsyncBell,
}

impl AsyncPublisher {
    /// Makes `publisher` async: binds its doorbell and names it in the
    /// topic's header.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`](::tokio::io::unix::AsyncFd::new)).
    pub fn new(mut publisher: Publisher) -> Result<Self> {
        const OP: &str = "make topic doorbell";
        let bell = Bell::bind().map_err(|e| Error::new(OP, publisher.label(), e))?;
        let bell = AsyncBell::new(bell).map_err(|e| Error::new(OP, publisher.label(), e))?;
        publisher.park_init(bell.nonce());
        Ok(Self { publisher, bell })
    }

    /// The largest message this topic carries.
    pub fn max_message_len(&self) -> usize {
        self.publisher.max_message_len()
    }

    /// Publishes `msg`, waiting (block policy) while the slowest live
    /// subscriber has not freed the room. Errors as [`Publisher::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.until_room(|p| p.try_send(msg)).await
    }

    /// Publishes a plain-old-data value ([`Publisher::send_pod`]).
    pub async fn send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value)).await
    }

    /// Ends the stream ([`Publisher::close`]), waiting for room for the end
    /// marker.
    pub async fn close(mut self) -> Result<()> {
        self.until_room(|p| p.try_end(false)).await
    }

    /// Abandons the stream ([`Publisher::abort`]): subscribers get what
    /// was published, then [`Cause::Aborted`].
    pub async fn abort(mut self) -> Result<()> {
        self.until_room(|p| p.try_end(true)).await
    }

    /// Runs `op` until it does not report [`Cause::Full`], sleeping on the
    /// doorbell in between: the flag is raised and `op` tried once more
    /// before each sleep, so room freed meanwhile is never missed.
    async fn until_room<T>(&mut self, mut op: impl FnMut(&mut Publisher) -> Result<T>) -> Result<T> {
        let full = |r: &Result<T>| matches!(r, Err(e) if matches!(e.cause(), Cause::Full));
        loop {
            let tried = op(&mut self.publisher);
            if !full(&tried) {
                return tried;
            }
            self.publisher.raise_bell();
            let tried = op(&mut self.publisher);
            if !full(&tried) {
                self.publisher.lower_bell();
                return tried;
            }
            // (Held by `&mut`, so the future stays `Send`.)
            let lowered = Lowered(&mut self.publisher);
            let woke = ::tokio::time::timeout(SUBSCRIBER_CHECK, super::wait_and_drain(&self.bell)).await;
            drop(lowered);
            match woke {
                Ok(woke) => woke.map_err(|e| Error::new("wait on topic doorbell", self.publisher.label(), e))?,
                // No ring for a while: a subscriber that died frees its room.
                Err(_elapsed) => self.publisher.sweep_dead()?,
            }
        }
    }
}

/// Lowers the publisher's flag when a wait ends or is cancelled.
struct Lowered<'a>(&'a mut Publisher);

impl Drop for Lowered<'_> {
    fn drop(&mut self) {
        self.0.lower_bell();
    }
}
