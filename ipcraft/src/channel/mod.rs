//! The shared-memory channel: the fastest safe way for two processes on one
//! machine to exchange bytes.
//!
//! A channel is a shared memory object holding a small header and a ring of
//! variable-length messages. One [`Sender`] and one [`Receiver`] attach to
//! it, from unrelated processes (by name) or from a parent and its child
//! ([`pair`], before `fork`).
//!
//! - **Bounded, never lossy.** A full ring makes the sender wait (or
//!   report [`Cause::Full`]); nothing is dropped or overwritten.
//! - **Messages.** Byte messages of any length up to
//!   [`Sender::max_message_len`], and plain-old-data values
//!   ([`Sender::send_pod`]). Zero-copy both ways: [`Sender::reserve`] hands
//!   out space in the ring to fill and commit; [`Receiver::recv_view`]
//!   lends the message in place until the view drops.
//! - **Waiting.** Blocking, `try_` and `_timeout` forms. A waiting side
//!   spins briefly (~50 µs by default) and then sleeps on a futex in the
//!   shared memory; the other side only makes a wake-up system call when
//!   the waiter is actually asleep, so the fast path is system-call free.
//! - **End of stream.** When the sender closes (drop, [`Sender::close`],
//!   or process exit after dropping), the receiver drains what is left and
//!   then gets `Ok(None)`, like a pipe's end of file.
//! - **Peer death.** Each side holds an OFD lock on a byte of the object;
//!   the kernel drops it when the process dies, however it dies. A waiting
//!   side checks the lock whenever a sleep times out (at most every 50 ms)
//!   and fails with [`Cause::PeerDied`]. A frame the dead sender had
//!   reserved but not committed is never delivered.
//! - **Hostile memory.** The other process can write anything into the
//!   shared object at any time. Geometry is read once at open, checked, and
//!   kept in private memory; every position and length read afterwards is
//!   checked before use, and a bad one is [`Cause::Corrupted`]. Payload
//!   bytes are copied with operations the compiler cannot assume stable.
//!   A hostile peer can make the *data* wrong; it cannot make this process
//!   touch memory outside the ring, panic, or hit undefined behaviour. (It
//!   could still shrink a named object under the mapping: use a channel on
//!   a sealed memfd for peers you do not trust with that.)
//!
//! ```
//! use ipcraft::channel::{Receiver, Sender};
//!
//! let name = format!("/ipcraft-doc-chan-{}", std::process::id());
//! let mut tx = Sender::create(&name, 64 * 1024).unwrap(); // removed when `tx` drops
//! let mut rx = Receiver::open(&name).unwrap();            // normally another process
//! tx.send(b"hello").unwrap();
//! tx.close().unwrap();
//! let mut buf = [0u8; 16];
//! assert_eq!(rx.recv(&mut buf).unwrap(), Some(5));
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(rx.recv(&mut buf).unwrap(), None); // end of stream
//! ```
//!
//! [`Cause::Full`]: crate::Cause::Full
//! [`Cause::PeerDied`]: crate::Cause::PeerDied
//! [`Cause::Corrupted`]: crate::Cause::Corrupted

pub(crate) mod admin;
pub(crate) mod bell;
pub(crate) mod copy;
pub(crate) mod lanes;
pub(crate) mod layout;
pub(crate) mod object;
mod options;
mod receiver;
pub(crate) mod ring;
mod sender;
pub(crate) mod wait;

use std::time::Duration;

pub use admin::{collect_stale, create, pair, remove, remove_if_stale, stat, stat_lanes, ChannelStat, SideState};
pub use lanes::MultiReceiver;
pub(crate) use layout::MAGIC;
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
pub use options::ChannelOptions;
pub use receiver::{Receiver, RecvView};
pub use sender::{SendError, SendSlot, Sender};

pub(crate) use bell::Bell;

/// What an async end (the `tokio` module) needs from a blocking one to
/// sleep on its doorbell instead of a futex. The protocol is the blocking
/// one with the doorbell in the futex's place: set the sleeping flag, a
/// full barrier, look again, and only then wait (see `wait`).
pub(crate) trait Park {
    /// Attaches for async use (as a non-spinning end, whose peer then
    /// needs no membarrier) and publishes the doorbell's nonce.
    fn park_init(&mut self, nonce: u64) -> crate::Result<()>;
    /// Withdraws the doorbell: the end goes back to futex wake-ups.
    fn park_release(&mut self);
    /// Raises the flag and looks again: whether the condition this end
    /// waits for may have changed meanwhile (then do not sleep).
    fn arm(&mut self) -> bool;
    /// This end's sleeping flag, to lower when a wait ends or is cancelled.
    fn flag(&self) -> FlagRef<'_>;
    /// The peer's liveness, by its lock first: `Some(pid)` while it is
    /// alive, `None` while none is there yet (or a new one may still come),
    /// an error once the peer this end streams with has died or left.
    #[cfg(feature = "tokio")]
    fn peer(&mut self) -> crate::Result<Option<u32>>;
    /// The peer side's pid, attach count and leaving flag as the header
    /// has them (three loads, no check).
    #[cfg(feature = "tokio")]
    fn peer_identity(&self) -> (u32, u32, u32);
    /// The channel's name, for errors.
    #[cfg(feature = "tokio")]
    fn label(&self) -> &str;
}

/// An end's sleeping flag in shared memory: a channel side's word, or a
/// topic subscriber's bit (atomics only, so a wait holding it across an
/// `.await` stays `Send`).
#[derive(Clone, Copy)]
pub(crate) enum FlagRef<'a> {
    /// A word holding `bell::BELL`, then `bell::RUNG` once a peer rang.
    Word(&'a std::sync::atomic::AtomicU32),
    /// A bit the ringing peer clears as it rings.
    Bit(&'a std::sync::atomic::AtomicU64, u64),
}

impl FlagRef<'_> {
    /// Lowers the flag: whether a peer had rung the doorbell for this
    /// sleep (a ring is then, or will shortly be, in the socket).
    pub(crate) fn lower(self) -> bool {
        use std::sync::atomic::Ordering;
        match self {
            FlagRef::Word(word) => word.swap(0, Ordering::AcqRel) == bell::RUNG,
            FlagRef::Bit(word, bit) => word.fetch_and(!bit, Ordering::AcqRel) & bit == 0,
        }
    }
}

/// Ring size used when none is given: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// How long a waiting side spins before it sleeps, unless told otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// How long opening waits for a creator that has not finished.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
