//! The hardware floor, measured in the same run as the transports: what no
//! transport between these two CPUs can beat.
//!
//! - **Cache-line round trip**: two processes on the two pinned CPUs pass a
//!   counter back and forth through one shared cache line each way,
//!   spinning (as `bench-baseline/lat.c spin` does). Every transport's
//!   round trip moves at least this.
//! - **Copy bandwidth**: one core copying messages of each size, from a
//!   source that stays in cache and from a source larger than the caches
//!   (memory-bound).
//! - **A bare ring**: two processes on the two CPUs streaming messages of
//!   each size one way through a ring in shared memory, one copying each
//!   message into a slot and stamping it, the other polling the stamp and
//!   copying the message out, with nothing else (no framing beyond the
//!   stamp, no checks; the reader says how far it has read every 64
//!   messages, and the writer looks only when the ring is full as far as
//!   it knows). A stream that copies its messages in and out — every
//!   copying transport's — moves at most about this much: on a host where
//!   lines cross between the CPUs slowly it is well under one core's copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ipcraft::mmap::{Mmap, MmapOptions};
use ipcraft::process::{self, Fork};
use serde::Serialize;

use super::measure::Clock;

/// Copy bandwidth for one message size.
#[derive(Serialize, Clone, Copy, Debug)]
pub struct Copy {
    /// Source and destination both in cache.
    pub cache_resident: f64,
    /// Source streamed from a buffer larger than the caches.
    pub memory: f64,
}

/// The floor of this run.
#[derive(Serialize, Clone, Debug)]
pub struct Floor {
    /// Median round trip of one cache line between the two CPUs (spinning).
    pub cacheline_rtt_ns: u64,
    /// Single-core copy bandwidth by message size (bytes per second).
    pub memcpy_bytes_per_sec: std::collections::BTreeMap<String, Copy>,
    /// A bare ring's one-way stream between the two CPUs by message size
    /// (bytes per second; see the module's documentation).
    pub bare_ring_bytes_per_sec: std::collections::BTreeMap<String, f64>,
}

impl Floor {
    /// The lower floor of two measurements: the faster round trip and,
    /// for each size, the faster copies.
    pub fn min(mut self, other: Floor) -> Floor {
        self.cacheline_rtt_ns = self.cacheline_rtt_ns.min(other.cacheline_rtt_ns);
        for (size, c) in other.memcpy_bytes_per_sec {
            let e = self.memcpy_bytes_per_sec.entry(size).or_insert(c);
            e.cache_resident = e.cache_resident.max(c.cache_resident);
            e.memory = e.memory.max(c.memory);
        }
        for (size, b) in other.bare_ring_bytes_per_sec {
            let e = self.bare_ring_bytes_per_sec.entry(size).or_insert(b);
            *e = e.max(b);
        }
        self
    }

    /// The bare ring's stream of `size`-byte messages, if measured.
    pub fn bare_ring(&self, size: u64) -> Option<f64> {
        self.bare_ring_bytes_per_sec.get(&size.to_string()).copied()
    }

    /// The copy bandwidths for `size`, if measured.
    pub fn copy(&self, size: u64) -> Option<Copy> {
        self.memcpy_bytes_per_sec.get(&size.to_string()).copied()
    }

    /// The least a round trip of `size`-byte messages can take here: the
    /// cache line there and back, plus the message copied once each way at
    /// one core's cache-resident bandwidth.
    pub fn round_trip_ns(&self, size: u64) -> Option<f64> {
        let copy = self.copy(size)?.cache_resident;
        (copy > 0.0 && self.cacheline_rtt_ns > 0).then(|| self.cacheline_rtt_ns as f64 + 2.0 * size as f64 / copy * 1e9)
    }
}

/// Bytes the memory-bound copy streams through: beyond any L3 here.
const BIG: usize = 64 << 20;

/// Measures the floor for `sizes`; `pinned` says the two processes run on
/// CPUs 0 and 1.
pub fn measure(sizes: &[u64], budget: Duration, clock: &Clock, pinned: bool) -> std::io::Result<Floor> {
    let cacheline_rtt_ns = cacheline_rtt(budget, clock, pinned)?;
    let mut memcpy_bytes_per_sec = std::collections::BTreeMap::new();
    let mut bare_ring_bytes_per_sec = std::collections::BTreeMap::new();
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7) as u8).collect();
    for &size in sizes {
        let size = size as usize;
        let cache_resident = copy_rate(&big[..size], size, budget / 4);
        let memory = copy_rate(&big, size, budget / 4);
        memcpy_bytes_per_sec.insert(size.to_string(), Copy { cache_resident, memory });
        bare_ring_bytes_per_sec.insert(size.to_string(), bare_ring(size, budget / 4, pinned, false)?);
    }
    Ok(Floor {
        cacheline_rtt_ns,
        memcpy_bytes_per_sec,
        bare_ring_bytes_per_sec,
    })
}

/// Copies `size`-byte blocks out of `src` (cycling through it) into one
/// destination for about `budget`; bytes per second.
fn copy_rate(src: &[u8], size: usize, budget: Duration) -> f64 {
    let mut dst = vec![0u8; size];
    let blocks = (src.len() / size).max(1);
    let (mut copied, mut i) = (0u64, 0usize);
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            let at = (i % blocks) * size;
            dst.copy_from_slice(&src[at..at + size]);
            std::hint::black_box(&mut dst);
            i += 1;
            copied += size as u64;
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    copied as f64 / start.elapsed().as_secs_f64()
}

/// The two counters, each on its own pair of cache lines, at the start of
/// a mapping of at least 4 KiB.
#[repr(C, align(128))]
struct Line(AtomicU64);

fn lines(map: &Mmap) -> (&AtomicU64, &AtomicU64) {
    // SAFETY: the mapping is at least 4 KiB, page aligned, shared and
    // zeroed; bytes 0 and 128 start two 128-aligned AtomicU64s inside it,
    // which both processes only access atomically, and the mapping
    // outlives the references (they live in this function's caller).
    unsafe {
        let base = map.as_ptr() as *const Line;
        (&(*base).0, &(*base.add(1)).0)
    }
}

/// The value that tells the echoing child to stop.
const STOP: u64 = u64::MAX;

/// Spins (yielding now and then: on a host with as many runnable threads as
/// CPUs a pure spin can starve the peer) until `word` holds `want` or more;
/// returns what it holds, or `None` after 5 s without it.
fn spin_until(word: &AtomicU64, want: u64) -> Option<u64> {
    let mut spins = 0u32;
    // The clock is read only once the wait is long: inside a round trip
    // of ~100 ns a clock read would be a large part of what is measured.
    let mut start = None;
    loop {
        let v = word.load(Ordering::Acquire);
        if v >= want {
            return Some(v);
        }
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            if start.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
}

fn cacheline_rtt(budget: Duration, clock: &Clock, pinned: bool) -> std::io::Result<u64> {
    let map = MmapOptions::new().map_anon_shared(4096).map_err(std::io::Error::from)?;
    // SAFETY: the bench is single-threaded when it forks; the child only
    // spins on the shared mapping and leaves through exit_child.
    match unsafe { process::fork() }.map_err(std::io::Error::from)? {
        Fork::Child => {
            if pinned {
                super::pin(1);
            }
            let (ping, pong) = lines(&map);
            let mut n = 1u64;
            loop {
                match spin_until(ping, n) {
                    None => process::exit_child(1),
                    Some(STOP) => process::exit_child(0),
                    Some(v) => {
                        pong.store(v, Ordering::Release);
                        n = v + 1;
                    }
                }
            }
        }
        Fork::Parent(pid) => {
            let (ping, pong) = lines(&map);
            let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds");
            let start = Instant::now();
            let mut n = 1u64;
            let mut ok = true;
            while start.elapsed() < budget || hist.len() < 1000 {
                let t0 = clock.now();
                ping.store(n, Ordering::Release);
                if spin_until(pong, n).is_none() {
                    ok = false;
                    break;
                }
                let t1 = clock.now();
                if n > 1000 {
                    hist.saturating_record(clock.ns(t1 - t0).max(1));
                }
                n += 1;
            }
            ping.store(STOP, Ordering::Release);
            reap(pid);
            if !ok {
                return Err(stopped("the cache-line peer"));
            }
            Ok(hist.value_at_quantile(0.5))
        }
    }
}

/// Waits for the floor's child, which was told to stop, and kills it when
/// it does not exit within 10 s.
fn reap(pid: u32) {
    if process::wait_pid_timeout(pid, Duration::from_secs(10))
        .ok()
        .flatten()
        .is_none()
    {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        let _ = process::wait_pid_timeout(pid, Duration::from_secs(5));
    }
}

fn stopped(who: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{who} stopped answering"))
}

/// Bytes per slot of the bare ring for `size`-byte messages: an 8-byte
/// stamp, then the message, rounded up to 8 so that every stamp is aligned.
fn bare_ring_stride(size: usize) -> usize {
    (8 + size).next_multiple_of(8)
}

/// Slots of the bare ring for `size`-byte messages: at least four, and
/// 1 MiB, as the bench gives the channel.
fn bare_ring_slots(size: usize) -> usize {
    let stride = bare_ring_stride(size);
    (4 * stride).max(1 << 20) / stride
}

/// Messages the bare ring's reader takes between two publications of how
/// far it has read: 64, or a quarter of the ring when that is less (the
/// writer must learn of free slots before it has filled the rest).
fn bare_ring_batch(slots: usize) -> u64 {
    (slots as u64 / 4).clamp(1, 64)
}

/// A bare ring's one-way stream of `size`-byte messages between the two
/// CPUs for about `budget` after one lap of warm-up; bytes per second (see
/// the module's documentation). The child copies each message into the
/// next slot, then stores the slot's stamp (the message's number plus 1,
/// release); the bench polls the stamp of the slot it wants (spinning,
/// then yielding), copies the message out, and publishes how many it has
/// read every [`bare_ring_batch`] messages, which the child reads only when
/// the ring is full as far as it knows.
///
/// With `verify` (the tests), the writer puts each message's number in its
/// first 8 bytes and the bench checks every byte it copied out, failing
/// with `InvalidData` at the first message that differs.
fn bare_ring(size: usize, budget: Duration, pinned: bool, verify: bool) -> std::io::Result<f64> {
    let (stride, slots) = (bare_ring_stride(size), bare_ring_slots(size));
    let map = MmapOptions::new()
        .map_anon_shared(4096 + slots * stride)
        .map_err(std::io::Error::from)?;
    // SAFETY: the mapping is 4096 + slots * stride bytes long, so the ring
    // starts inside it and runs to its end.
    let ring = unsafe { map.as_mut_ptr().add(4096) };
    let slot = |n: u64| {
        // SAFETY: `n % slots` is below `slots`, so the slot's `stride` bytes
        // lie inside the ring; it is 8-aligned (the ring is page aligned and
        // `stride` a multiple of 8), and both processes access its first 8
        // bytes only atomically.
        unsafe {
            let at = ring.add((n % slots as u64) as usize * stride);
            (&*(at as *const AtomicU64), at.add(8))
        }
    };
    let pattern = |i: usize| (i * 13) as u8;
    // Both buffers are made before the fork: the child never allocates.
    let mut msg: Vec<u8> = (0..size).map(pattern).collect();
    let mut buf = vec![0u8; size];
    // SAFETY: as in cacheline_rtt.
    match unsafe { process::fork() }.map_err(std::io::Error::from)? {
        Fork::Child => {
            if pinned {
                super::pin(1);
            }
            // `read`: how many messages the bench has read (STOP: stop).
            let (read, _) = lines(&map);
            let (mut n, mut room_until) = (0u64, slots as u64);
            loop {
                if n == room_until {
                    match spin_until(read, n + 1 - slots as u64) {
                        None => process::exit_child(1),
                        Some(STOP) => process::exit_child(0),
                        Some(r) => room_until = r + slots as u64,
                    }
                }
                if verify {
                    msg[..8].copy_from_slice(&n.to_le_bytes());
                }
                let (stamp, payload) = slot(n);
                // SAFETY: the reader is done with the slot: it read message
                // `n - slots` and published that (spin_until's acquire load
                // saw its release store), and reads the slot again only
                // after the stamp below.
                unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), payload, size) };
                n += 1;
                stamp.store(n, Ordering::Release);
            }
        }
        Fork::Parent(pid) => {
            let (read, _) = lines(&map);
            let (warm, batch) = (slots as u64, bare_ring_batch(slots));
            let (mut n, mut start) = (0u64, None::<Instant>);
            let outcome = loop {
                let (stamp, payload) = slot(n);
                if spin_until(stamp, n + 1).is_none() {
                    break Err(stopped("the bare ring's writer"));
                }
                // SAFETY: message `n` is in the slot (spin_until's acquire
                // load saw the writer's release store of its stamp), and
                // the writer leaves the slot alone until this side
                // publishes that it read it.
                unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), size) };
                std::hint::black_box(&mut buf);
                if verify && (buf[..8] != n.to_le_bytes() || (8..size).any(|i| buf[i] != pattern(i))) {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the bare ring's message {n} arrived changed"),
                    ));
                }
                n += 1;
                if n % batch == 0 {
                    read.store(n, Ordering::Release);
                    if start.is_some_and(|s| s.elapsed() >= budget) {
                        break Ok(());
                    }
                }
                if n == warm {
                    read.store(n, Ordering::Release);
                    start = Some(Instant::now());
                }
            };
            let took = start.map(|s| s.elapsed());
            read.store(STOP, Ordering::Release);
            reap(pid);
            outcome?;
            let took = took.expect("the budget is checked only after the warm-up lap");
            Ok((n - warm) as f64 * size as f64 / took.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bare ring moves every message intact and in order, whatever its
    /// size: with a ring of a few slots (4 MiB), with messages that straddle
    /// cache lines (48 bytes), and with the ring's wrap in the middle of
    /// the timed part.
    #[test]
    fn the_bare_ring_moves_every_message_intact() {
        for size in [16, 48, 4096, 65536, 4 << 20] {
            let rate = bare_ring(size, Duration::from_millis(30), false, true)
                .unwrap_or_else(|e| panic!("{size}-byte messages: {e}"));
            assert!(rate > 0.0, "{size}: {rate}");
        }
    }

    #[test]
    fn the_bare_ring_fits_its_slots_and_publishes_before_it_fills() {
        for size in [16, 48, 64, 65536, 4 << 20] {
            let (stride, slots) = (bare_ring_stride(size), bare_ring_slots(size));
            assert_eq!(stride % 8, 0);
            assert!(stride >= size + 8);
            assert!(slots >= 4, "{size}");
            assert!((1..=slots as u64 / 4).contains(&bare_ring_batch(slots)), "{size}");
        }
    }
}
