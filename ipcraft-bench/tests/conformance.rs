//! One conformance suite over the bench's `Link` trait, run against every
//! transport: real processes (side A in a single-threaded role process, and
//! each side-B process — two for the fan patterns — forked from it),
//! messages of several sizes, every byte checked, both directions, in order.

use ipcraft::process::{self, Fork};
use ipcraft_bench::measure::Link;
use ipcraft_bench::transports::{self, Side};
use ipcraft_testkit::{pattern, role, unique, wait_with_stderr, TempDir};

/// Sizes each transport must carry exactly: the smallest message, one cache
/// line, a page, and 64 KiB.
const SIZES: [usize; 4] = [16, 64, 4096, 65536];
/// Messages per size and direction.
const COUNT: u64 = 50;

/// Deterministic content for message `seq` of `size` bytes.
fn content(size: usize, seq: u64) -> Vec<u8> {
    pattern(size, seq.wrapping_mul(65_537) ^ size as u64)
}

/// Side B: echoes `COUNT` messages (if the transport has round trips),
/// then (if it streams) streams `COUNT` of its own.
fn side_b(link: &mut impl Link, size: usize, transport: &str) -> Result<(), String> {
    let streams = transports::streams(transport);
    let mut buf = vec![0u8; size];
    for _ in 0..if transports::pingpongs(transport) { COUNT } else { 0 } {
        link.recv(&mut buf).map_err(|e| format!("B recv: {e}"))?;
        link.send(&buf).map_err(|e| format!("B echo: {e}"))?;
    }
    for seq in 0..if streams { COUNT } else { 0 } {
        link.send(&content(size, 1000 + seq))
            .map_err(|e| format!("B send: {e}"))?;
    }
    Ok(())
}

/// Side A: sends `COUNT` messages and checks each echo (from every side B
/// of a fan), then checks B's stream (each B's, in its order, when several
/// send to one).
fn side_a(link: &mut impl Link, size: usize, transport: &str) -> Result<(), String> {
    let streams = transports::streams(transport);
    let mut buf = vec![0u8; size];
    let senders = transports::children(transport);
    if streams && senders > 1 && !transports::fans_out(transport) {
        let mut next = vec![0u64; senders];
        for _ in 0..COUNT * senders as u64 {
            let from = link.recv_from(&mut buf).map_err(|e| format!("A recv stream: {e}"))?;
            let seq = next
                .get_mut(from)
                .ok_or_else(|| format!("a message from sender {from} of {senders}"))?;
            if buf != content(size, 1000 + *seq) {
                return Err(format!(
                    "sender {from}'s stream message {seq} of {size} B differs (lost, torn or reordered)"
                ));
            }
            *seq += 1;
        }
        return Ok(());
    }
    for seq in 0..if transports::pingpongs(transport) { COUNT } else { 0 } {
        let msg = content(size, seq);
        link.send(&msg).map_err(|e| format!("A send: {e}"))?;
        link.recv(&mut buf).map_err(|e| format!("A recv: {e}"))?;
        if buf != msg {
            return Err(format!("echo {seq} of {size} B came back different"));
        }
    }
    for seq in 0..if streams { COUNT } else { 0 } {
        link.recv(&mut buf).map_err(|e| format!("A recv stream: {e}"))?;
        if buf != content(size, 1000 + seq) {
            return Err(format!(
                "stream message {seq} of {size} B differs (lost, torn or reordered)"
            ));
        }
    }
    Ok(())
}

/// Runs the suite for one transport in this (single-threaded) role process.
fn role_conformance(args: Vec<String>) {
    /// Removes the comparators' leftovers when the role ends, pass or fail.
    struct CleanUp;
    impl Drop for CleanUp {
        fn drop(&mut self) {
            transports::clean_up();
        }
    }
    let _clean_up = CleanUp;
    let transport = args[0].as_str();
    let dir = TempDir::new();
    for size in SIZES {
        let prepared = match transports::prepare(transport, size, dir.path(), &unique("conf")) {
            Ok(p) => p,
            // A host limit may cap big messages (a queue's msgsize_max, say),
            // as the bench reports under `skipped`; small ones must work.
            Err(why) if size > 4096 && why.contains("more than") => {
                eprintln!("{transport} {size} B: skipped here: {why}");
                continue;
            }
            Err(why) => panic!("{transport} {size} B: cannot be set up: {why}"),
        };
        let mut pids = Vec::new();
        for i in 0..transports::children(transport) {
            // SAFETY: a role process runs before the test harness starts any
            // thread, so the child may run ordinary code; it ends with exit_child.
            if let Fork::Parent(pid) = unsafe { process::fork() }.unwrap() {
                pids.push(pid);
                continue;
            }
            let code = match prepared.into_link(Side::Child(i)).map_err(|e| e.to_string()) {
                Ok(mut link) => match side_b(&mut link, size, transport) {
                    Ok(()) => 0,
                    Err(why) => {
                        eprintln!("{transport} {size} B: {why}");
                        1
                    }
                },
                Err(why) => {
                    eprintln!("{transport} {size} B: B's side: {why}");
                    1
                }
            };
            process::exit_child(code);
        }
        let outcome = prepared
            .into_link(Side::Parent)
            .map_err(|e| e.to_string())
            .and_then(|mut link| side_a(&mut link, size, transport));
        let status: Vec<_> = pids
            .into_iter()
            .map(|pid| {
                process::wait_pid_timeout(pid, ipcraft_testkit::TIMEOUT)
                    .unwrap()
                    .expect("side B finished")
            })
            .collect();
        outcome.unwrap_or_else(|why| panic!("{transport} {size} B: {why}"));
        for status in status {
            assert!(status.success(), "{transport} {size} B: side B failed: {status}");
        }
    }
}

#[test]
fn every_transport_moves_exact_bytes_both_ways() {
    let all = transports::all();
    assert!(all.len() >= 8, "{all:?}");
    for transport in all {
        let child = role("role_conformance", &[transport])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (status, err) = wait_with_stderr(child);
        assert!(status.success(), "{transport}: {err}");
    }
}

ipcraft_testkit::roles!(role_conformance);
