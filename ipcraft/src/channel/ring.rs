//! The ring algorithm, apart from waiting, lifetime and the shared memory
//! object: a single-producer single-consumer ring of variable-length frames
//! over `capacity` bytes of memory that another process may write at any
//! time.
//!
//! # Frames
//!
//! A frame starts on a 64-byte boundary with a 16-byte header, followed by
//! the payload, and takes whole 64-byte lines: a message of up to 48 bytes
//! is one line.
//!
//! ```text
//! word 0  stamp: a keyed hash of the frame's position (never 0), stored last with release order
//! word 1  low half: payload length, or PAD (skip to the ring's start), CLOSE or ABORT (end of a stream)
//!         high half: the frame's tag — 0 in a channel, a topic message's sequence number
//!         (low 32 bits), a service request's id
//! ```
//!
//! The tag lets a topic or a service carry its per-message word in the
//! header, so their 48-byte messages take one line as a channel's do.
//!
//! A frame never wraps: when the space left before the ring's end is too
//! small, the producer publishes a PAD frame there and continues at index 0.
//!
//! # Why the consumer never mistakes old bytes for a frame
//!
//! The consumer polls word 0 at its position and takes the frame only when
//! it equals the stamp of that position. Stamps are a bijective hash of the
//! full 64-bit position mixed with a key chosen when the channel is made,
//! so no header from an earlier lap (a different position) matches, and
//! payload bytes match only by a 1-in-2^63 accident. Nothing has to be
//! cleared ahead of the consumer, so publishing a message writes only the
//! lines the message occupies.
//!
//! # End of a stream
//!
//! A CLOSE or ABORT marker is a one-line frame. The producer always leaves
//! one line free, so a marker fits whenever the stream ends; the consumer
//! consumes it like any frame. Streams follow each other in the ring: a
//! new producer continues after the marker, and a consumer that meets the
//! marker has reached the end of its stream.
//!
//! # Trusting nothing
//!
//! Positions are `u64` byte counts that only grow. Each side keeps its own
//! position privately and only publishes it; the other side's published
//! position is loaded once and checked (monotonic, at most `capacity`
//! ahead or behind). Lengths are checked against the ring before any
//! access, so a hostile peer can make the data wrong but cannot make this
//! process read or write outside the ring.

use super::copy::Small;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of the frame header.
pub(crate) const FRAME_HEADER: u64 = 16;
/// Frames start on this boundary: one cache line.
pub(crate) const FRAME_ALIGN: u64 = 64;
/// Looks at the next stamp a consumer makes before a full wait ([`Ring::poll_published`]):
/// with `pause` at ~30 ns here, about 8 µs.
pub(crate) const TIGHT_POLLS: u32 = 256;
/// Length value of a padding frame.
pub(crate) const PAD: u32 = u32::MAX;
/// Length value of the end-of-stream marker.
pub(crate) const CLOSE: u32 = u32::MAX - 1;
/// Length value of the marker of a stream its sender abandoned.
pub(crate) const ABORT: u32 = u32::MAX - 2;
/// Bytes the producer always leaves free: room for an end marker.
pub(crate) const SLACK: u64 = FRAME_ALIGN;

/// What was wrong with a value read from shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupted(pub String);

/// Bytes a frame with `len` payload bytes occupies.
pub(crate) fn frame_size(len: u64) -> u64 {
    (FRAME_HEADER + len).div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

/// What the consumer found at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing published yet; the low half of the word seen there (the
    /// value to sleep on).
    Empty(u32),
    /// A padding frame: skip this many bytes to the ring's start.
    Pad(u64),
    /// A frame whose payload of `len` bytes starts at ring index `at`,
    /// with its `tag` (the header word's high half).
    Frame { at: u64, len: u64, tag: u32 },
    /// The stream ended here (a one-line marker to consume).
    Closed,
    /// The stream's sender abandoned it here (a one-line marker to consume).
    Aborted,
}

/// What the producer may do for a frame at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// The frame fits now.
    Fits,
    /// The frame does not fit before the ring's end; a padding frame of
    /// this many bytes can be published now.
    Pad(u64),
    /// Not enough free space: wait for the consumer.
    Full,
}

/// An atomic 64-bit word: std's, or loom's when the algorithm is
/// model-checked.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
}

impl Word for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }

    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order)
    }
}

/// Where a ring's bytes live, as 8-byte words.
pub(crate) trait Memory {
    type Word: Word;
    /// The word at byte index `idx` (8-aligned, inside the ring).
    fn word(&self, idx: u64) -> &Self::Word;
}

/// Memory at a raw address: the channel's shared mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw(NonNull<u8>);

// SAFETY: an address into a shared mapping; every access through it is
// atomic or goes through the copy routines, which are valid from any thread.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}

impl Memory for Raw {
    type Word = AtomicU64;

    fn word(&self, idx: u64) -> &AtomicU64 {
        // SAFETY: callers pass an 8-aligned index inside the ring (Ring::new's
        // contract makes the whole ring valid and 8-aligned), so the word is
        // in bounds and aligned for AtomicU64; memory another process writes
        // is accessed only atomically through it.
        unsafe { &*(self.0.as_ptr().add(idx as usize) as *const AtomicU64) }
    }
}

/// A ring of `capacity` bytes (a power of two) in memory `M`, whose frames
/// are stamped with `key`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring<M = Raw> {
    mem: M,
    capacity: u64,
    key: u64,
    /// How short messages are copied in and out.
    small: Small,
}

impl Ring<Raw> {
    /// # Safety
    ///
    /// `base` must point to `capacity` bytes, 64-byte aligned, that stay
    /// mapped for as long as this `Ring` (or a copy) is used; `capacity`
    /// must be a power of two of at least 256.
    pub(crate) unsafe fn new(base: NonNull<u8>, capacity: u64, key: u64) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 64, 0);
        Self::with_memory(Raw(base), capacity, key)
    }

    /// Address of the low half of the stamp word at `pos`: the futex word a
    /// waiting consumer sleeps on.
    pub(crate) fn stamp_word(&self, pos: u64) -> &std::sync::atomic::AtomicU32 {
        let idx = self.index(pos);
        // SAFETY: as in `Raw::word`; the low 4 bytes of the (little-endian)
        // stamp word are an aligned u32, and futex only needs their address.
        unsafe { &*(self.mem.0.as_ptr().add(idx as usize) as *const std::sync::atomic::AtomicU32) }
    }

    /// Pointer to ring index `idx` for copying `len` bytes (checked by callers).
    pub(crate) fn at(&self, idx: u64) -> *mut u8 {
        debug_assert!(idx <= self.capacity);
        // SAFETY: idx <= capacity keeps the pointer inside or one past the ring.
        unsafe { self.mem.0.as_ptr().add(idx as usize) }
    }

    /// Hints the CPU to fetch the cache line after the frame at `head`, so
    /// a frame spanning two lines arrives in one round of coherence traffic
    /// instead of two. A prefetch never faults and changes nothing.
    #[inline(always)]
    pub(crate) fn prefetch_after(&self, head: u64) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            let next = self.at(self.index(head.wrapping_add(FRAME_ALIGN)));
            // SAFETY: prefetch is a hint with no memory effects; the address
            // is inside the ring anyway.
            unsafe { std::arch::x86_64::_mm_prefetch(next.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0) };
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = head;
    }
}

impl<M: Memory> Ring<M> {
    /// A ring over `mem`; `capacity` must be a power of two of at least 256.
    pub(crate) fn with_memory(mem: M, capacity: u64, key: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= 4 * FRAME_ALIGN);
        Self {
            mem,
            capacity,
            key,
            small: Small::here(),
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// How short messages are copied in and out of this ring.
    #[inline(always)]
    pub(crate) fn small(&self) -> Small {
        self.small
    }

    /// The largest payload one frame can carry: the largest frame that
    /// leaves a line free for an end marker.
    pub(crate) fn max_len(&self) -> u64 {
        self.capacity - SLACK - FRAME_HEADER
    }

    #[inline(always)]
    fn index(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1)
    }

    /// The stamp a frame at `pos` carries: a bijection of the position (a
    /// multiply by an odd constant), keyed, with the low bit set so it is
    /// never 0.
    #[inline(always)]
    pub(crate) fn stamp(&self, pos: u64) -> u64 {
        (pos ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
    }

    /// The two header words of the frame at ring index `idx` (64-aligned).
    #[inline(always)]
    fn words(&self, idx: u64) -> (&M::Word, &M::Word) {
        debug_assert!(idx % FRAME_ALIGN == 0 && idx + FRAME_HEADER <= self.capacity);
        (self.mem.word(idx), self.mem.word(idx + 8))
    }

    /// Whether a frame (or marker) is published at `pos`.
    #[inline(always)]
    pub(crate) fn is_published(&self, pos: u64) -> bool {
        self.words(self.index(pos)).0.load(Ordering::SeqCst) == self.stamp(pos)
    }

    /// Polls the stamp at `pos` up to [`TIGHT_POLLS`] times, with a
    /// `pause` between looks: whether the frame was published. A consumer
    /// polls so before a full wait: a message already on its way is seen a
    /// few cycles after it lands, without the bookkeeping of the wait (the
    /// clock, the peer's liveness, the sleeping flag).
    #[inline(always)]
    pub(crate) fn poll_published(&self, pos: u64) -> bool {
        let mut polls = 0;
        while polls < TIGHT_POLLS {
            if self.is_published(pos) {
                return true;
            }
            std::hint::spin_loop();
            polls += 1;
        }
        false
    }

    // ---- producer ----

    /// Checks the consumer's published `head` against the producer's `tail`
    /// and the last head it accepted.
    ///
    /// Positions count bytes modulo 2^64, so the checks are modular: the
    /// head must lie on the way from the last accepted head to the tail, at
    /// most `capacity` behind the tail, on a frame boundary.
    pub(crate) fn check_head(&self, head: u64, last_head: u64, tail: u64) -> Result<(), Corrupted> {
        let behind = tail.wrapping_sub(head);
        let advanced = head.wrapping_sub(last_head);
        if advanced > tail.wrapping_sub(last_head) || behind > self.capacity || head % FRAME_ALIGN != 0 {
            return Err(Corrupted(format!(
                "read position {head} is impossible (last {last_head}, write position {tail})"
            )));
        }
        Ok(())
    }

    /// Bytes free with the producer at `tail` and the consumer at `head`.
    #[inline(always)]
    pub(crate) fn free(&self, tail: u64, head: u64) -> u64 {
        self.capacity.saturating_sub(tail.wrapping_sub(head))
    }

    /// Bytes of frames that can go at `tail` now with the consumer at
    /// `head` (checked: at most `capacity` behind): up to the ring's end,
    /// leaving [`SLACK`] free. A frame fits ([`Room::Fits`]) exactly when
    /// its size is at most this.
    #[inline(always)]
    pub(crate) fn writable(&self, tail: u64, head: u64) -> u64 {
        let contiguous = self.capacity - self.index(tail);
        contiguous.min(self.free(tail, head).saturating_sub(SLACK))
    }

    /// Whether a frame of `len` bytes can go at `tail` with the consumer at
    /// `head` (checked: at most `capacity` behind).
    #[inline(always)]
    pub(crate) fn room(&self, tail: u64, head: u64, len: u64) -> Room {
        let free = self.free(tail, head);
        let need = frame_size(len);
        let contiguous = self.capacity - self.index(tail);
        if need <= contiguous {
            if need <= self.writable(tail, head) {
                Room::Fits
            } else {
                Room::Full
            }
        } else if contiguous + SLACK <= free {
            Room::Pad(contiguous)
        } else {
            Room::Full
        }
    }

    /// Publishes a header of kind or length `value` and `tag` at `tail`
    /// (payload already written): the length word first, the stamp last
    /// with release order.
    #[inline(always)]
    fn publish_header(&self, tail: u64, value: u32, tag: u32) {
        let (stamp, len) = self.words(self.index(tail));
        len.store(u64::from(tag) << 32 | u64::from(value), Ordering::Relaxed);
        stamp.store(self.stamp(tail), Ordering::Release);
    }

    /// Publishes a padding frame of `size` bytes at `tail` (as returned by
    /// [`room`](Self::room)); returns the new tail.
    pub(crate) fn publish_pad(&self, tail: u64, size: u64) -> u64 {
        self.publish_header(tail, PAD, 0);
        tail.wrapping_add(size)
    }

    /// Publishes the frame of `len` bytes, tagged `tag`, whose payload was
    /// written at `payload_index(tail)`; returns the new tail.
    #[inline(always)]
    pub(crate) fn publish(&self, tail: u64, len: u64, tag: u32) -> u64 {
        self.publish_header(tail, len as u32, tag);
        tail.wrapping_add(frame_size(len))
    }

    /// Publishes an end marker ([`CLOSE`] or [`ABORT`]) at `tail`, which
    /// needs one free line; returns the new tail.
    pub(crate) fn publish_marker(&self, tail: u64, kind: u32) -> u64 {
        debug_assert!(kind == CLOSE || kind == ABORT);
        self.publish_header(tail, kind, 0);
        tail.wrapping_add(FRAME_ALIGN)
    }

    /// Ring index of the payload of a frame at `pos`.
    #[inline(always)]
    pub(crate) fn payload_index(&self, pos: u64) -> u64 {
        self.index(pos) + FRAME_HEADER
    }

    /// Where a scan for the committed frames starts ([`committed_end`](Self::committed_end)),
    /// given the producer's `published` position and the consumer's `head`.
    /// A producer publishes its position only now and then (and may die
    /// between publishing a frame and its position), so the consumer may
    /// have taken frames past it: then the consumer's position, at most a
    /// ring ahead, is where the committed frames reach at least.
    pub(crate) fn scan_from(&self, published: u64, head: u64) -> u64 {
        let ahead = head.wrapping_sub(published);
        if ahead != 0 && ahead <= self.capacity {
            head
        } else {
            published
        }
    }

    /// Where the frames committed from `tail` on end, and whether the last
    /// one was an end marker: what a producer that replaces a dead one
    /// continues from (its predecessor may have published a frame without
    /// publishing its new position). Stops at `capacity` bytes past `head`.
    pub(crate) fn committed_end(&self, mut tail: u64, head: u64) -> Result<(u64, bool), Corrupted> {
        let mut ended = false;
        while tail.wrapping_sub(head) < self.capacity {
            match self.peek(tail)? {
                Peek::Empty(_) => break,
                Peek::Pad(skip) => tail = tail.wrapping_add(skip),
                Peek::Frame { len, .. } => {
                    tail = tail.wrapping_add(frame_size(len));
                    ended = false;
                }
                Peek::Closed | Peek::Aborted => {
                    tail = tail.wrapping_add(FRAME_ALIGN);
                    ended = true;
                }
            }
        }
        if tail.wrapping_sub(head) > self.capacity {
            return Err(Corrupted(format!("frames run past the ring from position {head}")));
        }
        Ok((tail, ended))
    }

    // ---- consumer ----

    /// The frame at `head` if it is one the consumer's fast path takes: a
    /// published frame of fewer than `small` bytes (below the padding and
    /// marker values, so those never match) inside the ring, as
    /// `(ring index of its payload, len, tag)`. Everything else,
    /// [`peek`](Self::peek) reads and explains.
    #[inline(always)]
    pub(crate) fn peek_small(&self, head: u64, small: u64) -> Option<(u64, u64, u32)> {
        debug_assert!(small <= self.max_len());
        let idx = self.index(head);
        let (stamp, len) = self.words(idx);
        if stamp.load(Ordering::Acquire) != self.stamp(head) {
            return None;
        }
        let (len, tag) = split_len_word(len.load(Ordering::Relaxed));
        (len < small && frame_size(len) <= self.capacity - idx).then_some((idx + FRAME_HEADER, len, tag))
    }

    /// Reads and checks the header at the consumer's `head`.
    #[inline(always)]
    pub(crate) fn peek(&self, head: u64) -> Result<Peek, Corrupted> {
        let idx = self.index(head);
        let (stamp, len) = self.words(idx);
        let word = stamp.load(Ordering::Acquire);
        if word != self.stamp(head) {
            return Ok(Peek::Empty(word as u32));
        }
        let (len, tag) = split_len_word(len.load(Ordering::Relaxed));
        let contiguous = self.capacity - idx;
        match len as u32 {
            CLOSE => return Ok(Peek::Closed),
            ABORT => return Ok(Peek::Aborted),
            PAD => {
                if idx == 0 {
                    return Err(Corrupted(format!(
                        "padding frame at the ring's start (position {head})"
                    )));
                }
                return Ok(Peek::Pad(contiguous));
            }
            _ => {}
        }
        if len > self.max_len() || frame_size(len) > contiguous {
            return Err(Corrupted(format!(
                "frame of {len} bytes at position {head} overruns the ring ({contiguous} bytes to its end)"
            )));
        }
        Ok(Peek::Frame {
            at: idx + FRAME_HEADER,
            len,
            tag,
        })
    }
}

/// A header's second word as (length or kind, tag).
#[inline(always)]
fn split_len_word(word: u64) -> (u64, u32) {
    (word & u64::from(u32::MAX), (word >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::super::copy::{copy_from_shared, copy_to_shared, Route};
    use super::*;

    /// One cache line of the heap buffer.
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Line([u64; 8]);

    /// A ring over a 64-aligned heap buffer.
    struct HeapRing {
        _buf: Vec<Line>,
        ring: Ring,
    }

    const KEY: u64 = 0x5eed_1234_abcd_0001;

    fn heap(capacity: u64) -> HeapRing {
        let mut buf = vec![Line([0; 8]); capacity as usize / 64];
        let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer is 64-aligned, `capacity` bytes, and outlives the ring.
        let ring = unsafe { Ring::new(base, capacity, KEY) };
        HeapRing { _buf: buf, ring }
    }

    /// Producer and consumer state as the channel keeps it.
    struct Model {
        ring: Ring,
        tail: u64,
        head: u64,
    }

    /// The tag the model sends with `msg`: all 32 bits vary.
    fn tag_of(msg: &[u8]) -> u32 {
        (msg.len() as u32).wrapping_mul(0x9E37_79B9) ^ u32::from(msg.first().copied().unwrap_or(7)) << 24
    }

    impl Model {
        fn try_send(&mut self, msg: &[u8]) -> bool {
            loop {
                match self.ring.room(self.tail, self.head, msg.len() as u64) {
                    Room::Full => return false,
                    Room::Pad(size) => self.tail = self.ring.publish_pad(self.tail, size),
                    Room::Fits => {
                        let at = self.ring.payload_index(self.tail);
                        // SAFETY: room() said the frame fits at `at`.
                        unsafe { copy_to_shared(self.ring.at(at), msg, Small::here()) };
                        self.tail = self.ring.publish(self.tail, msg.len() as u64, tag_of(msg));
                        return true;
                    }
                }
            }
        }

        fn try_recv(&mut self) -> Option<Vec<u8>> {
            loop {
                match self.ring.peek(self.head).unwrap() {
                    Peek::Empty(_) | Peek::Closed | Peek::Aborted => return None,
                    Peek::Pad(skip) => self.head = self.head.wrapping_add(skip),
                    Peek::Frame { at, len, tag } => {
                        let mut out = vec![0u8; len as usize];
                        // SAFETY: peek() checked the frame lies in the ring.
                        unsafe { copy_from_shared(&mut out, self.ring.at(at), Route::Cached) };
                        assert_eq!(tag, tag_of(&out), "the tag sent with the message");
                        self.head = self.head.wrapping_add(frame_size(len));
                        return Some(out);
                    }
                }
            }
        }
    }

    #[test]
    fn smoke() {
        let h = heap(256);
        let mut m = Model {
            ring: h.ring,
            tail: 0,
            head: 0,
        };
        assert!(m.try_send(b"hello"));
        assert_eq!(m.try_recv().unwrap(), b"hello");
        assert_eq!(m.try_recv(), None);
    }

    #[test]
    fn fills_pads_wraps_and_never_reorders() {
        let h = heap(256);
        let mut m = Model {
            ring: h.ring,
            tail: 0,
            head: 0,
        };
        let mut in_flight = std::collections::VecDeque::new();
        let mut delivered = 0;
        for round in 0..5000u32 {
            let len = (round as usize * 37) % 120;
            let msg: Vec<u8> = (0..len).map(|i| (i as u32 ^ round) as u8).collect();
            if m.try_send(&msg) {
                in_flight.push_back(msg);
            }
            if round % 3 != 0 {
                if let Some(got) = m.try_recv() {
                    assert_eq!(Some(got), in_flight.pop_front());
                    delivered += 1;
                }
            }
            assert!(m.tail - m.head <= 256);
        }
        while let Some(got) = m.try_recv() {
            assert_eq!(Some(got), in_flight.pop_front());
        }
        assert!(in_flight.is_empty());
        assert!(delivered > 1000);
    }

    #[test]
    fn largest_message_fits_an_empty_ring_only() {
        let h = heap(256);
        let mut m = Model {
            ring: h.ring,
            tail: 0,
            head: 0,
        };
        let max = h.ring.max_len() as usize;
        assert!(m.try_send(&vec![7u8; max]));
        assert!(!m.try_send(b""));
        assert_eq!(m.try_recv().unwrap(), vec![7u8; max]);
        for small in [&b"x"[..], b"y", b"z"] {
            assert!(m.try_send(small));
            assert_eq!(m.try_recv().unwrap(), small);
        }
        // Half way round: it pads to the end first, and the frame fits once
        // the consumer has passed the padding.
        assert!(!m.try_send(&vec![8u8; max]));
        assert_eq!(m.try_recv(), None);
        assert!(m.try_send(&vec![8u8; max]));
        assert_eq!(m.try_recv().unwrap(), vec![8u8; max]);
    }

    /// Writes a header (stamp word and length word) at `pos` as a peer could.
    fn scribble(ring: &Ring, pos: u64, stamp: u64, len: u64) {
        let (s, l) = ring.words(ring.index(pos));
        l.store(len, Ordering::Relaxed);
        s.store(stamp, Ordering::Release);
    }

    #[test]
    fn scribbled_headers_are_detected() {
        let h = heap(256);
        let ring = h.ring;
        scribble(&ring, 0, 0x1234, 5);
        assert_eq!(ring.peek(0).unwrap(), Peek::Empty(0x1234), "wrong stamp: not a frame");
        scribble(&ring, 0, ring.stamp(256), 5);
        assert!(
            matches!(ring.peek(0).unwrap(), Peek::Empty(_)),
            "a later lap's stamp is not this lap's"
        );
        scribble(&ring, 0, ring.stamp(0), 10_000);
        assert!(ring.peek(0).is_err(), "overrun");
        scribble(&ring, 0, ring.stamp(0), u64::from(PAD));
        assert!(ring.peek(0).is_err(), "pad at start");
        scribble(&ring, 0, ring.stamp(0), ring.max_len() + 1);
        assert!(ring.peek(0).is_err(), "longer than max_len");
        scribble(&ring, 0, ring.stamp(0), 0xffff_ffff_0000_0000 | 10_000);
        assert!(ring.peek(0).is_err(), "overrun under a tag");
        scribble(&ring, 0, ring.stamp(0), 5);
        assert_eq!(ring.peek(0).unwrap(), Peek::Frame { at: 16, len: 5, tag: 0 });
        // The high half is the tag, whatever it holds.
        scribble(&ring, 0, ring.stamp(0), 1 << 40 | 5);
        assert_eq!(
            ring.peek(0).unwrap(),
            Peek::Frame {
                at: 16,
                len: 5,
                tag: 256
            }
        );
        assert_eq!(ring.peek_small(0, 48), Some((16, 5, 256)));
    }

    #[test]
    fn stamps_differ_for_every_position_and_key() {
        let h = heap(256);
        let other = Ring::with_memory(h.ring.mem, 256, KEY ^ 1);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..10_000u64 {
            let pos = slot * FRAME_ALIGN;
            assert!(seen.insert(h.ring.stamp(pos)));
            assert_ne!(h.ring.stamp(pos), other.stamp(pos));
            assert_ne!(h.ring.stamp(pos), 0);
        }
    }

    #[test]
    fn markers_end_streams_and_a_new_producer_finds_where_to_continue() {
        let h = heap(256);
        let mut m = Model {
            ring: h.ring,
            tail: 0,
            head: 0,
        };
        assert!(m.try_send(b"one"));
        assert!(m.try_send(&[2u8; 60]));
        // A producer died after publishing a frame but before publishing
        // its position: the replacement finds the frame and continues after it.
        let published_tail = 0;
        assert_eq!(m.ring.committed_end(published_tail, 0).unwrap(), (m.tail, false));
        m.tail = m.ring.publish_marker(m.tail, CLOSE);
        assert_eq!(m.ring.committed_end(0, 0).unwrap(), (m.tail, true));
        assert_eq!(m.try_recv().unwrap(), b"one");
        assert_eq!(m.try_recv().unwrap(), vec![2u8; 60]);
        assert_eq!(m.ring.peek(m.head).unwrap(), Peek::Closed);
        m.head += FRAME_ALIGN;
        assert!(m.try_send(b"next stream"));
        assert_eq!(m.try_recv().unwrap(), b"next stream");
    }

    #[test]
    fn impossible_heads_are_detected() {
        let h = heap(256);
        let r = h.ring;
        assert!(r.check_head(8, 16, 64).is_err(), "went backwards");
        assert!(r.check_head(72, 0, 64).is_err(), "ahead of tail");
        assert!(r.check_head(0, 0, 300).is_err(), "more than capacity behind");
        assert!(r.check_head(3, 0, 64).is_err(), "unaligned");
        assert!(r.check_head(64, 0, 128).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Send(usize),
            Recv,
        }

        fn ops() -> impl Strategy<Value = Vec<Op>> {
            proptest::collection::vec(
                prop_oneof![(0usize..400).prop_map(Op::Send), Just(Op::Recv), Just(Op::Recv)],
                // Miri interprets every step: keep its runs short.
                1..if cfg!(miri) { 40 } else { 300 },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

            /// Any interleaving of sends and receives delivers exactly what
            /// was sent, in order, and never lets the producer overrun.
            #[test]
            fn ring_matches_a_queue(cap_shift in 8u32..13, ops in ops()) {
                let cap = 1u64 << cap_shift;
                let h = heap(cap);
                let mut m = Model { ring: h.ring, tail: 0, head: 0 };
                let mut model = std::collections::VecDeque::new();
                for (i, op) in ops.into_iter().enumerate() {
                    match op {
                        Op::Send(len) => {
                            let len = len.min(h.ring.max_len() as usize);
                            let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                            if m.try_send(&msg) {
                                model.push_back(msg);
                            } else if model.is_empty() {
                                // Only padding is in flight: once the consumer
                                // passes it, the message must fit.
                                prop_assert_eq!(m.try_recv(), None);
                                prop_assert!(m.try_send(&msg), "refused by an empty ring");
                                model.push_back(msg);
                            }
                        }
                        Op::Recv => prop_assert_eq!(m.try_recv(), model.pop_front()),
                    }
                    prop_assert!(m.tail >= m.head && m.tail - m.head <= cap);
                }
                while let Some(want) = model.pop_front() {
                    prop_assert_eq!(m.try_recv(), Some(want));
                }
                prop_assert_eq!(m.try_recv(), None);
            }

            /// Whatever another process writes into a header, peek either
            /// refuses it or describes a frame that lies inside the ring.
            #[test]
            fn peek_never_points_outside(cap_shift in 8u32..13, slot in 0u64..64, word in any::<u64>(), len in prop_oneof![any::<u64>(), 0u64..600], stamp_ok in any::<bool>(), small in 1u64..520) {
                let cap = 1u64 << cap_shift;
                let h = heap(cap);
                let pos = (slot * FRAME_ALIGN) % cap + cap * 3;
                let word = if stamp_ok { h.ring.stamp(pos) } else { word };
                scribble(&h.ring, pos, word, len);
                let len_word = len;
                match h.ring.peek(pos) {
                    Ok(Peek::Frame { at, len, tag }) => {
                        prop_assert!(at + len <= cap && len <= h.ring.max_len());
                        prop_assert_eq!(u64::from(tag) << 32 | len, len_word);
                    }
                    Ok(Peek::Pad(skip)) => prop_assert!(h.ring.index(pos) + skip == cap && skip > 0),
                    Ok(Peek::Empty(_)) => prop_assert_ne!(word, h.ring.stamp(pos)),
                    Ok(Peek::Closed) | Ok(Peek::Aborted) | Err(_) => {}
                }
                // The consumer's fast path takes exactly the short frames
                // peek describes, nothing else.
                let small = small.min(h.ring.max_len());
                match h.ring.peek_small(pos, small) {
                    Some((at, len, tag)) => {
                        prop_assert!(len < small);
                        prop_assert_eq!(h.ring.peek(pos), Ok(Peek::Frame { at, len, tag }));
                    }
                    None => {
                        let short = matches!(h.ring.peek(pos), Ok(Peek::Frame { len, .. }) if len < small);
                        prop_assert!(!short, "a short frame the fast path missed");
                    }
                }
            }

            /// A consumer position the producer accepts is always plausible
            /// (in modular terms: between the last head and the tail).
            #[test]
            fn accepted_heads_are_plausible(cap_shift in 8u32..13, head in any::<u64>(), last in any::<u64>(), tail in any::<u64>()) {
                let cap = 1u64 << cap_shift;
                let h = heap(cap);
                if h.ring.check_head(head, last, tail).is_ok() {
                    prop_assert!(head.wrapping_sub(last) <= tail.wrapping_sub(last));
                    prop_assert!(tail.wrapping_sub(head) <= cap && head % FRAME_ALIGN == 0);
                    prop_assert!(matches!(h.ring.room(tail, head, 0), Room::Fits | Room::Pad(_) | Room::Full));
                }
            }

            /// Positions near the end of the u64 range wrap without trouble.
            #[test]
            fn positions_wrap_around_u64(start_slot in 0u64..64, ops in ops()) {
                let cap = 512u64;
                let h = heap(cap);
                let start = u64::MAX - start_slot * FRAME_ALIGN - (FRAME_ALIGN - 1);
                let mut m = Model { ring: h.ring, tail: start, head: start };
                let mut model = std::collections::VecDeque::new();
                for (i, op) in ops.into_iter().enumerate() {
                    match op {
                        Op::Send(len) => {
                            let msg = vec![i as u8; len.min(h.ring.max_len() as usize)];
                            if m.try_send(&msg) {
                                model.push_back(msg);
                            } else if model.is_empty() {
                                prop_assert_eq!(m.try_recv(), None);
                                prop_assert!(m.try_send(&msg));
                                model.push_back(msg);
                            }
                        }
                        Op::Recv => prop_assert_eq!(m.try_recv(), model.pop_front()),
                    }
                }
            }
        }
    }
}

/// The producer/consumer protocol model-checked with loom: every
/// interleaving and every allowed reordering of the ring's atomics, on the
/// real `room`/`publish`/`peek` code, over loom's atomics instead of shared
/// memory. Run by `scripts/check-ring.sh` (`RUSTFLAGS="--cfg loom"`).
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicU64 as LoomU64;
    use loom::sync::Arc;

    impl Word for LoomU64 {
        fn load(&self, order: Ordering) -> u64 {
            LoomU64::load(self, order)
        }

        fn store(&self, value: u64, order: Ordering) {
            LoomU64::store(self, value, order)
        }
    }

    struct Words(Vec<LoomU64>);

    impl Memory for Words {
        type Word = LoomU64;
        fn word(&self, idx: u64) -> &LoomU64 {
            &self.0[(idx / 8) as usize]
        }
    }

    /// Message `i` of `words` 8-byte words, each word naming its message.
    fn word_of(i: u64, w: u64) -> u64 {
        (i << 32) | (w + 1)
    }

    #[test]
    fn every_interleaving_delivers_in_order_without_stale_frames() {
        // 256 bytes, 64-byte frames: the messages below pad, wrap, and reuse
        // positions of the first lap (where a stale header would show).
        const CAP: u64 = 256;
        const LENS: [u64; 5] = [8, 120, 8, 56, 8];
        loom::model(|| {
            let ring = Arc::new(Ring::with_memory(
                Words((0..CAP / 8).map(|_| LoomU64::new(0)).collect()),
                CAP,
                0x5eed,
            ));
            let head = Arc::new(LoomU64::new(0));
            let (pring, phead) = (ring.clone(), head.clone());
            let producer = loom::thread::spawn(move || {
                let (mut tail, mut seen_head) = (0u64, 0u64);
                for (i, &len) in LENS.iter().enumerate() {
                    loop {
                        match pring.room(tail, seen_head, len) {
                            Room::Fits => break,
                            Room::Pad(size) => tail = pring.publish_pad(tail, size),
                            Room::Full => {
                                let h = phead.load(Ordering::Acquire);
                                pring.check_head(h, seen_head, tail).unwrap();
                                seen_head = h;
                                loom::thread::yield_now();
                            }
                        }
                    }
                    let at = pring.payload_index(tail);
                    for w in 0..len / 8 {
                        pring
                            .mem
                            .word(at + 8 * w)
                            .store(word_of(i as u64, w), Ordering::Relaxed);
                    }
                    tail = pring.publish(tail, len, i as u32 ^ 0x8000_0000);
                }
            });
            let mut pos = 0u64;
            let mut got = 0;
            while got < LENS.len() {
                match ring.peek(pos).expect("a stale or torn header") {
                    Peek::Empty(_) => loom::thread::yield_now(),
                    Peek::Pad(skip) => {
                        pos += skip;
                        head.store(pos, Ordering::Release);
                    }
                    Peek::Closed | Peek::Aborted => panic!("no end was sent"),
                    Peek::Frame { at, len, tag } => {
                        assert_eq!((len, tag), (LENS[got], got as u32 ^ 0x8000_0000));
                        for w in 0..len / 8 {
                            assert_eq!(
                                ring.mem.word(at + 8 * w).load(Ordering::Relaxed),
                                word_of(got as u64, w)
                            );
                        }
                        pos += frame_size(len);
                        head.store(pos, Ordering::Release);
                        got += 1;
                    }
                }
            }
            producer.join().unwrap();
        });
    }
}
