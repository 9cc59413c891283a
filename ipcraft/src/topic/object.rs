//! The mapped topic object: creation, identity checks on open, the slots.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{
    header_size, Header, Slot, ATTACHED, BLOCK, MAGIC, MAX_SLOTS, OVERWRITE, PUBLISHER_LOCK_BYTE, VERSION,
};
use super::{Policy, TopicStat};
use crate::channel::layout::Line;
use crate::channel::ring::Ring;
use crate::channel::{SideState, MAX_CAPACITY, MIN_CAPACITY};
use crate::error::{Cause, Context, Error, Result};
use crate::mmap::Mmap;
use crate::name::Name;
use crate::shm::{Shm, ShmOptions};
use crate::sys;

/// A mapped, validated topic.
pub(super) struct TopicMap {
    /// First, so it is unregistered before the mapping goes.
    truncation: Option<sys::TruncationGuard>,
    shm: Shm,
    map: Mmap,
    header: NonNull<Header>,
    pub(super) ring: Ring,
    pub(super) slots: u32,
    pub(super) policy: Policy,
    pub(super) label: String,
    /// The publisher's or a subscriber slot's lock this process took,
    /// released as the map drops (see `sys::HeldLock`).
    held: Option<sys::HeldLock>,
}

impl Drop for TopicMap {
    /// Releases this side's lock before the descriptor closes (see the
    /// channel's `Mapped`); the publisher's or subscriber's own drop has run.
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            held.release(self.shm.as_fd());
        }
    }
}

// SAFETY: shared memory accessed only through atomics and the ring's copy
// routines; the handle may move between threads.
unsafe impl Send for TopicMap {}

impl TopicMap {
    pub(super) fn header(&self) -> &Header {
        // SAFETY: offset 0 of a mapping at least header_size(slots) long
        // that lives as long as `self`; every field is an atomic.
        unsafe { self.header.as_ref() }
    }

    /// Slot `i` (callers keep `i < slots`).
    pub(super) fn slot(&self, i: u32) -> &Slot {
        assert!(i < self.slots, "slot {i} of {}", self.slots);
        let offset = std::mem::size_of::<Header>() + i as usize * std::mem::size_of::<Line<Slot>>();
        // SAFETY: the slots follow the header inside the header pages
        // (header_size counts them), 128-aligned; all fields are atomics.
        unsafe { &*(self.map.as_ptr().add(offset) as *const Slot) }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.shm.as_fd()
    }

    pub(super) fn keep(&mut self) {
        self.shm.keep();
    }

    fn err(&self, op: &'static str, cause: Cause) -> Error {
        Error::new(op, &self.label, cause)
    }

    /// [`Cause::Truncated`] once another process has shrunk the object.
    pub(super) fn check_intact(&self, op: &'static str) -> Result<()> {
        match &self.truncation {
            Some(guard) if guard.hit() => Err(self.err(op, Cause::Truncated)),
            _ => Ok(()),
        }
    }

    /// The error for an impossible value read from the object.
    pub(super) fn corrupted(&self, op: &'static str, why: String) -> Error {
        match self.check_intact(op) {
            Err(e) => e,
            Ok(()) => self.err(op, Cause::Corrupted(why)),
        }
    }

    /// Whether another process holds the lock on `byte`.
    pub(super) fn locked(&self, byte: i64, op: &'static str) -> Result<bool> {
        sys::ofd_locked_by_other(self.fd(), byte).context(op, &self.label)
    }

    pub(super) fn create(name: &Name, capacity: u64, slots: u32, policy: Policy, mode: u32) -> Result<Self> {
        let header = header_size(slots);
        let shm = ShmOptions::new()
            .create_new(true)
            .mode(mode)
            .size(header + capacity)
            .open(name)
            .map_err(|e| e.relabel("create topic", name))?;
        let key = crate::channel::object::random_key();
        let map = Self::assemble(shm, name.to_string(), header, capacity, slots, policy, key)?;
        let id = &map.header().identity.0;
        id.version.store(VERSION, Ordering::Relaxed);
        id.header_size.store(header as u32, Ordering::Relaxed);
        id.capacity.store(capacity, Ordering::Relaxed);
        id.key.store(key, Ordering::Relaxed);
        id.slots.store(slots, Ordering::Relaxed);
        id.policy.store(
            match policy {
                Policy::Block => BLOCK,
                Policy::Overwrite => OVERWRITE,
            },
            Ordering::Relaxed,
        );
        // Published last: an opener that sees the magic sees the rest.
        id.magic.store(MAGIC, Ordering::Release);
        Ok(map)
    }

    pub(super) fn open(name: impl AsRef<OsStr>, timeout: Duration) -> Result<Self> {
        let name = Name::new(name)?;
        let shm = Shm::open(&name).map_err(|e| e.relabel("open topic", &name))?;
        Self::validate(shm, name.to_string(), timeout)
    }

    /// Opens it read-only; `allow_foreign`: another user's too.
    pub(super) fn open_read_only(name: impl AsRef<OsStr>, allow_foreign: bool) -> Result<Self> {
        let name = Name::new(name)?;
        let shm = crate::shm::ShmOptions::new()
            .read_only(true)
            .allow_foreign(allow_foreign)
            .open(&name)
            .map_err(|e| e.relabel("open topic", &name))?;
        Self::validate(shm, name.to_string(), Duration::ZERO)
    }

    /// Checks the identity of an existing object (waiting up to `timeout`
    /// for a creator that has not finished) and maps it whole.
    fn validate(shm: Shm, label: String, timeout: Duration) -> Result<Self> {
        const OP: &str = "open topic";
        let corrupted = |why: String| Error::new(OP, &label, Cause::Corrupted(why));
        let deadline = Instant::now() + timeout;
        let page = 4096u64;
        let (first, size) = loop {
            let size = shm.size().map_err(|e| e.relabel(OP, &label))?;
            if size >= page {
                let first = map(&shm, page as usize, &label)?;
                // SAFETY: the page is mapped; the identity is atomics.
                let magic = unsafe { &*(first.as_ptr() as *const std::sync::atomic::AtomicU64) };
                match magic.load(Ordering::Acquire) {
                    MAGIC => break (first, size),
                    0 => {}
                    other => return Err(corrupted(format!("bad magic {other:#018x} (not a topic)"))),
                }
            } else if size != 0 {
                return Err(corrupted(format!(
                    "the object is {size} bytes, smaller than a topic header"
                )));
            }
            if Instant::now() >= deadline {
                return Err(corrupted(format!(
                    "the creator did not finish setting it up within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // SAFETY: as above; read once into private memory.
        let id = unsafe { &(*(first.as_ptr() as *const Header)).identity.0 };
        let version = id.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(corrupted(format!(
                "layout version {version}; this ipcraft reads {VERSION}"
            )));
        }
        let slots = id.slots.load(Ordering::Relaxed);
        if slots == 0 || slots > MAX_SLOTS {
            return Err(corrupted(format!("impossible subscriber count {slots}")));
        }
        let header = header_size(slots);
        if u64::from(id.header_size.load(Ordering::Relaxed)) != header {
            return Err(corrupted("header size does not match the subscriber count".into()));
        }
        let capacity = id.capacity.load(Ordering::Relaxed);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(corrupted(format!("impossible capacity {capacity}")));
        }
        if header + capacity > size {
            return Err(corrupted(format!(
                "{capacity} bytes of ring do not fit in the object ({size} bytes)"
            )));
        }
        let policy = match id.policy.load(Ordering::Relaxed) {
            BLOCK => Policy::Block,
            OVERWRITE => Policy::Overwrite,
            other => return Err(corrupted(format!("unknown policy {other}"))),
        };
        let key = id.key.load(Ordering::Relaxed);
        drop(first);
        Self::assemble(shm, label, header, capacity, slots, policy, key)
    }

    fn assemble(
        shm: Shm,
        label: String,
        header: u64,
        capacity: u64,
        slots: u32,
        policy: Policy,
        key: u64,
    ) -> Result<Self> {
        let len = usize::try_from(header + capacity).expect("a topic fits in the address space");
        let map = map(&shm, len, &label)?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mappings are not null");
        // SAFETY: the ring is the `capacity` bytes after the header pages of
        // a mapping of header + capacity bytes; page aligned.
        let ring = unsafe { Ring::new(base.add(header as usize), capacity, key) };
        let truncation = sys::protect_from_truncation(map.as_ptr() as usize, map.len());
        Ok(Self {
            truncation,
            shm,
            header: base.cast(),
            map,
            ring,
            slots,
            policy,
            label,
            held: None,
        })
    }

    /// Takes the lock on `byte` for this side (`EAGAIN`/`EACCES`: another
    /// process holds it), to be released as this map drops.
    pub(super) fn lock(&mut self, byte: i64) -> std::io::Result<()> {
        let held = sys::ofd_lock(self.fd(), byte)?;
        if let Some(before) = self.held.replace(held) {
            before.release(self.shm.as_fd());
        }
        Ok(())
    }

    /// A side's state by its lock first (see the channel's `side_state`).
    fn state(&self, byte: i64, state: u32, pid: u32) -> Result<SideState> {
        Ok(SideState::judge(self.locked(byte, "stat topic")?, state, pid))
    }

    pub(super) fn stat(&self) -> Result<TopicStat> {
        let h = self.header();
        let p = &h.publisher.0;
        let tail = h.tail.0.load(Ordering::Acquire);
        let mut subscribers = Vec::new();
        for i in 0..self.slots {
            let s = self.slot(i);
            let state = s.state.load(Ordering::Acquire);
            let live = self.locked(1 + i64::from(i), "stat topic")?;
            if state == ATTACHED || live {
                let st = SideState::judge(live, state, s.pid.load(Ordering::Relaxed));
                subscribers.push((i, st, tail.wrapping_sub(s.head.load(Ordering::Acquire))));
            }
        }
        Ok(TopicStat {
            capacity: self.ring.capacity(),
            slots: self.slots,
            policy: self.policy,
            publisher: self.state(
                PUBLISHER_LOCK_BYTE,
                p.state.load(Ordering::Acquire),
                p.pid.load(Ordering::Relaxed),
            )?,
            stream: h.stream.0.load(Ordering::Acquire),
            tail,
            oldest: h.oldest.0.load(Ordering::Acquire),
            subscribers,
        })
    }
}

/// Maps `len` bytes of the topic (see the channel's `map_as_opened`).
fn map(shm: &Shm, len: usize, label: &str) -> Result<Mmap> {
    crate::channel::object::map_as_opened(shm.as_fd(), 0, len, "map topic", label)
}
