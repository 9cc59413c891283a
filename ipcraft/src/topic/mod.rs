//! Publish–subscribe over shared memory: one [`Publisher`], up to N
//! [`Subscriber`]s that join and leave at any time.
//!
//! A topic is a shared memory object holding a header, one slot per
//! possible subscriber and a ring of variable-length messages framed as
//! in the [channel](crate::channel). Each message is written once, in
//! place, and every subscriber reads it where it lies ([`Subscriber::recv_view`])
//! or copies it out ([`Subscriber::recv`]).
//!
//! ```text
//! +-----------+------+--------+-----------+-------+---------+--------+-------+-----+-------------------------+
//! | identity  | tail | oldest | publisher | sleep | progress| stream | count |     | ring: [stamp|len+seq|msg]|
//! | magic,cap,| (pub)| (pub)  | pid,state | bits  | (futex) |        | (pub) |slot0| [pad] [stamp|len+seq|msg]|
//! | slots,pol.|      |        |           |       |         |        |       |slot1| ...                     |
//! +-----------+------+--------+-----------+-------+---------+--------+-------+-----+-------------------------+
//!   written once  one 128-byte line each, so hot words never share              one line per subscriber:
//!                                                                               head, state, pid, attaches
//! ```
//!
//! A message's sequence number rides in its frame header's spare half (the
//! low 32 bits; `count`, the number of the next message, gives the rest),
//! so a message of up to 48 bytes is one 64-byte line, as in a channel.
//!
//! - **Policies**, chosen at creation. [`Policy::Block`] (the default):
//!   the publisher waits for the slowest live subscriber, so nothing is
//!   ever lost. [`Policy::Overwrite`]: the publisher never waits; a
//!   subscriber that fell behind gets [`Cause::Lagged`] with the number of
//!   messages it missed (as tokio's broadcast channel does) and continues
//!   from the oldest message still held.
//! - **Joining.** A subscriber takes the first free slot (an OFD lock on
//!   the slot's byte of the object) and starts at the next message, or at
//!   the oldest still held with [`TopicOptions::history`].
//! - **Death.** A subscriber killed at any moment frees its slot (the
//!   kernel drops its lock) and blocks a waiting publisher for at most the
//!   liveness interval (50 ms). A publisher that dies gives every
//!   subscriber, once it has read everything published, [`Cause::PeerDied`];
//!   one that closes gives them the end of the stream (`Ok(None)`).
//! - **Hostile memory.** Every value read from the object is checked
//!   before use: the geometry once at open, positions, lengths and slot
//!   heads at every use. Each message carries a sequence number, and a
//!   subscriber checks after copying a message that the publisher has not
//!   reclaimed its space meanwhile (a sequence lock), so it never
//!   delivers a torn message.
//!
//! ```
//! use ipcraft::topic::{Publisher, Subscriber};
//!
//! let name = format!("/ipcraft-doc-topic-{}", std::process::id());
//! let mut publisher = Publisher::create(&name, 64 * 1024).unwrap(); // removed when it drops
//! let mut a = Subscriber::open(&name).unwrap();                       // normally other processes
//! let mut b = Subscriber::open(&name).unwrap();
//! publisher.send(b"frame 1").unwrap();
//! publisher.close().unwrap();
//! let mut buf = [0u8; 16];
//! for sub in [&mut a, &mut b] {
//!     assert_eq!(sub.recv(&mut buf).unwrap(), Some(7));
//!     assert_eq!(&buf[..7], b"frame 1");
//!     assert_eq!(sub.recv(&mut buf).unwrap(), None); // end of stream
//! }
//! ```
//!
//! [`Cause::Lagged`]: crate::Cause::Lagged
//! [`Cause::PeerDied`]: crate::Cause::PeerDied

mod layout;
mod object;
mod publisher;
mod subscriber;

use std::ffi::OsStr;
use std::fmt;
use std::time::Duration;

pub use publisher::{PublishSlot, Publisher};
pub use subscriber::{Subscriber, TopicView};

use crate::channel::{SideState, DEFAULT_OPEN_TIMEOUT, DEFAULT_SPIN};
use crate::error::{Cause, Error, Result};
use crate::name::Name;
use object::TopicMap;

/// Subscriber slots when none is given.
pub const DEFAULT_SUBSCRIBERS: u32 = 16;
/// The most subscriber slots a topic can have.
pub const MAX_SUBSCRIBERS: u32 = layout::MAX_SLOTS;
/// Ring size when none is given: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;

/// What a publisher does when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Wait for the slowest live subscriber: nothing is ever lost.
    #[default]
    Block,
    /// Never wait: overwrite the oldest messages; a subscriber that fell
    /// behind is told how many it missed.
    Overwrite,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Block => "block",
            Policy::Overwrite => "overwrite",
        })
    }
}

/// How to create or open a topic.
#[derive(Clone, Debug)]
pub struct TopicOptions {
    capacity: u64,
    subscribers: u32,
    policy: Policy,
    mode: u32,
    spin: Duration,
    history: bool,
    open_timeout: Duration,
    allow_foreign: bool,
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TopicOptions {
    /// Defaults: 1 MiB ring, 16 subscriber slots, [`Policy::Block`], mode
    /// 0600, ~50 µs of spinning before a wait sleeps, new subscribers start
    /// at the next message.
    pub fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            subscribers: DEFAULT_SUBSCRIBERS,
            policy: Policy::Block,
            mode: 0o600,
            spin: DEFAULT_SPIN,
            history: false,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            allow_foreign: false,
        }
    }

    /// Let [`stat`](Self::stat) read a topic another user owns (refused by
    /// default with [`Cause::ForeignOwner`]:
    /// anyone can create objects in `/dev/shm`). Stat only: it never writes.
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    /// [`stat`](fn@stat) of the named topic, opened read-only (with
    /// [`allow_foreign`](Self::allow_foreign), another user's too).
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Result<TopicStat> {
        TopicMap::open_read_only(name, self.allow_foreign)?.stat()
    }

    /// Ring size in bytes (rounded up to a power of two, at least 4 KiB).
    pub fn capacity(&mut self, bytes: u64) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How many subscribers may be attached at once (1 to [`MAX_SUBSCRIBERS`]).
    pub fn subscribers(&mut self, n: u32) -> &mut Self {
        self.subscribers = n;
        self
    }

    /// What the publisher does when the ring is full.
    pub fn policy(&mut self, policy: Policy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Permission bits of a created topic (default 0600).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// How long a waiting side spins before it sleeps (0: sleep at once).
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// Whether a subscriber starts at the oldest message still held
    /// instead of the next one.
    pub fn history(&mut self, history: bool) -> &mut Self {
        self.history = history;
        self
    }

    /// How long opening waits for a creator that has not finished.
    pub fn open_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.open_timeout = timeout;
        self
    }

    /// Creates the named topic (exclusive) without attaching; it stays
    /// until [`remove`]d.
    pub fn create(&self, name: impl AsRef<OsStr>) -> Result<()> {
        self.create_map(name)?.keep();
        Ok(())
    }

    fn create_map(&self, name: impl AsRef<OsStr>) -> Result<TopicMap> {
        let name = Name::new(name)?;
        if self.subscribers == 0 || self.subscribers > MAX_SUBSCRIBERS {
            return Err(Error::new(
                "create topic",
                &name,
                Cause::OverLimit {
                    requested: u64::from(self.subscribers),
                    limit: u64::from(MAX_SUBSCRIBERS),
                    limit_name: "the most subscribers a topic has (at least 1)",
                },
            ));
        }
        let capacity = crate::channel::ChannelOptions::new()
            .capacity(self.capacity)
            .ring_capacity(&name)?;
        TopicMap::create(&name, capacity, self.subscribers, self.policy, self.mode)
    }

    /// Creates the named topic and attaches as its publisher; the topic is
    /// removed when the publisher drops unless [`Publisher::keep`] is called.
    pub fn create_publisher(&self, name: impl AsRef<OsStr>) -> Result<Publisher> {
        Publisher::attach(self.create_map(name)?, self.spin)
    }

    /// Opens an existing topic as its publisher.
    ///
    /// # Errors
    ///
    /// [`Cause::InUse`] while another publisher is alive;
    /// [`Cause::Corrupted`] if the object is not a valid topic.
    pub fn open_publisher(&self, name: impl AsRef<OsStr>) -> Result<Publisher> {
        Publisher::attach(TopicMap::open(name, self.open_timeout)?, self.spin)
    }

    /// Opens an existing topic as a subscriber, in the first free slot.
    ///
    /// # Errors
    ///
    /// [`Cause::LimitReached`] when every slot has a live subscriber.
    pub fn open_subscriber(&self, name: impl AsRef<OsStr>) -> Result<Subscriber> {
        Subscriber::attach(TopicMap::open(name, self.open_timeout)?, self.spin, self.history)
    }
}

/// Creates the named topic (block policy, default subscriber slots)
/// without attaching; it stays until [`remove`]d.
pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<()> {
    TopicOptions::new().capacity(capacity).create(name)
}

/// Removes the named topic, after checking it is one.
pub fn remove(name: impl AsRef<OsStr>) -> Result<()> {
    let name = Name::new(name)?;
    TopicMap::open_read_only(&name, false)?;
    crate::shm::remove(&name).map_err(|e| e.relabel("remove topic", &name))
}

/// What `ipcraft topic stat` reports.
#[derive(Clone, Debug)]
pub struct TopicStat {
    /// Ring size in bytes.
    pub capacity: u64,
    /// Subscriber slots.
    pub slots: u32,
    /// The policy chosen at creation.
    pub policy: Policy,
    /// The publisher.
    pub publisher: SideState,
    /// Which stream the topic is on (one more for each publisher that
    /// started after the previous one ended).
    pub stream: u64,
    /// Bytes ever published.
    pub tail: u64,
    /// Position of the oldest message still held.
    pub oldest: u64,
    /// Each slot that is or was in use: its index, state and how many
    /// bytes it has yet to read.
    pub subscribers: Vec<(u32, SideState, u64)>,
}

impl TopicStat {
    /// Whether this topic is what a crash leaves behind: the publisher or a
    /// subscriber died without leaving, and nobody is alive (as
    /// [`ChannelStat::is_stale`](crate::channel::ChannelStat::is_stale)).
    pub fn is_stale(&self) -> bool {
        let sides = || std::iter::once(&self.publisher).chain(self.subscribers.iter().map(|(_, s, _)| s));
        sides().any(|s| matches!(s, SideState::Dead(_))) && !sides().any(|s| matches!(s, SideState::Alive(_)))
    }
}

impl fmt::Display for TopicStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity={} subscribers={} policy={} stream={} publisher={} published={} held={}",
            self.capacity,
            self.slots,
            self.policy,
            self.stream,
            self.publisher,
            self.tail,
            self.tail.wrapping_sub(self.oldest)
        )?;
        for (slot, state, behind) in &self.subscribers {
            write!(f, "\nslot {slot}: {state} unread={behind}")?;
        }
        Ok(())
    }
}

/// Reports on the named topic without attaching (read-only).
pub fn stat(name: impl AsRef<OsStr>) -> Result<TopicStat> {
    TopicOptions::new().stat(name)
}

/// Removes the named topic if it is what a crash leaves behind (see
/// [`TopicStat::is_stale`]), and says whether it did; the publisher's and
/// every slot's liveness lock are taken first, so a process attaching
/// meanwhile makes this leave it alone.
///
/// # Errors
///
/// [`Cause::Corrupted`] if the object is not a topic (it is left alone),
/// and the errors of opening it.
pub fn remove_if_stale(name: impl AsRef<OsStr>) -> Result<bool> {
    const OP: &str = "remove stale topic";
    let name = Name::new(name)?;
    let t = TopicMap::open(&name, Duration::ZERO)?;
    if !t.stat()?.is_stale() {
        return Ok(false);
    }
    let bytes = std::iter::once(layout::PUBLISHER_LOCK_BYTE).chain((0..t.slots).map(publisher::lock_byte));
    crate::channel::admin::remove_under_locks(t.fd(), bytes, &name, OP)
}

/// Whether `a` comes before `b` (positions count bytes modulo 2^64).
fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}
