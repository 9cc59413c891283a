//! Async ends of the shared-memory channel.
//!
//! An async end is a blocking [`Sender`] or [`Receiver`] that never spins
//! and, instead of sleeping on a futex, sleeps on a doorbell the kernel can
//! report readiness on: a Unix datagram socket in the abstract namespace
//! whose name the end publishes in the channel's header, and an eventfd the
//! doorbell hands to each peer that rings it. The peer — async or
//! blocking, in any process — rings when it publishes a message or frees
//! room *and* sees the async end asleep (a datagram the first time, then a
//! write to the eventfd), so the fast path stays free of system calls while
//! both sides are busy. The peer's death
//! reaches a sleeping end through a [pidfd] of the peer (readable when the
//! process exits), so an idle async end costs no CPU: no timer polls.
//!
//! [pidfd]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html

use std::future::{poll_fn, Future};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

use super::AsyncBell;
use crate::channel::{Bell, FlagRef, Park, Receiver, RecvView, SendSlot, Sender};
use crate::error::{Cause, Error, Result};

/// How soon an end looks again at a peer caught between starting to drop
/// its end and releasing its lock.
const LEAVING_CHECK: Duration = Duration::from_millis(1);

/// How often an end whose peer cannot be watched through a pidfd (a peer
/// in another pid namespace, a kernel before 5.3) checks the peer's lock.
const FALLBACK_CHECK: Duration = Duration::from_millis(50);

/// A doorbell and the watch on the peer's process.
#[derive(Debug)]
pub(super) struct Doorbell {
    bell: AsyncBell,
    /// The watched peer, and its pidfd (`None`: it could not be opened,
    /// so a timer checks instead).
    watch: Option<(Identity, Option<AsyncFd<OwnedFd>>)>,
    /// Rings sent for this end's past sleeps and not yet taken from the
    /// socket (at most one per sleep: see `wait::ring_if_armed`).
    owed: AtomicU32,
    /// How many owed rings may stay queued before they are taken.
    lazy: u32,
}

/// A peer as its side of the header names it: pid, how many processes had
/// attached as that side (so a successor with a reused pid differs), and
/// whether it is leaving.
type Identity = (u32, u32, u32);

/// Lowers a sleeping flag; a flag found rung means a ring is (or will
/// shortly be) in the socket, owed to a later wait.
fn lower(flag: FlagRef<'_>, owed: &AtomicU32) {
    if flag.lower() {
        owed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lowers the sleeping flag when the wait ends, also when its future is
/// dropped (cancelled): a peer then stops ringing.
struct Disarm<'a> {
    flag: FlagRef<'a>,
    owed: &'a AtomicU32,
}

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        lower(self.flag, self.owed);
    }
}

/// How many rings may wait in a doorbell's socket untaken: a few less than
/// it queues (`net.unix.max_dgram_qlen`, 10 by default; a full socket
/// refuses the next ring, which would then be lost), at most 8; none when
/// the limit cannot be read.
fn queued_rings_allowed() -> u32 {
    static ALLOWED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map_or(0, |qlen| qlen.saturating_sub(2).min(8))
    })
}

/// What a wait found.
enum Slept {
    /// Something may have changed: try again.
    Again,
    /// The peer is gone; report this unless one more try succeeds.
    PeerGone(Error),
}

impl Doorbell {
    pub(super) fn bind<E: Park>(end: &mut E) -> Result<Self> {
        const OP: &str = "make channel doorbell";
        let bell = Bell::bind().map_err(|e| Error::new(OP, end.label(), e))?;
        let bell = AsyncBell::new(bell).map_err(|e| Error::new(OP, end.label(), e))?;
        end.park_init(bell.nonce())?;
        Ok(Self {
            bell,
            watch: None,
            owed: AtomicU32::new(0),
            lazy: queued_rings_allowed(),
        })
    }

    /// Opens a pidfd on `pid` for the watch (`None` when that is not
    /// possible here).
    fn watch(pid: u32) -> Option<AsyncFd<OwnedFd>> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()?;
        super::register(fd, Interest::READABLE).ok()
    }

    /// One sleep of `end`, after an attempt found nothing to do: raises the
    /// flag, looks again, checks the peer, then waits for the doorbell, the
    /// peer's exit, or (without a pidfd) the fallback check.
    async fn sleep<E: Park>(&mut self, end: &mut E) -> Result<Slept> {
        if end.arm() {
            lower(end.flag(), &self.owed);
            return Ok(Slept::Again);
        }
        // A peer already watched through its pidfd needs no lock check:
        // its death makes the pidfd readable, and a successor (another
        // attach) rings the doorbell and changes the identity.
        let known = end.peer_identity();
        let watched = known.2 == 0 && matches!(&self.watch, Some((id, Some(_))) if *id == known);
        let mut leaving = false;
        if !watched {
            let peer = match end.peer() {
                Ok(peer) => peer,
                Err(e) => {
                    lower(end.flag(), &self.owed);
                    return Ok(Slept::PeerGone(e));
                }
            };
            match peer {
                // A peer dropping its end: its lock goes any moment, with
                // no ring if it saw this end awake. Look again shortly.
                Some(_) if known.2 != 0 => {
                    self.watch = None;
                    leaving = true;
                }
                Some(pid) => {
                    let id = (pid, known.1, known.2);
                    if self.watch.as_ref().map(|w| w.0) != Some(id) {
                        self.watch = Some((id, Self::watch(pid)));
                        // The pidfd came after the lock was seen held: a peer
                        // that died in between would never make it readable.
                        if !matches!(end.peer(), Ok(Some(p)) if p == pid) {
                            lower(end.flag(), &self.owed);
                            return Ok(Slept::Again);
                        }
                    }
                }
                // No peer yet: its attach rings the doorbell.
                None => self.watch = None,
            }
        }
        let flag = end.flag();
        let owed = &self.owed;
        let _disarm = Disarm { flag, owed };
        let bell = &self.bell;
        let lazy = self.lazy;
        let pidfd = self.watch.as_ref().and_then(|w| w.1.as_ref());
        let mut timer = match (&self.watch, pidfd) {
            _ if leaving => Some(Box::pin(::tokio::time::sleep(LEAVING_CHECK))),
            (Some(_), None) => Some(Box::pin(::tokio::time::sleep(FALLBACK_CHECK))),
            _ => None,
        };
        let peer_exited = poll_fn(|cx| {
            if let Poll::Ready(rung) = bell.poll_rung(cx) {
                rung?;
                // Count this sleep's ring. While few are owed, leave them
                // queued (taking them is a system call on the wake-up
                // path): every ring is an edge of its own, so the next one
                // wakes this end all the same. Then take them all at once.
                lower(flag, owed);
                let want = owed.load(Ordering::Relaxed);
                if want >= lazy.max(1) {
                    let took = bell.drain(want as usize)?;
                    owed.fetch_sub(u32::try_from(took).unwrap_or(u32::MAX).min(want), Ordering::Relaxed);
                }
                return Poll::Ready(Ok::<bool, std::io::Error>(false));
            }
            if let Some(fd) = pidfd {
                if let Poll::Ready(guard) = fd.poll_read_ready(cx) {
                    // The process has exited: the pidfd stays readable.
                    guard?.retain_ready();
                    return Poll::Ready(Ok(true));
                }
            }
            if let Some(t) = timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ok(false));
                }
            }
            Poll::Pending
        })
        .await
        .map_err(|e| Error::new("wait on channel doorbell", end.label(), e))?;
        if peer_exited {
            // Watch whoever attaches next afresh.
            self.watch = None;
        }
        Ok(Slept::Again)
    }
}

/// Runs `op` until it does not report `blocked`, sleeping in between. A
/// peer found gone is reported once one more try still finds nothing.
pub(super) async fn until<E: Park, T>(
    end: &mut E,
    bell: &mut Doorbell,
    blocked: fn(&Cause) -> bool,
    mut op: impl FnMut(&mut E) -> Result<T>,
) -> Result<T> {
    loop {
        match op(end) {
            Err(e) if blocked(e.cause()) => {}
            done => return done,
        }
        if let Slept::PeerGone(gone) = bell.sleep(end).await? {
            return match op(end) {
                Err(e) if blocked(e.cause()) => Err(gone),
                done => done,
            };
        }
    }
}

pub(super) fn empty(c: &Cause) -> bool {
    matches!(c, Cause::Empty)
}

pub(super) fn full(c: &Cause) -> bool {
    matches!(c, Cause::Full)
}

/// The receiving end of a channel, for tokio.
///
/// Made from a [`Receiver`] of any kind — named, half of a
/// [`pair`](crate::channel::pair) after `fork`, or on a sealed memfd — in
/// a tokio runtime with IO enabled (and time, for peers that cannot be
/// watched through a pidfd). The peer can be blocking or async.
///
/// Every method is cancel-safe: a message is taken only in the poll that
/// completes the future, so dropping the future (say, in `select!` or
/// [`tokio::time::timeout`](::tokio::time::timeout)) loses nothing.
///
/// ```no_run
/// # async fn demo() -> ipcraft::Result<()> {
/// use ipcraft::tokio::AsyncReceiver;
///
/// let mut rx = AsyncReceiver::open("/my-channel")?;
/// let mut buf = vec![0u8; 64 * 1024];
/// while let Some(n) = rx.recv(&mut buf).await? {
///     println!("{} bytes", n);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncReceiver {
    rx: Receiver,
    bell: Doorbell,
}

impl AsyncReceiver {
    /// Makes `rx` async: attaches it now (as an end that does not spin) and
    /// binds its doorbell.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`]).
    pub fn new(mut rx: Receiver) -> Result<Self> {
        let bell = Doorbell::bind(&mut rx)?;
        Ok(Self { rx, bell })
    }

    /// Opens the named channel as its receiver ([`Receiver::open`]).
    pub fn open(name: impl AsRef<std::ffi::OsStr>) -> Result<Self> {
        Self::new(Receiver::open(name)?)
    }

    /// Receives the next message into `buf`: its length, or `None` at the
    /// end of the stream. Errors as [`Receiver::recv`]; the sender's death
    /// is reported once everything it committed has been received.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        until(&mut self.rx, &mut self.bell, empty, |rx| rx.try_recv(buf)).await
    }

    /// Receives the next message as a new vector (`None` at the end).
    pub async fn recv_vec(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.recv_view().await?.map(|v| v.to_vec()))
    }

    /// Receives a plain-old-data value ([`Receiver::recv_pod`]).
    pub async fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<Option<T>> {
        match self.recv_view().await? {
            Some(view) => view.read_pod().map(Some),
            None => Ok(None),
        }
    }

    /// Lends the next message in place ([`Receiver::recv_view`]); it is
    /// consumed when the view drops. `None` at the end of the stream.
    pub async fn recv_view(&mut self) -> Result<Option<RecvView<'_>>> {
        until(&mut self.rx, &mut self.bell, empty, |rx| rx.try_ready()).await?;
        self.rx.try_recv_view()
    }

    /// The blocking receiver back (its doorbell withdrawn).
    pub fn into_inner(mut self) -> Receiver {
        self.rx.park_release();
        self.rx
    }
}

/// The sending end of a channel, for tokio. See [`AsyncReceiver`] for how
/// it is made and how it waits.
///
/// Cancel-safe: [`send`](Self::send) writes the whole message in the poll
/// that completes it, or nothing; [`reserve`](Self::reserve) hands out a
/// slot only when it completes (an uncommitted slot is never delivered);
/// [`flush`](Self::flush) only waits. Dropping an `AsyncSender` ends the
/// stream as dropping a [`Sender`] does (never waiting);
/// [`close`](Self::close) waits for room for the end marker.
#[derive(Debug)]
pub struct AsyncSender {
    tx: Sender,
    bell: Doorbell,
}

impl AsyncSender {
    /// Makes `tx` async: attaches it now (as an end that does not spin) and
    /// binds its doorbell.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`]).
    pub fn new(mut tx: Sender) -> Result<Self> {
        let bell = Doorbell::bind(&mut tx)?;
        Ok(Self { tx, bell })
    }

    /// Opens the named channel as its sender ([`Sender::open`]).
    pub fn open(name: impl AsRef<std::ffi::OsStr>) -> Result<Self> {
        Self::new(Sender::open(name)?)
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        self.tx.max_message_len()
    }

    /// Sends `msg`, waiting while the ring is full. Errors as
    /// [`Sender::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        until(&mut self.tx, &mut self.bell, full, |tx| tx.try_send(msg)).await
    }

    /// Sends a plain-old-data value ([`Sender::send_pod`]).
    pub async fn send_pod<T: bytemuck::Pod>(&mut self, value: T) -> Result<()> {
        self.send(bytemuck::bytes_of(&value)).await
    }

    /// Reserves `len` bytes in the ring to fill in place
    /// ([`Sender::reserve`]), waiting for room.
    pub async fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        until(&mut self.tx, &mut self.bell, full, |tx| {
            if tx.has_room(len)? {
                Ok(())
            } else {
                Err(Error::bare("reserve", Cause::Full))
            }
        })
        .await?;
        self.tx.try_reserve(len)
    }

    /// Waits until the receiver has taken everything sent so far
    /// ([`Sender::flush`]).
    pub async fn flush(&mut self) -> Result<()> {
        until(&mut self.tx, &mut self.bell, full, |tx| tx.try_flush()).await
    }

    /// Ends the stream ([`Sender::close`]), waiting for room for the end
    /// marker; it does not wait for the receiver to take it (call
    /// [`flush`](Self::flush) first for that).
    pub async fn close(mut self) -> Result<()> {
        until(&mut self.tx, &mut self.bell, full, |tx| tx.try_end(false)).await
    }

    /// Abandons the stream ([`Sender::abort`]): the receiver gets what was
    /// sent, then [`Cause::Aborted`].
    pub async fn abort(mut self) -> Result<()> {
        until(&mut self.tx, &mut self.bell, full, |tx| tx.try_end(true)).await
    }

    /// The blocking sender back (its doorbell withdrawn).
    pub fn into_inner(mut self) -> Sender {
        self.tx.park_release();
        self.tx
    }
}
