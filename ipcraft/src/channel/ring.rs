//! The ring algorithm, apart from waiting, lifetime and the shared memory
//! object: a single-producer single-consumer ring of variable-length frames
//! over `capacity` bytes of memory that another process may write at any
//! time.
//!
//! # Frames
//!
//! A frame is an 8-byte header word followed by the payload, padded to a
//! multiple of 8 bytes. The header word is one `u64`, stored with a single
//! release store when the frame is complete:
//!
//! ```text
//! bits  0..32  stamp: 0x8000_0000 | (position / 8) as u32   (never 0)
//! bits 32..64  payload length, or PAD (u32::MAX): skip to the ring's start
//! ```
//!
//! A frame never wraps: when the space left before the ring's end is too
//! small, the producer publishes a PAD frame there and continues at index 0.
//!
//! # Why the consumer never sees stale bytes
//!
//! The consumer polls the header word at its position. Before publishing a
//! frame the producer zeroes the header word of the *next* frame (always in
//! free space: the producer keeps 8 bytes of slack), so the word the
//! consumer polls is 0 until the producer's release store makes it the
//! frame's header. A header that is neither 0 nor the stamp the position
//! implies means the memory was scribbled on: [`Corrupted`].
//!
//! # Trusting nothing
//!
//! Positions are `u64` byte counts that only grow. Each side keeps its own
//! position privately and only publishes it; the other side's published
//! position is loaded once and checked (monotonic, at most `capacity`
//! ahead or behind). Lengths are checked against the ring before any
//! access, so a hostile peer can make the data wrong but cannot make this
//! process read or write outside the ring.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of the frame header word.
pub(crate) const FRAME_HEADER: u64 = 8;
/// Frames start on this boundary.
pub(crate) const FRAME_ALIGN: u64 = 64;
/// Length value of a padding frame.
pub(crate) const PAD: u32 = u32::MAX;
/// Length value of the end-of-stream marker.
pub(crate) const CLOSE: u32 = u32::MAX - 1;
/// Bytes the producer always leaves free, for the next frame's zeroed header.
pub(crate) const SLACK: u64 = 8;

/// What was wrong with a value read from shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupted(pub String);

/// Bytes a frame with `len` payload bytes occupies.
pub(crate) fn frame_size(len: u64) -> u64 {
    (FRAME_HEADER + len).div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

/// The stamp a header at `pos` must carry.
pub(crate) fn stamp(pos: u64) -> u32 {
    0x8000_0000 | (pos >> 3) as u32
}

/// The header word of a frame of `len` bytes (or [`PAD`]) at `pos`.
pub(crate) fn encode(pos: u64, len: u32) -> u64 {
    (u64::from(len) << 32) | u64::from(stamp(pos))
}

/// What the consumer found at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing published yet.
    Empty,
    /// A padding frame: skip this many bytes to the ring's start.
    Pad(u64),
    /// A frame whose payload of `len` bytes starts at ring index `at`.
    Frame { at: u64, len: u64 },
    /// The producer closed the stream here.
    Closed,
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

/// A ring of `capacity` bytes (a power of two) in memory `M`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring<M = Raw> {
    mem: M,
    capacity: u64,
}

impl Ring<Raw> {
    /// # Safety
    ///
    /// `base` must point to `capacity` bytes, 8-byte aligned, that stay
    /// mapped for as long as this `Ring` (or a copy) is used; `capacity`
    /// must be a power of two of at least 128.
    pub(crate) unsafe fn new(base: NonNull<u8>, capacity: u64) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        Self::with_memory(Raw(base), capacity)
    }

    /// Address of the low half of the header word at `pos` (the stamp): the
    /// futex word a waiting consumer sleeps on.
    pub(crate) fn stamp_word(&self, pos: u64) -> &std::sync::atomic::AtomicU32 {
        let idx = self.index(pos);
        // SAFETY: as in `Raw::word`; the low 4 bytes of the (little-endian)
        // header word hold the stamp, and futex only needs their address.
        unsafe { &*(self.mem.0.as_ptr().add(idx as usize) as *const std::sync::atomic::AtomicU32) }
    }

    /// Pointer to ring index `idx` for copying `len` bytes (checked by callers).
    pub(crate) fn at(&self, idx: u64) -> *mut u8 {
        debug_assert!(idx <= self.capacity);
        // SAFETY: idx <= capacity keeps the pointer inside or one past the ring.
        unsafe { self.mem.0.as_ptr().add(idx as usize) }
    }

    /// Hints the CPU to fetch the cache line after the header at `head`, so
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
    /// A ring over `mem`; `capacity` must be a power of two of at least 128.
    pub(crate) fn with_memory(mem: M, capacity: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= 2 * FRAME_ALIGN);
        Self { mem, capacity }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest payload one frame can carry.
    pub(crate) fn max_len(&self) -> u64 {
        // The largest aligned frame that leaves the slack word free.
        self.capacity - FRAME_ALIGN.max(SLACK) - FRAME_HEADER
    }

    fn index(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1)
    }

    /// The header word at ring index `idx` (8-aligned, in bounds).
    fn header(&self, idx: u64) -> &M::Word {
        debug_assert!(idx % 8 == 0 && idx + 8 <= self.capacity);
        self.mem.word(idx)
    }

    // ---- producer ----

    /// Checks the consumer's published `head` against the producer's `tail`
    /// and the last head it accepted.
    ///
    /// Positions count bytes modulo 2^64, so the checks are modular: the
    /// head must lie on the way from the last accepted head to the tail, at
    /// most `capacity` behind the tail.
    pub(crate) fn check_head(&self, head: u64, last_head: u64, tail: u64) -> Result<(), Corrupted> {
        let behind = tail.wrapping_sub(head);
        let advanced = head.wrapping_sub(last_head);
        if advanced > tail.wrapping_sub(last_head) || behind > self.capacity || head % 8 != 0 {
            return Err(Corrupted(format!(
                "read position {head} is impossible (last {last_head}, write position {tail})"
            )));
        }
        Ok(())
    }

    /// Whether a frame of `len` bytes can go at `tail` with the consumer at
    /// `head` (checked: at most `capacity` behind).
    pub(crate) fn room(&self, tail: u64, head: u64, len: u64) -> Room {
        let free = self.capacity.saturating_sub(tail.wrapping_sub(head));
        let need = frame_size(len);
        let contiguous = self.capacity - self.index(tail);
        if need <= contiguous {
            if need + SLACK <= free {
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

    /// Publishes a padding frame of `size` bytes at `tail` (as returned by
    /// [`room`](Self::room)); returns the new tail.
    pub(crate) fn publish_pad(&self, tail: u64, size: u64) -> u64 {
        let next = tail.wrapping_add(size);
        self.header(self.index(next)).store(0, Ordering::Relaxed);
        self.header(self.index(tail))
            .store(encode(tail, PAD), Ordering::Release);
        next
    }

    /// Marks the end of the stream at `tail` (the always-free slack word).
    pub(crate) fn publish_close(&self, tail: u64) {
        self.header(self.index(tail))
            .store(encode(tail, CLOSE), Ordering::SeqCst);
    }

    /// Publishes the frame of `len` bytes whose payload was written at
    /// `payload_index(tail)`; returns the new tail.
    pub(crate) fn publish(&self, tail: u64, len: u64) -> u64 {
        let next = tail.wrapping_add(frame_size(len));
        self.header(self.index(next)).store(0, Ordering::Relaxed);
        self.header(self.index(tail))
            .store(encode(tail, len as u32), Ordering::Release);
        next
    }

    /// Ring index of the payload of a frame at `pos`.
    pub(crate) fn payload_index(&self, pos: u64) -> u64 {
        self.index(pos) + FRAME_HEADER
    }

    // ---- consumer ----

    /// Reads and checks the header at the consumer's `head`.
    pub(crate) fn peek(&self, head: u64) -> Result<Peek, Corrupted> {
        let idx = self.index(head);
        let word = self.header(idx).load(Ordering::Acquire);
        if word == 0 {
            return Ok(Peek::Empty);
        }
        let (got, len) = (word as u32, (word >> 32) as u32);
        if got != stamp(head) {
            return Err(Corrupted(format!(
                "frame header at position {head} has stamp {got:#x}, expected {:#x}",
                stamp(head)
            )));
        }
        let contiguous = self.capacity - idx;
        if len == CLOSE {
            return Ok(Peek::Closed);
        }
        if len == PAD {
            if idx == 0 {
                return Err(Corrupted(format!(
                    "padding frame at the ring's start (position {head})"
                )));
            }
            return Ok(Peek::Pad(contiguous));
        }
        let len = u64::from(len);
        if frame_size(len) > contiguous || len > self.max_len() {
            return Err(Corrupted(format!(
                "frame of {len} bytes at position {head} overruns the ring ({contiguous} bytes to its end)"
            )));
        }
        Ok(Peek::Frame {
            at: idx + FRAME_HEADER,
            len,
        })
    }
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// Another process may be writing the source, so the copy uses only
/// operations the compiler treats as opaque or atomic: relaxed atomic word
/// loads for short messages, `rep movsb` (x86-64) for long ones — never
/// plain loads it could assume stable.
///
/// # Safety
///
/// `src..src + dst.len()` must be mapped and readable.
pub(crate) unsafe fn copy_from_shared(dst: &mut [u8], src: *const u8) {
    if dst.len() >= OPAQUE_MIN {
        // SAFETY: forwarded: src is readable for dst.len() bytes, dst is writable.
        unsafe { opaque_copy(dst.as_mut_ptr(), src, dst.len()) }
    } else {
        // SAFETY: as above.
        unsafe { atomic_copy(dst.as_mut_ptr(), src, dst.len(), true) }
    }
}

/// Copies `src` into shared memory at `dst` (see [`copy_from_shared`]).
///
/// # Safety
///
/// `dst..dst + src.len()` must be mapped and writable.
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    if src.len() >= OPAQUE_MIN {
        // SAFETY: forwarded: dst is writable for src.len() bytes.
        unsafe { opaque_copy(dst, src.as_ptr(), src.len()) }
    } else {
        // SAFETY: as above.
        unsafe { atomic_copy(dst, src.as_ptr(), src.len(), false) }
    }
}

/// From this length on, `rep movsb` beats a word loop (its start-up cost is
/// tens of cycles on some CPUs).
const OPAQUE_MIN: usize = 512;

/// Word-at-a-time copy where the shared side (`src` when `from_shared`,
/// else `dst`) is accessed only with relaxed atomics.
///
/// # Safety
///
/// Both ranges valid for `len` bytes; the private side not shared.
unsafe fn atomic_copy(dst: *mut u8, src: *const u8, len: usize, from_shared: bool) {
    use std::sync::atomic::AtomicU8;
    let shared = if from_shared { src } else { dst.cast_const() };
    let mut i = 0;
    // SAFETY: i < len keeps every access in range; shared-side accesses
    // are atomics at their natural alignment (words only once the shared
    // address is 8-aligned); private-side accesses are unaligned plain
    // reads/writes of memory only this process uses.
    unsafe {
        let byte = |i: usize| {
            if from_shared {
                *dst.add(i) = (*(src.add(i) as *const AtomicU8)).load(Ordering::Relaxed);
            } else {
                (*(dst.add(i) as *const AtomicU8)).store(*src.add(i), Ordering::Relaxed);
            }
        };
        while i < len && (shared as usize + i) % 8 != 0 {
            byte(i);
            i += 1;
        }
        while i + 8 <= len {
            if from_shared {
                let w = (*(src.add(i) as *const AtomicU64)).load(Ordering::Relaxed);
                dst.add(i).cast::<u64>().write_unaligned(w);
            } else {
                let w = src.add(i).cast::<u64>().read_unaligned();
                (*(dst.add(i) as *const AtomicU64)).store(w, Ordering::Relaxed);
            }
            i += 8;
        }
        while i < len {
            byte(i);
            i += 1;
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
unsafe fn opaque_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees both ranges; `rep movsb` copies exactly
    // `len` bytes forward and the direction flag is clear per the ABI.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
unsafe fn opaque_copy(dst: *mut u8, src: *const u8, len: usize) {
    for i in 0..len {
        // SAFETY: the caller guarantees both ranges; volatile accesses are
        // never merged or repeated by the compiler.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring over an 8-aligned heap buffer.
    struct HeapRing {
        _buf: Vec<u64>,
        ring: Ring,
    }

    fn heap(capacity: u64) -> HeapRing {
        let mut buf = vec![0u64; capacity as usize / 8];
        let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer is 8-aligned, `capacity` bytes, and outlives the ring.
        let ring = unsafe { Ring::new(base, capacity) };
        HeapRing { _buf: buf, ring }
    }

    /// Producer and consumer state as the channel keeps it.
    struct Model {
        ring: Ring,
        tail: u64,
        head: u64,
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
                        unsafe { copy_to_shared(self.ring.at(at), msg) };
                        self.tail = self.ring.publish(self.tail, msg.len() as u64);
                        return true;
                    }
                }
            }
        }

        fn try_recv(&mut self) -> Option<Vec<u8>> {
            loop {
                match self.ring.peek(self.head).unwrap() {
                    Peek::Empty | Peek::Closed => return None,
                    Peek::Pad(skip) => self.head = self.head.wrapping_add(skip),
                    Peek::Frame { at, len } => {
                        let mut out = vec![0u8; len as usize];
                        // SAFETY: peek() checked the frame lies in the ring.
                        unsafe { copy_from_shared(&mut out, self.ring.at(at)) };
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

    #[test]
    fn scribbled_headers_are_detected() {
        let h = heap(256);
        let ring = h.ring;
        ring.header(0).store(0x1234, Ordering::Relaxed);
        assert!(ring.peek(0).is_err(), "wrong stamp");
        ring.header(0).store(encode(0, 10_000), Ordering::Relaxed);
        assert!(ring.peek(0).is_err(), "overrun");
        ring.header(0).store(encode(0, PAD), Ordering::Relaxed);
        assert!(ring.peek(0).is_err(), "pad at start");
        ring.header(0).store(encode(0, 245), Ordering::Relaxed);
        assert!(ring.peek(0).is_err(), "longer than max_len");
        ring.header(0).store(encode(0, 5), Ordering::Relaxed);
        assert_eq!(ring.peek(0).unwrap(), Peek::Frame { at: 8, len: 5 });
    }

    #[test]
    fn impossible_heads_are_detected() {
        let h = heap(256);
        let r = h.ring;
        assert!(r.check_head(8, 16, 64).is_err(), "went backwards");
        assert!(r.check_head(72, 0, 64).is_err(), "ahead of tail");
        assert!(r.check_head(0, 0, 300).is_err(), "more than capacity behind");
        assert!(r.check_head(3, 0, 64).is_err(), "unaligned");
        assert!(r.check_head(32, 16, 64).is_ok());
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
            fn peek_never_points_outside(cap_shift in 8u32..13, slot in 0u64..64, word in any::<u64>(), stamp_ok in any::<bool>()) {
                let cap = 1u64 << cap_shift;
                let h = heap(cap);
                let pos = (slot * FRAME_ALIGN) % cap + cap * 3;
                let word = if stamp_ok { (word & !0xffff_ffff) | u64::from(stamp(pos)) } else { word };
                h.ring.header(h.ring.index(pos)).store(word, Ordering::Relaxed);
                match h.ring.peek(pos) {
                    Ok(Peek::Frame { at, len }) => prop_assert!(at + len <= cap && len <= h.ring.max_len()),
                    Ok(Peek::Pad(skip)) => prop_assert!(h.ring.index(pos) + skip == cap && skip > 0),
                    Ok(Peek::Empty) => prop_assert_eq!(word, 0),
                    Ok(Peek::Closed) | Err(_) => {}
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
                    prop_assert!(tail.wrapping_sub(head) <= cap && head % 8 == 0);
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
                    tail = pring.publish(tail, len);
                }
            });
            let mut pos = 0u64;
            let mut got = 0;
            while got < LENS.len() {
                match ring.peek(pos).expect("a stale or torn header") {
                    Peek::Empty => loom::thread::yield_now(),
                    Peek::Pad(skip) => {
                        pos += skip;
                        head.store(pos, Ordering::Release);
                    }
                    Peek::Closed => panic!("no close was sent"),
                    Peek::Frame { at, len } => {
                        assert_eq!(len, LENS[got]);
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
