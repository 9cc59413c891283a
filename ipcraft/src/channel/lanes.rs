//! Objects made of several channels ("lanes"): the many-sender channel
//! (one lane per sender, multiplexed by one [`MultiReceiver`]) and the
//! service (a request lane and a response lane per client, see
//! [`crate::service`]).
//!
//! ```text
//! offset 0        4096                 4096 + L           4096 + 2L
//! +--------------+--------------------+------------------+-----
//! | group header | lane 0: a complete | lane 1           | ...      L = 4096 + capacity
//! | magic, kind, | channel (header,   |                  |
//! | lanes, cap   | ring, lock bytes   |                  |
//! +--------------+--------------------+------------------+-----
//! ```
//!
//! Each lane is a whole single-producer single-consumer channel with
//! everything that implies (reuse, a dead side replaced, liveness by OFD
//! locks on its own two bytes, hostile-memory checks), so one sender's
//! death or misbehaviour stays in its lane. The receiver takes one message
//! per lane in turn, so no sender starves the others, and each sender's
//! messages arrive in its order.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::layout::{ATTACHED, HEADER_SIZE, RECEIVER_LOCK_BYTE, SENDER_LOCK_BYTE};
use super::object::{own_description, Backing, Endpoint, Mapped, Wait};
use super::receiver::SenderView;
use super::ring;
use super::{Bell, ChannelOptions, ChannelStat, Park, Receiver, Sender, SideState};
use crate::error::{Cause, Context, Error, Result};
use crate::name::Name;
use crate::shm::{Shm, ShmOptions};
use crate::sys;

/// `b"IPCKMANY"` as a little-endian `u64`.
pub(crate) const GROUP_MAGIC: u64 = u64::from_le_bytes(*b"IPCKMANY");
/// Group layout version. Version 2: a service's request id rides in its
/// frames' tag, not before the payload.
const GROUP_VERSION: u32 = 2;
/// Bytes before the first lane.
const GROUP_HEADER: u64 = 4096;
/// The most lanes an object has.
pub(crate) const MAX_LANES: u32 = 512;

/// What a lane object is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A channel for several senders: lane k is sender k's.
    Senders = 1,
    /// A service: lanes 2k and 2k+1 are client k's requests and responses.
    Service = 2,
}

#[repr(C)]
struct GroupIdentity {
    magic: AtomicU64,
    version: AtomicU32,
    kind: AtomicU32,
    lanes: AtomicU32,
    reserved: AtomicU32,
    lane_capacity: AtomicU64,
}

/// A mapped, validated lane object.
pub(crate) struct Group {
    shm: Shm,
    pub(crate) kind: Kind,
    pub(crate) lanes: u32,
    pub(crate) capacity: u64,
    pub(crate) label: String,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.label)
            .field("kind", &self.kind)
            .field("lanes", &self.lanes)
            .finish()
    }
}

/// The magic of lane 0 of an object whose group identity is not written
/// yet (that of a channel being created as a group).
fn lane_magic(shm: &Shm) -> Result<u64> {
    let mut word = [0u8; 8];
    let n = rustix::io::pread(shm.as_fd(), &mut word, GROUP_HEADER).context("open channel", shm.name())?;
    Ok(if n == 8 { u64::from_le_bytes(word) } else { 0 })
}

fn lane_base(k: u32, capacity: u64) -> u64 {
    GROUP_HEADER + u64::from(k) * (HEADER_SIZE + capacity)
}

impl Group {
    /// Creates the object (exclusive, `mode`) with `lanes` channels of
    /// `capacity` bytes each, identity last.
    pub(crate) fn create(name: &Name, kind: Kind, lanes: u32, capacity: u64, mode: u32) -> Result<Self> {
        let op = "create channel";
        if lanes == 0 || lanes > MAX_LANES {
            return Err(Error::new(
                op,
                name,
                Cause::OverLimit {
                    requested: u64::from(lanes),
                    limit: u64::from(MAX_LANES),
                    limit_name: "the most lanes an object has (at least 1)",
                },
            ));
        }
        let shm = ShmOptions::new()
            .create_new(true)
            .mode(mode)
            .size(lane_base(lanes, capacity))
            .open(name)
            .map_err(|e| e.relabel(op, name))?;
        let group = Self {
            shm,
            kind,
            lanes,
            capacity,
            label: name.to_string(),
        };
        for k in 0..lanes {
            Mapped::initialise_at(group.backing()?, lane_base(k, capacity), capacity, group.label.clone())?;
        }
        let map = crate::mmap::MmapOptions::new()
            .len(GROUP_HEADER as usize)
            .map_shared(group.shm.as_fd())
            .map_err(|e| e.relabel(op, name))?;
        // SAFETY: the first page is mapped; the identity is atomics.
        let id = unsafe { &*(map.as_ptr() as *const GroupIdentity) };
        id.version.store(GROUP_VERSION, Ordering::Relaxed);
        id.kind.store(kind as u32, Ordering::Relaxed);
        id.lanes.store(lanes, Ordering::Relaxed);
        id.lane_capacity.store(capacity, Ordering::Relaxed);
        id.magic.store(GROUP_MAGIC, Ordering::Release);
        Ok(group)
    }

    /// Opens the named object if it is a lane object (`Ok(None)` if it is
    /// something else, such as a one-to-one channel, or has no identity
    /// yet: a one-to-one channel's opening waits for that), waiting up to
    /// `timeout` for a creator that has written its lanes but not yet the
    /// group's identity.
    pub(crate) fn open(name: &Name, read_only: bool, allow_foreign: bool, timeout: Duration) -> Result<Option<Self>> {
        let op = "open channel";
        let shm = ShmOptions::new()
            .read_only(read_only)
            .allow_foreign(allow_foreign)
            .open(name)
            .map_err(|e| e.relabel(op, name))?;
        let corrupted = |why: String| Error::new(op, name, Cause::Corrupted(why));
        let deadline = Instant::now() + timeout;
        loop {
            let size = shm.size().map_err(|e| e.relabel(op, name))?;
            if size >= GROUP_HEADER {
                let map = crate::mmap::MmapOptions::new()
                    .len(GROUP_HEADER as usize)
                    .map(shm.as_fd())
                    .map_err(|e| e.relabel(op, name))?;
                // SAFETY: the first page is mapped; the identity is atomics.
                let id = unsafe { &*(map.as_ptr() as *const GroupIdentity) };
                match id.magic.load(Ordering::Acquire) {
                    GROUP_MAGIC => {
                        let version = id.version.load(Ordering::Relaxed);
                        if version != GROUP_VERSION {
                            return Err(corrupted(format!("lane layout version {version}")));
                        }
                        let kind = match id.kind.load(Ordering::Relaxed) {
                            1 => Kind::Senders,
                            2 => Kind::Service,
                            other => return Err(corrupted(format!("unknown kind {other}"))),
                        };
                        let lanes = id.lanes.load(Ordering::Relaxed);
                        let capacity = id.lane_capacity.load(Ordering::Relaxed);
                        if lanes == 0
                            || lanes > MAX_LANES
                            || !capacity.is_power_of_two()
                            || !(super::MIN_CAPACITY..=super::MAX_CAPACITY).contains(&capacity)
                        {
                            return Err(corrupted(format!(
                                "impossible geometry: {lanes} lanes of {capacity} bytes"
                            )));
                        }
                        if lane_base(lanes, capacity) > size {
                            return Err(corrupted(format!("{lanes} lanes do not fit in {size} bytes")));
                        }
                        return Ok(Some(Self {
                            shm,
                            kind,
                            lanes,
                            capacity,
                            label: name.to_string(),
                        }));
                    }
                    // Lane 0's identity, written before the group's: a
                    // group being created.
                    0 if size >= GROUP_HEADER + 8 && lane_magic(&shm)? == super::MAGIC => {}
                    _ => return Ok(None),
                }
            } else {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Err(corrupted(format!(
                    "the creator did not finish setting it up within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Removes the object (`name`) if it is what a crash leaves behind: a
    /// side of some lane died without leaving and no side of any lane is
    /// alive; every lane's locks are taken first (see
    /// [`remove_if_stale`](super::remove_if_stale)).
    pub(crate) fn remove_if_stale(&self, name: &Name, op: &'static str) -> Result<bool> {
        let stats = self.stats()?;
        let sides = || stats.iter().flat_map(|l| [l.sender, l.receiver]);
        let stale =
            sides().any(|s| matches!(s, SideState::Dead(_))) && !sides().any(|s| matches!(s, SideState::Alive(_)));
        if !stale {
            return Ok(false);
        }
        let bytes = (0..self.lanes).flat_map(|k| {
            let base = lane_base(k, self.capacity) as i64;
            [base + SENDER_LOCK_BYTE, base + RECEIVER_LOCK_BYTE]
        });
        super::admin::remove_under_locks(self.shm.as_fd(), bytes, name, op)
    }

    /// A descriptor of the object with its own open file description, so
    /// a lane's locks are its own.
    fn backing(&self) -> Result<Backing> {
        let fd = self
            .shm
            .as_fd()
            .try_clone_to_owned()
            .context("open channel", &self.label)?;
        Ok(Backing::Anonymous(own_description(fd)?))
    }

    /// Lane `k`, mapped and checked (its capacity must be the group's).
    pub(super) fn lane(&self, k: u32) -> Result<Mapped> {
        debug_assert!(k < self.lanes);
        let mapped = Mapped::open_at(
            self.backing()?,
            lane_base(k, self.capacity),
            format!("{} (lane {k})", self.label),
            Duration::ZERO,
        )?;
        if mapped.ring.capacity() != self.capacity {
            return Err(Error::new(
                "open channel",
                &self.label,
                Cause::Corrupted(format!("lane {k} has another capacity")),
            ));
        }
        Ok(mapped)
    }

    /// Lane `k`'s receiver, attached now.
    pub(crate) fn receiver(&self, k: u32, spin: Duration) -> Result<Receiver> {
        Receiver::attached(self.lane(k)?, spin)
    }

    /// Lane `k`'s sender, attached now.
    pub(crate) fn sender(&self, k: u32, spin: Duration) -> Result<Sender> {
        Sender::attached(self.lane(k)?, spin)
    }

    /// Leaves the object in `/dev/shm` when this handle drops.
    pub(crate) fn keep(&mut self) {
        self.shm.keep();
    }

    /// The state of every lane.
    pub(crate) fn stats(&self) -> Result<Vec<ChannelStat>> {
        (0..self.lanes).map(|k| self.lane(k)?.stat()).collect()
    }

    /// Attaches as the sender of a lane (of `first`, `first + step`, ...)
    /// that has no live sender: one whose sender is absent or finished
    /// first, and only then one whose sender died (taking over its stream).
    pub(crate) fn attach_sender(&self, first: u32, step: u32, spin: Duration) -> Result<(u32, Sender)> {
        for takeover in [false, true] {
            let mut k = first;
            while k < self.lanes {
                let lane = self.lane(k)?;
                k += step;
                if !takeover && lane.header().sender.0.state.load(Ordering::Acquire) == ATTACHED {
                    continue;
                }
                match Sender::attached(lane, spin) {
                    Ok(tx) => return Ok((k - step, tx)),
                    Err(e) if matches!(e.cause(), Cause::InUse { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::new(
            "attach to channel",
            &self.label,
            Cause::LimitReached {
                limit_name: match self.kind {
                    Kind::Senders => "the channel's senders, all attached,",
                    Kind::Service => "the service's clients, all connected,",
                },
                limit: u64::from(self.lanes / step),
            },
        ))
    }
}

/// The receiving end of a channel made for several senders
/// ([`ChannelOptions::senders`]): one lane per sender, taken in turn.
///
/// Each sender's messages arrive in its order; the receiver takes one
/// message from each lane that has one before it comes back to any, so a
/// fast sender cannot starve a slow one. A sender that dies is reported
/// once ([`Cause::PeerDied`], after everything it committed), and the
/// others go on. `Ok(None)` comes once every sender that attached has
/// closed its stream (and at least one has).
///
/// While nothing is waiting it spins briefly, then sleeps on a doorbell
/// every lane's sender rings (an abstract Unix datagram socket and an
/// eventfd, as async ends use; see ARCHITECTURE.md): a futex cannot wait
/// on several words.
///
/// # In an event loop
///
/// The doorbell is also the receiver's descriptor ([`AsRawFd`]), readable
/// once a sender has rung it. Senders ring only a receiver that asked for
/// it, so an event loop calls [`prepare_wait`](Self::prepare_wait) before
/// it waits on the descriptor, and takes messages with
/// [`try_recv_from`](Self::try_recv_from) until [`Cause::Empty`]:
///
/// ```no_run
/// # use ipcraft::channel::MultiReceiver;
/// # use ipcraft::Cause;
/// # fn main() -> ipcraft::Result<()> {
/// let mut rx = MultiReceiver::open("/jobs")?;
/// let mut buf = vec![0u8; 4096];
/// loop {
///     match rx.try_recv_from(&mut buf) {
///         Ok(Some((sender, len))) => println!("{len} bytes from sender {sender}"),
///         Ok(None) => break, // every sender has closed
///         Err(e) if matches!(e.cause(), Cause::Empty) => {
///             if !rx.prepare_wait() {
///                 // Wake now and then: a sender's death does not ring.
///                 use rustix::event::{poll, PollFd, PollFlags, Timespec};
///                 let mut fds = [PollFd::new(&rx, PollFlags::IN)];
///                 let _ = poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 50_000_000 }));
///             }
///         }
///         Err(e) if matches!(e.cause(), Cause::PeerDied { .. }) => eprintln!("{e}"),
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct MultiReceiver {
    group: Group,
    lanes: Vec<Receiver>,
    bell: Bell,
    /// An epoll descriptor watching `bell` (what a blocking wait sleeps on,
    /// and the descriptor an event loop can watch).
    bell_watch: OwnedFd,
    /// The lane to look at first next time (round robin).
    next: usize,
    /// Per lane: what this receiver knows of its senders.
    watch: Vec<Watch>,
    /// Whether some stream has ended since this receiver came.
    ended_any: bool,
    /// Never report the end (a server keeps serving).
    forever: bool,
    spin: Duration,
    /// The lanes' doorbell flags are up for an event loop
    /// ([`prepare_wait`](Self::prepare_wait)); the next receive takes the
    /// rings and lowers them.
    armed: bool,
    /// When a receive that does not wait last looked at the senders'
    /// liveness (a death does not ring the doorbell).
    senders_checked: Instant,
}

/// How often a receive that does not wait looks for a dead sender (about
/// what a blocking wait's naps take).
const CHECK_SENDERS: Duration = Duration::from_millis(50);

impl fmt::Debug for MultiReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiReceiver")
            .field("channel", &self.group.label)
            .field("senders", &self.lanes.len())
            .finish()
    }
}

const RECV_OP: &str = "receive from channel";

/// How a pass over the lanes takes a lane's next message (into a buffer,
/// whole or split): `Ok(Some(len))` for a message, `Ok(None)` at the end of
/// the lane's stream, [`Cause::Empty`] for nothing yet.
trait Take: FnMut(&mut Receiver) -> Result<Option<usize>> {}

impl<F: FnMut(&mut Receiver) -> Result<Option<usize>>> Take for F {}

/// `k` modulo `n` for `k < 2n`.
#[inline(always)]
fn wrap(k: usize, n: usize) -> usize {
    if k >= n {
        k - n
    } else {
        k
    }
}

/// What a [`MultiReceiver`] knows of one lane's senders.
#[derive(Clone, Copy, Default)]
struct Watch {
    /// The sender last seen alive there.
    last: Option<SenderView>,
    /// The attach count of the sender whose death was reported last.
    reported: Option<u32>,
}

impl MultiReceiver {
    /// Opens the named many-sender channel as its receiver.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ChannelOptions::new().open_multi_receiver(name)
    }

    pub(super) fn attach(group: Group, spin: Duration) -> Result<Self> {
        Self::attach_lanes(group, 1, false, spin)
    }

    /// Receives lanes 0, `step`, 2·`step`, ... of `group`; with `forever`,
    /// it never reports the end (a service's server).
    pub(crate) fn attach_lanes(group: Group, step: u32, forever: bool, spin: Duration) -> Result<Self> {
        let bell = Bell::bind().context("bind doorbell for", &group.label)?;
        let bell_watch = bell.watch().context("watch doorbell for", &group.label)?;
        let mut lanes = Vec::with_capacity((group.lanes / step) as usize);
        for k in (0..group.lanes).step_by(step as usize) {
            // Parked before it attaches, so it uses real fences (as an
            // async end does) and its senders pay no membarrier when they
            // sleep on a full ring. Attaching first, with the spin, for the
            // light fast path made no measurable difference to the service
            // round trip (bench medians, interleaved runs).
            let mut rx = Receiver::unattached(group.lane(k)?, Duration::ZERO);
            rx.park_init(bell.nonce())?;
            lanes.push(rx);
        }
        let n = lanes.len();
        Ok(Self {
            group,
            lanes,
            bell,
            bell_watch,
            next: 0,
            watch: vec![Watch::default(); n],
            ended_any: false,
            forever,
            spin,
            armed: false,
            senders_checked: Instant::now(),
        })
    }

    /// How many senders the channel takes.
    pub fn senders(&self) -> usize {
        self.lanes.len()
    }

    /// Leaves a channel this receiver created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.group.keep();
    }

    /// One pass over the lanes from `next`: the first message `take` found
    /// (it receives it, or only looks), the first error, or `Ok(None)` when
    /// no lane has anything.
    fn poll_lanes(&mut self, take: &mut impl Take) -> Result<Option<(usize, usize)>> {
        self.poll(take, false)
    }

    /// [`poll_lanes`](Self::poll_lanes); `thorough`: also the lanes with
    /// nothing published (so a shrunk object or a corrupted position is
    /// found even while nothing arrives).
    fn poll(&mut self, take: &mut impl Take, thorough: bool) -> Result<Option<(usize, usize)>> {
        let n = self.lanes.len();
        for i in 0..n {
            // `next < n`: a wrap by subtraction, not a division (tens of
            // cycles, on the path from a message's arrival to its taking).
            let k = wrap(self.next + i, n);
            // Nothing published at its position: nothing to take (and no
            // error value to build) — the common case while polling.
            if !thorough && !self.lanes[k].published() {
                continue;
            }
            match take(&mut self.lanes[k]) {
                Ok(Some(len)) => {
                    self.next = wrap(k + 1, n);
                    return Ok(Some((k, len)));
                }
                Ok(None) => self.finish_stream(k),
                Err(e) if matches!(e.cause(), Cause::Empty) => {}
                Err(e) if matches!(e.cause(), Cause::Aborted) => {
                    self.finish_stream(k);
                    self.next = wrap(k + 1, n);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Lane `k`'s stream ended: the lane waits for the next sender.
    fn finish_stream(&mut self, k: usize) {
        self.lanes[k].next_stream();
        self.ended_any = true;
    }

    /// Looks at every lane's sender and reports one that died (once, after
    /// what it committed): a dead lock with the side still attached, or a
    /// sender seen before that another has replaced within the same stream
    /// (a sender that closed its stream makes the next start a new one).
    fn check_senders(&mut self, take: &mut impl Take) -> Result<Option<(usize, usize)>> {
        for k in 0..self.lanes.len() {
            let now = self.lanes[k].sender_view()?;
            let watch = &mut self.watch[k];
            let replaced = watch
                .last
                .filter(|last| last.attaches != now.attaches && last.stream == now.stream);
            let died = match replaced {
                Some(last) if watch.reported != Some(last.attaches) => Some(last),
                _ if !now.alive
                    && now.state == ATTACHED
                    && now.attaches != 0
                    && watch.reported != Some(now.attaches) =>
                {
                    Some(now)
                }
                _ => None,
            };
            if now.alive {
                watch.last = Some(now);
            }
            let Some(dead) = died else { continue };
            // Deliver what it committed first.
            if let Some(found) = self.poll_lanes(take)? {
                return Ok(Some(found));
            }
            let watch = &mut self.watch[k];
            watch.reported = Some(dead.attaches);
            if watch.last.is_some_and(|l| l.attaches == dead.attaches) {
                watch.last = None;
            }
            self.lanes[k].next_stream();
            self.ended_any = true;
            let e = Error::new(
                RECV_OP,
                &self.group.label,
                Cause::PeerDied {
                    side: "sender",
                    pid: dead.pid,
                },
            );
            // Its successor's takeover record names the same death.
            self.lanes[k].note_reported(&e);
            return Err(e);
        }
        Ok(None)
    }

    /// Whether some lane has a sender whose stream is still open: alive,
    /// or dead but not reported yet (it may have died since
    /// `check_senders` looked; it is reported on the next round).
    fn any_open(&mut self) -> Result<bool> {
        for (rx, watch) in self.lanes.iter().zip(&self.watch) {
            let v = rx.sender_view()?;
            if v.state == ATTACHED && (v.alive || (v.attaches != 0 && watch.reported != Some(v.attaches))) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Waits as `wait` says for a lane where `take` finds a message.
    fn recv_with(&mut self, wait: Wait, mut take: impl Take) -> Result<Option<(usize, usize)>> {
        let take = &mut take;
        if self.armed {
            self.armed = false;
            self.take_rings()?;
        }
        // The clock (tens of ns a read in some VMs) is read only once a
        // message has not come at once, never on the way to one that is
        // there: the spin counts from that first read, one tight poll
        // (~8 µs) or 64 passes after the call began.
        let mut started = None;
        let (mut spins, mut spinning) = (0u32, !self.spin.is_zero());
        loop {
            if let Some(found) = self.poll_lanes(take)? {
                return Ok(Some(found));
            }
            if self.ended_any && !self.forever {
                // Deaths first: a dead sender is reported, not taken for
                // one that finished.
                if let Some(found) = self.check_senders(take)? {
                    return Ok(Some(found));
                }
                if !self.any_open()? {
                    // A sender may have published its last messages and
                    // closed between the poll above and that look (a
                    // closed state is stored after its stream's frames):
                    // take those first. The end comes once none is left.
                    if let Some(found) = self.poll(take, true)? {
                        return Ok(Some(found));
                    }
                    return Ok(None);
                }
            }
            if let Wait::No = wait {
                // An event loop learns of a sender's death only here.
                let now = Instant::now();
                if now.duration_since(self.senders_checked) >= CHECK_SENDERS {
                    self.senders_checked = now;
                    if let Some(found) = self.check_senders(take)? {
                        return Ok(Some(found));
                    }
                }
                return Err(Error::new(RECV_OP, &self.group.label, Cause::Empty));
            }
            // Spinning: a tight poll of the lanes' next frames first, as the
            // receiver's own wait does (a message on its way is seen a few
            // cycles after it lands, without a pass's bookkeeping); the
            // clock (costly in some VMs) only now and then — and after
            // every tight poll that found nothing, which took 256 pauses
            // (~7 µs here, where `pause` takes 27 ns): counted as one spin,
            // 64 of them would stretch the spin nine times over.
            let mut polled_idle = false;
            if spinning {
                let mut polls = 0;
                while polls < ring::TIGHT_POLLS && !self.lanes.iter().any(Receiver::published) {
                    std::hint::spin_loop();
                    polls += 1;
                }
                polled_idle = polls == ring::TIGHT_POLLS;
            }
            spins = spins.wrapping_add(1);
            if spinning && !polled_idle && spins % 64 != 0 {
                continue;
            }
            let now = Instant::now();
            let started = *started.get_or_insert(now);
            let left = wait.deadline().map(|d| d.saturating_duration_since(now));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(Error::new(RECV_OP, &self.group.label, Cause::TimedOut));
            }
            if spinning && now.duration_since(started) < self.spin {
                if spins % 4096 == 0 {
                    std::thread::yield_now();
                }
                continue;
            }
            spinning = false;
            if !self.arm_lanes() {
                let nap = Duration::from_millis(50).min(left.unwrap_or(Duration::MAX));
                let rung = match sys::wait_fd(
                    self.bell_watch.as_fd(),
                    rustix::event::PollFlags::IN,
                    Some(Instant::now() + nap),
                ) {
                    Ok(flags) => !flags.is_empty(),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
                    Err(e) => return Err(Error::new("wait for", &self.group.label, e)),
                };
                self.take_rings()?;
                if !rung {
                    if let Some(found) = self.poll(take, true)? {
                        return Ok(Some(found));
                    }
                    if let Some(found) = self.check_senders(take)? {
                        return Ok(Some(found));
                    }
                }
            } else {
                self.disarm_lanes();
            }
        }
    }

    /// Receives the next message into `buf`: `Some((sender, len))`, where
    /// `sender` is the lane (0..senders) it came through, or `None` once
    /// every sender that attached has closed.
    ///
    /// # Errors
    ///
    /// [`Cause::PeerDied`] for a sender that died (once; receiving goes on
    /// with the others at the next call), [`Cause::Aborted`] for one that
    /// abandoned its stream, [`Cause::BufferTooSmall`] (the message stays),
    /// [`Cause::Corrupted`].
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<Option<(usize, usize)>> {
        self.recv_with(Wait::Forever, |rx: &mut Receiver| rx.try_recv(buf))
    }

    /// [`recv_from`](Self::recv_from), waiting at most `timeout`.
    pub fn recv_from_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<(usize, usize)>> {
        self.recv_with(Wait::timeout(timeout), |rx: &mut Receiver| rx.try_recv(buf))
    }

    /// [`recv_from`](Self::recv_from) without waiting ([`Cause::Empty`]).
    /// A sender's death is looked for at most every 50 ms here.
    pub fn try_recv_from(&mut self, buf: &mut [u8]) -> Result<Option<(usize, usize)>> {
        self.recv_with(Wait::No, |rx: &mut Receiver| rx.try_recv(buf))
    }

    /// Prepares an event loop's wait on this receiver's descriptor
    /// ([`AsRawFd`]): asks every lane's sender to ring the doorbell when it
    /// next publishes (once: a ring is a system call), then looks once
    /// more. `true` when something arrived meanwhile: receive instead of
    /// waiting (the descriptor may not become readable for it). The next
    /// receive call takes the rings, so the descriptor stops being
    /// readable, and withdraws the request.
    ///
    /// A sender's death does not ring the doorbell: wake now and then (a
    /// timeout of tens of milliseconds) and call
    /// [`try_recv_from`](Self::try_recv_from), which reports it.
    pub fn prepare_wait(&mut self) -> bool {
        if self.arm_lanes() {
            self.disarm_lanes();
            self.armed = false;
            return true;
        }
        self.armed = true;
        false
    }

    /// The doorbell every lane's sender rings.
    #[cfg(feature = "tokio")]
    pub(crate) fn bell(&self) -> &Bell {
        &self.bell
    }

    /// The channel's name, for errors.
    #[cfg(feature = "tokio")]
    pub(crate) fn label(&self) -> &str {
        &self.group.label
    }

    /// Arms every lane's doorbell flag, then looks once more: whether some
    /// lane has something (a sender that published before it saw the flag
    /// is seen here; one that publishes after rings the doorbell).
    pub(crate) fn arm_lanes(&mut self) -> bool {
        let mut ready = false;
        for rx in &mut self.lanes {
            ready |= rx.arm();
        }
        ready
    }

    /// Takes the doorbell's pending rings, then lowers every lane's flag
    /// (after a wait on the doorbell, whether it was rung or not).
    fn take_rings(&mut self) -> Result<()> {
        self.bell
            .drain(64)
            .map_err(|e| Error::new("take rings of", &self.group.label, e))?;
        self.disarm_lanes();
        Ok(())
    }

    /// Lowers every lane's doorbell flag: senders stop ringing.
    pub(crate) fn disarm_lanes(&self) {
        for rx in &self.lanes {
            // A ring this sleep was owed stays in the socket: the next
            // wait finds the doorbell readable at once and drains it.
            rx.flag().lower();
        }
    }

    /// Receives the next message and its frame's tag
    /// ([`Receiver::recv_tagged`]): `Some((sender, len))` as
    /// [`recv_from`](Self::recv_from).
    pub(crate) fn recv_tagged_from<D: super::copy::Dest + ?Sized>(
        &mut self,
        tag: &mut u32,
        rest: &mut D,
        wait: Wait,
    ) -> Result<Option<(usize, usize)>> {
        self.recv_with(wait, |rx: &mut Receiver| rx.recv_tagged(tag, rest, Wait::No))
    }

    /// The state of each sender's lane.
    pub fn stats(&self) -> Result<Vec<ChannelStat>> {
        self.group.stats()
    }
}

impl Drop for MultiReceiver {
    fn drop(&mut self) {
        for rx in &mut self.lanes {
            rx.park_release();
        }
    }
}

impl AsRawFd for MultiReceiver {
    /// The doorbell: readable when a sender has rung it, for an event loop
    /// (see [`prepare_wait`](MultiReceiver::prepare_wait)).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.bell_watch.as_raw_fd()
    }
}

impl AsFd for MultiReceiver {
    /// The doorbell, as [`as_raw_fd`](AsRawFd::as_raw_fd).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.bell_watch.as_fd()
    }
}
