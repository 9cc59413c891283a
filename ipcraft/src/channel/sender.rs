//! The sending end: [`Sender`], zero-copy [`SendSlot`]s, and
//! [`SendError`].

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::copy;
use super::layout::{ATTACHED, CLOSED, RECEIVER_LOCK_BYTE};
use super::object::{low_half, peer_is_light, Attachment, End, Endpoint, Mapped, Wait};
use super::ring::{self, Room};
use super::wait::{self, Stop, Waiter};
use super::ChannelOptions;
use crate::error::{Cause, Error, Result};
use crate::sys;

/// The sender publishes its position (the header's `tail`, which only
/// `stat` and the next sender's attach read, each scanning the committed
/// frames on from it) each time it crosses a multiple of this many bytes,
/// not after every message: in a stream of small messages the sender waits
/// on its stores (each new ring line comes from the receiver's cache, and
/// stores leave the CPU in order), and one store less per message took a
/// 64-byte stream from 21 to 27–30 M/s. A scan covers less than this, plus
/// one frame.
const TAIL_STRIDE: u64 = 4096;

const SEND_OP: &str = "send to channel";
/// What a wait for the receiver to take everything sent is reported as.
const FLUSH_OP: &str = "wait for the receiver to take what was sent to channel";

/// An error from a send of an owned message ([`Sender::send_pod`]), with
/// the message that was not sent. Byte-slice sends return a plain
/// [`Error`]: the caller still has the slice.
///
/// It holds only owned values, so `?` turns it into a `Box<dyn Error>` or
/// an [`Error`].
pub struct SendError<T> {
    message: T,
    error: Error,
}

impl<T> SendError<T> {
    /// The message, unsent.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Why it went wrong (`Full`, `TimedOut`, `Closed`, `PeerDied`,
    /// `TooLarge`, `Corrupted`, ...).
    pub fn cause(&self) -> &Cause {
        self.error.cause()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Self {
        e.error
    }
}

/// The sending end.
pub struct Sender {
    mapped: Mapped,
    /// Private write position (the shared one is only published).
    tail: u64,
    /// Last consumer position accepted (validated, monotonic).
    head: u64,
    /// Frames may be written from `tail` up to this position without
    /// looking at anything else: the room the last look found, up to the
    /// ring's end (see [`Ring::writable`](ring::Ring::writable)). Equal to
    /// `tail` (no room) whenever this side must look: before it attaches,
    /// after a new start position, once closed. Its distance from `tail`
    /// is the one check on the fast path.
    limit: u64,
    att: Attachment,
    closed: bool,
    /// Whether this sender has seen a receiver alive (its lock held) since
    /// it attached: a receiver gone after that left this stream.
    receiver_seen: bool,
    /// How many receivers had attached when this sender did.
    receivers_before: u32,
}

impl Sender {
    /// Creates the named channel (exclusive, mode 0600, `capacity` bytes
    /// rounded up to a power of two) and attaches as its sender.
    pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<Self> {
        ChannelOptions::new().capacity(capacity).create_sender(name)
    }

    /// Opens an existing named channel as its sender.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ChannelOptions::new().open_sender(name)
    }

    /// Leaves a channel this sender created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.mapped.keep();
    }

    /// The largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.mapped.ring.max_len() as usize
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.mapped.ring.capacity()
    }

    fn err(&self, cause: impl Into<Cause>) -> Error {
        Error::new(SEND_OP, &self.mapped.label, cause)
    }

    /// Fails unless this sender may still send, and attaches it.
    fn check_open(&mut self) -> Result<()> {
        if self.closed {
            return Err(self.err(Cause::Closed { side: "sender" }));
        }
        self.ensure_attached()
    }

    /// Loads and checks the receiver's position.
    fn load_head(&mut self) -> Result<u64> {
        let head = self.mapped.header().head.0.load(Ordering::Acquire);
        self.mapped
            .ring
            .check_head(head, self.head, self.tail)
            .map_err(|c| self.mapped.corrupted(SEND_OP, c))?;
        self.head = head;
        Ok(head)
    }

    /// Whether the receiver is still there for this stream. A live lock
    /// (whatever the state words say) means yes. With the lock free: a
    /// receiver this sender saw alive, or one that attached since this
    /// sender did, has left (closed) or died; one that was absent or had
    /// finished before this sender came is not waited on in vain, as the
    /// next receiver may still come.
    fn receiver_present(mapped: &Mapped, seen: &mut bool, receivers_before: u32) -> Result<()> {
        if mapped.peer_alive(RECEIVER_LOCK_BYTE, SEND_OP)? {
            *seen = true;
            return Ok(());
        }
        let side = &mapped.header().receiver.0;
        let (state, pid) = (side.state.load(Ordering::Acquire), side.pid.load(Ordering::Relaxed));
        let since = side.attaches.load(Ordering::Acquire) != receivers_before;
        let cause = match state {
            CLOSED if *seen || since => Cause::Closed { side: "receiver" },
            ATTACHED => Cause::PeerDied { side: "receiver", pid },
            _ if *seen => Cause::PeerDied { side: "receiver", pid },
            _ => return Ok(()),
        };
        Err(Error::new(SEND_OP, &mapped.label, cause))
    }

    /// Waits until `enough(head, spinning)` holds for the receiver's
    /// position (`spinning` while the wait has not yet gone to sleep),
    /// sleeping on it, and checking that the receiver is still there
    /// whenever a sleep times out (after looking at its position once more:
    /// what it took before it went, it took).
    fn wait_for_head(&mut self, wait: Wait, mut enough: impl FnMut(u64, bool) -> bool) -> Result<()> {
        let mut waiter = Waiter::new(self.att.spin, wait.deadline());
        let mut polls = 0u32;
        loop {
            self.mapped.check_intact(SEND_OP)?;
            // While spinning, look at the receiver's position only now and
            // then: every look pulls its cache line over, and the receiver
            // pays for that on its next store.
            polls = polls.wrapping_add(1);
            if polls > 1 && polls % 16 != 0 && !waiter.is_sleeping() {
                std::hint::spin_loop();
                continue;
            }
            let head = self.load_head()?;
            if enough(head, !waiter.is_sleeping()) {
                return Ok(());
            }
            if let Wait::No = wait {
                return Err(self.err(Cause::Full));
            }
            let (mapped, seen, before) = (&self.mapped, &mut self.receiver_seen, self.receivers_before);
            let h = mapped.header();
            let word = low_half(&h.head.0);
            let ready = || h.head.0.load(Ordering::SeqCst) != head;
            let mut gone = None;
            let liveness = || -> std::result::Result<(), ()> {
                match Self::receiver_present(mapped, seen, before) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        gone = Some(e);
                        Err(())
                    }
                }
            };
            let peer_light = peer_is_light(&h.receiver.0);
            match waiter.pause(&h.sender.0.sleeping, peer_light, word, head as u32, ready, liveness) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                Err(Stop::Failed(())) => {
                    if enough(self.load_head()?, false) {
                        return Ok(());
                    }
                    return Err(gone.unwrap_or_else(|| self.err(Cause::Closed { side: "receiver" })));
                }
            }
        }
    }

    /// Whether a frame of `len` bytes can be written at `self.tail` now, by
    /// this side's last look at the receiver's position.
    #[inline(always)]
    fn fits_now(&self, len: usize) -> bool {
        len as u64 <= self.mapped.ring.max_len() && ring::frame_size(len as u64) <= self.limit.wrapping_sub(self.tail)
    }

    /// Makes room for a frame of `len` bytes at `self.tail`: at once when
    /// the ring has room by this side's last look (the common case, kept
    /// small enough to inline), otherwise through [`make_room_slow`](Self::make_room_slow).
    #[inline(always)]
    fn make_room(&mut self, len: usize, wait: Wait) -> Result<()> {
        if self.fits_now(len) {
            return Ok(());
        }
        self.make_room_slow(len, wait)
    }

    /// [`make_room`](Self::make_room) when the frame does not fit by the last look: checks,
    /// padding, waiting.
    #[inline(never)]
    fn make_room_slow(&mut self, len: usize, wait: Wait) -> Result<()> {
        let ring = self.mapped.ring;
        if len as u64 > ring.max_len() {
            return Err(self.err(Cause::TooLarge {
                len,
                limit: self.max_message_len(),
                limit_name: "the channel's largest message",
            }));
        }
        self.check_open()?;
        loop {
            match ring.room(self.tail, self.head, len as u64) {
                Room::Fits => {
                    self.limit = self.tail.wrapping_add(ring.writable(self.tail, self.head));
                    return Ok(());
                }
                Room::Pad(size) => {
                    let at = self.tail;
                    self.tail = ring.publish_pad(at, size);
                    // At the ring's start: no room until the next look.
                    self.limit = self.tail;
                    self.announce(at);
                    continue;
                }
                Room::Full => {}
            }
            // While spinning, resume only once a quarter of the ring (or the
            // frame, if larger) is free: a busy receiver then drains a
            // stretch without this side reading its position after every
            // message, and the sender writes a stretch in one go. Once the
            // wait sleeps (a receiver that is not draining), any room that
            // fits the frame will do: never wait for room that may not come.
            let tail = self.tail;
            let want = (ring.capacity() / 4).max(ring::frame_size(len as u64) + ring::SLACK);
            let fits = |head| !matches!(ring.room(tail, head, len as u64), Room::Full);
            match self.wait_for_head(wait, |head, spinning| {
                if spinning {
                    ring.free(tail, head) >= want
                } else {
                    fits(head)
                }
            }) {
                Ok(()) => {}
                // Out of time, or not to wait: the room there is may still
                // be enough for this frame.
                Err(e) if matches!(e.cause(), Cause::TimedOut | Cause::Full) && fits(self.head) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Publishes the new tail when it crossed a [`TAIL_STRIDE`] boundary,
    /// and wakes a sleeping receiver, whose futex word is the stamp word at
    /// `at` (the frame just published).
    #[inline(always)]
    fn announce(&mut self, at: u64) {
        let h = self.mapped.header();
        if (at ^ self.tail) >= TAIL_STRIDE {
            h.tail.0.store(self.tail, Ordering::Release);
        }
        wait::light_fence(self.att.light);
        if h.receiver.0.sleeping.load(Ordering::Relaxed) != 0 {
            wait::wake(&h.receiver.0, self.mapped.ring.stamp_word(at));
        }
    }

    /// Publishes the frame of `len` bytes, tagged `tag`, written at the
    /// current position.
    #[inline(always)]
    fn publish(&mut self, len: usize, tag: u32) {
        let at = self.tail;
        self.tail = self.mapped.ring.publish(at, len as u64, tag);
        self.announce(at);
    }

    fn send_with(&mut self, msg: &[u8], wait: Wait) -> Result<()> {
        self.send_tagged(0, msg, wait)
    }

    /// This sender's write position (bytes ever written to the ring, as
    /// it continues them).
    pub(crate) fn position(&self) -> u64 {
        self.tail
    }

    /// Sends `msg` with `tag` in its frame's header (a service's request
    /// id; 0 in a plain channel), copying it once.
    ///
    /// A message shorter than [`OPAQUE_MIN`](copy::OPAQUE_MIN) that fits by
    /// this side's last look at the receiver's position takes a path small
    /// enough to need one saved register; everything else goes through
    /// [`send_slow`](Self::send_slow). In a stream of small messages the
    /// sender waits on its stores (each new ring line is fetched from the
    /// receiver's cache, and stores leave the CPU in order), so every store
    /// a message adds — a register pushed, a result written to memory —
    /// holds the next line's back.
    #[inline(always)]
    pub(crate) fn send_tagged(&mut self, tag: u32, msg: &[u8], wait: Wait) -> Result<()> {
        let len = msg.len();
        // (A frame that fits is at most the largest.)
        debug_assert!(self.limit.wrapping_sub(self.tail) <= self.mapped.ring.capacity());
        if len < copy::OPAQUE_MIN && ring::frame_size(len as u64) <= self.limit.wrapping_sub(self.tail) {
            self.write_frame(msg);
            self.publish(len, tag);
            return Ok(());
        }
        self.send_slow(tag, msg, wait)
    }

    /// [`send_tagged`](Self::send_tagged) for a large message or one
    /// that does not fit by the last look: makes room (checks, padding,
    /// waiting), then writes and publishes.
    #[inline(never)]
    fn send_slow(&mut self, tag: u32, msg: &[u8], wait: Wait) -> Result<()> {
        self.make_room(msg.len(), wait)?;
        self.write_frame(msg);
        self.publish(msg.len(), tag);
        Ok(())
    }

    /// Copies `msg` into the frame at the current position, for which room
    /// was made (on the fast path, where `msg` is known to be short, only
    /// the short copy is compiled in).
    #[inline(always)]
    fn write_frame(&mut self, msg: &[u8]) {
        let ring = self.mapped.ring;
        let at = ring.at(ring.payload_index(self.tail));
        // SAFETY: room was made for `msg.len()` bytes of free ring at the
        // payload index of the current position.
        unsafe { copy::copy_to_shared(at, msg, ring.small()) };
    }

    /// Sends `msg`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`] (nothing sent), [`Cause::Closed`] when the
    /// receiver has closed, [`Cause::PeerDied`], [`Cause::Corrupted`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Forever)
    }

    /// Sends `msg` if there is room now; [`Cause::Full`] otherwise.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::No)
    }

    /// Sends `msg`, waiting at most `timeout` for room ([`Cause::TimedOut`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Wait::timeout(timeout))
    }

    /// Sends a plain-old-data value as one message of `size_of::<T>()`
    /// bytes; on failure the value comes back in the [`SendError`].
    ///
    /// A struct needs `#[repr(C)]` and no hidden padding to be [`Pod`]:
    /// make any padding an explicit field, as the [crate docs](crate#typed-messages) show.
    ///
    /// [`Pod`]: crate::Pod
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: T) -> std::result::Result<(), SendError<T>> {
        self.send_with(bytemuck::bytes_of(&value), Wait::Forever)
            .map_err(|error| SendError { message: value, error })
    }

    /// Reserves `len` bytes in the ring (waiting for room) to be filled in
    /// place and [committed](SendSlot::commit). Dropping the slot sends
    /// nothing.
    pub fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::Forever)?;
        Ok(SendSlot { tx: self, len })
    }

    /// Reserves `len` bytes if there is room now; [`Cause::Full`] otherwise.
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::No)?;
        Ok(SendSlot { tx: self, len })
    }

    /// Reserves `len` bytes, waiting at most `timeout`.
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::timeout(timeout))?;
        Ok(SendSlot { tx: self, len })
    }

    /// Waits until the receiver has taken every message sent so far.
    ///
    /// # Errors
    ///
    /// [`Cause::PeerDied`] if the receiver died, [`Cause::Closed`] if it
    /// left, with messages still in the ring; no error if no receiver has
    /// come yet, only the wait (a receiver that comes takes them).
    pub fn flush(&mut self) -> Result<()> {
        self.flush_with(Wait::Forever)
    }

    /// [`flush`](Self::flush), waiting at most `timeout` ([`Cause::TimedOut`]).
    pub fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.flush_with(Wait::timeout(timeout))
    }

    fn flush_with(&mut self, wait: Wait) -> Result<()> {
        self.ensure_attached()?;
        let tail = self.tail;
        // Everything is in the ring by now: an error says that it is the
        // receiver's taking that failed or ran out of time, not the send.
        self.wait_for_head(wait, |head, _| head == tail)
            .map_err(|e| e.relabel(FLUSH_OP, &self.mapped.label))
    }

    /// Ends the stream: the receiver gets what was sent, then `Ok(None)`.
    /// Dropping the sender does the same (or aborts the stream when the
    /// thread is panicking). Returns once the end is in the ring, without
    /// waiting for the receiver: see [`close_timeout`](Self::close_timeout).
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush), when the ring is full and the end marker
    /// must wait for room.
    pub fn close(mut self) -> Result<()> {
        // Closing on purpose is a use: a pair's sender that never sent
        // attaches here, so its receiver still gets the end.
        self.ensure_attached()?;
        self.end_stream(ring::CLOSE, Wait::Forever)
    }

    /// Ends the stream and waits, at most `timeout`, until the receiver has
    /// taken everything, the end included: success means the receiver got
    /// every byte.
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`], [`Cause::PeerDied`], [`Cause::Closed`].
    pub fn close_timeout(mut self, timeout: Duration) -> Result<()> {
        let wait = Wait::timeout(timeout);
        self.ensure_attached()?;
        self.end_stream(ring::CLOSE, wait)?;
        self.flush_with(wait)
    }

    /// Abandons the stream: the receiver gets what was sent, then
    /// [`Cause::Aborted`] instead of the end of stream, so a failure on the
    /// sending side never looks like a complete stream.
    pub fn abort(mut self) -> Result<()> {
        self.ensure_attached()?;
        self.end_stream(ring::ABORT, Wait::Forever)
    }

    /// Publishes an end marker (waiting as `wait` allows for its line) and
    /// marks this side closed, in that order: a receiver that sees the
    /// state sees the marker.
    fn end_stream(&mut self, marker: u32, wait: Wait) -> Result<()> {
        // After fork, only the process that attached may end the stream.
        if self.closed || !self.att.is_mine() {
            self.closed = true;
            return Ok(());
        }
        let ring = self.mapped.ring;
        let tail = self.tail;
        self.wait_for_head(wait, |head, _| ring.free(tail, head) >= ring::FRAME_ALIGN)?;
        self.closed = true;
        let at = self.tail;
        self.tail = ring.publish_marker(at, marker);
        self.limit = self.tail;
        self.announce(at);
        let h = self.mapped.header();
        h.sender.0.state.store(CLOSED, Ordering::SeqCst);
        wait::wake(&h.receiver.0, ring.stamp_word(at));
        Ok(())
    }
}

#[cfg(feature = "tokio")]
impl Sender {
    /// Ends the stream if the end marker's line is free now
    /// ([`Cause::Full`] otherwise): `abort` chooses the marker.
    pub(crate) fn try_end(&mut self, abort: bool) -> Result<()> {
        self.ensure_attached()?;
        self.end_stream(if abort { ring::ABORT } else { ring::CLOSE }, Wait::No)
    }

    /// [`flush`](Self::flush) without waiting ([`Cause::Full`] while the
    /// receiver has not taken everything).
    pub(crate) fn try_flush(&mut self) -> Result<()> {
        self.flush_with(Wait::No)
    }

    /// Whether a frame of `len` bytes fits now (`Ok(false)`: wait for room).
    pub(crate) fn has_room(&mut self, len: usize) -> Result<bool> {
        match self.make_room(len, Wait::No) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.cause(), Cause::Full) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(feature = "tokio")]
impl super::Park for Sender {
    fn park_init(&mut self, nonce: u64) -> Result<()> {
        self.att.no_spin_unless_attached();
        self.ensure_attached()?;
        self.att.publish_bell(&self.mapped, nonce);
        Ok(())
    }

    fn park_release(&mut self) {
        self.att.withdraw_bell(&self.mapped);
    }

    fn arm(&mut self) -> bool {
        self.att.raise_bell(&self.mapped);
        self.mapped.header().head.0.load(Ordering::SeqCst) != self.head
    }

    fn peer_identity(&self) -> (u32, u32, u32) {
        self.att.peer_identity(&self.mapped)
    }

    fn label(&self) -> &str {
        &self.mapped.label
    }

    fn flag(&self) -> super::FlagRef<'_> {
        super::FlagRef::Word(self.att.flag(&self.mapped))
    }

    fn peer(&mut self) -> Result<Option<u32>> {
        if let Some(pid) = self.att.live_peer(&self.mapped, SEND_OP)? {
            self.receiver_seen = true;
            return Ok(Some(pid));
        }
        Self::receiver_present(&self.mapped, &mut self.receiver_seen, self.receivers_before).map(|()| None)
    }
}

impl Endpoint for Sender {
    /// A sender that attaches on first use; its positions are read (and
    /// checked) then.
    fn unattached(mapped: Mapped, spin: Duration) -> Self {
        Self {
            mapped,
            tail: 0,
            head: 0,
            limit: 0,
            att: Attachment::new(End::Sender, spin),
            closed: false,
            receiver_seen: false,
            receivers_before: 0,
        }
    }

    fn ensure_attached(&mut self) -> Result<()> {
        if self.att.is_attached() {
            return Ok(());
        }
        // Start from wherever the shared positions are (0 for a new
        // channel), checked before attaching: a handle that failed to attach
        // never writes at a position it did not check.
        let h = self.mapped.header();
        let head = h.head.0.load(Ordering::Acquire);
        let tail = self.mapped.ring.scan_from(h.tail.0.load(Ordering::Acquire), head);
        if tail % ring::FRAME_ALIGN != 0 {
            return Err(self.err(Cause::Corrupted(format!("write position {tail} is not aligned"))));
        }
        self.mapped
            .ring
            .check_head(head, head, tail)
            .map_err(|c| self.err(Cause::Corrupted(c.0)))?;
        self.receivers_before = h.receiver.0.attaches.load(Ordering::Acquire);
        let predecessor = h.sender.0.pid.load(Ordering::Acquire);
        let before = self.att.attach(&self.mapped)?;
        // A predecessor that died may have published frames without
        // publishing its position: continue after the last committed one
        // (a frame it reserved but never committed is never delivered).
        let (tail, ended) = self
            .mapped
            .ring
            .committed_end(tail, head)
            .map_err(|c| self.err(Cause::Corrupted(c.0)))?;
        h.tail.0.store(tail, Ordering::Release);
        // A new stream starts unless this sender takes over one whose sender
        // died mid-stream. A takeover is recorded (the dead sender's pid,
        // then the count), so a receiver that never saw the death between
        // the two senders still reports it.
        if before != ATTACHED || ended {
            h.stream.0.fetch_add(1, Ordering::AcqRel);
        } else {
            h.sender.0.died.store(predecessor, Ordering::Release);
            h.sender.0.takeovers.fetch_add(1, Ordering::AcqRel);
        }
        // No room until the first look.
        (self.tail, self.head, self.limit) = (tail, head, tail);
        // A receiver alive now is one this sender has seen: if it goes, it
        // left this stream.
        self.receiver_seen = self.mapped.peer_alive(RECEIVER_LOCK_BYTE, SEND_OP)?;
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Never block in drop: the marker goes in only if its line is free
        // now. Otherwise the stream is left without an end, which the
        // receiver reports as the sender's death once it has read the rest.
        let marker = if std::thread::panicking() {
            ring::ABORT
        } else {
            ring::CLOSE
        };
        // Errors cannot be reported from drop; `close` reports them.
        let _ = self.end_stream(marker, Wait::No);
        self.att.depart(&self.mapped);
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.mapped.label)
            .field("capacity", &self.capacity())
            .field("position", &self.tail)
            .finish()
    }
}

/// Space reserved in the ring by [`Sender::reserve`]: fill it, then
/// [`commit`](Self::commit). Dropped without commit, nothing is sent.
pub struct SendSlot<'a> {
    tx: &'a mut Sender,
    len: usize,
}

impl fmt::Debug for SendSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSlot")
            .field("channel", &self.tx.mapped.label)
            .field("len", &self.len)
            .finish()
    }
}

impl SendSlot<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the reserved bytes in shared memory. Writing through it
    /// is `unsafe`; [`write_at`](Self::write_at) is the safe way.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        let ring = self.tx.mapped.ring;
        ring.at(ring.payload_index(self.tx.tail))
    }

    /// Copies `data` into the slot at `offset`.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if it does not fit in the slot.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        // SAFETY: the reserved slot is free ring space owned by this sender
        // until commit.
        unsafe { copy::write_within(self.as_mut_ptr(), self.len, offset, data) }.map_err(|c| self.tx.err(c))
    }

    /// Stores a plain-old-data value in the slot at `offset`.
    pub fn write_pod<T: bytemuck::Pod>(&mut self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// The slot as a mutable slice.
    ///
    /// # Safety
    ///
    /// The receiving process must not write into the ring (an honest
    /// receiver never does): the slice is exclusive only in this process.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot is free ring space reserved by this sender; the
        // caller vouches for the other process.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Reads up to `len` bytes from `fd` straight into the slot (one
    /// `read(2)`); returns the count, 0 at end of file.
    pub fn read_from(&mut self, fd: impl AsFd) -> Result<usize> {
        let (ptr, len) = (self.as_mut_ptr(), self.len);
        // SAFETY: the slot's `len` bytes are writable ring space owned by
        // this sender; the kernel writes them.
        match unsafe { sys::read_raw(fd.as_fd(), ptr, len) } {
            Ok(n) => Ok(n),
            // The kernel found the ring's pages gone: the object was shrunk.
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Err(self.tx.err(Cause::Truncated)),
            Err(e) => Err(Error::new("read into", "channel slot", e)),
        }
    }

    /// Sends the whole slot.
    pub fn commit(self) {
        self.tx.publish(self.len, 0);
    }

    /// Sends the first `len` bytes of the slot.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if `len` is more than was reserved (nothing is sent).
    pub fn commit_len(self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(self.tx.err(Cause::OverLimit {
                requested: len as u64,
                limit: self.len as u64,
                limit_name: "the reserved slot",
            }));
        }
        self.tx.publish(len, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::pair;
    use crate::error::Cause;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A random mix of non-blocking sends (lengths on both sides of the
        /// fast paths' limit) and receives on the smallest ring, against a
        /// queue: every message arrives once, whole and in order, and a
        /// send fails only with `Full` — the sender's cached room never
        /// runs past what the receiver freed, padding at the ring's end
        /// (published by a send that then finds no room) included.
        #[test]
        fn non_blocking_sends_and_receives_agree_with_a_queue(ops in prop::collection::vec((any::<bool>(), 0usize..1200), 1..300)) {
            let (mut tx, mut rx) = pair(4096).unwrap();
            let mut queue = VecDeque::new();
            let mut buf = vec![0u8; 4096];
            for (i, (send, len)) in ops.into_iter().enumerate() {
                if send {
                    let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                    match tx.try_send(&msg) {
                        Ok(()) => queue.push_back(msg),
                        Err(e) => prop_assert!(matches!(e.cause(), Cause::Full), "{}", e),
                    }
                } else {
                    match rx.try_recv(&mut buf) {
                        Ok(Some(n)) => {
                            let want = queue.pop_front();
                            prop_assert_eq!(Some(&buf[..n]), want.as_deref());
                        }
                        Ok(None) => prop_assert!(false, "end of stream"),
                        Err(e) => {
                            prop_assert!(matches!(e.cause(), Cause::Empty), "{}", e);
                            prop_assert!(queue.is_empty(), "empty with {} queued", queue.len());
                        }
                    }
                }
            }
            while let Some(want) = queue.pop_front() {
                let n = rx.try_recv(&mut buf).unwrap().unwrap();
                prop_assert_eq!(&buf[..n], &want[..]);
            }
        }
    }
}
