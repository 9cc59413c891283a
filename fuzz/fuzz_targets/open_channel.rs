//! Opens a channel over arbitrary bytes and receives from it: whatever the
//! bytes, the receiver must return errors, never crash, hang or touch
//! memory outside the object.
//!
//! cargo +nightly fuzz run open_channel -- -max_total_time=60
#![no_main]

use std::io::Write;
use std::time::Duration;

use ipckit::channel::ChannelOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fd = rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let mut file = std::fs::File::from(fd);
    // The first bytes become the header; pad so the ring can exist.
    file.write_all(data).unwrap();
    if data.len() >= 4096 {
        file.set_len((data.len() as u64).max(4096 + 4096)).unwrap();
    }
    let mut opts = ChannelOptions::new();
    opts.open_timeout(Duration::ZERO).spin(Duration::ZERO);
    let Ok(mut rx) = opts.open_receiver_in(file.into()) else { return };
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..64 {
        match rx.try_recv(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
