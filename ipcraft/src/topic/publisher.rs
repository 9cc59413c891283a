//! The publishing end.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use rustix::thread::futex;

use super::layout::{seq_near, ATTACHED, CLOSED, PUBLISHER_LOCK_BYTE};
use super::object::TopicMap;
use super::{before, Policy, TopicOptions};
use crate::channel::bell;
use crate::channel::copy;
use crate::channel::object::{low_half, Wait};
use crate::channel::ring::{self, Peek, Room};
use crate::channel::wait::{self, Stop, Waiter};
use crate::error::{Cause, Error, Result};

const OP: &str = "publish to topic";

/// The publishing end of a topic.
pub struct Publisher {
    t: TopicMap,
    /// Private write position (the shared one is only published).
    tail: u64,
    /// Position of the oldest frame still intact (as published).
    oldest: u64,
    /// Start positions of every frame from `oldest` to `tail`, in order:
    /// what moving `oldest` forward steps over, kept privately so a
    /// subscriber cannot make the publisher misjudge it.
    frames: VecDeque<u64>,
    /// Sequence number of the next message.
    seq: u64,
    spin: Duration,
    light: bool,
    pid: u32,
    closed: bool,
    /// Per slot, the attach count at which that slot's subscriber was
    /// found dead: it is ignored until another subscriber takes the slot.
    dead: Vec<Option<u32>>,
    /// Wake-ups issued, to look for dead sleepers now and then.
    wakes: u32,
}

impl Publisher {
    /// Creates the named topic (block policy, 16 subscriber slots) and
    /// attaches as its publisher; removed when the publisher drops unless
    /// [`keep`](Self::keep) is called.
    pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<Self> {
        TopicOptions::new().capacity(capacity).create_publisher(name)
    }

    /// Opens an existing topic as its publisher.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        TopicOptions::new().open_publisher(name)
    }

    /// Leaves a topic this publisher created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.t.keep();
    }

    /// The largest message this topic carries.
    pub fn max_message_len(&self) -> usize {
        self.t.ring.max_len() as usize
    }

    /// The policy chosen when the topic was created.
    pub fn policy(&self) -> Policy {
        self.t.policy
    }

    /// How many subscribers are attached and alive now (one lock check per
    /// slot in use).
    pub fn subscribers(&self) -> Result<usize> {
        let mut n = 0;
        for i in 0..self.t.slots {
            if self.t.slot(i).state.load(Ordering::Acquire) == ATTACHED && self.t.locked(lock_byte(i), OP)? {
                n += 1;
            }
        }
        Ok(n)
    }

    fn err(&self, cause: Cause) -> Error {
        Error::new(OP, &self.t.label, cause)
    }

    pub(super) fn attach(mut t: TopicMap, spin: Duration) -> Result<Self> {
        const ATTACH: &str = "attach to topic";
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        if let Err(e) = t.lock(PUBLISHER_LOCK_BYTE) {
            if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
                let holder = t.header().publisher.0.pid.load(Ordering::Relaxed);
                return Err(Error::new(
                    ATTACH,
                    &t.label,
                    Cause::InUse {
                        side: "publisher",
                        pid: holder,
                    },
                ));
            }
            return Err(Error::new(ATTACH, &t.label, e));
        }
        let light = wait::register_fast_path(spin);
        let h = t.header();
        // Continue after whatever a predecessor published, walking its
        // frames from the oldest it kept (each checked): they are what the
        // subscribers still read.
        let oldest = h.oldest.0.load(Ordering::Acquire);
        if oldest % ring::FRAME_ALIGN != 0 {
            return Err(t.corrupted(ATTACH, format!("oldest position {oldest} is not aligned")));
        }
        let mut frames = VecDeque::with_capacity((t.ring.capacity() / ring::FRAME_ALIGN) as usize + 1);
        // The predecessor stored `count` after each frame: one past the
        // last frame's number, or that number if it died in between.
        let count = h.count.0.load(Ordering::Acquire);
        let (mut pos, mut seq, mut ended) = (oldest, count, false);
        while pos.wrapping_sub(oldest) < t.ring.capacity() {
            let step = match t.ring.peek(pos).map_err(|c| t.corrupted(ATTACH, c.0))? {
                Peek::Empty(_) => break,
                Peek::Pad(skip) => skip,
                Peek::Frame { len, tag, .. } => {
                    seq = seq_near(tag, count).wrapping_add(1);
                    ended = false;
                    ring::frame_size(len)
                }
                Peek::Closed | Peek::Aborted => {
                    ended = true;
                    ring::FRAME_ALIGN
                }
            };
            frames.push_back(pos);
            pos = pos.wrapping_add(step);
        }
        if pos.wrapping_sub(oldest) > t.ring.capacity() {
            return Err(t.corrupted(ATTACH, format!("frames run past the ring from position {oldest}")));
        }
        let side = &h.publisher.0;
        side.light.store(u32::from(light), Ordering::Release);
        side.sleeping.store(0, Ordering::Release);
        side.pid.store(pid, Ordering::Release);
        side.attaches.fetch_add(1, Ordering::AcqRel);
        let before_state = side.state.swap(ATTACHED, Ordering::AcqRel);
        h.tail.0.store(pos, Ordering::Release);
        h.count.0.store(seq, Ordering::Release);
        if before_state != ATTACHED || ended || frames.is_empty() {
            h.stream.0.fetch_add(1, Ordering::AcqRel);
        }
        let slots = t.slots as usize;
        let publisher = Self {
            t,
            tail: pos,
            oldest,
            frames,
            seq,
            spin,
            light,
            pid,
            closed: false,
            dead: vec![None; slots],
            wakes: 0,
        };
        // An async subscriber asleep waiting for a publisher learns that
        // one came (it raised its bit before it looked at this lock).
        fence(Ordering::SeqCst);
        publisher.ring_sleepers();
        Ok(publisher)
    }

    /// The lowest position a live subscriber still needs (the tail when
    /// none does). A subscriber found dead, or whose head is impossible, is
    /// not waited for; a head behind `oldest` is a subscriber joining,
    /// which moves itself forward.
    fn needed(&self) -> u64 {
        let mut min = self.tail;
        for i in 0..self.t.slots {
            let s = self.t.slot(i);
            if s.state.load(Ordering::Acquire) != ATTACHED {
                continue;
            }
            if self.dead[i as usize] == Some(s.attaches.load(Ordering::Acquire)) {
                continue;
            }
            let head = s.head.load(Ordering::SeqCst);
            let head = if before(head, self.oldest) { self.oldest } else { head };
            if before(self.tail, head) {
                continue;
            }
            if before(head, min) {
                min = head;
            }
        }
        min
    }

    /// How many frames from the front can go (their space reused) without
    /// passing `bound`, stopping once `len` fits with a quarter of the
    /// ring to spare (or everything that may go has gone).
    fn reclaimable(&self, len: u64, bound: u64) -> usize {
        let ring = self.t.ring;
        let spare = ring.capacity() / 4;
        let mut k = 0;
        let mut oldest = self.oldest;
        while k < self.frames.len() {
            let fits = !matches!(ring.room(self.tail, oldest, len), Room::Full);
            if fits && ring.free(self.tail, oldest) >= spare.min(ring.capacity() - ring::SLACK) {
                break;
            }
            let next = self.frames.get(k + 1).copied().unwrap_or(self.tail);
            if before(bound, next) {
                break;
            }
            oldest = next;
            k += 1;
        }
        k
    }

    /// The position `oldest` moves to when `k` frames go.
    fn oldest_after(&self, k: usize) -> u64 {
        self.frames.get(k).copied().unwrap_or(self.tail)
    }

    /// Moves `oldest` forward so a frame of `len` bytes fits, as far as
    /// the policy allows; whether it moved. The new `oldest` is published
    /// (with a full barrier) before any of the space is written, so a
    /// subscriber still copying from it sees that and drops the copy; and
    /// a subscriber that joined meanwhile with an older position is seen
    /// after the barrier and respected.
    fn reclaim(&mut self, len: u64) -> bool {
        let block = self.t.policy == Policy::Block;
        let bound = if block { self.needed() } else { self.tail };
        let mut k = self.reclaimable(len, bound);
        if k == 0 {
            return false;
        }
        let h = self.t.header();
        loop {
            h.oldest.0.store(self.oldest_after(k), Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !block {
                break;
            }
            let again = self.reclaimable(len, self.needed()).min(k);
            if again == k {
                break;
            }
            k = again;
            if k == 0 {
                h.oldest.0.store(self.oldest, Ordering::SeqCst);
                return false;
            }
        }
        self.oldest = self.oldest_after(k);
        self.frames.drain(..k);
        true
    }

    /// Makes room for a frame of `len` bytes.
    #[inline]
    fn make_room(&mut self, len: u64, wait: Wait) -> Result<()> {
        let ring = self.t.ring;
        if !self.closed && matches!(ring.room(self.tail, self.oldest, len), Room::Fits) {
            return Ok(());
        }
        self.make_room_slow(len, wait)
    }

    #[inline(never)]
    fn make_room_slow(&mut self, len: u64, wait: Wait) -> Result<()> {
        let ring = self.t.ring;
        if self.closed {
            return Err(self.err(Cause::Closed { side: "publisher" }));
        }
        if len > ring.max_len() {
            return Err(self.err(Cause::TooLarge {
                len: len as usize,
                limit: self.max_message_len(),
                limit_name: "the topic's largest message",
            }));
        }
        let mut waiter = Waiter::new(self.spin, wait.deadline());
        loop {
            self.t.check_intact(OP)?;
            match ring.room(self.tail, self.oldest, len) {
                Room::Fits => return Ok(()),
                Room::Pad(size) => {
                    let at = self.tail;
                    self.tail = ring.publish_pad(at, size);
                    self.frames.push_back(at);
                    self.announce();
                    continue;
                }
                Room::Full => {}
            }
            if self.reclaim(len) {
                continue;
            }
            // Only a block-policy topic gets here: the slowest live
            // subscriber has not freed the room yet.
            if let Wait::No = wait {
                return Err(self.err(Cause::Full));
            }
            let h = self.t.header();
            let seen = h.progress.0.load(Ordering::SeqCst);
            let oldest = self.oldest;
            let ready = || {
                // Room frees once the slowest needed position moved on.
                !before(self.needed(), self.frames.get(1).copied().unwrap_or(self.tail)) || self.oldest != oldest
            };
            match waiter.pause(&h.publisher.0.sleeping, true, &h.progress.0, seen, ready, || Err(())) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                // A sleep ran its course: look for subscribers that died.
                Err(Stop::Failed(())) => self.sweep(false)?,
            }
        }
    }

    /// Looks at the lock of every slot in use (`sleepers_only`: of every
    /// slot whose sleeping bit is set): a dead subscriber is not waited
    /// for again and its sleeping bit is cleared.
    fn sweep(&mut self, sleepers_only: bool) -> Result<()> {
        let h = self.t.header();
        for i in 0..self.t.slots {
            let s = self.t.slot(i);
            let (word, bit) = (&h.sleepers.0[(i / 64) as usize], 1u64 << (i % 64));
            if sleepers_only && word.load(Ordering::Relaxed) & bit == 0 {
                continue;
            }
            if s.state.load(Ordering::Acquire) != ATTACHED && !sleepers_only {
                continue;
            }
            let attaches = s.attaches.load(Ordering::Acquire);
            if self.dead[i as usize] == Some(attaches) {
                continue;
            }
            if !self.t.locked(lock_byte(i), OP)? {
                self.dead[i as usize] = Some(attaches);
                word.fetch_and(!bit, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Publishes the new tail and count, and wakes sleeping subscribers.
    #[inline(always)]
    fn announce(&mut self) {
        let h = self.t.header();
        h.tail.0.store(self.tail, Ordering::Release);
        h.count.0.store(self.seq, Ordering::Release);
        wait::light_fence(self.light);
        let words = self.t.slots.div_ceil(64) as usize;
        if h.sleepers.0[..words].iter().any(|w| w.load(Ordering::Relaxed) != 0) {
            self.wake_all();
        }
    }

    /// Wakes every sleeping subscriber: an async one (its slot names a
    /// doorbell) by ringing it and clearing its bit — one ring per sleep —
    /// and the blocking ones with one futex wake-up.
    #[cold]
    fn wake_all(&mut self) {
        if self.ring_sleepers() {
            let _ = futex::wake(low_half(&self.t.header().tail.0), futex::Flags::empty(), wait::WAKE_ALL);
        }
        // A subscriber killed while asleep leaves its bit set: look for
        // such bits now and then, so the wake-ups stop.
        self.wakes = self.wakes.wrapping_add(1);
        if self.wakes % 1024 == 0 {
            let _ = self.sweep(true);
        }
    }

    /// Rings the async sleepers (clearing their bits), and says whether a
    /// blocking one needs the futex.
    fn ring_sleepers(&self) -> bool {
        let h = self.t.header();
        let words = self.t.slots.div_ceil(64) as usize;
        let mut futex_needed = false;
        for (w, word) in h.sleepers.0[..words].iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let bit = 1u64 << bits.trailing_zeros();
                bits &= !bit;
                let i = w as u32 * 64 + bit.trailing_zeros();
                // A bit past the slots (written by someone else) wakes no
                // one but costs only the futex call.
                let nonce = if i < self.t.slots {
                    self.t.slot(i).bell.load(Ordering::Acquire)
                } else {
                    0
                };
                if nonce == 0 {
                    futex_needed = true;
                } else if word.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
                    bell::ring(nonce);
                }
            }
        }
        futex_needed
    }

    /// Publishes a frame of `len` payload bytes written at the current
    /// position, tagged with the low half of its sequence number.
    #[inline(always)]
    fn publish(&mut self, len: u64) {
        let at = self.tail;
        self.frames.push_back(at);
        self.tail = self.t.ring.publish(at, len, self.seq as u32);
        self.seq = self.seq.wrapping_add(1);
        self.announce();
    }

    fn send_with(&mut self, msg: &[u8], wait: Wait) -> Result<()> {
        self.make_room(msg.len() as u64, wait)?;
        let ring = self.t.ring;
        // SAFETY: make_room guaranteed the frame's bytes are free ring space.
        unsafe { copy::copy_to_shared(ring.at(ring.payload_index(self.tail)), msg, ring.small()) };
        self.publish(msg.len() as u64);
        Ok(())
    }

    /// Publishes `msg` to every subscriber, waiting (block policy) while
    /// the slowest live subscriber has not made room.
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`] (nothing sent), [`Cause::Corrupted`],
    /// [`Cause::Truncated`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Forever)
    }

    /// Publishes `msg` if there is room now; [`Cause::Full`] otherwise
    /// (never, with the overwrite policy).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::No)
    }

    /// Publishes `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Wait::timeout(timeout))
    }

    /// Publishes a plain-old-data value as one message.
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Reserves `len` bytes in the ring (waiting for room) to be written in
    /// place and [committed](PublishSlot::commit): the message is then
    /// written exactly once, wherever it goes.
    pub fn reserve(&mut self, len: usize) -> Result<PublishSlot<'_>> {
        self.make_room(len as u64, Wait::Forever)?;
        Ok(PublishSlot { p: self, len })
    }

    /// Waits until every live subscriber has read everything published so
    /// far (block and overwrite policies alike), at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`].
    pub fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        let mut waiter = Waiter::new(self.spin, Wait::timeout(timeout).deadline());
        loop {
            if self.needed() == self.tail {
                return Ok(());
            }
            let h = self.t.header();
            let seen = h.progress.0.load(Ordering::SeqCst);
            let ready = || self.needed() == self.tail;
            match waiter.pause(&h.publisher.0.sleeping, true, &h.progress.0, seen, ready, || Err(())) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                Err(Stop::Failed(())) => self.sweep(false)?,
            }
        }
    }

    /// Ends the stream: every subscriber gets what was published, then
    /// `Ok(None)`. Dropping the publisher does the same.
    pub fn close(mut self) -> Result<()> {
        self.end_stream(ring::CLOSE, Wait::Forever)
    }

    /// [`close`](Self::close), waiting at most `timeout` for room for the
    /// end marker (block policy, a subscriber that does not read).
    pub fn close_timeout(mut self, timeout: Duration) -> Result<()> {
        self.end_stream(ring::CLOSE, Wait::timeout(timeout))
    }

    /// Abandons the stream: subscribers get [`Cause::Aborted`] after what
    /// was published.
    pub fn abort(mut self) -> Result<()> {
        self.end_stream(ring::ABORT, Wait::Forever)
    }

    fn end_stream(&mut self, marker: u32, wait: Wait) -> Result<()> {
        let mine = rustix::process::getpid().as_raw_nonzero().get() as u32 == self.pid;
        if self.closed || !mine {
            self.closed = true;
            return Ok(());
        }
        // A marker is one line, and the producer always keeps one free.
        self.make_room(0, wait)?;
        let at = self.tail;
        self.frames.push_back(at);
        self.tail = self.t.ring.publish_marker(at, marker);
        self.closed = true;
        let h = self.t.header();
        h.tail.0.store(self.tail, Ordering::SeqCst);
        h.publisher.0.state.store(CLOSED, Ordering::SeqCst);
        // Every blocking subscriber, asleep or about to be; the async ones
        // that are asleep.
        self.ring_sleepers();
        let _ = futex::wake(low_half(&h.tail.0), futex::Flags::empty(), wait::WAKE_ALL);
        Ok(())
    }
}

/// What an async publisher (the `tokio` module) needs: it sleeps on a
/// doorbell (the publisher side names it) that subscribers ring as they
/// free room, instead of the futex.
#[cfg(feature = "tokio")]
impl Publisher {
    /// Publishes the doorbell's nonce.
    pub(crate) fn park_init(&mut self, nonce: u64) {
        self.t.header().publisher.0.bell.store(nonce, Ordering::SeqCst);
    }

    /// Raises the flag subscribers look at after freeing room (the next
    /// look for room must follow).
    pub(crate) fn raise_bell(&self) {
        // Subscribers may use the light fence: the membarrier pairs with it.
        wait::raise_bell(&self.t.header().publisher.0, true);
    }

    /// Lowers the flag: subscribers stop ringing.
    pub(crate) fn lower_bell(&self) {
        self.t.header().publisher.0.sleeping.store(0, Ordering::SeqCst);
    }

    /// Looks for subscribers that died, so they are not waited for.
    pub(crate) fn sweep_dead(&mut self) -> Result<()> {
        self.sweep(false)
    }

    /// Ends the stream if the end marker fits now ([`Cause::Full`]
    /// otherwise): `abort` chooses the marker.
    pub(crate) fn try_end(&mut self, abort: bool) -> Result<()> {
        self.end_stream(if abort { ring::ABORT } else { ring::CLOSE }, Wait::No)
    }

    /// The topic's name, for errors.
    pub(crate) fn label(&self) -> &str {
        &self.t.label
    }
}

/// The lock byte of subscriber slot `i`.
pub(super) fn lock_byte(i: u32) -> i64 {
    1 + i64::from(i)
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let marker = if std::thread::panicking() {
            ring::ABORT
        } else {
            ring::CLOSE
        };
        // Never block in drop: without room for the marker now, the
        // subscribers see the publisher's death instead.
        let _ = self.end_stream(marker, Wait::No);
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.t.label)
            .field("policy", &self.t.policy)
            .field("position", &self.tail)
            .finish()
    }
}

/// Space reserved by [`Publisher::reserve`]: fill it, then
/// [`commit`](Self::commit). Dropped without commit, nothing is published.
pub struct PublishSlot<'a> {
    p: &'a mut Publisher,
    len: usize,
}

impl fmt::Debug for PublishSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishSlot").field("len", &self.len).finish()
    }
}

impl PublishSlot<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self) -> *mut u8 {
        let ring = self.p.t.ring;
        ring.at(ring.payload_index(self.p.tail))
    }

    /// Copies `data` into the slot at `offset`.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if it does not fit in the slot.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        // SAFETY: the reserved frame is free ring space owned by the
        // publisher until commit.
        unsafe { copy::write_within(self.ptr(), self.len, offset, data) }.map_err(|c| self.p.err(c))
    }

    /// Publishes the whole slot.
    pub fn commit(self) {
        self.p.publish(self.len as u64);
    }
}
