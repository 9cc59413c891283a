//! Round trips through two channels, and through two topics, between two
//! processes: each receive finds its ring empty and waits, so every kind of
//! frame — a short message, a long one, a padding frame at the ring's end,
//! the end marker — lands while a receive is polling for it, and each must
//! be taken exactly.

mod common;

use common::{pattern, role, roles, wait, ShmName, TIMEOUT};
use std::time::{Duration, Instant};

use ipcraft::channel::{Receiver, Sender};
use ipcraft::topic::{Publisher, Subscriber, TopicOptions};
use ipcraft::{Cause, Result};

roles!(role_echo, role_topic_echo);

/// Round trips per test: ~330 laps of each 4 KiB ring.
const COUNT: u64 = 2000;
const SEED: u64 = 0x7075;
/// A ring of one page, so that long messages leave padding at its end
/// every few round trips.
const CAPACITY: u64 = 4096;

/// Message `i`: 0 to 1500 bytes, short (the receive's fast path) and long
/// (512 bytes and more) in turn.
fn message(i: u64) -> Vec<u8> {
    pattern((i as usize * 389) % 1501, SEED + i)
}

/// A sending end: a channel's sender or a topic's publisher.
trait Out {
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    fn close(self) -> Result<()>;
}

/// A receiving end: a channel's receiver or a topic's subscriber.
trait In {
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>>;
}

impl Out for Sender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Sender::send(self, msg)
    }
    fn close(self) -> Result<()> {
        Sender::close(self)
    }
}

impl Out for Publisher {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Publisher::send(self, msg)
    }
    fn close(self) -> Result<()> {
        Publisher::close(self)
    }
}

impl In for Receiver {
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        Receiver::recv_timeout(self, buf, timeout)
    }
}

impl In for Subscriber {
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        Subscriber::recv_timeout(self, buf, timeout)
    }
}

/// Sends back every message of `rx` on `tx` until `rx` ends, checking
/// each, then closes `tx`.
fn echo(mut rx: impl In, mut tx: impl Out) {
    let mut buf = vec![0u8; 2048];
    let mut i = 0;
    while let Some(len) = rx.recv_timeout(&mut buf, TIMEOUT).unwrap() {
        assert!(buf[..len] == message(i), "the echo got message {i} ({len} bytes) wrong");
        tx.send(&buf[..len]).unwrap();
        i += 1;
    }
    assert_eq!(i, COUNT, "the echo's stream ended early");
    tx.close().unwrap();
}

/// `IN OUT`: echoes channel `IN` on channel `OUT`.
fn role_echo(args: Vec<String>) {
    echo(Receiver::open(&args[0]).unwrap(), Sender::open(&args[1]).unwrap());
}

/// `IN OUT`: echoes topic `IN` on topic `OUT` (whose subscriber is there).
fn role_topic_echo(args: Vec<String>) {
    echo(Subscriber::open(&args[0]).unwrap(), Publisher::open(&args[1]).unwrap());
}

/// Frames a ring of [`CAPACITY`] holds after each of [`COUNT`] messages
/// sent one at a time into an empty ring, with `header` bytes before each
/// message: how many followed a padding frame.
fn padded_frames(header: u64) -> u64 {
    let (mut pos, mut padded) = (0u64, 0);
    for i in 0..COUNT {
        let size = (header + message(i).len() as u64).div_ceil(64) * 64;
        if size > CAPACITY - pos % CAPACITY {
            pos += CAPACITY - pos % CAPACITY;
            padded += 1;
        }
        pos += size;
    }
    padded
}

/// [`COUNT`] round trips with the echo, every message compared; now and
/// then a receive into a buffer one byte short first, which must fail and
/// leave the message. Then an empty ring's receive times out, and the end
/// marker goes round.
fn round_trips(mut tx: impl Out, mut rx: impl In) {
    let mut buf = vec![0u8; 2048];
    let mut too_small = 0;
    for i in 0..COUNT {
        let msg = message(i);
        tx.send(&msg).unwrap();
        if i % 7 == 3 && !msg.is_empty() {
            let err = rx.recv_timeout(&mut buf[..msg.len() - 1], TIMEOUT).unwrap_err();
            assert!(
                matches!(err.cause(), Cause::BufferTooSmall { need, .. } if *need == msg.len()),
                "round trip {i}: {err}"
            );
            too_small += 1;
        }
        let len = rx
            .recv_timeout(&mut buf, TIMEOUT)
            .unwrap()
            .expect("the echo ended early");
        assert!(
            buf[..len] == msg[..],
            "round trip {i}: {len} bytes back, not the {} sent",
            msg.len()
        );
    }
    assert!(too_small > 200, "only {too_small} receives into a short buffer");
    // Nothing comes while the echo waits: the receive polls, then times out.
    let err = rx.recv_timeout(&mut buf, Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err.cause(), Cause::TimedOut), "{err}");
    // The end marker reaches a waiting echo, whose own reaches us.
    tx.close().unwrap();
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), None);
}

#[test]
fn waiting_receives_take_every_kind_of_frame_exactly() {
    // (The ring is empty at each send: a frame that does not fit before
    // the ring's end follows padding.)
    let padded = padded_frames(16);
    assert!(padded > 100, "only {padded} frames follow padding");
    let (ab, ba) = (ShmName::new("rt-ab"), ShmName::new("rt-ba"));
    ipcraft::channel::create(&ab.0, CAPACITY).unwrap();
    let rx = Receiver::create(&ba.0, CAPACITY).unwrap();
    let mut child = role("role_echo", &[ab.0.as_str(), ba.0.as_str()]).spawn().unwrap();
    round_trips(Sender::open(&ab.0).unwrap(), rx);
    assert!(wait(&mut child).success());
}

#[test]
fn waiting_subscribers_take_every_kind_of_frame_exactly() {
    // Frames carry a sequence number after the header.
    let padded = padded_frames(24);
    assert!(padded > 100, "only {padded} frames follow padding");
    let (ab, ba) = (ShmName::new("rt-topic-ab"), ShmName::new("rt-topic-ba"));
    let mut options = TopicOptions::new();
    options.capacity(CAPACITY).subscribers(1);
    options.create(&ab.0).unwrap();
    options.create(&ba.0).unwrap();
    let rx = Subscriber::open(&ba.0).unwrap();
    let mut child = role("role_topic_echo", &[ab.0.as_str(), ba.0.as_str()])
        .spawn()
        .unwrap();
    let tx = Publisher::open(&ab.0).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while tx.subscribers().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the echo never subscribed");
        std::thread::yield_now();
    }
    round_trips(tx, rx);
    assert!(wait(&mut child).success());
}
