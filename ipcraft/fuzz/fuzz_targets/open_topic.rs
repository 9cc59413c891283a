//! Opens a topic over bytes chosen by the fuzzer, as subscriber and as
//! publisher, and moves messages: whatever the bytes (identity, positions,
//! slot table, frames), both must return errors, never crash, hang or
//! touch memory outside the object.
//!
//! The object is a named shared memory object (topics are named): header
//! pages for 2 subscriber slots + a 4 KiB ring. The first input byte
//! chooses a well-formed identity (so the fuzzer reaches the slots and the
//! ring) or raw identity fields, and whether the ring gets raw bytes or
//! frames with valid stamps and lengths the fuzzer picks.
//!
//! cargo +nightly fuzz run open_topic -- -max_total_time=60
#![no_main]

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcraft::topic::TopicOptions;
use libfuzzer_sys::fuzz_target;

/// Header pages for 2 slots (see src/topic/layout.rs: 7 lines + 2 slots).
const HEADER: u64 = 4096;
const CAPACITY: u64 = 4096;
const KEY: u64 = 0x5eed_f022;
/// Offsets of the published tail and oldest positions, and of slot 0.
const TAIL: u64 = 128;
const OLDEST: u64 = 256;
const SLOTS: u64 = 7 * 128;

fuzz_target!(|data: &[u8]| {
    static N: AtomicU32 = AtomicU32::new(0);
    let Some((&control, rest)) = data.split_first() else { return };
    let name = format!("/ipcraft-fuzz-topic-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let path = format!("/dev/shm{name}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.set_len(HEADER + CAPACITY).unwrap();
    let (identity, rest) = rest.split_at(rest.len().min(32));
    let mut id = Vec::with_capacity(40);
    id.extend_from_slice(b"IPCKTOPC");
    if control & 1 == 0 {
        id.extend_from_slice(&1u32.to_le_bytes()); // version
        id.extend_from_slice(&4096u32.to_le_bytes()); // header size
        id.extend_from_slice(&CAPACITY.to_le_bytes());
        id.extend_from_slice(&KEY.to_le_bytes());
        id.extend_from_slice(&2u32.to_le_bytes()); // slots
        id.extend_from_slice(&u32::from(control >> 7).to_le_bytes()); // policy
    } else {
        id.extend_from_slice(identity);
    }
    file.write_all_at(&id, 0).unwrap();
    // Positions and the slot table from the input.
    let mut rest = rest;
    for at in [TAIL, OLDEST, SLOTS, SLOTS + 8, SLOTS + 128] {
        if control & 2 != 0 && rest.len() >= 8 {
            file.write_all_at(&rest[..8], at).unwrap();
            rest = &rest[8..];
        }
    }
    if control & 4 == 0 {
        file.write_all_at(&rest[..rest.len().min(CAPACITY as usize)], HEADER).unwrap();
    } else {
        let mut pos = 0u64;
        for chunk in rest.chunks_exact(16).take(64) {
            let len = u64::from_le_bytes(chunk[..8].try_into().unwrap());
            let stamp = (pos ^ KEY).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            file.write_all_at(&stamp.to_le_bytes(), HEADER + pos % CAPACITY).unwrap();
            file.write_all_at(&len.to_le_bytes(), HEADER + pos % CAPACITY + 8).unwrap();
            file.write_all_at(&chunk[8..], HEADER + pos % CAPACITY + 16).unwrap();
            pos += (16 + (len % 4096)).div_ceil(64) * 64;
        }
    }
    let mut options = TopicOptions::new();
    options.open_timeout(Duration::ZERO).spin(Duration::ZERO).history(control & 8 != 0);
    if let Ok(mut sub) = options.open_subscriber(&name) {
        let mut buf = [0u8; 4096];
        for _ in 0..8 {
            if sub.recv_timeout(&mut buf, Duration::from_millis(1)).is_err() {
                break;
            }
        }
    }
    if let Ok(mut publisher) = options.open_publisher(&name) {
        for len in [0usize, 10, 100, 3000] {
            if publisher.try_send(&vec![7u8; len]).is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
