//! The receiving end: [`Receiver`] and zero-copy [`RecvView`]s.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::copy::{self, Chooser};
use super::layout::{ATTACHED, CLOSED, SENDER_LOCK_BYTE};
use super::object::{low_half, peer_is_light, Attachment, End, Endpoint, Mapped, Wait};
use super::ring::{self, Peek};
use super::wait::{self, Stop, Waiter};
use super::ChannelOptions;
use crate::error::{Cause, Error, Result};
use crate::sys;

const RECV_OP: &str = "receive from channel";

/// The receiving end.
pub struct Receiver {
    mapped: Mapped,
    /// Private read position (the shared one is only published).
    head: u64,
    att: Attachment,
    /// This receiver met the end of its stream (or its abort).
    ended: bool,
    /// Whether this receiver has seen a sender alive since it attached.
    sender_seen: bool,
    /// The sender's death, found while waiting: reported once everything
    /// it committed has been delivered.
    sender_gone: Option<Error>,
    /// The sender side's takeover count as this receiver last saw it.
    takeovers: u32,
    /// How large messages are copied out of the ring.
    copier: Chooser,
    /// The last frame this receiver moved past was one line long (see
    /// [`prefetch_next`](Self::prefetch_next)).
    one_line: bool,
}

impl Receiver {
    /// Creates the named channel and attaches as its receiver.
    pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<Self> {
        ChannelOptions::new().capacity(capacity).create_receiver(name)
    }

    /// Opens an existing named channel as its receiver.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ChannelOptions::new().open_receiver(name)
    }

    /// Leaves a channel this receiver created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.mapped.keep();
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.mapped.ring.capacity()
    }

    fn err(&self, cause: impl Into<Cause>) -> Error {
        Error::new(RECV_OP, &self.mapped.label, cause)
    }

    /// Finds the next frame: `Some((ring index, len, tag))`, or `None` at
    /// end of stream. A frame already there is taken at once (the common case,
    /// kept small enough to inline); everything else goes through
    /// [`next_frame_slow`](Self::next_frame_slow).
    #[inline(always)]
    fn next_frame(&mut self, wait: Wait) -> Result<Option<(u64, u64, u32)>> {
        if self.att.is_attached() && !self.ended {
            let ring = self.mapped.ring;
            self.prefetch_next();
            if let Ok(Peek::Frame { at, len, tag }) = ring.peek(self.head) {
                return Ok(Some((at, len, tag)));
            }
        }
        self.next_frame_slow(wait, false)
    }

    /// [`next_frame`](Self::next_frame) when no frame is ready: attaching,
    /// padding, end markers, corruption, waiting.
    ///
    /// `polled`: the caller polled the next stamp already ([`poll_briefly`](Self::poll_briefly)).
    #[inline(never)]
    fn next_frame_slow(&mut self, wait: Wait, polled: bool) -> Result<Option<(u64, u64, u32)>> {
        self.ensure_attached()?;
        if self.ended {
            return Ok(None);
        }
        let ring = self.mapped.ring;
        let mut tight_poll = !polled;
        let mut waiter = Waiter::new(self.att.spin, wait.deadline());
        loop {
            self.prefetch_next();
            let observed = match ring.peek(self.head).map_err(|c| self.mapped.corrupted(RECV_OP, c))? {
                Peek::Frame { at, len, tag } => return Ok(Some((at, len, tag))),
                Peek::Pad(skip) => {
                    self.advance(skip);
                    continue;
                }
                Peek::Closed => {
                    self.advance(ring::FRAME_ALIGN);
                    self.ended = true;
                    // A death between two senders of this stream is
                    // reported instead of the end (which the next call
                    // reports); the end marker is taken either way, so the
                    // last sender learns its stream was received.
                    if let Some(e) = self.takeover_death() {
                        return Err(e);
                    }
                    return Ok(None);
                }
                Peek::Aborted => {
                    if let Some(e) = self.takeover_death() {
                        return Err(e);
                    }
                    self.advance(ring::FRAME_ALIGN);
                    self.ended = true;
                    return Err(self.err(Cause::Aborted));
                }
                Peek::Empty(observed) => observed,
            };
            // A tight poll first (unless the caller made it), as a
            // hand-written ring would: see `poll_briefly`. Once per wait:
            // repeated before every pause of the wait it would stretch the
            // spin (the clock is read every 64 pauses) by 256 polls each.
            if tight_poll && !matches!(wait, Wait::No) && !waiter.is_sleeping() {
                tight_poll = false;
                if self.poll_briefly() {
                    continue;
                }
            }
            self.mapped.check_intact(RECV_OP)?;
            // Everything the sender committed is delivered by now: only
            // then is its death reported.
            if let Some(e) = self.sender_gone.take() {
                self.note_reported(&e);
                return Err(e);
            }
            if let Some(e) = self.takeover_death() {
                return Err(e);
            }
            if let Wait::No = wait {
                return Err(self.err(Cause::Empty));
            }
            let (mapped, seen) = (&self.mapped, &mut self.sender_seen);
            let h = mapped.header();
            let head = self.head;
            let ready = || ring.is_published(head);
            let mut gone = None;
            let liveness = || -> std::result::Result<(), ()> {
                match Self::sender_present(mapped, seen) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        gone = Some(e);
                        Err(())
                    }
                }
            };
            let peer_light = peer_is_light(&h.sender.0);
            let word = ring.stamp_word(head);
            match waiter.pause(&h.receiver.0.sleeping, peer_light, word, observed, ready, liveness) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                // Look at the ring once more before reporting it.
                Err(Stop::Failed(())) => self.sender_gone = gone,
            }
        }
    }

    /// Polls the stamp of the next frame ([`Ring::poll_published`](ring::Ring::poll_published)):
    /// whether it was published.
    #[inline(always)]
    fn poll_briefly(&self) -> bool {
        #[cfg(test)]
        tests::POLLS.with(|n| n.set(n.get() + 1));
        self.mapped.ring.poll_published(self.head)
    }

    /// The death of a sender that another took over from since this
    /// receiver last looked (see `Sender`'s attach): reported once, and not
    /// if a receiver of this channel (this one or an earlier one) reported
    /// that sender's death already. The receiver side's `died` word holds
    /// the last sender death a receiver reported.
    fn takeover_death(&mut self) -> Option<Error> {
        let h = self.mapped.header();
        let count = h.sender.0.takeovers.load(Ordering::Acquire);
        if count == self.takeovers {
            return None;
        }
        self.takeovers = count;
        let pid = h.sender.0.died.load(Ordering::Acquire);
        if pid == h.receiver.0.died.swap(pid, Ordering::AcqRel) {
            return None;
        }
        Some(self.err(Cause::PeerDied { side: "sender", pid }))
    }

    /// Records a sender death about to be reported (see
    /// [`takeover_death`](Self::takeover_death)), so a takeover record of
    /// the same death is not reported again, by this receiver or the next.
    pub(crate) fn note_reported(&mut self, e: &Error) {
        if let Cause::PeerDied { pid, .. } = e.cause() {
            if self.att.is_mine() {
                self.mapped.header().receiver.0.died.store(*pid, Ordering::Release);
            }
        }
    }

    /// Whether a sender is still there to finish the stream. A live lock
    /// (whatever the state words say) means yes. With the lock free: a
    /// sender this receiver saw alive, or one marked attached, died (an
    /// honest sender that finished wrote an end marker, which this receiver
    /// would have met first); an absent sender, or one that finished an
    /// earlier stream, is waited for.
    fn sender_present(mapped: &Mapped, seen: &mut bool) -> Result<()> {
        if mapped.peer_alive(SENDER_LOCK_BYTE, RECV_OP)? {
            *seen = true;
            return Ok(());
        }
        let side = &mapped.header().sender.0;
        let (state, pid) = (side.state.load(Ordering::Acquire), side.pid.load(Ordering::Relaxed));
        let cause = match state {
            ATTACHED => Cause::PeerDied { side: "sender", pid },
            _ if *seen => Cause::PeerDied { side: "sender", pid },
            _ => return Ok(()),
        };
        Err(Error::new(RECV_OP, &mapped.label, cause))
    }

    /// Asks for the line after the next frame's first, so that a frame of
    /// two lines arrives in one round of coherence traffic instead of two —
    /// unless the last frame was one line: then the next likely is too, and
    /// the line after it is the frame after, which the sender may be about
    /// to write; fetching it costs the sender that line back. (Measured on
    /// the Intel host, channels with and without it alternated in the same
    /// processes: 48-byte streams 5–35 % faster in 10 of 12 blocks, 48-byte
    /// round trips 61–63 against 65–72 ns where a line crosses in ~20 ns,
    /// alike elsewhere.)
    #[inline(always)]
    fn prefetch_next(&self) {
        if !self.one_line {
            self.mapped.ring.prefetch_after(self.head);
        }
    }

    /// Moves past `bytes` and tells a sender waiting for room.
    fn advance(&mut self, bytes: u64) {
        self.head = self.head.wrapping_add(bytes);
        self.one_line = bytes == ring::FRAME_ALIGN;
        let h = self.mapped.header();
        h.head.0.store(self.head, Ordering::Release);
        wait::light_fence(self.att.light);
        if h.sender.0.sleeping.load(Ordering::Relaxed) != 0 {
            wait::wake(&h.sender.0, low_half(&h.head.0));
        }
    }

    /// Inlined into each public receive, so the fast path has `wait` as a
    /// constant and not as two more live registers.
    #[inline(always)]
    fn recv_with(&mut self, buf: &mut [u8], wait: Wait) -> Result<Option<usize>> {
        self.recv_tagged(&mut (), buf, wait)
    }

    /// Receives the next message into `buf`, waiting while the ring is
    /// empty. Returns its length, or `None` once the sender has closed and
    /// everything it sent has been received.
    ///
    /// # Errors
    ///
    /// [`Cause::BufferTooSmall`] (the message stays for the next call),
    /// [`Cause::PeerDied`], [`Cause::Corrupted`].
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

    /// Receives a plain-old-data value sent with [`Sender::send_pod`](super::Sender::send_pod).
    ///
    /// # Errors
    ///
    /// [`Cause::Corrupted`] naming both sizes if the message is not exactly
    /// `size_of::<T>()` bytes (it is consumed).
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<Option<T>> {
        let Some(view) = self.recv_view()? else { return Ok(None) };
        view.read_pod::<T>().map(Some)
    }

    /// Lends the next message in place (zero-copy); the space is released
    /// when the view drops. `None` at end of stream.
    pub fn recv_view(&mut self) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::Forever)
    }

    /// [`recv_view`](Self::recv_view) without waiting ([`Cause::Empty`]).
    pub fn try_recv_view(&mut self) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::No)
    }

    /// [`recv_view`](Self::recv_view) waiting at most `timeout`.
    pub fn recv_view_timeout(&mut self, timeout: Duration) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::timeout(timeout))
    }

    fn view_with(&mut self, wait: Wait) -> Result<Option<RecvView<'_>>> {
        Ok(self.next_frame(wait)?.map(|(at, len, _)| RecvView {
            rx: self,
            at,
            len: len as usize,
        }))
    }
}

impl super::Park for Receiver {
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
        self.mapped.ring.is_published(self.head)
    }

    #[cfg(feature = "tokio")]
    fn peer_identity(&self) -> (u32, u32, u32) {
        self.att.peer_identity(&self.mapped)
    }

    #[cfg(feature = "tokio")]
    fn label(&self) -> &str {
        &self.mapped.label
    }

    fn flag(&self) -> super::FlagRef<'_> {
        super::FlagRef::Word(self.att.flag(&self.mapped))
    }

    #[cfg(feature = "tokio")]
    fn peer(&mut self) -> Result<Option<u32>> {
        if let Some(pid) = self.att.live_peer(&self.mapped, RECV_OP)? {
            self.sender_seen = true;
            return Ok(Some(pid));
        }
        Self::sender_present(&self.mapped, &mut self.sender_seen).map(|()| None)
    }
}

/// A channel's sender side as its receiver sees it (several loads, no
/// consistency between them: for the many-sender receiver's bookkeeping).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SenderView {
    /// Its lock is held now.
    pub alive: bool,
    pub pid: u32,
    pub attaches: u32,
    pub state: u32,
    /// The channel's stream counter.
    pub stream: u64,
}

impl Receiver {
    /// The sender side now.
    pub(crate) fn sender_view(&self) -> Result<SenderView> {
        let h = self.mapped.header();
        let side = &h.sender.0;
        let alive = self.mapped.peer_alive(SENDER_LOCK_BYTE, RECV_OP)?;
        Ok(SenderView {
            alive,
            pid: side.pid.load(Ordering::Acquire),
            attaches: side.attaches.load(Ordering::Acquire),
            state: side.state.load(Ordering::Acquire),
            stream: h.stream.0.load(Ordering::Acquire),
        })
    }

    /// Whether something (a frame, padding or an end marker) is published
    /// at this receiver's position, or it has not attached yet.
    #[inline]
    pub(crate) fn published(&self) -> bool {
        if !self.att.is_attached() {
            return true;
        }
        // As the receiver's own wait does: ask for the frame's second line
        // too, so it arrives with the first instead of after it.
        self.prefetch_next();
        self.mapped.ring.is_published(self.head)
    }

    /// After the end of a stream (or a sender's death, reported): wait for
    /// the next sender, whose stream follows in the ring.
    pub(crate) fn next_stream(&mut self) {
        self.ended = false;
        self.sender_seen = false;
        self.sender_gone = None;
    }

    /// `Ok` once a message, the end of the stream or an error is there to
    /// take; [`Cause::Empty`] otherwise.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_ready(&mut self) -> Result<()> {
        self.next_frame(Wait::No).map(|_| ())
    }

    /// Receives the next message into `rest` (a vector's contents are
    /// replaced; a slice must hold it) and its frame's tag into `tag` (a
    /// service's request id). Returns its length, or `None` at the end of
    /// the stream. Errors as [`recv`](Self::recv): with
    /// [`Cause::BufferTooSmall`] the message stays, its tag read.
    ///
    /// A message shorter than [`OPAQUE_MIN`](copy::OPAQUE_MIN) that is
    /// there and fits takes a path with no calls and few saved registers
    /// (two, against six before). When the ring is empty, the receive
    /// polls the next stamp briefly and takes a short message that lands
    /// by the same path ([`recv_polling`](Self::recv_polling)): in a round
    /// trip, the work between a message landing and the reply going out
    /// is the latency. Everything else goes through
    /// [`recv_slow`](Self::recv_slow).
    #[inline(always)]
    pub(crate) fn recv_tagged<T: TagOut, D: copy::Dest + ?Sized>(
        &mut self,
        tag: &mut T,
        rest: &mut D,
        wait: Wait,
    ) -> Result<Option<usize>> {
        if self.att.is_attached() && !self.ended {
            if let Some(len) = self.take_small(tag, rest) {
                return Ok(Some(len));
            }
            // (A receiver set not to spin sleeps at once.)
            if !matches!(wait, Wait::No) && !self.att.spin.is_zero() {
                return self.recv_polling(tag, rest, wait);
            }
        }
        self.recv_slow(tag, rest, wait, false)
    }

    /// Takes the next message if it is short, there, and fits: the fast
    /// path of [`recv_tagged`](Self::recv_tagged).
    #[inline(always)]
    fn take_small<T: TagOut, D: copy::Dest + ?Sized>(&mut self, tag: &mut T, rest: &mut D) -> Option<usize> {
        let ring = self.mapped.ring;
        self.prefetch_next();
        let (at, len, found) = ring.peek_small(self.head, copy::OPAQUE_MIN as u64)?;
        let len = len as usize;
        // SAFETY: peek_small checked that the frame's `len` bytes at ring
        // index `at` lie in the ring.
        if !unsafe { rest.fill_small(ring.at(at), len, ring.small()) } {
            return None;
        }
        tag.put(found);
        self.advance(ring::frame_size(len as u64));
        Some(len)
    }

    /// [`recv_tagged`](Self::recv_tagged) on an empty ring: polls the next
    /// stamp, and takes a short message that lands by the fast path; out
    /// of line, so that the fast path saves few registers (a stream's
    /// receives rarely come here), while a message that lands is taken
    /// here without a return in between.
    #[inline(never)]
    fn recv_polling<T: TagOut, D: copy::Dest + ?Sized>(
        &mut self,
        tag: &mut T,
        rest: &mut D,
        wait: Wait,
    ) -> Result<Option<usize>> {
        if self.poll_briefly() {
            if let Some(len) = self.take_small(tag, rest) {
                return Ok(Some(len));
            }
        }
        self.recv_slow(tag, rest, wait, true)
    }

    /// [`recv_tagged`](Self::recv_tagged) for everything but a short
    /// message that is there and fits: waiting, large messages, padding,
    /// end markers, errors.
    #[inline(never)]
    fn recv_slow<T: TagOut, D: copy::Dest + ?Sized>(
        &mut self,
        tag: &mut T,
        rest: &mut D,
        wait: Wait,
        polled: bool,
    ) -> Result<Option<usize>> {
        let frame = if polled {
            self.next_frame_slow(wait, true)?
        } else {
            self.next_frame(wait)?
        };
        let Some((at, len, found)) = frame else {
            return Ok(None);
        };
        tag.put(found);
        let len = len as usize;
        // SAFETY: peek checked that `len` bytes at ring index `at` lie in
        // the ring.
        let filled = unsafe { rest.fill_from_shared(self.mapped.ring.at(at), len, self.copier.route()) };
        if let Err(room) = filled {
            return Err(self.err(Cause::BufferTooSmall {
                len: room,
                need: len,
                limit_name: "the message",
            }));
        }
        self.copier.copied(len);
        self.advance(ring::frame_size(len as u64));
        Ok(Some(len))
    }
}

/// Where a receive puts the tag of the frame it took: a `u32` (a
/// service's lanes), or nowhere (`()`, a plain channel: its fast path then
/// neither extracts nor stores it).
pub(crate) trait TagOut {
    fn put(&mut self, tag: u32);
}

impl TagOut for u32 {
    #[inline(always)]
    fn put(&mut self, tag: u32) {
        *self = tag;
    }
}

impl TagOut for () {
    #[inline(always)]
    fn put(&mut self, _: u32) {}
}

impl Endpoint for Receiver {
    /// A receiver that attaches on first use; its position is read (and
    /// checked) then.
    fn unattached(mapped: Mapped, spin: Duration) -> Self {
        Self {
            copier: Chooser::new(mapped.ring.capacity()),
            one_line: false,
            mapped,
            head: 0,
            att: Attachment::new(End::Receiver, spin),
            ended: false,
            sender_seen: false,
            sender_gone: None,
            takeovers: 0,
        }
    }

    fn ensure_attached(&mut self) -> Result<()> {
        if self.att.is_attached() {
            return Ok(());
        }
        let head = self.mapped.header().head.0.load(Ordering::Acquire);
        if head % ring::FRAME_ALIGN != 0 {
            return Err(self.err(Cause::Corrupted(format!("read position {head} is not aligned"))));
        }
        // Takeovers before this receiver came are not its to report.
        self.takeovers = self.mapped.header().sender.0.takeovers.load(Ordering::Acquire);
        self.att.attach(&self.mapped)?;
        self.head = head;
        // A sender alive now is one this receiver has seen: if its lock
        // frees with no end marker in the ring, it died.
        self.sender_seen = self.mapped.peer_alive(SENDER_LOCK_BYTE, RECV_OP)?;
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.att.is_mine() {
            let h = self.mapped.header();
            h.receiver.0.state.store(CLOSED, Ordering::SeqCst);
            // An async sender is rung once the lock is gone; a blocking one
            // is woken now and finds the lock free at its next check.
            self.att.depart(&self.mapped);
            wait::wake(&h.sender.0, low_half(&h.head.0));
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.mapped.label)
            .field("capacity", &self.capacity())
            .field("position", &self.head)
            .finish()
    }
}

/// A received message lent in place by [`Receiver::recv_view`]; its space
/// goes back to the sender when the view drops.
pub struct RecvView<'a> {
    rx: &'a mut Receiver,
    at: u64,
    len: usize,
}

impl fmt::Debug for RecvView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvView")
            .field("channel", &self.rx.mapped.label)
            .field("len", &self.len)
            .finish()
    }
}

impl RecvView<'_> {
    /// Message length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self) -> *const u8 {
        self.rx.mapped.ring.at(self.at)
    }

    /// Copies `dst.len()` bytes of the message starting at `offset`.
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: peek checked that the frame lies in the ring.
        unsafe { copy::read_within(self.ptr(), self.len, offset, dst, self.rx.copier.route()) }
            .map_err(|c| self.rx.err(c))
    }

    /// The message as a plain-old-data value; it must be exactly
    /// `size_of::<T>()` bytes.
    pub fn read_pod<T: bytemuck::Pod>(&self) -> Result<T> {
        let want = std::mem::size_of::<T>();
        if self.len != want {
            return Err(self.rx.err(Cause::Corrupted(format!(
                "message is {} bytes; a {} is {want}",
                self.len,
                std::any::type_name::<T>()
            ))));
        }
        let mut value = T::zeroed();
        self.copy_to(0, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Copies the message into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // SAFETY: peek checked that the frame lies in the ring. A vector
        // takes any length.
        let _ = unsafe { copy::Dest::fill_from_shared(&mut v, self.ptr(), self.len, self.rx.copier.route()) };
        v
    }

    /// Writes the message to `out` straight from shared memory with
    /// `write(2)` (no copy in this process), retrying short writes.
    pub fn write_to(&self, out: impl AsFd) -> Result<()> {
        // SAFETY: the frame lies in the ring (checked by peek); the kernel reads it.
        match unsafe { sys::write_all_raw(out.as_fd(), self.ptr(), self.len) } {
            Ok(()) => Ok(()),
            // The kernel found the ring's pages gone: the object was shrunk.
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Err(self.rx.err(Cause::Truncated)),
            Err(e) => Err(Error::new("write out", "channel message", e)),
        }
    }

    /// The message as a slice, without copying.
    ///
    /// # Safety
    ///
    /// The sending process must not write into this frame while the slice
    /// lives. An honest sender never does (it does not reuse the space
    /// until the view drops); a hostile one could change the bytes under
    /// you, which is a data race.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the frame lies in the ring (checked by peek); the caller
        // vouches for the other process.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl Drop for RecvView<'_> {
    fn drop(&mut self) {
        self.rx.advance(ring::frame_size(self.len as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::super::ChannelOptions;
    use crate::error::Cause;
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        /// Polls made by this thread's receives ([`Receiver::poll_briefly`](super::Receiver::poll_briefly)).
        pub(super) static POLLS: Cell<u64> = const { Cell::new(0) };
    }

    /// Polls made by three receives on the empty ring of a fresh pair whose
    /// ends spin for `spin`; each must time out.
    fn polls_of_three_timed_out_receives(spin: Duration) -> u64 {
        let (_tx, mut rx) = ChannelOptions::new().spin(spin).capacity(4096).pair().unwrap();
        let before = POLLS.with(Cell::get);
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let err = rx.recv_timeout(&mut buf, Duration::from_millis(2)).unwrap_err();
            assert!(matches!(err.cause(), Cause::TimedOut), "{err}");
        }
        POLLS.with(Cell::get) - before
    }

    /// A receiver set not to spin sleeps at once: it never polls (the first
    /// version of the poll did, and `chan-sleep` stopped sleeping). One
    /// that spins polls once per wait.
    #[test]
    fn only_a_receiver_that_spins_polls_before_it_waits() {
        assert_eq!(polls_of_three_timed_out_receives(Duration::ZERO), 0);
        assert_eq!(polls_of_three_timed_out_receives(Duration::from_micros(50)), 3);
    }
}
