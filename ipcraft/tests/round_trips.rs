//! Round trips through two channels, and through two topics, between two
//! processes: each receive finds its ring empty and waits, so every kind of
//! frame — a short message, a long one, a padding frame at the ring's end,
//! the end marker — lands while a receive is polling for it, and each must
//! be taken exactly.

mod common;

use common::{pattern, role, roles, wait, ShmName, TIMEOUT};
use std::time::Duration;

use ipcraft::channel::{Receiver, Sender};
use ipcraft::topic::{Publisher, Subscriber, TopicOptions};
use ipcraft::Cause;

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

/// `IN OUT`: sends back every message of `IN` on `OUT` until `IN` ends,
/// checking each, then closes `OUT`.
fn role_echo(args: Vec<String>) {
    let mut rx = Receiver::open(&args[0]).unwrap();
    let mut tx = Sender::open(&args[1]).unwrap();
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

/// `IN OUT`: subscribes to topic `IN` and publishes every message of it
/// on topic `OUT` (once the other side subscribed) until `IN` ends,
/// checking each, then closes `OUT`.
fn role_topic_echo(args: Vec<String>) {
    let mut rx = Subscriber::open(&args[0]).unwrap();
    let mut tx = Publisher::open(&args[1]).unwrap();
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

/// Frames a ring of [`CAPACITY`] holds after each of `count` messages sent
/// one at a time into an empty ring, with `header` bytes before each
/// message: how many followed a padding frame.
fn padded_frames(count: u64, header: u64) -> u64 {
    let (mut pos, mut padded) = (0u64, 0);
    for i in 0..count {
        let size = (header + message(i).len() as u64).div_ceil(64) * 64;
        if size > CAPACITY - pos % CAPACITY {
            pos += CAPACITY - pos % CAPACITY;
            padded += 1;
        }
        pos += size;
    }
    padded
}

#[test]
fn waiting_receives_take_every_kind_of_frame_exactly() {
    let (ab, ba) = (ShmName::new("rt-ab"), ShmName::new("rt-ba"));
    ipcraft::channel::create(&ab.0, CAPACITY).unwrap();
    let mut rx = Receiver::create(&ba.0, CAPACITY).unwrap();
    let mut child = role("role_echo", &[ab.0.as_str(), ba.0.as_str()]).spawn().unwrap();
    let mut tx = Sender::open(&ab.0).unwrap();
    let mut buf = vec![0u8; 2048];
    // (The ring is empty at each send: a frame that does not fit before
    // the ring's end follows padding.)
    let padded = padded_frames(COUNT, 16);
    for i in 0..COUNT {
        let msg = message(i);
        tx.send(&msg).unwrap();
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
    assert!(padded > 100, "only {padded} frames followed padding");
    // Nothing comes while the echo waits: the receive polls, then times out.
    let err = rx.recv_timeout(&mut buf, Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err.cause(), Cause::TimedOut), "{err}");
    // The end marker reaches a waiting echo, whose own reaches us.
    tx.close().unwrap();
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), None);
    assert!(wait(&mut child).success());
}

#[test]
fn waiting_subscribers_take_every_kind_of_frame_exactly() {
    let (ab, ba) = (ShmName::new("rt-topic-ab"), ShmName::new("rt-topic-ba"));
    let mut options = TopicOptions::new();
    options.capacity(CAPACITY).subscribers(1);
    options.create(&ab.0).unwrap();
    options.create(&ba.0).unwrap();
    let mut rx = Subscriber::open(&ba.0).unwrap();
    let mut child = role("role_topic_echo", &[ab.0.as_str(), ba.0.as_str()])
        .spawn()
        .unwrap();
    let mut tx = Publisher::open(&ab.0).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while tx.subscribers().unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "the echo never subscribed");
        std::thread::yield_now();
    }
    let mut buf = vec![0u8; 2048];
    // Frames carry a sequence number after the header.
    let padded = padded_frames(COUNT, 24);
    let mut too_small = 0;
    for i in 0..COUNT {
        let msg = message(i);
        tx.send(&msg).unwrap();
        // Now and then a buffer too small first: the message stays.
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
    assert!(padded > 100, "only {padded} frames followed padding");
    assert!(too_small > 200, "only {too_small} receives into a short buffer");
    let err = rx.recv_timeout(&mut buf, Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err.cause(), Cause::TimedOut), "{err}");
    tx.close().unwrap();
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), None);
    assert!(wait(&mut child).success());
}
