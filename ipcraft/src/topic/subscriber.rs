//! The subscribing end.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use super::layout::{seq_near, Slot, ABSENT, ATTACHED, PUBLISHER_LOCK_BYTE};
use super::object::TopicMap;
use super::publisher::lock_byte;
use super::{before, TopicOptions};
use crate::channel::copy::{self, Chooser, Dest};
use crate::channel::object::{low_half, Wait};
use crate::channel::ring::{self, Peek};
use crate::channel::wait::{self, Bit, Flag, Stop, Waiter};
use crate::error::{Cause, Error, Result};
use crate::sys;

const OP: &str = "receive from topic";

/// A subscribing end of a topic.
pub struct Subscriber {
    t: TopicMap,
    slot: u32,
    /// Private read position (the shared one is only published).
    head: u64,
    /// Sequence number of the next message (unknown until the first).
    expected: Option<u64>,
    /// Moved on to the oldest frame held after being overtaken: `expected`
    /// says nothing about the next frame's number.
    jumped: bool,
    ended: bool,
    /// Whether a publisher has been seen alive since this subscriber came.
    publisher_seen: bool,
    /// The publisher's death, reported once everything it published has
    /// been delivered.
    publisher_gone: Option<Error>,
    spin: Duration,
    light: bool,
    pid: u32,
    /// How large messages are copied out of the ring.
    copier: Chooser,
}

impl Subscriber {
    /// Opens the named topic as a subscriber (first free slot, starting at
    /// the next message).
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        TopicOptions::new().open_subscriber(name)
    }

    /// The slot this subscriber holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The largest message this topic carries.
    pub fn max_message_len(&self) -> usize {
        self.t.ring.max_len() as usize
    }

    fn err(&self, cause: Cause) -> Error {
        Error::new(OP, &self.t.label, cause)
    }

    fn me(&self) -> &Slot {
        self.t.slot(self.slot)
    }

    fn sleep_bit(&self) -> Bit<'_> {
        Bit(
            &self.t.header().sleepers.0[(self.slot / 64) as usize],
            1 << (self.slot % 64),
        )
    }

    pub(super) fn attach(mut t: TopicMap, spin: Duration, history: bool) -> Result<Self> {
        const ATTACH: &str = "attach to topic";
        let mut slot = None;
        for i in 0..t.slots {
            match t.lock(lock_byte(i)) {
                Ok(()) => {
                    slot = Some(i);
                    break;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {}
                Err(e) => return Err(Error::new(ATTACH, &t.label, e)),
            }
        }
        let Some(slot) = slot else {
            return Err(Error::new(
                ATTACH,
                &t.label,
                Cause::LimitReached {
                    limit_name: "the topic's subscriber slots, all in use,",
                    limit: u64::from(t.slots),
                },
            ));
        };
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        let light = wait::register_fast_path(spin);
        let mut sub = Self {
            copier: Chooser::new(t.ring.capacity()),
            t,
            slot,
            head: 0,
            expected: None,
            jumped: false,
            ended: false,
            publisher_seen: false,
            publisher_gone: None,
            spin,
            light,
            pid,
        };
        let h = sub.t.header();
        // The count read before and after the positions. The one after is
        // read after `tail`, which the publisher stores first: every frame
        // before `tail` is at most that count, and no more than the ring's
        // frames behind it while it is still held (checked after the walk).
        // When the two agree, no message was published in between, so it
        // is also the number of the next message after `tail` — what a
        // subscriber expects when nothing is held (so a lag before its
        // first message is counted too). A publisher that keeps them apart
        // leaves that unknown.
        let (tail, oldest, count, settled) = {
            let mut tries = 0;
            loop {
                let first = h.count.0.load(Ordering::Acquire);
                let (tail, oldest) = (h.tail.0.load(Ordering::Acquire), h.oldest.0.load(Ordering::Acquire));
                let again = h.count.0.load(Ordering::Acquire);
                tries += 1;
                if first == again || tries == 64 {
                    break (tail, oldest, again, first == again);
                }
            }
        };
        sub.check_span(oldest, tail, ATTACH)?;
        let s = sub.me();
        s.light.store(u32::from(light), Ordering::Release);
        s.pid.store(pid, Ordering::Release);
        // A blocking subscriber until `park_init` says otherwise (an async
        // one that held the slot may have left its nonce).
        s.bell.store(0, Ordering::Release);
        sub.sleep_bit().lower();
        // Publish the start before the state, then look at `oldest` after a
        // full barrier: either the publisher sees this slot before it
        // reuses the space, or this side sees that it moved on, and starts
        // there (see Publisher::reclaim).
        let (mut start, expected) = sub.start(oldest, tail, count, settled, history)?;
        s.head.store(start, Ordering::SeqCst);
        s.attaches.fetch_add(1, Ordering::AcqRel);
        s.state.store(ATTACHED, Ordering::SeqCst);
        loop {
            fence(Ordering::SeqCst);
            let now = h.oldest.0.load(Ordering::SeqCst);
            if !before(start, now) {
                break;
            }
            sub.check_span(now, h.tail.0.load(Ordering::Acquire), ATTACH)?;
            start = now;
            s.head.store(start, Ordering::SeqCst);
        }
        sub.head = start;
        sub.expected = expected;
        sub.publisher_seen = sub.t.locked(PUBLISHER_LOCK_BYTE, ATTACH)?;
        Ok(sub)
    }

    /// Where the current stream starts among the frames held from
    /// `oldest` to `tail`, and the sequence number expected there. The
    /// current stream starts after the last end marker — unless that
    /// marker ends what is held and no publisher is alive, when the last
    /// (complete) stream is the current one. With `history` false the
    /// subscriber starts at `tail`, expecting one more than the last
    /// message held — or, with none held, `count` if it was `settled`
    /// (unchanged around the reading of `tail`). `count`, read after
    /// `tail`, also gives the walked frames' whole sequence numbers.
    fn start(&self, oldest: u64, tail: u64, count: u64, settled: bool, history: bool) -> Result<(u64, Option<u64>)> {
        let ring = self.t.ring;
        let mut pos = oldest;
        // (start, sequence number of its first message) of the stream
        // being walked and of the one before it.
        let (mut current, mut previous) = ((oldest, None), (oldest, None));
        let (mut next, mut ended) = (None, false);
        while before(pos, tail) {
            let peeked = match ring.peek(pos) {
                Ok(peeked) => peeked,
                // Being written over (overwrite policy): what is held ends
                // here as far as this look goes; the join then checks
                // `oldest` again.
                Err(_) if before(pos, self.t.header().oldest.0.load(Ordering::Acquire)) => break,
                Err(c) => return Err(self.t.corrupted("attach to topic", c.0)),
            };
            let step = match peeked {
                Peek::Empty(_) => break,
                Peek::Pad(skip) => skip,
                Peek::Frame { len, tag, .. } => {
                    let seq = seq_near(tag, count);
                    current.1 = current.1.or(Some(seq));
                    next = Some(seq.wrapping_add(1));
                    ended = false;
                    ring::frame_size(len)
                }
                Peek::Closed | Peek::Aborted => {
                    previous = current;
                    current = (pos.wrapping_add(ring::FRAME_ALIGN), None);
                    ended = true;
                    ring::FRAME_ALIGN
                }
            };
            pos = pos.wrapping_add(step);
        }
        // No message held: the next one is the settled count (number 0
        // if nothing was ever published).
        let next = next.or(settled.then_some(count)).or((tail == 0).then_some(0));
        if !history {
            return Ok((tail, next));
        }
        if ended && !self.t.locked(PUBLISHER_LOCK_BYTE, "attach to topic")? {
            return Ok((previous.0, previous.1.or(next)));
        }
        Ok((current.0, current.1.or(next)))
    }

    /// Checks a pair of published positions: aligned, at most a ring apart.
    fn check_span(&self, oldest: u64, tail: u64, op: &'static str) -> Result<()> {
        if oldest % ring::FRAME_ALIGN != 0 || tail % ring::FRAME_ALIGN != 0 || before(tail, oldest) {
            return Err(self
                .t
                .corrupted(op, format!("positions {oldest}..{tail} are impossible")));
        }
        if tail.wrapping_sub(oldest) > self.t.ring.capacity() {
            return Err(self
                .t
                .corrupted(op, format!("positions {oldest}..{tail} span more than the ring")));
        }
        Ok(())
    }

    /// Whether the frame at this subscriber's position may have been
    /// overwritten (the publisher moved `oldest` past it).
    #[inline(always)]
    fn overtaken(&self) -> bool {
        before(self.head, self.t.header().oldest.0.load(Ordering::Acquire))
    }

    /// Moves past `bytes` and tells a publisher waiting for room.
    fn advance(&mut self, bytes: u64) {
        self.head = self.head.wrapping_add(bytes);
        let h = self.t.header();
        self.me().head.store(self.head, Ordering::Release);
        wait::light_fence(self.light);
        if h.publisher.0.sleeping.load(Ordering::Relaxed) != 0 {
            self.wake_publisher();
        }
    }

    /// Tells a sleeping publisher (blocking or async) that room may have
    /// freed.
    #[cold]
    fn wake_publisher(&self) {
        let h = self.t.header();
        h.progress.0.fetch_add(1, Ordering::SeqCst);
        wait::wake(&h.publisher.0, &h.progress.0);
    }

    /// Whether a publisher is there to finish the stream (see the
    /// channel receiver's `sender_present`).
    fn publisher_present(&mut self) -> Result<()> {
        if self.t.locked(PUBLISHER_LOCK_BYTE, OP)? {
            self.publisher_seen = true;
            return Ok(());
        }
        let side = &self.t.header().publisher.0;
        let pid = side.pid.load(Ordering::Relaxed);
        if side.state.load(Ordering::Acquire) == ATTACHED || self.publisher_seen {
            return Err(self.err(Cause::PeerDied { side: "publisher", pid }));
        }
        Ok(())
    }

    /// The next frame: `Some((ring index of its payload, length, tag))`,
    /// or `None` at the end of the stream.
    #[inline]
    fn next_frame(&mut self, wait: Wait) -> Result<Option<(u64, u64, u32)>> {
        if !self.ended && !self.overtaken() {
            if let Ok(Peek::Frame { at, len, tag }) = self.t.ring.peek(self.head) {
                return Ok(Some((at, len, tag)));
            }
        }
        self.next_frame_slow(wait, false)
    }

    /// [`next_frame`](Self::next_frame) when no frame is ready: padding,
    /// end markers, being overtaken, waiting.
    ///
    /// `polled`: the caller polled the next stamp already, so the first
    /// look does not poll again.
    #[inline(never)]
    fn next_frame_slow(&mut self, wait: Wait, polled: bool) -> Result<Option<(u64, u64, u32)>> {
        if self.ended {
            return Ok(None);
        }
        let ring = self.t.ring;
        let mut waiter = Waiter::polling(self.spin, wait.deadline());
        let mut skip_poll = polled;
        loop {
            // A tight poll first, as in the channel's receiver: a message
            // on its way is seen a few cycles after it lands, without
            // touching the publisher's lines.
            if !skip_poll && !matches!(wait, Wait::No) && !waiter.is_sleeping() {
                ring.poll_published(self.head);
            }
            skip_poll = false;
            self.t.check_intact(OP)?;
            let h = self.t.header();
            let oldest = h.oldest.0.load(Ordering::Acquire);
            if before(self.head, oldest) {
                // Overtaken (overwrite policy): continue from the oldest
                // message held; its sequence number tells how many were missed.
                self.check_span(oldest, h.tail.0.load(Ordering::Acquire), OP)?;
                let skip = oldest.wrapping_sub(self.head);
                self.advance(skip);
                // However many were missed, even a multiple of 2^32: the
                // next frame's number comes from the count.
                self.jumped = true;
                continue;
            }
            let peeked = match ring.peek(self.head) {
                Ok(peeked) => peeked,
                // Read while the publisher was writing over it (overwrite
                // policy): the next look continues from `oldest`.
                Err(_) if self.overtaken() => continue,
                Err(c) => return Err(self.t.corrupted(OP, c.0)),
            };
            match peeked {
                Peek::Frame { at, len, tag } => return Ok(Some((at, len, tag))),
                Peek::Pad(skip) => {
                    self.advance(skip);
                    continue;
                }
                Peek::Closed => {
                    self.advance(ring::FRAME_ALIGN);
                    self.ended = true;
                    return Ok(None);
                }
                Peek::Aborted => {
                    self.advance(ring::FRAME_ALIGN);
                    self.ended = true;
                    return Err(self.err(Cause::Aborted));
                }
                Peek::Empty(_) => {}
            }
            if let Some(e) = self.publisher_gone.take() {
                return Err(e);
            }
            if let Wait::No = wait {
                return Err(self.err(Cause::Empty));
            }
            // The futex value: read after the look above, before the look
            // `pause` takes with the flag up (a frame published in between
            // changed it, so the sleep returns at once).
            let observed = low_half(&h.tail.0).load(Ordering::SeqCst);
            let head = self.head;
            let ready = || ring.is_published(head) || before(head, h.oldest.0.load(Ordering::SeqCst));
            let peer_light = h.publisher.0.light.load(Ordering::Acquire) != 0;
            let bit = self.sleep_bit();
            match waiter.pause(&bit, peer_light, low_half(&h.tail.0), observed, ready, || Err(())) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                // Look at the ring once more before reporting a death.
                Err(Stop::Failed(())) => self.publisher_gone = self.publisher_present().err(),
            }
        }
    }

    /// Takes the frame tagged `tag` at this subscriber's position if it is
    /// still intact and in sequence: `Ok(Some(seq))`; `Ok(None)` if it was
    /// overwritten meanwhile (look again); [`Cause::Lagged`] when messages
    /// were missed before it (it stays, for the next call).
    fn accept(&mut self, tag: u32) -> Result<Option<u64>> {
        let seq = match self.expected {
            Some(exp) if !self.jumped && exp as u32 == tag => exp,
            // Behind (or first): the whole number from the count, read
            // before `oldest` is checked below, so while the frame is still
            // held the count is at most the ring's frames past it.
            _ => seq_near(tag, self.t.header().count.0.load(Ordering::Acquire)),
        };
        fence(Ordering::Acquire);
        if self.overtaken() {
            return Ok(None);
        }
        match self.expected {
            Some(exp) if seq != exp => {
                if before(exp, seq) {
                    self.expected = Some(seq);
                    self.jumped = false;
                    return Err(self.err(Cause::Lagged {
                        missed: seq.wrapping_sub(exp),
                    }));
                }
                Err(self
                    .t
                    .corrupted(OP, format!("message {seq} after message {}", exp.wrapping_sub(1))))
            }
            _ => {
                self.jumped = false;
                Ok(Some(seq))
            }
        }
    }

    /// Inlined into each public receive (`wait` a constant): a short
    /// message that is there is taken by [`take_small`](Self::take_small);
    /// on an empty ring a subscriber that may spin polls
    /// ([`recv_polling`](Self::recv_polling)); the rest is
    /// [`recv_slow`](Self::recv_slow).
    #[inline(always)]
    fn recv_with(&mut self, buf: &mut [u8], wait: Wait) -> Result<Option<usize>> {
        if !self.ended {
            if let Some(n) = self.take_small(buf) {
                return Ok(Some(n));
            }
            // (A subscriber set not to spin sleeps at once.)
            if !matches!(wait, Wait::No) && !self.spin.is_zero() {
                return self.recv_polling(buf, wait);
            }
        }
        self.recv_slow(buf, wait, false)
    }

    /// Takes the next message if it is short, there, the one expected (or
    /// the first), and fits in `buf`; `None` leaves everything else —
    /// lag, corruption, a frame overwritten meanwhile, a message too long
    /// for `buf` — to [`recv_slow`](Self::recv_slow), which looks again.
    #[inline(always)]
    fn take_small(&mut self, buf: &mut [u8]) -> Option<usize> {
        let ring = self.t.ring;
        let (at, len, tag) = ring.peek_small(self.head, copy::OPAQUE_MIN as u64)?;
        let n = len as usize;
        // The message expected: the first one and any after a gap go the
        // slow way, which works out their whole sequence numbers.
        let seq = self.expected.filter(|&exp| exp as u32 == tag)?;
        // SAFETY: peek_small checked that the frame's `len` bytes at ring
        // index `at` lie in the ring.
        if !unsafe { buf.fill_small(ring.at(at), n, ring.small()) } {
            return None;
        }
        // The header and the copy were read before `oldest` is:
        // if the publisher had begun to write over the frame, it had moved
        // `oldest` past it first (see `Publisher::reclaim`).
        fence(Ordering::Acquire);
        if self.overtaken() {
            return None;
        }
        self.expected = Some(seq.wrapping_add(1));
        self.advance(ring::frame_size(len));
        Some(n)
    }

    /// [`recv_with`](Self::recv_with) on an empty ring: polls the next
    /// stamp and takes a short message that lands by the fast path; out of
    /// line, so the fast path stays small.
    #[inline(never)]
    fn recv_polling(&mut self, buf: &mut [u8], wait: Wait) -> Result<Option<usize>> {
        if self.t.ring.poll_published(self.head) {
            if let Some(n) = self.take_small(buf) {
                return Ok(Some(n));
            }
        }
        self.recv_slow(buf, wait, true)
    }

    /// [`recv_with`](Self::recv_with) for everything but a short message
    /// that is there: waiting, long messages, lag, padding, end markers,
    /// errors. `polled` as for [`next_frame_slow`](Self::next_frame_slow).
    #[inline(never)]
    fn recv_slow(&mut self, buf: &mut [u8], wait: Wait, mut polled: bool) -> Result<Option<usize>> {
        loop {
            let frame = if polled {
                polled = false;
                self.next_frame_slow(wait, true)?
            } else {
                self.next_frame(wait)?
            };
            let Some((at, len, tag)) = frame else {
                return Ok(None);
            };
            let Some(seq) = self.accept(tag)? else { continue };
            let n = len as usize;
            // SAFETY: peek checked the frame lies in the ring.
            if let Err(room) = unsafe { buf.fill_from_shared(self.t.ring.at(at), n, self.copier.route()) } {
                return Err(self.err(Cause::BufferTooSmall {
                    len: room,
                    need: n,
                    limit_name: "the message",
                }));
            }
            fence(Ordering::Acquire);
            if self.overtaken() {
                continue;
            }
            self.copier.copied(n);
            self.expected = Some(seq.wrapping_add(1));
            self.advance(ring::frame_size(len));
            return Ok(Some(n));
        }
    }

    /// Receives the next message into `buf`, waiting while there is none.
    /// `None` once the publisher has closed the stream and everything
    /// before the end has been received.
    ///
    /// # Errors
    ///
    /// [`Cause::Lagged`] (overwrite policy: messages were overwritten
    /// before this subscriber read them; the next call continues with the
    /// oldest held), [`Cause::BufferTooSmall`] (the message stays),
    /// [`Cause::PeerDied`], [`Cause::Aborted`], [`Cause::Corrupted`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::Forever)
    }

    /// Receives a message if one is waiting; [`Cause::Empty`] otherwise.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::No)
    }

    /// Receives a message, waiting at most `timeout` ([`Cause::TimedOut`]).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::timeout(timeout))
    }

    /// Receives the next message as a new vector.
    pub fn recv_vec(&mut self) -> Result<Option<Vec<u8>>> {
        self.vec_with(Wait::Forever)
    }

    /// The next message as a new vector, as `wait` allows.
    pub(crate) fn vec_with(&mut self, wait: Wait) -> Result<Option<Vec<u8>>> {
        let msg = self.view_with(wait)?.map(|view| view.to_vec()).transpose()?;
        // A copy out of the ring, as `recv`'s: it counts for the routine.
        if let Some(msg) = &msg {
            self.copier.copied(msg.len());
        }
        Ok(msg)
    }

    /// Receives a plain-old-data value sent with [`Publisher::send_pod`](super::Publisher::send_pod).
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<Option<T>> {
        self.pod_with(Wait::Forever)
    }

    /// The next plain-old-data value, as `wait` allows.
    pub(crate) fn pod_with<T: bytemuck::Pod>(&mut self, wait: Wait) -> Result<Option<T>> {
        let mut value = T::zeroed();
        let want = std::mem::size_of::<T>();
        let Some(view) = self.view_with(wait)? else {
            return Ok(None);
        };
        if view.len() != want {
            return Err(view.sub.err(Cause::Corrupted(format!(
                "message is {} bytes; a {} is {want}",
                view.len(),
                std::any::type_name::<T>()
            ))));
        }
        view.copy_to(0, bytemuck::bytes_of_mut(&mut value))?;
        Ok(Some(value))
    }

    /// Lends the next message in place (zero-copy) until the view drops.
    /// With the block policy the publisher never writes over a message
    /// while a view of it lives; with the overwrite policy it may, and the
    /// view's reads then fail with [`Cause::Lagged`].
    pub fn recv_view(&mut self) -> Result<Option<TopicView<'_>>> {
        self.view_with(Wait::Forever)
    }

    /// [`recv_view`](Self::recv_view) waiting at most `timeout`.
    pub fn recv_view_timeout(&mut self, timeout: Duration) -> Result<Option<TopicView<'_>>> {
        self.view_with(Wait::timeout(timeout))
    }

    fn view_with(&mut self, wait: Wait) -> Result<Option<TopicView<'_>>> {
        loop {
            let Some((at, len, tag)) = self.next_frame(wait)? else {
                return Ok(None);
            };
            if let Some(seq) = self.accept(tag)? {
                return Ok(Some(TopicView {
                    sub: self,
                    at,
                    len: len as usize,
                    seq,
                }));
            }
        }
    }
}

/// An async subscriber (the `tokio` module) sleeps on a doorbell whose
/// nonce its slot names; its sleeping bit is its flag, which the publisher
/// clears as it rings (so a bit found clear on waking means a ring is owed).
impl crate::channel::Park for Subscriber {
    fn park_init(&mut self, nonce: u64) -> Result<()> {
        self.me().bell.store(nonce, Ordering::SeqCst);
        Ok(())
    }

    fn park_release(&mut self) {
        self.me().bell.store(0, Ordering::SeqCst);
    }

    fn arm(&mut self) -> bool {
        self.sleep_bit().raise();
        let h = self.t.header();
        wait::heavy_fence(h.publisher.0.light.load(Ordering::Acquire) != 0);
        self.t.ring.is_published(self.head) || self.overtaken()
    }

    fn flag(&self) -> crate::channel::FlagRef<'_> {
        let Bit(word, bit) = self.sleep_bit();
        crate::channel::FlagRef::Bit(word, bit)
    }

    #[cfg(feature = "tokio")]
    fn peer(&mut self) -> Result<Option<u32>> {
        if self.t.locked(PUBLISHER_LOCK_BYTE, OP)? {
            self.publisher_seen = true;
            return Ok(Some(self.t.header().publisher.0.pid.load(Ordering::Acquire)));
        }
        self.publisher_present().map(|()| None)
    }

    #[cfg(feature = "tokio")]
    fn peer_identity(&self) -> (u32, u32, u32) {
        let side = &self.t.header().publisher.0;
        (
            side.pid.load(Ordering::Acquire),
            side.attaches.load(Ordering::Acquire),
            side.leaving.load(Ordering::SeqCst),
        )
    }

    #[cfg(feature = "tokio")]
    fn label(&self) -> &str {
        &self.t.label
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if rustix::process::getpid().as_raw_nonzero().get() as u32 != self.pid {
            return;
        }
        self.me().state.store(ABSENT, Ordering::SeqCst);
        self.sleep_bit().lower();
        self.me().bell.store(0, Ordering::Release);
        // A publisher waiting for this subscriber's room need not wait.
        if self.t.header().publisher.0.sleeping.load(Ordering::SeqCst) != 0 {
            self.wake_publisher();
        }
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.t.label)
            .field("slot", &self.slot)
            .field("position", &self.head)
            .finish()
    }
}

/// A message lent in place by [`Subscriber::recv_view`]; the subscriber
/// moves past it when the view drops.
pub struct TopicView<'a> {
    sub: &'a mut Subscriber,
    at: u64,
    len: usize,
    seq: u64,
}

impl fmt::Debug for TopicView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicView")
            .field("len", &self.len)
            .field("seq", &self.seq)
            .finish()
    }
}

impl TopicView<'_> {
    /// Message length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message's sequence number (one more for each message published).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn ptr(&self) -> *const u8 {
        self.sub.t.ring.at(self.at)
    }

    /// Whether the publisher has not written over the message (always
    /// true with the block policy).
    pub fn is_intact(&self) -> bool {
        fence(Ordering::Acquire);
        !self.sub.overtaken()
    }

    fn intact(&self) -> Result<()> {
        if self.is_intact() {
            Ok(())
        } else {
            Err(self.sub.err(Cause::Lagged { missed: 1 }))
        }
    }

    /// Copies `dst.len()` bytes of the message from `offset`.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] past the message's end; [`Cause::Lagged`] if
    /// the message was overwritten (what `dst` holds is then meaningless).
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: peek checked that the frame lies in the ring.
        unsafe { copy::read_within(self.ptr(), self.len, offset, dst, self.sub.copier.route()) }
            .map_err(|c| self.sub.err(c))?;
        self.intact()
    }

    /// Copies the message into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.len];
        self.copy_to(0, &mut v)?;
        Ok(v)
    }

    /// Writes the message to `out` straight from shared memory with
    /// `write(2)`. With the overwrite policy, what was written may be torn
    /// when this returns [`Cause::Lagged`]: copy first where that matters.
    pub fn write_to(&self, out: impl AsFd) -> Result<()> {
        // SAFETY: the frame lies in the ring (checked by peek); the kernel reads it.
        match unsafe { sys::write_all_raw(out.as_fd(), self.ptr(), self.len) } {
            Ok(()) => self.intact(),
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Err(self.sub.err(Cause::Truncated)),
            Err(e) => Err(Error::new("write out", "topic message", e)),
        }
    }

    /// The message as a slice, without copying.
    ///
    /// # Safety
    ///
    /// No process may write into this frame while the slice lives: true of
    /// an honest publisher with the block policy, not with the overwrite
    /// policy (check [`is_intact`](Self::is_intact) after use, and treat
    /// what was read as garbage if it is not).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the frame lies in the ring; the caller vouches for the rest.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl Drop for TopicView<'_> {
    fn drop(&mut self) {
        self.sub.expected = Some(self.seq.wrapping_add(1));
        let len = ring::frame_size(self.len as u64);
        if self.sub.overtaken() {
            // Its space was reused: the next look continues from `oldest`.
            return;
        }
        self.sub.advance(len);
    }
}
