//! The two patterns, run between two real processes: content stamping and
//! checking, the ping-pong and streaming loops, and the clock.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Sends and receives whole messages of a fixed size.
pub trait Link {
    /// Sends one message of `buf.len()` bytes.
    fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Receives one message of exactly `buf.len()` bytes.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// Sequence number that tells the peer to stop.
const STOP: u64 = u64::MAX;
/// Bytes between the per-block stamps.
const BLOCK: usize = 4096;
/// Every this many messages the receiver compares every byte.
const FULL_CHECK_EVERY: u64 = 64;
/// Smallest message: sequence number and checksum.
pub const MIN_SIZE: usize = 16;

/// Child exit status when content did not match.
pub const EXIT_BAD_CONTENT: i32 = 3;
/// Child exit status when the transport failed.
pub const EXIT_IO: i32 = 4;

fn checksum(seq: u64, len: usize) -> u64 {
    // A multiply-xorshift mix of the sequence number and length: as good as
    // a byte-wise hash at catching a wrong or torn header, at a few cycles
    // (it runs inside the timed round trip, on the echoing side).
    let mut h = (seq ^ (len as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Writes this message's identity into `buf`: the sequence number, a
/// checksum of it and the length, and `seq ^ k` at the start of every 4 KiB
/// block `k` — so a lost, repeated, reordered or torn message is caught
/// without reading every byte.
pub fn stamp(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    buf[0..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&checksum(seq, len).to_le_bytes());
    let mut k = 1;
    while k * BLOCK + 8 <= len {
        buf[k * BLOCK..k * BLOCK + 8].copy_from_slice(&(seq ^ k as u64).to_le_bytes());
        k += 1;
    }
}

/// The sequence number a message carries.
pub fn seq_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[0..8].try_into().unwrap_or_default())
}

/// Checks the stamps of a message that should carry `seq`.
pub fn stamps_ok(buf: &[u8], seq: u64) -> bool {
    let len = buf.len();
    if seq_of(buf) != seq || buf[8..16] != checksum(seq, len).to_le_bytes() {
        return false;
    }
    let mut k = 1;
    while k * BLOCK + 8 <= len {
        if buf[k * BLOCK..k * BLOCK + 8] != (seq ^ k as u64).to_le_bytes() {
            return false;
        }
        k += 1;
    }
    true
}

/// Checks a received message: stamps always, every byte now and then
/// (`expected` is the sender's fill pattern, re-stamped here).
pub struct Checker {
    expected: Vec<u8>,
}

impl Checker {
    pub fn new(pattern: &[u8]) -> Self {
        Self {
            expected: pattern.to_vec(),
        }
    }

    pub fn ok(&mut self, got: &[u8], seq: u64) -> bool {
        if !stamps_ok(got, seq) {
            return false;
        }
        if seq % FULL_CHECK_EVERY == 0 {
            stamp(&mut self.expected, seq);
            return got == &self.expected[..];
        }
        true
    }
}

/// The fill pattern for messages of `size` bytes.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(131) >> 3) as u8 ^ 0x5a).collect()
}

/// A fast clock: the TSC calibrated against the monotonic clock on x86-64
/// (what the C reference uses), `Instant` elsewhere.
pub struct Clock {
    #[cfg(target_arch = "x86_64")]
    ticks_per_ns: f64,
    #[cfg(not(target_arch = "x86_64"))]
    origin: Instant,
}

impl Clock {
    pub fn calibrate() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let (i0, t0) = (Instant::now(), Self::raw());
            while i0.elapsed() < Duration::from_millis(50) {
                std::hint::spin_loop();
            }
            let (ns, ticks) = (i0.elapsed().as_nanos() as f64, Self::raw() - t0);
            Self {
                ticks_per_ns: ticks as f64 / ns,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self { origin: Instant::now() }
    }

    #[cfg(target_arch = "x86_64")]
    fn raw() -> u64 {
        // SAFETY: RDTSC has no preconditions on x86-64.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// A time stamp in clock units.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            Self::raw()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.origin.elapsed().as_nanos() as u64
        }
    }

    /// Clock units to nanoseconds.
    pub fn ns(&self, units: u64) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            (units as f64 / self.ticks_per_ns) as u64
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            units
        }
    }
}

/// Round-trip latencies.
pub struct PingPong {
    pub samples: u64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
}

/// Streaming throughput.
pub struct Stream {
    pub messages: u64,
    pub bytes_per_sec: f64,
    pub messages_per_sec: f64,
}

/// Why a measurement failed.
pub enum Failed {
    Io(io::Error),
    Content(u64),
}

impl From<io::Error> for Failed {
    fn from(e: io::Error) -> Self {
        Failed::Io(e)
    }
}

/// Parent side of ping-pong: send, wait for the echo, check it; warm-up
/// round trips are not recorded. Runs for `budget` (at most `max` samples).
pub fn pingpong_parent(
    link: &mut impl Link,
    size: usize,
    budget: Duration,
    max: u64,
    clock: &Clock,
) -> Result<PingPong, Failed> {
    let pattern = pattern(size);
    let mut out = pattern.clone();
    let mut back = vec![0u8; size];
    let mut checker = Checker::new(&pattern);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    let warmup: u64 = 1000;
    let start = Instant::now();
    let mut seq = 0u64;
    let mut measure_start = None;
    loop {
        stamp(&mut out, seq);
        let t0 = clock.now();
        link.send(&out)?;
        link.recv(&mut back)?;
        let t1 = clock.now();
        if !checker.ok(&back, seq) {
            return Err(Failed::Content(seq));
        }
        if seq == warmup {
            measure_start = Some(Instant::now());
        }
        if seq >= warmup {
            hist.saturating_record(clock.ns(t1 - t0).max(1));
        }
        seq += 1;
        if seq % 256 == 0 && seq > warmup && (start.elapsed() >= budget || seq - warmup >= max) {
            break;
        }
    }
    let wall = measure_start.map_or(Duration::ZERO, |s| s.elapsed());
    stamp(&mut out, STOP);
    link.send(&out)?;
    let samples = hist.len();
    Ok(PingPong {
        samples,
        median_ns: hist.value_at_quantile(0.5),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        min_ns: hist.min(),
        mean_ns: wall.as_nanos() as f64 / samples.max(1) as f64,
    })
}

/// Child side of ping-pong: echo every message after checking its stamps;
/// returns at the stop message.
pub fn pingpong_child(link: &mut impl Link, size: usize) -> Result<(), Failed> {
    let mut buf = vec![0u8; size];
    let mut expected = 0u64;
    loop {
        link.recv(&mut buf)?;
        if seq_of(&buf) == STOP {
            return Ok(());
        }
        if !stamps_ok(&buf, expected) {
            return Err(Failed::Content(expected));
        }
        link.send(&buf)?;
        expected += 1;
    }
}

/// Sending side of a stream (the child): stamped messages for `budget`,
/// then the stop message.
pub fn stream_sender(link: &mut impl Link, size: usize, budget: Duration) -> Result<(), Failed> {
    let mut buf = pattern(size);
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        stamp(&mut buf, seq);
        link.send(&buf)?;
        seq += 1;
        if seq % 256 == 0 && start.elapsed() >= budget {
            break;
        }
    }
    stamp(&mut buf, STOP);
    link.send(&buf)?;
    Ok(())
}

/// Receiving side of a stream (the parent): checks every message, times
/// everything after the first few.
pub fn stream_receiver(link: &mut impl Link, size: usize) -> Result<Stream, Failed> {
    let pattern = pattern(size);
    let mut checker = Checker::new(&pattern);
    let mut buf = vec![0u8; size];
    let warmup = 16u64;
    let mut seq = 0u64;
    let mut t0 = Instant::now();
    // The clock is read at the warm-up's end and when the stop message
    // arrives (right behind the last one), never per message: a clock read
    // costs more than a small message does.
    loop {
        link.recv(&mut buf)?;
        if seq_of(&buf) == STOP {
            break;
        }
        if !checker.ok(&buf, seq) {
            return Err(Failed::Content(seq));
        }
        if seq == warmup {
            t0 = Instant::now();
        }
        seq += 1;
    }
    let t1 = Instant::now();
    let messages = seq.saturating_sub(warmup + 1);
    let secs = t1.duration_since(t0).as_secs_f64().max(1e-9);
    Ok(Stream {
        messages,
        bytes_per_sec: (messages * size as u64) as f64 / secs,
        messages_per_sec: messages as f64 / secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_catch_wrong_and_torn_messages() {
        let mut a = pattern(3 * BLOCK + 100);
        stamp(&mut a, 7);
        assert!(stamps_ok(&a, 7));
        assert!(!stamps_ok(&a, 8));
        let mut torn = a.clone();
        let mut b = pattern(3 * BLOCK + 100);
        stamp(&mut b, 8);
        torn[2 * BLOCK..].copy_from_slice(&b[2 * BLOCK..]);
        assert!(!stamps_ok(&torn, 7), "a message made of two messages");
        let mut checker = Checker::new(&pattern(3 * BLOCK + 100));
        let mut flipped = a.clone();
        flipped[5000] ^= 1;
        assert!(stamps_ok(&flipped, 7));
        let mut at0 = pattern(3 * BLOCK + 100);
        stamp(&mut at0, 0);
        at0[5000] ^= 1;
        assert!(!checker.ok(&at0, 0), "the full check sees a flipped byte");
    }
}
