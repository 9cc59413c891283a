//! The hardware floor, measured in the same run as the transports: what no
//! transport between these two CPUs can beat.
//!
//! - **Cache-line round trip**: two processes on the two pinned CPUs pass a
//!   counter back and forth through one shared cache line each way,
//!   spinning (as `bench-baseline/lat.c spin` does). Every transport's
//!   round trip moves at least this.
//! - **Copy bandwidth**: one core copying messages of each size, from a
//!   source that stays in cache (the best case a stream can reach with one
//!   copy) and from a source larger than the caches (memory-bound).

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
        self
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
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7) as u8).collect();
    for &size in sizes {
        let size = size as usize;
        let cache_resident = copy_rate(&big[..size], size, budget / 4);
        let memory = copy_rate(&big, size, budget / 4);
        memcpy_bytes_per_sec.insert(size.to_string(), Copy { cache_resident, memory });
    }
    Ok(Floor {
        cacheline_rtt_ns,
        memcpy_bytes_per_sec,
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

/// The two counters, each on its own pair of cache lines.
#[repr(C, align(128))]
struct Line(AtomicU64);

fn lines(map: &Mmap) -> (&AtomicU64, &AtomicU64) {
    // SAFETY: the mapping is 4 KiB, page aligned, shared and zeroed; bytes 0
    // and 128 start two 128-aligned AtomicU64s inside it, which both
    // processes only access atomically, and the mapping outlives the
    // references (they live in this function's caller).
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
            if !ok {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the cache-line peer stopped answering",
                ));
            }
            Ok(hist.value_at_quantile(0.5))
        }
    }
}
