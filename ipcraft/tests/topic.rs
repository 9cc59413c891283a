//! Topic sequence numbers ride in each frame's header (their low 32 bits,
//! the header's `count` word giving the rest): a subscriber in another
//! process gets whole numbers back across a wrap of the low half, at its
//! join and message by message, and a 48-byte message takes one line.

mod common;

use std::io::Write;

use common::{pattern, role, roles, run, ShmName, TIMEOUT};
use ipcraft::shm::Shm;
use ipcraft::topic::{self, Policy, TopicOptions};

roles!(role_subscriber);

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

#[test]
fn sequence_numbers_come_back_whole_past_a_wrap_and_48_bytes_take_one_line() {
    let name = ShmName::new("topic-seq");
    // A first publisher that publishes nothing leaves the count at 0.
    TopicOptions::new()
        .capacity(4096)
        .policy(Policy::Block)
        .create_publisher(&name.0)
        .unwrap()
        .keep();
    let map = Shm::open(&name.0).unwrap().map().unwrap();
    assert_eq!(map.read::<u64>(COUNT_AT).unwrap(), 0, "count before any message");
    // As if 5 * 2^32 - 10 messages had gone before: the next publisher
    // continues from the count.
    let first = (5u64 << 32) - 10;
    map.write(COUNT_AT, &first).unwrap();

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
    let mut raw = &out.stdout[..];
    let mut got = Vec::new();
    while !raw.is_empty() {
        let seq = u64::from_le_bytes(raw[..8].try_into().unwrap());
        let len = u32::from_le_bytes(raw[8..12].try_into().unwrap()) as usize;
        got.push((seq, raw[12..12 + len].to_vec()));
        raw = &raw[12 + len..];
    }
    assert_eq!(got.len() as u64, N, "messages received");
    for (i, (seq, bytes)) in got.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "sequence number of message {i}");
        assert!(*bytes == pattern(48, i as u64), "message {i} differs");
    }
}
