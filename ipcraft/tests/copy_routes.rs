//! Long streams of large messages from another process, through a channel
//! and a topic: far past the laps after which a receiver tries its other
//! routine for copying out of the ring (and switches when that is faster),
//! so every message is copied by both routines in turn, and each must
//! arrive byte-exact.

mod common;

use common::{pattern, role, roles, wait, ShmName, TIMEOUT};
use ipcraft::channel::{Receiver, Sender};
use ipcraft::topic::{Publisher, TopicOptions};

roles!(role_send, role_publish);

/// Messages per stream: ~25 MiB through a 64 KiB ring, some 100 laps of
/// the 256 KiB a receiver times at least (its first trial of the other
/// routine comes after 16).
const COUNT: u64 = 3000;
const SEED: u64 = 0xc0b1;
const MAX: usize = 16 << 10;

/// Message `i`: 512 bytes (where the assembly copies take over) to 16 KiB.
fn message(i: u64) -> Vec<u8> {
    pattern(512 + (i as usize * 7919) % (MAX - 512), SEED + i)
}

/// `NAME`: sends every message through the channel, then closes.
fn role_send(args: Vec<String>) {
    let mut tx = Sender::open(&args[0]).unwrap();
    for i in 0..COUNT {
        tx.send(&message(i)).unwrap();
    }
    tx.close().unwrap();
}

/// `NAME`: publishes every message once the subscriber is there, then
/// closes.
fn role_publish(args: Vec<String>) {
    let mut tx = Publisher::open(&args[0]).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while tx.subscribers().unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "no subscriber came");
        std::thread::yield_now();
    }
    for i in 0..COUNT {
        tx.send(&message(i)).unwrap();
    }
    tx.close().unwrap();
}

/// Receives with `recv` until the end of the stream, checking each message.
fn check_stream(mut recv: impl FnMut(&mut [u8]) -> ipcraft::Result<Option<usize>>) {
    let mut buf = vec![0u8; MAX];
    let mut i = 0;
    while let Some(len) = recv(&mut buf).unwrap() {
        assert!(buf[..len] == message(i), "message {i} ({len} bytes) differs");
        i += 1;
    }
    assert_eq!(i, COUNT, "the stream ended early");
}

#[test]
fn a_channel_stream_of_large_messages_arrives_exact_through_both_copy_routines() {
    let name = ShmName::new("routes-chan");
    let mut rx = Receiver::create(&name.0, 64 << 10).unwrap();
    let mut child = role("role_send", &[name.0.as_str()]).spawn().unwrap();
    check_stream(|buf| rx.recv_timeout(buf, TIMEOUT));
    assert!(wait(&mut child).success());
}

#[test]
fn a_topic_stream_of_large_messages_arrives_exact_through_both_copy_routines() {
    let name = ShmName::new("routes-topic");
    TopicOptions::new().capacity(64 << 10).create(&name.0).unwrap();
    let mut sub = TopicOptions::new().open_subscriber(&name.0).unwrap();
    let mut child = role("role_publish", &[name.0.as_str()]).spawn().unwrap();
    check_stream(|buf| sub.recv_timeout(buf, TIMEOUT));
    assert!(wait(&mut child).success());
}
