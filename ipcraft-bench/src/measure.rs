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
    /// [`recv`](Self::recv), and which of several senders the message came
    /// from (0 for a link with one).
    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf).map(|()| 0)
    }
    /// Whether this link moves messages in place (zero-copy): the
    /// measurements then write each message into the transport's memory
    /// with [`send_in_place`](Self::send_in_place) and read it there with
    /// [`recv_in_place`](Self::recv_in_place).
    fn in_place(&self) -> bool {
        false
    }
    /// Sends a message of `len` bytes that `fill` writes in place.
    fn send_in_place(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        self.send(&buf)
    }
    /// Receives a message of exactly `len` bytes and lets `read` look at it
    /// in place.
    fn recv_in_place(&mut self, len: usize, read: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let mut buf = vec![0u8; len];
        self.recv(&mut buf)?;
        read(&buf);
        Ok(())
    }
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

/// Every byte of a message read and checked, at the cost of one pass:
/// the XOR of its 8-byte words (the tail zero-padded) must equal the fold
/// of the pattern with this message's stamps, which is computed from the
/// pattern's fold and the few words the stamps replace. Used where the
/// message is checked in place, so the check is what reads it.
pub struct FoldCheck {
    len: usize,
    base: u64,
    /// The pattern's words at the stamp positions (word 0, word 1, and
    /// the first word of every later 4 KiB block).
    replaced: Vec<(usize, u64)>,
}

fn fold(msg: &[u8]) -> u64 {
    // Eight independent lanes, so the compiler can use vector XORs: the
    // check then reads at close to memory speed, like the copy it replaces.
    let mut blocks = msg.chunks_exact(64);
    let mut lanes = [0u64; 8];
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            *lane ^= u64::from_le_bytes(w.try_into().unwrap_or_default());
        }
    }
    let mut acc = lanes.iter().fold(0, |a, l| a ^ l);
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        acc ^= u64::from_le_bytes(w.try_into().unwrap_or_default());
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        acc ^= u64::from_le_bytes(last);
    }
    acc
}

impl FoldCheck {
    pub fn new(pattern: &[u8]) -> Self {
        let word = |at: usize| u64::from_le_bytes(pattern[at..at + 8].try_into().unwrap_or_default());
        let mut replaced = vec![(0, word(0)), (1, word(8))];
        let mut k = 1;
        while k * BLOCK + 8 <= pattern.len() {
            replaced.push((k, word(k * BLOCK)));
            k += 1;
        }
        Self {
            len: pattern.len(),
            base: fold(pattern),
            replaced,
        }
    }

    /// Whether `msg` is message `seq` of the pattern, every byte of it.
    pub fn ok(&self, msg: &[u8], seq: u64) -> bool {
        if msg.len() != self.len || !stamps_ok(msg, seq) {
            return false;
        }
        let mut want = self.base;
        for (i, &(k, old)) in self.replaced.iter().enumerate() {
            let new = match i {
                0 => seq,
                1 => checksum(seq, self.len),
                _ => seq ^ k as u64,
            };
            want ^= old ^ new;
        }
        fold(msg) == want
    }
}

/// Writes message `seq` (the pattern, stamped) into `slot`: every byte.
fn write_message(slot: &mut [u8], pattern: &[u8], seq: u64) {
    slot.copy_from_slice(pattern);
    stamp(slot, seq);
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

impl Stream {
    /// `messages` of `size` bytes in `took`.
    fn new(messages: u64, size: usize, took: Duration) -> Self {
        let secs = took.as_secs_f64().max(1e-9);
        Self {
            messages,
            bytes_per_sec: (messages * size as u64) as f64 / secs,
            messages_per_sec: messages as f64 / secs,
        }
    }
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
    let in_place = link.in_place();
    let fold = FoldCheck::new(&pattern);
    loop {
        let (t0, t1, ok);
        if in_place {
            let mut good = false;
            t0 = clock.now();
            link.send_in_place(size, &mut |slot| write_message(slot, &pattern, seq))?;
            link.recv_in_place(size, &mut |msg| good = fold.ok(msg, seq))?;
            t1 = clock.now();
            ok = good;
        } else {
            stamp(&mut out, seq);
            t0 = clock.now();
            link.send(&out)?;
            link.recv(&mut back)?;
            t1 = clock.now();
            ok = checker.ok(&back, seq);
        }
        if !ok {
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
    if in_place {
        link.send_in_place(size, &mut |slot| write_message(slot, &pattern, STOP))?;
    } else {
        link.send(&out)?;
    }
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
    if link.in_place() {
        // Checks every byte where it lies, then writes the echo in place.
        let pattern = pattern(size);
        let fold = FoldCheck::new(&pattern);
        loop {
            let (mut stop, mut good) = (false, false);
            link.recv_in_place(size, &mut |msg| {
                stop = seq_of(msg) == STOP;
                good = fold.ok(msg, expected);
            })?;
            if stop {
                return Ok(());
            }
            if !good {
                return Err(Failed::Content(expected));
            }
            link.send_in_place(size, &mut |slot| write_message(slot, &pattern, expected))?;
            expected += 1;
        }
    }
    // The echo goes back first and the stamps are checked after, while the
    // parent reads its clock and records: every message is still checked,
    // outside the timed round trip (the C reference checks nothing there).
    // A bad message fails the run one message later.
    loop {
        link.recv(&mut buf)?;
        if seq_of(&buf) == STOP {
            return Ok(());
        }
        link.send(&buf)?;
        if !stamps_ok(&buf, expected) {
            return Err(Failed::Content(expected));
        }
        expected += 1;
    }
}

/// Sending side of a stream (the child): stamped messages for `budget`,
/// then the stop message.
pub fn stream_sender(link: &mut impl Link, size: usize, budget: Duration) -> Result<(), Failed> {
    send_stream(link, size, budget, 0).map(drop)
}

/// Sends stamped messages for `budget`, then the stop message; returns how
/// many were sent after the first `warmup`, and when those began.
fn send_stream(link: &mut impl Link, size: usize, budget: Duration, warmup: u64) -> Result<(u64, Instant), Failed> {
    let pattern = pattern(size);
    let mut buf = pattern.clone();
    let in_place = link.in_place();
    let start = Instant::now();
    let mut t0 = start;
    let mut seq = 0u64;
    loop {
        if seq == warmup {
            t0 = Instant::now();
        }
        if in_place {
            link.send_in_place(size, &mut |slot| write_message(slot, &pattern, seq))?;
        } else {
            stamp(&mut buf, seq);
            link.send(&buf)?;
        }
        seq += 1;
        if seq % 256 == 0 && start.elapsed() >= budget {
            break;
        }
    }
    if in_place {
        link.send_in_place(size, &mut |slot| write_message(slot, &pattern, STOP))?;
    } else {
        stamp(&mut buf, STOP);
        link.send(&buf)?;
    }
    Ok((seq.saturating_sub(warmup), t0))
}

/// Publishing side of a stream to several subscribers (the parent): sends
/// for `budget`, then waits until every subscriber has checked everything
/// and answered the stop message ([`stream_subscriber`]); the time runs
/// until then, so it counts what the slowest subscriber took.
pub fn stream_publisher(link: &mut impl Link, size: usize, budget: Duration) -> Result<Stream, Failed> {
    let (messages, t0) = send_stream(link, size, budget, 16)?;
    let mut ack = vec![0u8; size];
    link.recv(&mut ack)?;
    if seq_of(&ack) != STOP {
        return Err(Failed::Content(seq_of(&ack)));
    }
    Ok(Stream::new(messages, size, t0.elapsed()))
}

/// Subscribing side of [`stream_publisher`] (each child): checks every
/// message, then answers the stop message with one of its own.
pub fn stream_subscriber(link: &mut impl Link, size: usize) -> Result<(), Failed> {
    stream_receiver(link, size)?;
    let mut ack = pattern(size);
    stamp(&mut ack, STOP);
    link.send(&ack)?;
    Ok(())
}

/// Receiving side of a stream from `senders` senders at once (the parent,
/// a many-to-one channel): each sender's messages are checked in that
/// sender's order; the time runs from the first few messages to the last
/// sender's stop message.
pub fn stream_collector(link: &mut impl Link, size: usize, senders: usize) -> Result<Stream, Failed> {
    let pattern = pattern(size);
    let mut checker = Checker::new(&pattern);
    let mut buf = vec![0u8; size];
    let mut next = vec![0u64; senders];
    let mut stopped = 0;
    let warmup = 16u64;
    let mut total = 0u64;
    let mut t0 = Instant::now();
    while stopped < senders {
        let from = link.recv_from(&mut buf)?;
        let Some(seq) = next.get_mut(from) else {
            return Err(Failed::Io(io::Error::other(format!(
                "a message from sender {from} of {senders}"
            ))));
        };
        if seq_of(&buf) == STOP {
            stopped += 1;
            continue;
        }
        if !checker.ok(&buf, *seq) {
            return Err(Failed::Content(*seq));
        }
        *seq += 1;
        total += 1;
        if total == warmup {
            t0 = Instant::now();
        }
    }
    Ok(Stream::new(total.saturating_sub(warmup), size, t0.elapsed()))
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
    let in_place = link.in_place();
    let fold = FoldCheck::new(&pattern);
    loop {
        let (stop, ok);
        if in_place {
            let (mut s, mut g) = (false, false);
            link.recv_in_place(size, &mut |msg| {
                s = seq_of(msg) == STOP;
                g = s || fold.ok(msg, seq);
            })?;
            (stop, ok) = (s, g);
        } else {
            link.recv(&mut buf)?;
            stop = seq_of(&buf) == STOP;
            ok = stop || checker.ok(&buf, seq);
        }
        if stop {
            break;
        }
        if !ok {
            return Err(Failed::Content(seq));
        }
        if seq == warmup {
            t0 = Instant::now();
        }
        seq += 1;
    }
    Ok(Stream::new(seq.saturating_sub(warmup + 1), size, t0.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fold_check_reads_every_byte() {
        for size in [16, 100, 4096, 3 * BLOCK + 100] {
            let pat = pattern(size);
            let check = FoldCheck::new(&pat);
            let mut m = vec![0u8; size];
            write_message(&mut m, &pat, 42);
            assert!(check.ok(&m, 42), "size {size}");
            assert!(!check.ok(&m, 43), "size {size}: another sequence number");
            for at in [size / 3, size / 2, size - 1] {
                let mut bad = m.clone();
                bad[at] ^= 0x20;
                assert!(!check.ok(&bad, 42), "size {size}: byte {at} flipped");
            }
        }
    }

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
