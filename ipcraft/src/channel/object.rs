//! The mapped channel object: its backing file, identity checks on open,
//! each side's attachment and liveness lock, and what both ends share.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::layout::{
    Header, Side, ABSENT, ATTACHED, CLOSED, HEADER_SIZE, MAGIC, MAX_CAPACITY, MIN_CAPACITY, RECEIVER_LOCK_BYTE,
    SENDER_LOCK_BYTE, VERSION,
};
use super::ring::Ring;
use super::wait;
use super::SideState;
use crate::error::{Cause, Context, Error, Result};
use crate::mmap::{Mmap, MmapOptions};
use crate::shm::Shm;
use crate::sys;

/// A new open file description of the same file (through `/proc/self/fd`),
/// so that this end's liveness lock is its own even when `fd` was inherited
/// from, or passed by, the other side.
pub(crate) fn reopen(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    Ok(sys::retry(|| {
        rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    })?)
}

/// [`reopen`], keeping `fd` itself where `/proc` is not available.
pub(super) fn own_description(fd: OwnedFd) -> Result<OwnedFd> {
    Ok(reopen(&fd).unwrap_or(fd))
}

/// The memory behind a channel.
pub(super) enum Backing {
    Named(Shm),
    Anonymous(OwnedFd),
}

impl Backing {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Backing::Named(shm) => shm.as_fd(),
            Backing::Anonymous(fd) => fd.as_fd(),
        }
    }
}

/// A mapped, validated channel object.
pub(super) struct Mapped {
    /// Turns a truncation of the object by another process into zero pages
    /// and an error at the next check, instead of SIGBUS. First, so it is
    /// dropped (unregistered) before the mapping is unmapped.
    truncation: Option<sys::TruncationGuard>,
    pub(super) backing: Backing,
    /// Keeps the mapping alive; `header` and `ring` point into it.
    _map: Mmap,
    header: NonNull<Header>,
    pub(super) ring: Ring,
    pub(super) label: String,
    /// File offset of this channel's header: 0, or a lane's place in a
    /// many-sender channel or a service (see `lanes`). Lock bytes count
    /// from it.
    base: u64,
    /// The liveness lock this process took through this mapping, released
    /// as it drops (see `sys::HeldLock`).
    held: std::cell::Cell<Option<sys::HeldLock>>,
}

impl Drop for Mapped {
    /// Releases the liveness lock before the descriptor closes: a copy of
    /// the descriptor in a child being spawned (or forked) must not keep
    /// this side alive after its handle is gone. The end's own drop (its
    /// end marker, its departure) has run by now.
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            held.release(self.backing.fd());
        }
    }
}

// SAFETY: the mapping is shared memory accessed only through atomics and the
// ring's copy routines; moving the handle to another thread is fine.
unsafe impl Send for Mapped {}

impl Mapped {
    pub(super) fn header(&self) -> &Header {
        // SAFETY: the header lies at offset 0 of a mapping at least
        // HEADER_SIZE bytes long that lives as long as `self`; all its
        // fields are atomics, so concurrent writes by other processes are fine.
        unsafe { self.header.as_ref() }
    }

    pub(super) fn map(backing: &Backing, base: u64, len: u64, label: &str) -> Result<(Mmap, NonNull<Header>)> {
        let len = usize::try_from(len).map_err(|_| {
            Error::new(
                "open channel",
                label,
                Cause::Corrupted(format!("object of {len} bytes cannot be mapped")),
            )
        })?;
        let map = map_as_opened(backing.fd(), base, len, "map channel", label)?;
        let header = NonNull::new(map.as_mut_ptr().cast::<Header>())
            .ok_or_else(|| Error::new("map channel", label, Cause::Corrupted("null mapping".into())))?;
        Ok((map, header))
    }

    /// Writes the identity of a freshly sized object, magic last.
    pub(super) fn initialise(backing: Backing, capacity: u64, label: String) -> Result<Self> {
        Self::initialise_at(backing, 0, capacity, label)
    }

    /// [`initialise`](Self::initialise) for the channel whose header is at
    /// file offset `base`.
    pub(super) fn initialise_at(backing: Backing, base: u64, capacity: u64, label: String) -> Result<Self> {
        let (map, header) = Self::map(&backing, base, HEADER_SIZE + capacity, &label)?;
        let key = random_key();
        let mapped = Self::assemble(backing, base, map, header, capacity, key, label);
        let id = &mapped.header().identity.0;
        id.version.store(VERSION, Ordering::Relaxed);
        id.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
        id.capacity.store(capacity, Ordering::Relaxed);
        id.key.store(key, Ordering::Relaxed);
        // Published last: an opener that sees the magic sees everything above.
        id.magic.store(MAGIC, Ordering::Release);
        Ok(mapped)
    }

    /// Maps an existing object and checks its identity, waiting up to
    /// `timeout` for a creator that has not finished.
    pub(super) fn open(backing: Backing, label: String, timeout: Duration) -> Result<Self> {
        Self::open_at(backing, 0, label, timeout)
    }

    /// [`open`](Self::open) for the channel whose header is at file offset `base`.
    pub(super) fn open_at(backing: Backing, base: u64, label: String, timeout: Duration) -> Result<Self> {
        const OP: &str = "open channel";
        let corrupted = |why: String| Error::new(OP, &label, Cause::Corrupted(why));
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        let mut wait_or = |why: String| -> Result<()> {
            if Instant::now() >= deadline {
                return Err(corrupted(why));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
            Ok(())
        };
        let size = loop {
            let stat = sys::retry(|| rustix::fs::fstat(backing.fd())).context(OP, &label)?;
            let size = (stat.st_size as u64).saturating_sub(base);
            match size {
                // The creator has not sized it yet.
                0 => wait_or(format!("the object is still empty after {timeout:?}"))?,
                s if s < HEADER_SIZE => {
                    return Err(corrupted(format!(
                        "the object is {s} bytes, smaller than a channel header"
                    )))
                }
                s => break s,
            }
        };
        let (map, header) = Self::map(&backing, base, HEADER_SIZE, &label)?;
        // SAFETY: the header page is mapped and the fields are atomics.
        let id = unsafe { &header.as_ref().identity.0 };
        loop {
            match id.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 => wait_or(format!("the creator did not finish setting it up within {timeout:?}"))?,
                super::lanes::GROUP_MAGIC => {
                    return Err(Error::new(
                        OP,
                        &label,
                        Cause::Invalid("it is a channel for several senders or a service (it was still being made when opened: try again)"),
                    ))
                }
                other => return Err(corrupted(format!("bad magic {other:#018x}"))),
            }
        }
        let version = id.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(corrupted(format!(
                "layout version {version}; this ipcraft reads version {VERSION}"
            )));
        }
        let header_size = id.header_size.load(Ordering::Relaxed);
        if u64::from(header_size) != HEADER_SIZE {
            return Err(corrupted(format!("header size {header_size}, expected {HEADER_SIZE}")));
        }
        // Read once into private memory; never read from the object again.
        let capacity = id.capacity.load(Ordering::Relaxed);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(corrupted(format!("impossible capacity {capacity}")));
        }
        if HEADER_SIZE + capacity > size {
            return Err(corrupted(format!(
                "capacity {capacity} does not fit in the object ({size} bytes)"
            )));
        }
        let key = id.key.load(Ordering::Relaxed);
        drop(map);
        let (map, header) = Self::map(&backing, base, HEADER_SIZE + capacity, &label)?;
        Ok(Self::assemble(backing, base, map, header, capacity, key, label))
    }

    /// The handle over a mapping of `HEADER_SIZE + capacity` bytes of
    /// `backing`, protected from truncation.
    fn assemble(
        backing: Backing,
        base: u64,
        map: Mmap,
        header: NonNull<Header>,
        capacity: u64,
        key: u64,
        label: String,
    ) -> Self {
        debug_assert!(map.len() as u64 >= HEADER_SIZE + capacity);
        // SAFETY: the ring is the `capacity` bytes after the header page of
        // a mapping of HEADER_SIZE + capacity bytes; page aligned.
        let ring = unsafe {
            Ring::new(
                NonNull::new_unchecked(map.as_mut_ptr().add(HEADER_SIZE as usize)),
                capacity,
                key,
            )
        };
        let truncation = sys::protect_from_truncation(map.as_ptr() as usize, map.len());
        Self {
            truncation,
            backing,
            _map: map,
            header,
            ring,
            label,
            base,
            held: std::cell::Cell::new(None),
        }
    }

    /// The file offset of lock byte `byte` of this channel.
    pub(super) fn lock_at(&self, byte: i64) -> i64 {
        self.base as i64 + byte
    }

    /// The error for a value read from the object that no correct peer
    /// writes: [`Cause::Truncated`] when the object shrank (the value came
    /// from a zero page put in its place), [`Cause::Corrupted`] otherwise.
    pub(super) fn corrupted(&self, op: &'static str, why: super::ring::Corrupted) -> Error {
        match self.check_intact(op) {
            Err(truncated) => truncated,
            Ok(()) => Error::new(op, &self.label, Cause::Corrupted(why.0)),
        }
    }

    /// Fails with [`Cause::Truncated`] once another process has shrunk the
    /// object under this mapping (the vanished pages now read as zeros).
    #[inline]
    pub(super) fn check_intact(&self, op: &'static str) -> Result<()> {
        match &self.truncation {
            Some(guard) if guard.hit() => Err(Error::new(op, &self.label, Cause::Truncated)),
            _ => Ok(()),
        }
    }

    /// A side's state. The liveness lock decides first: a held lock is a
    /// live process whatever the state word says (another process can
    /// write that word); only a free lock lets the word tell absent, closed
    /// and dead apart.
    pub(super) fn side_state(&self, side: &Side, lock_byte: i64) -> Result<SideState> {
        let alive = sys::ofd_locked_by_other(self.backing.fd(), self.lock_at(lock_byte))
            .context("stat channel", &self.label)?;
        Ok(SideState::judge(
            alive,
            side.state.load(Ordering::Acquire),
            side.pid.load(Ordering::Relaxed),
        ))
    }

    /// Takes this side's lock, says whether it uses the light fence, and
    /// marks it attached (in that order: a peer that sees it attached sees
    /// its fence kind). Returns this process's pid and the state the side
    /// was in: absent, closed (a predecessor that finished), or attached
    /// (a predecessor that died: its lock was free).
    pub(super) fn attach(&self, side: &Side, lock_byte: i64, name: &'static str, light: bool) -> Result<(u32, u32)> {
        const OP: &str = "attach to channel";
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        match sys::ofd_lock(self.backing.fd(), self.lock_at(lock_byte)) {
            Ok(held) => self.held.set(Some(held)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
                let holder = side.pid.load(Ordering::Relaxed);
                return Err(Error::new(
                    OP,
                    &self.label,
                    Cause::InUse {
                        side: name,
                        pid: holder,
                    },
                ));
            }
            Err(e) => return Err(Error::new(OP, &self.label, e)),
        }
        // We hold the lock: whatever was here before is gone, and this side
        // is ours to take over.
        side.light.store(u32::from(light), Ordering::Release);
        // A predecessor's doorbell and departure are not ours.
        side.bell.store(0, Ordering::Release);
        side.sleeping.store(0, Ordering::Release);
        side.leaving.store(0, Ordering::Release);
        side.pid.store(pid, Ordering::Release);
        side.attaches.fetch_add(1, Ordering::AcqRel);
        let before = side.state.swap(ATTACHED, Ordering::AcqRel);
        Ok((pid, before))
    }

    /// Whether the peer `side` is alive now, by its lock alone.
    pub(super) fn peer_alive(&self, lock_byte: i64, op: &'static str) -> Result<bool> {
        sys::ofd_locked_by_other(self.backing.fd(), self.lock_at(lock_byte)).context(op, &self.label)
    }

    pub(super) fn keep(&mut self) {
        if let Backing::Named(shm) = &mut self.backing {
            shm.keep();
        }
    }
}

/// What both ends share about attaching: made from a mapped object, each
/// attaches on first use (so the copy a forked process drops unused never
/// counts), checking the positions it starts from before it does.
pub(super) trait Endpoint: Sized {
    /// An end that attaches on first use; its positions are read (and
    /// checked) then.
    fn unattached(mapped: Mapped, spin: Duration) -> Self;

    /// Attaches now, unless this end already has.
    fn ensure_attached(&mut self) -> Result<()>;

    /// An end attached now.
    fn attached(mapped: Mapped, spin: Duration) -> Result<Self> {
        let mut end = Self::unattached(mapped, spin);
        end.ensure_attached()?;
        Ok(end)
    }
}

impl SideState {
    /// A side's state from its lock and its words: a held lock is a live
    /// process whatever the words say (another process can write them);
    /// only a free lock lets the state word tell absent, closed and dead
    /// apart. For the channel's sides and the topic's alike.
    pub(crate) fn judge(alive: bool, state: u32, pid: u32) -> SideState {
        match state {
            _ if alive => SideState::Alive(pid),
            ABSENT => SideState::Absent,
            CLOSED => SideState::Closed,
            _ => SideState::Dead(pid),
        }
    }
}

/// Maps `len` bytes of `fd` from `offset`: shared and writable when the
/// descriptor was opened for writing, read-only otherwise (as `stat`
/// opens an object: looking at one never needs write access). Used by
/// every shared-memory pattern (channel, lanes, topic).
pub(crate) fn map_as_opened(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    op: &'static str,
    label: &str,
) -> Result<Mmap> {
    let flags = sys::retry(|| rustix::fs::fcntl_getfl(fd)).context(op, label)?;
    let mut opts = MmapOptions::new();
    opts.len(len).offset(offset);
    if flags.intersects(rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::RDWR) {
        opts.map_shared(fd)
    } else {
        opts.map(fd)
    }
    .map_err(|e| e.relabel(op, label))
}

/// A stamp key nobody can predict from the channel's name or time: the
/// standard library's per-process random hash seed, mixed with the clock.
pub(crate) fn random_key() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Which end of a channel a handle is.
#[derive(Clone, Copy, Debug)]
pub(super) enum End {
    Sender,
    Receiver,
}

impl End {
    pub(super) fn name(self) -> &'static str {
        match self {
            End::Sender => "sender",
            End::Receiver => "receiver",
        }
    }

    pub(super) fn peer(self) -> End {
        match self {
            End::Sender => End::Receiver,
            End::Receiver => End::Sender,
        }
    }

    pub(super) fn lock_byte(self) -> i64 {
        match self {
            End::Sender => SENDER_LOCK_BYTE,
            End::Receiver => RECEIVER_LOCK_BYTE,
        }
    }

    pub(super) fn side(self, h: &Header) -> &Side {
        match self {
            End::Sender => &h.sender.0,
            End::Receiver => &h.receiver.0,
        }
    }
}

/// An end's attachment to its channel, made on first use, so the copy of
/// an end that a forked process drops unused never counts as that end.
///
/// It must be declared after the end's `Mapped`, so it drops after it:
/// see [`depart`](Self::depart).
#[derive(Debug)]
pub(super) struct Attachment {
    end: End,
    /// How long this end spins before sleeping.
    pub(super) spin: Duration,
    /// The process that attached, or 0 before first use.
    pid: u32,
    /// Whether this process may use the light barrier (see `wait`).
    pub(super) light: bool,
    /// The doorbell to ring once this end's lock is gone (0: none).
    ring_on_drop: u64,
}

impl Attachment {
    pub(super) fn new(end: End, spin: Duration) -> Self {
        Self {
            end,
            spin,
            pid: 0,
            light: false,
            ring_on_drop: 0,
        }
    }

    /// Whether this end has attached (in some process).
    pub(super) fn is_attached(&self) -> bool {
        self.pid != 0
    }

    /// Attaches this end: takes its liveness lock and marks it attached.
    pub(super) fn attach(&mut self, mapped: &Mapped) -> Result<u32> {
        self.light = wait::register_fast_path(self.spin);
        let side = self.end.side(mapped.header());
        let (pid, before) = mapped.attach(side, self.end.lock_byte(), self.end.name(), self.light)?;
        self.pid = pid;
        // An async peer asleep on its doorbell learns that this side came,
        // so it can watch this process for death. The lock taken above is a
        // full barrier; the peer set its flag before it looked at our lock.
        let peer = self.end.peer().side(mapped.header());
        std::sync::atomic::fence(Ordering::SeqCst);
        wait::ring_if_armed(peer);
        Ok(before)
    }

    /// Whether this end is attached and this process is the one that did.
    pub(super) fn is_mine(&self) -> bool {
        self.pid != 0 && rustix::process::getpid().as_raw_nonzero().get() as u32 == self.pid
    }

    /// Called as the end drops (before its mapping and lock go): marks the
    /// side as leaving and, if the peer is an async end asleep on its
    /// doorbell, arranges to ring it once the lock is gone (when this
    /// attachment drops, after the mapping) — so the peer learns of a
    /// departure even though this process lives on. The flag and the
    /// peer's sleeping flag form the same store/barrier/load handshake as
    /// the wake-up: either the peer sees `leaving`, or this side sees the
    /// peer armed and rings.
    pub(super) fn depart(&mut self, mapped: &Mapped) {
        if !self.is_mine() {
            return;
        }
        let h = mapped.header();
        self.end.side(h).leaving.store(1, Ordering::SeqCst);
        let peer = self.end.peer().side(h);
        if peer
            .sleeping
            .compare_exchange(
                super::bell::BELL,
                super::bell::RUNG,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.ring_on_drop = peer.bell.load(Ordering::Acquire);
        }
    }
}

/// What both ends do alike to park on a doorbell (see `Park`): each end
/// adds only its own condition and its own idea of the peer's presence.
impl Attachment {
    /// This end's side of the header.
    fn side<'m>(&self, mapped: &'m Mapped) -> &'m Side {
        self.end.side(mapped.header())
    }

    /// The peer's side of the header.
    fn peer_side<'m>(&self, mapped: &'m Mapped) -> &'m Side {
        self.end.peer().side(mapped.header())
    }

    /// Before attaching as an async end: it never spins, so its peer needs
    /// no membarrier when it sleeps.
    pub(super) fn no_spin_unless_attached(&mut self) {
        if !self.is_attached() {
            self.spin = Duration::ZERO;
        }
    }

    /// Publishes the doorbell's nonce in this end's side.
    pub(super) fn publish_bell(&self, mapped: &Mapped, nonce: u64) {
        self.side(mapped).bell.store(nonce, Ordering::Release);
    }

    /// Withdraws the doorbell (back to futex wake-ups).
    pub(super) fn withdraw_bell(&self, mapped: &Mapped) {
        if self.is_mine() {
            let side = self.side(mapped);
            side.sleeping.store(0, Ordering::Release);
            side.bell.store(0, Ordering::Release);
        }
    }

    /// Raises this end's flag to `BELL` and issues the sleeping side's
    /// barrier; the caller then looks at its condition again.
    pub(super) fn raise_bell(&self, mapped: &Mapped) {
        wait::raise_bell(self.side(mapped), peer_is_light(self.peer_side(mapped)));
    }

    /// This end's sleeping flag.
    pub(super) fn flag<'m>(&self, mapped: &'m Mapped) -> &'m AtomicU32 {
        &self.side(mapped).sleeping
    }

    /// The peer's pid, attach count and leaving flag as the header has them.
    #[cfg(feature = "tokio")]
    pub(super) fn peer_identity(&self, mapped: &Mapped) -> (u32, u32, u32) {
        let side = self.peer_side(mapped);
        (
            side.pid.load(Ordering::Acquire),
            side.attaches.load(Ordering::Acquire),
            side.leaving.load(Ordering::SeqCst),
        )
    }

    /// The peer's pid while its lock is held.
    #[cfg(feature = "tokio")]
    pub(super) fn live_peer(&self, mapped: &Mapped, op: &'static str) -> Result<Option<u32>> {
        let peer = self.end.peer();
        Ok(mapped
            .peer_alive(peer.lock_byte(), op)?
            .then(|| self.peer_side(mapped).pid.load(Ordering::Relaxed)))
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.ring_on_drop != 0 {
            super::bell::ring(self.ring_on_drop);
        }
    }
}

/// How long an operation may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    pub(crate) fn timeout(timeout: Duration) -> Self {
        sys::deadline(Some(timeout)).map_or(Wait::Forever, Wait::Until)
    }

    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Whether the peer's fast path needs this side's membarrier before it
/// sleeps. A peer that has not attached yet may still attach as light.
pub(super) fn peer_is_light(peer: &Side) -> bool {
    peer.state.load(Ordering::Acquire) != ATTACHED || peer.light.load(Ordering::Acquire) != 0
}

/// The low 32 bits of a little-endian `AtomicU64` in shared memory, as the
/// futex word a waiter sleeps on.
pub(crate) fn low_half(word: &std::sync::atomic::AtomicU64) -> &AtomicU32 {
    // SAFETY: an AtomicU64 is 8-aligned, so its first 4 bytes are a valid,
    // aligned AtomicU32 (the low half on little-endian Linux targets); the
    // futex system call only needs its address and reads it atomically.
    unsafe { &*(word as *const std::sync::atomic::AtomicU64 as *const AtomicU32) }
}

#[cfg(not(target_endian = "little"))]
compile_error!("the channel's futex words assume a little-endian target");
