//! Topic sequence numbers ride in each frame's header (their low 32 bits,
//! the header's `count` word giving the rest): a subscriber in another
//! process gets whole numbers back across a wrap of the low half — at its
//! join, message by message, and after being overtaken, with the count of
//! what it missed exact — and a 48-byte message takes one line.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use common::{pattern, role, roles, run, ShmName, TIMEOUT};
use ipcraft::error::Cause;
use ipcraft::shm::Shm;
use ipcraft::topic::{self, Policy, TopicOptions};

roles!(role_subscriber, role_stalled_subscriber);

/// Byte offset of the topic header's `count` word: its eighth 128-byte
/// line (checked below against what a publisher stores there).
const COUNT_AT: usize = 7 * 128;

/// Joins topic `args[0]` with its history and writes each message it
/// receives until the end of the stream as a record: sequence number (u64
/// LE), length (u32 LE), bytes.
fn role_subscriber(args: Vec<String>) {
    let mut sub = TopicOptions::new()
        .history(true)
        .open_timeout(TIMEOUT)
        .open_subscriber(&args[0])
        .unwrap();
    let mut out = std::io::stdout().lock();
    while let Some(view) = sub.recv_view_timeout(TIMEOUT).unwrap() {
        let bytes = view.to_vec().unwrap();
        out.write_all(&view.seq().to_le_bytes()).unwrap();
        out.write_all(&(bytes.len() as u32).to_le_bytes()).unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.flush().unwrap();
}

/// Joins topic `args[0]` at its next message, says `ready` on stdout,
/// waits for a line on stdin, then receives until the end of the stream:
/// a lag as a record with sequence number `u64::MAX` and the count missed
/// as its 8 bytes, each message as [`role_subscriber`] writes it.
fn role_stalled_subscriber(args: Vec<String>) {
    let mut sub = TopicOptions::new()
        .open_timeout(TIMEOUT)
        .open_subscriber(&args[0])
        .unwrap();
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n").unwrap();
    out.flush().unwrap();
    std::io::stdin().lock().read_line(&mut String::new()).unwrap();
    loop {
        match sub.recv_view_timeout(TIMEOUT) {
            Ok(Some(view)) => {
                let bytes = view.to_vec().unwrap();
                out.write_all(&view.seq().to_le_bytes()).unwrap();
                out.write_all(&(bytes.len() as u32).to_le_bytes()).unwrap();
                out.write_all(&bytes).unwrap();
            }
            Ok(None) => break,
            Err(e) => match e.cause() {
                Cause::Lagged { missed } => {
                    out.write_all(&u64::MAX.to_le_bytes()).unwrap();
                    out.write_all(&8u32.to_le_bytes()).unwrap();
                    out.write_all(&missed.to_le_bytes()).unwrap();
                }
                _ => panic!("{e}"),
            },
        }
    }
    out.flush().unwrap();
}

/// Splits a subscriber role's stdout into (sequence number, bytes) records.
fn records(mut raw: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    while !raw.is_empty() {
        let seq = u64::from_le_bytes(raw[..8].try_into().unwrap());
        let len = u32::from_le_bytes(raw[8..12].try_into().unwrap()) as usize;
        got.push((seq, raw[12..12 + len].to_vec()));
        raw = &raw[12 + len..];
    }
    got
}

/// Creates topic `name` (4 KiB ring, `policy`) with no message published
/// and its count set as if `first` messages had gone before.
fn topic_counted_from(name: &str, policy: Policy, first: u64) {
    TopicOptions::new()
        .capacity(4096)
        .policy(policy)
        .create_publisher(name)
        .unwrap()
        .keep();
    let map = Shm::open(name).unwrap().map().unwrap();
    assert_eq!(map.read::<u64>(COUNT_AT).unwrap(), 0, "count before any message");
    map.write(COUNT_AT, &first).unwrap();
}

#[test]
fn a_lag_past_a_wrap_counts_exactly_and_numbers_stay_whole() {
    let name = ShmName::new("topic-lag-wrap");
    let first = (7u64 << 32) - 20;
    topic_counted_from(&name.0, Policy::Overwrite, first);
    let mut child = role("role_stalled_subscriber", &[name.0.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the subscriber attached");
    // 200 one-line messages through a 4 KiB ring: the subscriber, stalled,
    // is overtaken, and the numbers cross a wrap of their low half.
    const N: u64 = 200;
    let mut publisher = TopicOptions::new().open_publisher(&name.0).unwrap();
    for i in 0..N {
        publisher.send(&pattern(48, i)).unwrap();
    }
    drop(publisher);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut raw = Vec::new();
        stdout.read_to_end(&mut raw).unwrap();
        raw
    });
    assert!(common::wait(&mut child).success(), "the subscriber finished");
    let got = records(&reader.join().unwrap());
    let (lag, messages) = got.split_first().expect("records");
    assert_eq!(lag.0, u64::MAX, "a lag comes first");
    let missed = u64::from_le_bytes(lag.1[..].try_into().unwrap());
    assert!(missed > 0 && missed < N, "missed {missed}");
    assert_eq!(missed + messages.len() as u64, N, "missed + received");
    for (k, (seq, bytes)) in messages.iter().enumerate() {
        let i = missed + k as u64;
        assert_eq!(*seq, first + i, "sequence number of message {i}");
        assert!(*bytes == pattern(48, i), "message {i} differs");
    }
}

#[test]
fn sequence_numbers_come_back_whole_past_a_wrap_and_48_bytes_take_one_line() {
    let name = ShmName::new("topic-seq");
    // As if 5 * 2^32 - 10 messages had gone before: the next publisher
    // continues from the count.
    let first = (5u64 << 32) - 10;
    topic_counted_from(&name.0, Policy::Block, first);
    let map = Shm::open(&name.0).unwrap().map().unwrap();

    let mut publisher = TopicOptions::new().open_publisher(&name.0).unwrap();
    let tail_before = topic::stat(&name.0).unwrap().tail;
    const N: u64 = 30;
    for i in 0..N {
        publisher.send(&pattern(48, i)).unwrap();
    }
    assert_eq!(
        topic::stat(&name.0).unwrap().tail - tail_before,
        N * 64,
        "a 48-byte message takes one line"
    );
    assert_eq!(
        map.read::<u64>(COUNT_AT).unwrap(),
        first + N,
        "count after the messages"
    );
    drop(publisher);

    let out = run(&mut role("role_subscriber", &[name.0.as_str()]), b"");
    assert!(
        out.status.success(),
        "subscriber: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = records(&out.stdout);
    assert_eq!(got.len() as u64, N, "messages received");
    for (i, (seq, bytes)) in got.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "sequence number of message {i}");
        assert!(*bytes == pattern(48, i as u64), "message {i} differs");
    }
}
