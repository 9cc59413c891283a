//! Copies between private memory and a ring another process may write at
//! any time, and how a receiver chooses the routine for large messages.
//!
//! # Two routes out of the ring
//!
//! A receiver copies a message of [`OPAQUE_MIN`] bytes or more out of the
//! ring with one of two routines ([`Route`]), and which is faster depends on
//! where the two processes run, not on the message: on these hosts (AMD
//! EPYC, 2 vCPUs) interleaved bench runs of 64 KiB messages gave
//!
//! | host period | [`Route::Cached`] (SSE loop) | [`Route::Streaming`] (`rep movsb`) |
//! |---|---|---|
//! | fast (a cache line crosses in ~75 ns) | stream 19–22 GB/s, round trip 10 µs | 9–11 GB/s, 16–17 µs |
//! | slow (~250 ns: another core complex) | 3.5–4.8 GB/s, 36–38 µs | 8.4–10.4 GB/s, 16–25 µs |
//!
//! (4 KiB messages alike: 19–20 against 8 GB/s fast, 3.5–3.6 against 6–7.6
//! slow.) On a CPU that announces fast strings both routes are `rep movsb`
//! and there is no choice: on an Intel Xeon host (FSRM) the channel's
//! 64 KiB stream moved 16.0–17.1 GB/s that way, against 12.2–13.9 with the
//! announcement ignored (the sender on the SSE loop, the receiver
//! choosing), and a C model copying in and out of a ring between the two
//! CPUs reached the same 15–17 whichever routine it used. The routine the
//! *receiver* reads with decides it; the sender's own routine changed
//! nothing measurable. Part of the cost lands on the
//! sender (in a C model of the fast case, a receiver reading with
//! `rep movsb` made the sender's writes to those lines a lap later twice
//! as slow), and `prefetchnta` reads behaved like `rep movsb` in both
//! cases, which suggests that whether the receiver's reads keep the lines
//! is what matters. A host can switch between the two within seconds, and
//! processes migrate, so a [`Chooser`] per receiver measures: it times
//! laps of the ring on the route it settled on, tries the other route now
//! and then, and switches when that was clearly faster.

use crate::error::Cause;
use std::time::{Duration, Instant};

/// How a receiver copies a message of [`OPAQUE_MIN`] bytes or more out of
/// the ring (shorter ones always take the word loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The assembly loop of 16-byte moves with prefetch (`rep movsb` on a
    /// CPU that announces fast strings): the faster one while sender and
    /// receiver share a cache.
    Cached,
    /// `rep movsb`: the faster one on these hosts while the two processes
    /// run on different core complexes.
    Streaming,
}

impl Route {
    fn other(self) -> Self {
        match self {
            Route::Cached => Route::Streaming,
            Route::Streaming => Route::Cached,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a copy shorter than [`OPAQUE_MIN`] moves its bytes (see
/// [`small_copy`]); chosen once per CPU, and kept by each ring so that its
/// fast paths read it with the ring's other fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Small {
    /// Eight bytes a step.
    Words,
    /// Sixteen bytes a step.
    Wide,
}

impl Small {
    /// The step for this CPU: [`Small::Wide`] on Intel CPUs, asked once
    /// (CPUID's vendor string), [`Small::Words`] elsewhere. Each ring keeps
    /// the answer: read from this function's static on the fast paths, it
    /// cost the receive 1–1.5 ns and six saved registers.
    ///
    /// Measured by a program that alternates, in the same two processes and
    /// block by block, the channel with either step (so both meet the host
    /// in the same state): on an Intel Xeon host (2026-11-26) 16-byte moves
    /// streamed 64-byte messages at 75–109 M/s against 64–95 with words,
    /// round trips alike, and in the host's second-long fast period (a line
    /// crossing in ~20 ns) took 64-byte round trips from 73–87 to 61–75 ns
    /// and streams from 31–67 to 64–80 M/s (ARCHITECTURE.md has the
    /// figures); on the AMD EPYC hosts before, 16-byte moves lowered the
    /// 64-byte stream where the two CPUs share a cache (54 → 34–46 M/s in
    /// the bench), so there the word loop stays.
    ///
    /// Out of line: CPUID's register clobbers stay out of its callers.
    #[inline(never)]
    pub(crate) fn here() -> Self {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            use std::sync::atomic::{AtomicU8, Ordering};
            /// 0: not asked yet; 1: words; 2: 16 bytes.
            static WIDE: AtomicU8 = AtomicU8::new(0);
            let wide = match WIDE.load(Ordering::Relaxed) {
                0 => {
                    use core::arch::x86_64::__cpuid;
                    // SAFETY: CPUID exists on every x86-64 CPU and leaf 0
                    // only reads the vendor string (safe to call since Rust
                    // 1.87; unsafe before, and this crate builds from 1.85).
                    #[allow(unused_unsafe)]
                    let leaf0 = unsafe { __cpuid(0) };
                    let intel = (leaf0.ebx, leaf0.edx, leaf0.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
                    WIDE.store(if intel { 2 } else { 1 }, Ordering::Relaxed);
                    intel
                }
                w => w == 2,
            };
            if wide {
                return Small::Wide;
            }
        }
        Small::Words
    }
}

/// Bytes of large-message copies a lap is timed over: the ring's capacity,
/// so that a lap's time includes what the receiver's reads cost the sender
/// when it writes those lines again, and at least this much, so that a lap
/// takes long enough to time (256 KiB: 13 µs at 20 GB/s).
const MIN_LAP: u64 = 256 << 10;
/// At most this much (a ring larger than the caches leaves nothing of one
/// lap in them by the next).
const MAX_LAP: u64 = 16 << 20;

/// Laps on the settled route between two trials of the other, at first
/// and after a switch; doubled after each trial that changes nothing, up
/// to [`MAX_SPAN`]. (A trial costs up to two laps at half speed: 16 laps
/// between trials cost ~6% when the other route is twice as slow, 256
/// laps well under 1%; 256 laps of 1 MiB are 13 ms at 20 GB/s, 50 ms at 5,
/// and the host's periods last seconds.)
const MIN_SPAN: u32 = 16;
/// See [`MIN_SPAN`].
const MAX_SPAN: u32 = 256;
/// Laps a trial of the other route lasts; the first is not timed (the
/// sender is still writing lines the old route read).
const TRIAL_LAPS: u32 = 3;

/// A receiver's choice of [`Route`], by timing laps of the ring (see the
/// module's documentation).
///
/// A lap's time is wall time, so it includes whatever else the receiving
/// process did in between, and waits for a slow sender: each route keeps
/// its *fastest* lap of the round, which such pauses only lengthen, and the
/// other route must beat the settled one by an eighth to take over. An
/// application that receives slowly makes both routes look alike, and then
/// nothing changes.
#[derive(Debug)]
pub(crate) struct Chooser {
    /// The route copies take now.
    route: Route,
    /// The route chosen, to which a trial returns.
    settled: Route,
    /// Large-copy bytes per lap; `u64::MAX` when there is no choice to make
    /// (a CPU with fast strings, or not x86-64), so a lap never ends.
    lap: u64,
    /// Large-copy bytes since the lap began.
    bytes: u64,
    /// When the lap began; `None` before the first.
    began: Option<Instant>,
    /// Whether this lap is timed (not the first on a route).
    timed: bool,
    /// The fastest timed lap of each route this round.
    best: [Option<Duration>; 2],
    /// Laps until the route changes (a trial begins or ends).
    laps_left: u32,
    /// Laps between trials now.
    span: u32,
}

impl Chooser {
    /// A chooser for a ring of `capacity` bytes, starting on
    /// [`Route::Cached`].
    pub(crate) fn new(capacity: u64) -> Self {
        Chooser {
            route: Route::Cached,
            settled: Route::Cached,
            lap: if routes_differ() {
                capacity.clamp(MIN_LAP, MAX_LAP)
            } else {
                u64::MAX
            },
            bytes: 0,
            began: None,
            timed: false,
            best: [None; 2],
            laps_left: MIN_SPAN,
            span: MIN_SPAN,
        }
    }

    /// The route for the next large copy.
    #[inline]
    pub(crate) fn route(&self) -> Route {
        self.route
    }

    /// Counts a copy of `len` bytes out of the ring (only large ones count).
    #[inline]
    pub(crate) fn copied(&mut self, len: usize) {
        if len >= OPAQUE_MIN {
            self.bytes += len as u64;
            if self.bytes >= self.lap {
                self.lap_done(Instant::now());
            }
        }
    }

    #[cold]
    fn lap_done(&mut self, now: Instant) {
        self.bytes = 0;
        let took = self.began.map(|b| now.saturating_duration_since(b));
        self.began = Some(now);
        self.finish_lap(took);
    }

    /// Books a lap that took `took` (`None`: the first, untimed) and moves
    /// to a trial, or back from one, when its laps are up.
    fn finish_lap(&mut self, took: Option<Duration>) {
        if let (true, Some(took)) = (self.timed, took) {
            let best = &mut self.best[self.route.index()];
            *best = Some(best.map_or(took, |b| b.min(took)));
        }
        self.timed = true;
        self.laps_left -= 1;
        if self.laps_left > 0 {
            return;
        }
        if self.route == self.settled {
            self.route = self.settled.other();
            self.laps_left = TRIAL_LAPS;
        } else {
            let (tried, kept) = (self.best[self.route.index()], self.best[self.settled.index()]);
            if matches!((tried, kept), (Some(t), Some(k)) if t < k - k / 8) {
                self.settled = self.route;
                self.span = MIN_SPAN;
            } else {
                self.span = (self.span * 2).min(MAX_SPAN);
            }
            self.route = self.settled;
            self.laps_left = self.span;
            self.best = [None; 2];
        }
        self.timed = false;
    }
}

/// Whether the two routes are different routines here (on a CPU with fast
/// strings both are `rep movsb`).
fn routes_differ() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    return !fast_strings();
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    return false;
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// Another process may be writing the source, so the copy uses only
/// operations the compiler treats as opaque or atomic: an assembly word
/// loop for short messages ([`small_copy`]; relaxed atomic words where
/// there is no assembly), an assembly loop of 16-byte moves (x86-64) for
/// long ones — never plain loads it could assume stable.
///
/// # Safety
///
/// `src..src + dst.len()` must be mapped and readable.
pub(crate) unsafe fn copy_from_shared(dst: &mut [u8], src: *const u8, route: Route) {
    // SAFETY: forwarded; dst is writable for its length.
    unsafe { copy_from_shared_raw(dst.as_mut_ptr(), src, dst.len(), route) }
}

/// Where a received message (or the part after its prefix) is copied: a
/// vector, whose contents it replaces (into its spare capacity: nothing is
/// zeroed first), or a slice it must fit in.
pub(crate) trait Dest {
    /// Copies `len` bytes from shared memory at `src`; `Err(room)` (nothing
    /// copied) when they do not fit in the `room` bytes there are.
    ///
    /// # Safety
    ///
    /// `src..src + len` must be mapped and readable.
    unsafe fn fill_from_shared(&mut self, src: *const u8, len: usize, route: Route) -> Result<(), usize>;

    /// [`fill_from_shared`](Self::fill_from_shared) for `len` below
    /// [`OPAQUE_MIN`] on the receiver's fast path: `false` (nothing copied)
    /// unless the bytes fit without more ado (a slice long enough, a vector
    /// with the capacity).
    ///
    /// # Safety
    ///
    /// `src..src + len` must be mapped and readable.
    unsafe fn fill_small(&mut self, src: *const u8, len: usize, small: Small) -> bool;
}

impl Dest for Vec<u8> {
    #[inline(always)]
    unsafe fn fill_small(&mut self, src: *const u8, len: usize, small: Small) -> bool {
        if len > self.capacity() {
            return false;
        }
        // SAFETY: the vector has room for `len` bytes, all of which the
        // copy initializes before `set_len`; `src` is readable (caller).
        unsafe {
            copy_from_frame(self.as_mut_ptr(), src, len, small);
            self.set_len(len);
        }
        true
    }

    unsafe fn fill_from_shared(&mut self, src: *const u8, len: usize, route: Route) -> Result<(), usize> {
        self.clear();
        self.reserve(len);
        // SAFETY: the vector has room for `len` bytes, all of which the
        // copy initializes before `set_len`; `src` is readable (caller).
        unsafe {
            copy_from_shared_raw(self.as_mut_ptr(), src, len, route);
            self.set_len(len);
        }
        Ok(())
    }
}

impl Dest for [u8] {
    #[inline(always)]
    unsafe fn fill_small(&mut self, src: *const u8, len: usize, small: Small) -> bool {
        if len > self.len() {
            return false;
        }
        // SAFETY: `dst` holds `len` bytes; `src` is readable (caller).
        unsafe { copy_from_frame(self.as_mut_ptr(), src, len, small) };
        true
    }

    unsafe fn fill_from_shared(&mut self, src: *const u8, len: usize, route: Route) -> Result<(), usize> {
        let Some(dst) = self.get_mut(..len) else {
            return Err(self.len());
        };
        // SAFETY: `src` is readable for `len` bytes (caller), `dst` is `len` bytes.
        unsafe { copy_from_shared(dst, src, route) };
        Ok(())
    }
}

/// [`copy_from_shared`] into `len` bytes at `dst`, which may be
/// uninitialized.
///
/// # Safety
///
/// `src..src + len` must be mapped and readable, `dst..dst + len` writable
/// private memory.
unsafe fn copy_from_shared_raw(dst: *mut u8, src: *const u8, len: usize, route: Route) {
    if len >= OPAQUE_MIN {
        // SAFETY: forwarded: src is readable and dst writable for len bytes.
        unsafe { opaque_copy(dst, src, len, route) }
    } else {
        // SAFETY: as above.
        unsafe { small_copy(dst, src, len, true, Small::here()) }
    }
}

/// Copies `src` into shared memory at `dst` (see [`copy_from_shared`]).
///
/// # Safety
///
/// `dst..dst + src.len()` must be mapped and writable.
#[inline(always)]
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8], small: Small) {
    if src.len() >= OPAQUE_MIN {
        // SAFETY: forwarded: dst is writable for src.len() bytes.
        unsafe { opaque_copy(dst, src.as_ptr(), src.len(), Route::Cached) }
    } else {
        // SAFETY: as above.
        unsafe { small_copy(dst, src.as_ptr(), src.len(), false, small) }
    }
}

/// Copies the `len` bytes, fewer than [`OPAQUE_MIN`], of a frame's payload
/// at `src` to `dst` (see [`small_copy`]).
///
/// # Safety
///
/// `src..src + len` is mapped ring space, `dst..dst + len` writable
/// private memory.
#[inline(always)]
unsafe fn copy_from_frame(dst: *mut u8, src: *const u8, len: usize, small: Small) {
    // SAFETY: forwarded.
    unsafe { small_copy(dst, src, len, true, small) }
}

/// Part of [`small_copy`]'s assembly: words while 8 or more bytes are
/// left, then bytes — the whole copy with [`Small::Words`], a copy shorter
/// than 16 bytes with [`Small::Wide`]; ends at label `5`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
macro_rules! short_tail {
    () => {
        concat!(
            "cmp {n}, 8\n",
            "jb 3f\n",
            "2:\n",
            "mov {t}, qword ptr [{src}]\n",
            "mov qword ptr [{dst}], {t}\n",
            "add {src}, 8\n",
            "add {dst}, 8\n",
            "sub {n}, 8\n",
            "cmp {n}, 8\n",
            "jae 2b\n",
            "3:\n",
            "test {n}, {n}\n",
            "jz 5f\n",
            "4:\n",
            "mov {t:l}, byte ptr [{src}]\n",
            "mov byte ptr [{dst}], {t:l}\n",
            "inc {src}\n",
            "inc {dst}\n",
            "dec {n}\n",
            "jnz 4b\n",
            "5:\n",
        )
    };
}

/// Every copy of fewer than [`OPAQUE_MIN`] bytes between the ring and
/// private memory. On x86-64 an assembly loop, opaque to the compiler (so
/// it neither assumes the ring stable nor unrolls the loop; unaligned
/// moves are fine there), using few registers: the sender's fast path
/// around it pushes one register, after its check, where with
/// `atomic_copy` (an alignment prologue, loops the compiler unrolls)
/// `send` pushed six. In a stream of small messages the sender waits on its
/// stores (each new ring line is fetched from the receiver's cache, and
/// stores leave the CPU in order), so each register pushed per message was
/// one more. Elsewhere (and under Miri), `atomic_copy`: relaxed atomic
/// words.
///
/// The loop moves 16 bytes a step (and the last 16 once more, overlapping,
/// when the length is not a multiple of 16) with [`Small::Wide`] (see
/// [`Small::here`]), and 8 bytes a step with [`Small::Words`]; a copy
/// shorter than its step goes word by word, then byte by byte.
///
/// # Safety
///
/// `src..src + len` readable, `dst..dst + len` writable; the shared side
/// (`src` when `from_shared`, else `dst`) is ring space, the other private.
#[inline(always)]
unsafe fn small_copy(dst: *mut u8, src: *const u8, len: usize, from_shared: bool, small: Small) {
    debug_assert!(len < OPAQUE_MIN);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let _ = from_shared;
        if small == Small::Wide {
            // SAFETY: moves `len` bytes from `src` to `dst` (both valid for
            // that many: the caller): 16 at a time while 16 or more are
            // left, then, if any are left, the last 16 of the `len` (which
            // is at least 16 on that path, so they start inside both
            // ranges); a copy shorter than 16 goes word by word, then byte
            // by byte. SSE2 is part of x86-64.
            unsafe {
                std::arch::asm!(
                    "cmp {n}, 16",
                    "jb 7f",
                    "6:",
                    "movdqu {x}, xmmword ptr [{src}]",
                    "movdqu xmmword ptr [{dst}], {x}",
                    "add {src}, 16",
                    "add {dst}, 16",
                    "sub {n}, 16",
                    "cmp {n}, 16",
                    "jae 6b",
                    "test {n}, {n}",
                    "jz 5f",
                    "sub {src}, 16",
                    "sub {dst}, 16",
                    "movdqu {x}, xmmword ptr [{src} + {n}]",
                    "movdqu xmmword ptr [{dst} + {n}], {x}",
                    "jmp 5f",
                    "7:",
                    short_tail!(),
                    n = inout(reg) len => _,
                    src = inout(reg) src => _,
                    dst = inout(reg) dst => _,
                    t = out(reg) _,
                    x = out(xmm_reg) _,
                    options(nostack)
                );
            }
        } else {
            // SAFETY: moves `len` bytes from `src` to `dst` (both valid for
            // that many: the caller), words while 8 or more are left, then
            // bytes.
            unsafe {
                std::arch::asm!(
                    short_tail!(),
                    n = inout(reg) len => _,
                    src = inout(reg) src => _,
                    dst = inout(reg) dst => _,
                    t = out(reg) _,
                    options(nostack)
                );
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    // SAFETY: forwarded.
    unsafe {
        let _ = small;
        atomic_copy(dst, src, len, from_shared)
    }
}

/// Copies `data` into the `len`-byte slot at `slot`, starting `offset`
/// bytes in; the cause to report if it does not fit (nothing is copied).
///
/// # Safety
///
/// `slot..slot + len` must be mapped, writable ring space.
pub(crate) unsafe fn write_within(slot: *mut u8, len: usize, offset: usize, data: &[u8]) -> Result<(), Cause> {
    match offset.checked_add(data.len()) {
        Some(end) if end <= len => {
            // SAFETY: offset + data.len() <= len, inside the slot (caller).
            unsafe { copy_to_shared(slot.add(offset), data, Small::here()) };
            Ok(())
        }
        _ => Err(over_limit(offset, data.len(), len, "the reserved slot")),
    }
}

/// Copies `dst.len()` bytes of the `len`-byte message at `frame`, starting
/// `offset` bytes in; the cause to report if that runs past its end.
///
/// # Safety
///
/// `frame..frame + len` must be mapped and readable.
pub(crate) unsafe fn read_within(
    frame: *const u8,
    len: usize,
    offset: usize,
    dst: &mut [u8],
    route: Route,
) -> Result<(), Cause> {
    match offset.checked_add(dst.len()) {
        Some(end) if end <= len => {
            // SAFETY: offset + dst.len() <= len, inside the frame (caller).
            unsafe { copy_from_shared(dst, frame.add(offset), route) };
            Ok(())
        }
        _ => Err(over_limit(offset, dst.len(), len, "the message")),
    }
}

fn over_limit(offset: usize, n: usize, len: usize, limit_name: &'static str) -> Cause {
    Cause::OverLimit {
        requested: (offset as u64).saturating_add(n as u64),
        limit: len as u64,
        limit_name,
    }
}

/// From this length on, the assembly copy (64 bytes a round) takes over
/// from the word loop. (At 64 the 64-byte stream fell from 2.0–2.4 GB/s to
/// 1.1–1.3 in interleaved bench runs, the round trip unchanged.)
#[cfg(all(target_arch = "x86_64", not(miri)))]
pub(crate) const OPAQUE_MIN: usize = 512;
/// Elsewhere the opaque copy is a volatile byte loop, slower than the word
/// loop for short messages.
#[cfg(any(not(target_arch = "x86_64"), miri))]
pub(crate) const OPAQUE_MIN: usize = 512;

/// Word-at-a-time copy where the shared side (`src` when `from_shared`,
/// else `dst`) is accessed only with relaxed atomics: [`small_copy`] where
/// there is no assembly.
///
/// # Safety
///
/// Both ranges valid for `len` bytes; the private side not shared.
#[cfg(any(not(target_arch = "x86_64"), miri))]
unsafe fn atomic_copy(dst: *mut u8, src: *const u8, len: usize, from_shared: bool) {
    use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
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

/// Copies `len` (at least 64) bytes with an assembly loop of unaligned
/// 16-byte SSE2 moves, four loads then four stores a round, prefetching
/// the source [`PREFETCH`] bytes ahead while that stays inside the message,
/// and the last 64 bytes once more when `len` is not a multiple of 64
/// (overlapping what the loop wrote). The compiler sees only the assembly,
/// so it can neither assume the shared side stable nor read it again later.
///
/// On a CPU that announces fast strings (ERMS or FSRM), and for
/// [`Route::Streaming`], the copy is one `rep movsb`. Without that
/// microcode (AMD before Zen 3, and VMs that hide the flag — this project's
/// hosts) `rep movsb` copied 64 KiB out of a ring at 14–16 GB/s where this
/// loop and glibc's `memcpy` did 35–37 (one core, from cache), and a
/// receiver reading with it made the sender's next writes to those lines
/// twice as slow while the two share a cache (a C model of the stream,
/// cycles per 64 KiB message: sender 11,600–15,700 against 5,400–6,000).
/// Across core complexes it is the other way round (see the module's
/// documentation), which is what [`Chooser`] is for. Senders always take
/// this loop: their routine made no measurable difference either way.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(never)]
unsafe fn opaque_copy(dst: *mut u8, src: *const u8, len: usize, route: Route) {
    /// Copies `n` bytes, a non-zero multiple of 64, prefetching `ahead`
    /// bytes past each round's source (0: the line being read, no effect).
    ///
    /// # Safety
    ///
    /// Both ranges valid for `n` bytes.
    unsafe fn rounds(dst: *mut u8, src: *const u8, n: usize, ahead: usize) {
        // SAFETY: the caller guarantees both ranges for `n` bytes, and `n`
        // is a non-zero multiple of 64, so the loop moves exactly `n` bytes
        // and ends when the count reaches 0; SSE2 is part of x86-64; a
        // prefetch never faults, whatever the address.
        unsafe {
            std::arch::asm!(
                "2:",
                "prefetcht0 byte ptr [{src} + {ahead}]",
                "movdqu {a}, xmmword ptr [{src}]",
                "movdqu {b}, xmmword ptr [{src} + 16]",
                "movdqu {c}, xmmword ptr [{src} + 32]",
                "movdqu {d}, xmmword ptr [{src} + 48]",
                "movdqu xmmword ptr [{dst}], {a}",
                "movdqu xmmword ptr [{dst} + 16], {b}",
                "movdqu xmmword ptr [{dst} + 32], {c}",
                "movdqu xmmword ptr [{dst} + 48], {d}",
                "add {src}, 64",
                "add {dst}, 64",
                "sub {n}, 64",
                "jnz 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = inout(reg) n => _,
                ahead = in(reg) ahead,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack)
            );
        }
    }
    debug_assert!(len >= 64);
    if route == Route::Streaming || fast_strings() {
        // SAFETY: the caller guarantees both ranges; `rep movsb` copies
        // exactly `len` bytes forward (the direction flag is clear per the
        // ABI).
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    let body = len & !63;
    // The rounds whose prefetch stays inside the message (past it would
    // pull in ring lines the sender may be writing).
    let prefetched = body.saturating_sub(PREFETCH) & !63;
    // SAFETY: `prefetched` <= `body` <= `len` and `len` >= 64, so every
    // call stays inside the ranges the caller guarantees.
    unsafe {
        if prefetched > 0 {
            rounds(dst, src, prefetched, PREFETCH);
        }
        if body > prefetched {
            rounds(dst.add(prefetched), src.add(prefetched), body - prefetched, 0);
        }
        if body != len {
            rounds(dst.add(len - 64), src.add(len - 64), 64, 0);
        }
    }
}

/// Whether the CPU announces fast `rep movsb` (ERMS or FSRM: CPUID leaf 7,
/// EBX bit 9 or EDX bit 4), asked once.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn fast_strings() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        // SAFETY: CPUID exists on every x86-64 CPU and only reads
        // identification registers; leaf 7 is asked only when leaf 0 says
        // it exists. (Safe to call since Rust 1.87; unsafe before, and this
        // crate builds from 1.85.)
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { (__cpuid(0).eax >= 7).then(|| __cpuid_count(7, 0)) };
        leaf7.is_some_and(|l| l.ebx & (1 << 9) != 0 || l.edx & (1 << 4) != 0)
    })
}

/// How far ahead [`opaque_copy`] prefetches: 16 lines. (64 KiB stream and
/// round trip, interleaved bench runs: 512 and 1024 both took the round
/// trip from 10.0–10.6 µs to 8.3–8.5; 1024 streamed a little more.)
#[cfg(all(target_arch = "x86_64", not(miri)))]
const PREFETCH: usize = 1024;

#[cfg(any(not(target_arch = "x86_64"), miri))]
unsafe fn opaque_copy(dst: *mut u8, src: *const u8, len: usize, _route: Route) {
    for i in 0..len {
        // SAFETY: the caller guarantees both ranges; volatile accesses are
        // never merged or repeated by the compiler.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_copies_move_exactly_the_bytes_asked_for() {
        // Every length around the word loop / assembly boundary and the
        // 64-byte rounds, at every misalignment of either side; the bytes
        // around the destination stay untouched.
        let src: Vec<u8> = (0..1200u32).map(|i| (i * 7 + 3) as u8).collect();
        let lens = (0..=300).chain([511, 512, 513, 1000, 1024]);
        for len in lens {
            for ((s_off, d_off), route) in [(0, 0), (1, 0), (0, 3), (5, 9), (8, 8), (15, 1)]
                .into_iter()
                .flat_map(|offs| [(offs, Route::Cached), (offs, Route::Streaming)])
            {
                let mut out = vec![0xAAu8; len + 32];
                // SAFETY: `src[s_off..s_off + len]` and `out[d_off..d_off + len]` are in bounds.
                unsafe { copy_to_shared(out.as_mut_ptr().add(d_off), &src[s_off..s_off + len], Small::here()) };
                assert_eq!(&out[d_off..d_off + len], &src[s_off..s_off + len], "to, len {len}");
                assert!(
                    out[..d_off].iter().chain(&out[d_off + len..]).all(|&b| b == 0xAA),
                    "to, len {len}"
                );
                let mut back = vec![0x55u8; len + 32];
                // SAFETY: as above.
                unsafe { copy_from_shared(&mut back[d_off..d_off + len], src.as_ptr().add(s_off), route) };
                assert_eq!(&back[d_off..d_off + len], &src[s_off..s_off + len], "from, len {len}");
                assert!(
                    back[..d_off].iter().chain(&back[d_off + len..]).all(|&b| b == 0x55),
                    "from, len {len}"
                );
            }
        }
    }

    #[test]
    fn the_fast_path_copies_move_exactly_the_bytes_asked_for() {
        // Every length the fast paths take, from and to an 8-aligned frame,
        // at several misalignments of the private side; the bytes around
        // the destination stay untouched.
        #[repr(C, align(64))]
        struct Frame([u8; OPAQUE_MIN + 64]);
        let src: Vec<u8> = (0..OPAQUE_MIN as u32 + 16).map(|i| (i * 13 + 5) as u8).collect();
        // (Under Miri, where the copy is the atomic fallback, fewer lengths.)
        let lens: Vec<usize> = if cfg!(miri) {
            (0..=24).chain([63, 64, 65, 200, OPAQUE_MIN - 1]).collect()
        } else {
            (0..OPAQUE_MIN).collect()
        };
        for (len, small) in lens.into_iter().flat_map(|l| [(l, Small::Words), (l, Small::Wide)]) {
            for off in [0, 1, 3, 7, 8] {
                let mut frame = Frame([0xAA; OPAQUE_MIN + 64]);
                let part = &src[off..off + len];
                // SAFETY: the frame holds 16 + len bytes; `part` is in bounds.
                unsafe { small_copy(frame.0.as_mut_ptr().add(16), part.as_ptr(), len, false, small) };
                assert_eq!(&frame.0[16..16 + len], part, "to, len {len}, {small:?}");
                assert!(
                    frame.0[..16].iter().chain(&frame.0[16 + len..]).all(|&b| b == 0xAA),
                    "to, len {len}, {small:?}"
                );
                let mut back = vec![0x55u8; len + 16];
                // SAFETY: the frame's payload holds len bytes; so does `back[off..]`.
                // (A mutable pointer, as into a ring: the copy reads it with atomics.)
                unsafe {
                    small_copy(
                        back.as_mut_ptr().add(off),
                        frame.0.as_mut_ptr().add(16),
                        len,
                        true,
                        small,
                    )
                };
                assert_eq!(&back[off..off + len], part, "from, len {len}, {small:?}");
                assert!(
                    back[..off].iter().chain(&back[off + len..]).all(|&b| b == 0x55),
                    "from, len {len}, {small:?}"
                );
            }
        }
    }

    /// Runs `laps` laps, each taking what `took` says for the route in use.
    fn run(c: &mut Chooser, laps: u32, took: impl Fn(Route, u32) -> u64) {
        for i in 0..laps {
            c.finish_lap(Some(Duration::from_micros(took(c.route(), i))));
        }
    }

    #[test]
    fn a_route_that_is_clearly_faster_on_trial_takes_over() {
        let mut c = Chooser::new(1 << 20);
        let speed = |r: Route, _| if r == Route::Cached { 100 } else { 50 };
        run(&mut c, MIN_SPAN, speed);
        assert_eq!(c.route(), Route::Streaming, "the trial begins after the span");
        run(&mut c, TRIAL_LAPS, speed);
        assert_eq!(
            (c.route(), c.settled, c.span),
            (Route::Streaming, Route::Streaming, MIN_SPAN)
        );
        // Now the old route is the one tried, found slower, and the span
        // between trials doubles each time, up to its bound.
        let mut spans = Vec::new();
        for _ in 0..8 {
            let laps = c.span + TRIAL_LAPS;
            run(&mut c, laps, speed);
            assert_eq!(c.route(), Route::Streaming);
            spans.push(c.span);
        }
        assert_eq!(spans, [32, 64, 128, 256, 256, 256, 256, 256]);
    }

    #[test]
    fn pauses_and_small_differences_change_nothing() {
        let mut c = Chooser::new(1 << 20);
        // The settled route's laps vary, some with long pauses in them; the
        // trial's best lap is only 5% better than the settled one's best.
        let took = |r: Route, i: u32| match r {
            Route::Cached if i % 5 == 0 => 100,
            Route::Cached => 100 + 1000 * u64::from(i % 3),
            Route::Streaming => 95,
        };
        for round in 0..4 {
            let laps = c.span + TRIAL_LAPS;
            run(&mut c, laps, took);
            assert_eq!(c.route(), Route::Cached, "round {round}");
        }
    }

    #[test]
    fn the_first_lap_of_a_trial_is_not_timed() {
        let mut c = Chooser::new(1 << 20);
        run(&mut c, MIN_SPAN, |_, _| 100);
        assert_eq!(c.route(), Route::Streaming);
        // Its first lap is fast (the sender is still writing lines the old
        // route read), the timed ones slow: no switch.
        run(&mut c, TRIAL_LAPS, |_, i| if i == 0 { 10 } else { 150 });
        assert_eq!(c.route(), Route::Cached);
        // The same trial with every lap fast does switch.
        let laps = c.span;
        run(&mut c, laps, |_, _| 100);
        run(&mut c, TRIAL_LAPS, |_, _| 10);
        assert_eq!(c.route(), Route::Streaming);
    }

    #[test]
    fn only_large_copies_count_towards_a_lap() {
        let mut c = Chooser::new(1);
        c.lap = MIN_LAP;
        let (small, huge) = (Chooser::new(4096).lap, Chooser::new(1 << 40).lap);
        if routes_differ() {
            assert_eq!((small, huge), (MIN_LAP, MAX_LAP));
        } else {
            assert_eq!((small, huge), (u64::MAX, u64::MAX), "nothing to choose");
        }
        for _ in 0..10_000 {
            c.copied(OPAQUE_MIN - 1);
        }
        assert_eq!((c.bytes, c.began), (0, None));
        for _ in 0..MIN_LAP / 65536 {
            c.copied(65536);
        }
        assert!(c.began.is_some(), "a lap of large copies ended");
        assert_eq!((c.bytes, c.laps_left), (0, MIN_SPAN - 1));
    }
}
