//! Opens a channel over bytes chosen by the fuzzer and receives from it:
//! whatever the bytes, the receiver must return errors, never crash, hang
//! or touch memory outside the object.
//!
//! The object is always header page + 4 KiB ring. The first input byte
//! chooses what is fuzzed: a well-formed identity (so the fuzzer reaches
//! the ring) or raw identity fields; the published read position; and
//! either raw ring bytes or frames with valid stamps (computed here with
//! the identity's key, layout version 2) and lengths the fuzzer picks.
//!
//! cargo +nightly fuzz run open_channel -- -max_total_time=60
#![no_main]

use std::os::unix::fs::FileExt;
use std::time::Duration;

use ipcraft::channel::ChannelOptions;
use libfuzzer_sys::fuzz_target;

/// Offsets in the header page (see src/channel/layout.rs).
const IDENTITY: u64 = 0;
const HEAD: u64 = 3 * 128;
const RING: u64 = 4096;
const CAPACITY: u64 = 4096;
/// The stamp key of a well-formed identity.
const KEY: u64 = 0x5eed_f022;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let fd = rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let file = std::fs::File::from(fd);
    file.set_len(RING + CAPACITY).unwrap();
    let (identity, rest) = rest.split_at(rest.len().min(24));
    let mut id = Vec::with_capacity(32);
    id.extend_from_slice(b"IPCKCHAN");
    if control & 1 == 0 {
        id.extend_from_slice(&2u32.to_le_bytes());
        id.extend_from_slice(&4096u32.to_le_bytes());
        id.extend_from_slice(&CAPACITY.to_le_bytes());
        id.extend_from_slice(&KEY.to_le_bytes());
    } else {
        id.extend_from_slice(identity);
    }
    file.write_all_at(&id, IDENTITY).unwrap();
    let rest = if control & 2 != 0 && rest.len() >= 8 {
        file.write_all_at(&rest[..8], HEAD).unwrap();
        &rest[8..]
    } else {
        rest
    };
    if control & 4 == 0 {
        file.write_all_at(&rest[..rest.len().min(CAPACITY as usize)], RING).unwrap();
    } else {
        // Frames one after another, stamped as a sender would stamp them,
        // with whatever length words the fuzzer chose.
        let mut pos = 0u64;
        for len in rest.chunks_exact(8).take(64) {
            let len = u64::from_le_bytes(len.try_into().unwrap());
            let stamp = (pos ^ KEY).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            file.write_all_at(&stamp.to_le_bytes(), RING + pos % CAPACITY).unwrap();
            file.write_all_at(&len.to_le_bytes(), RING + pos % CAPACITY + 8).unwrap();
            pos += ((16 + (len % CAPACITY)).div_ceil(64) * 64).max(64);
        }
    }
    let mut opts = ChannelOptions::new();
    opts.open_timeout(Duration::ZERO).spin(Duration::ZERO);
    let Ok(mut rx) = opts.open_receiver_in(file.into()) else { return };
    let mut buf = vec![0u8; 1 << 13];
    for _ in 0..64 {
        match rx.try_recv(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
