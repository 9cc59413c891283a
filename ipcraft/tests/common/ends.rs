//! Helpers of the async tests' child processes (`tokio*.rs`): a runtime,
//! numbered test messages written as length-prefixed records, CPU time.
#![allow(dead_code)]

use std::io::Write;

use ipcraft_testkit::pattern;

/// A current-thread runtime with IO and time, as each role process runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Message `i` of a test stream: its length varies from 1 byte up to
/// `max`, its content from the seed.
pub fn message(i: u64, max: usize, seed: u64) -> Vec<u8> {
    let len = 1 + (i as usize * 7919) % max;
    pattern(len, seed.wrapping_add(i))
}

/// Writes one received message as a record: length (u32 LE), bytes.
pub fn record(out: &mut impl Write, msg: &[u8]) {
    out.write_all(&(msg.len() as u32).to_le_bytes()).unwrap();
    out.write_all(msg).unwrap();
}

/// Splits a child's stdout into its records.
pub fn records(mut raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while raw.len() >= 4 {
        let len = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
        assert!(raw.len() >= 4 + len, "a torn record");
        out.push(raw[4..4 + len].to_vec());
        raw = &raw[4 + len..];
    }
    assert!(raw.is_empty(), "trailing bytes after the records");
    out
}

/// Asserts `got` is messages `0..count` exactly, in order.
pub fn assert_stream(got: &[Vec<u8>], count: u64, max: usize, seed: u64) {
    assert_eq!(got.len() as u64, count, "message count");
    for (i, m) in got.iter().enumerate() {
        assert!(*m == message(i as u64, max, seed), "message {i} differs");
    }
}

/// Exits the role with the error's one line on stderr, as a program would.
pub fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("ERR {e}");
    std::process::exit(1);
}

/// CPU time (user + system) this process has used, in µs.
pub fn cpu_micros() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec * 1_000_000 + tv.tv_usec;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Kills and reaps a role process a test leaves behind (failing part-way),
/// so no process outlives its test.
pub fn kill_leftover(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
