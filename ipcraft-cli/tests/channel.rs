//! The shared-memory channel between real processes: integrity under
//! back-pressure, end of stream, SIGKILL of either side at random points,
//! a third process scribbling on the shared memory, garbage objects, and
//! the `chan` commands.

mod common;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, assert_ok, ipcraft, pattern, role, run, spawn_fed, wait, wait_ok, ShmName, TIMEOUT};
use ipcraft::channel::{self, ChannelOptions, Receiver, Sender};
use ipcraft::shm::{Shm, ShmOptions};
use ipcraft::Cause;

/// Message `seq`: sequence number, length, checksum, then bytes derived
/// from both. Lengths vary from 16 bytes up to `max`.
fn message(seq: u64, max: usize) -> Vec<u8> {
    let len = 16 + (seq.wrapping_mul(2_654_435_761) as usize) % (max - 15);
    let mut m = vec![0u8; len];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (i as u64 ^ seq.rotate_left(7)) as u8;
    }
    let sum: u64 = m[16..].iter().map(|&b| u64::from(b)).sum::<u64>() ^ (len as u64).rotate_left(32);
    m[8..16].copy_from_slice(&sum.to_le_bytes());
    m
}

fn check(msg: &[u8], seq: u64, max: usize) {
    assert_eq!(
        u64::from_le_bytes(msg[..8].try_into().unwrap()),
        seq,
        "out of order or lost"
    );
    assert!(msg == message(seq, max).as_slice(), "message {seq} damaged");
}

#[test]
fn smoke() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 64 * 1024).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    tx.send(b"smoke").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(rx.recv(&mut buf).unwrap(), Some(5));
    assert_eq!(&buf[..5], b"smoke");
    drop(tx);
    assert_eq!(rx.recv(&mut buf).unwrap(), None);
    assert_eq!(rx.recv(&mut buf).unwrap(), None, "end of stream stays");
}

/// Child-process role, started with `role("role_sender", ...)`.
fn role_sender(a: Vec<String>) {
    let (count, max): (u64, usize) = (a[1].parse().unwrap(), a[2].parse().unwrap());
    let mut tx = Sender::open(&a[0]).unwrap();
    for seq in 0..count {
        tx.send(&message(seq, max)).unwrap();
    }
    tx.close().unwrap();
}

#[test]
fn slow_receiver_gets_everything_in_order() {
    // A 4 KiB ring and messages up to 3000 bytes: the sender waits for
    // room all the time, the ring pads and wraps constantly.
    let name = ShmName::new("chan");
    let mut rx = Receiver::create(&name.0, 4096).unwrap();
    let (count, max) = (20_000u64, 3000usize);
    let mut sender = role("role_sender", &[&name.0, &count.to_string(), &max.to_string()])
        .spawn()
        .unwrap();
    let mut buf = vec![0u8; max];
    let mut work = 0u64;
    for seq in 0..count {
        let n = rx.recv_timeout(&mut buf, TIMEOUT).unwrap().expect("stream ended early");
        check(&buf[..n], seq, max);
        // Be slower than the sender: hash the message a few times over.
        for _ in 0..4 {
            work = buf[..n].iter().fold(work, |h, &b| h.rotate_left(5) ^ u64::from(b));
        }
    }
    assert_eq!(
        rx.recv_timeout(&mut buf, TIMEOUT).unwrap(),
        None,
        "end of stream after the last message"
    );
    wait_ok(&mut sender);
    assert_ne!(work, 1);
}

/// Child-process role, started with `role("role_receiver", ...)`.
fn role_receiver(a: Vec<String>) {
    let (count, max): (u64, usize) = (a[1].parse().unwrap(), a[2].parse().unwrap());
    let mut rx = Receiver::open(&a[0]).unwrap();
    let mut buf = vec![0u8; max];
    for seq in 0..count {
        let n = rx.recv(&mut buf).unwrap().unwrap();
        check(&buf[..n], seq, max);
    }
    assert_eq!(rx.recv(&mut buf).unwrap(), None);
}

#[test]
fn slow_sender_fast_receiver_in_another_process() {
    let name = ShmName::new("chan");
    let mut tx = ChannelOptions::new()
        .capacity(8192)
        .spin(Duration::ZERO)
        .create_sender(&name.0)
        .unwrap();
    let (count, max) = (3000u64, 5000usize);
    let mut receiver = role("role_receiver", &[&name.0, &count.to_string(), &max.to_string()])
        .spawn()
        .unwrap();
    for seq in 0..count {
        tx.send_timeout(&message(seq, max), TIMEOUT).unwrap();
    }
    tx.close().unwrap();
    wait_ok(&mut receiver);
}

#[test]
fn typed_messages_and_views() {
    // Only ipcraft is a dependency here: its re-exported bytemuck derives.
    #[derive(Clone, Copy, Debug, PartialEq, ipcraft::Pod, ipcraft::Zeroable)]
    #[bytemuck(crate = "ipcraft::bytemuck")]
    #[repr(C)]
    struct Tick {
        price: f64,
        qty: u32,
        side: u32,
    }
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    let tick = Tick {
        price: 101.25,
        qty: 7,
        side: 1,
    };
    tx.send_pod(tick).unwrap();
    assert_eq!(rx.recv_pod::<Tick>().unwrap(), Some(tick));
    tx.send(b"not a tick").unwrap();
    let e = rx.recv_pod::<Tick>().unwrap_err();
    assert!(matches!(e.cause(), Cause::Corrupted(_)), "{e}");
    // Views: read in place, then the space is released.
    tx.send(b"in place").unwrap();
    {
        let view = rx.recv_view().unwrap().unwrap();
        assert_eq!(view.len(), 8);
        assert_eq!(view.to_vec(), b"in place");
        let mut part = [0u8; 5];
        view.copy_to(3, &mut part).unwrap();
        assert_eq!(&part, b"place");
        assert!(view.copy_to(4, &mut part).is_err(), "out of range");
    }
    assert!(matches!(rx.try_recv(&mut [0u8; 8]).unwrap_err().cause(), Cause::Empty));
}

#[test]
fn reserve_commit_and_abort() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    {
        let mut slot = tx.reserve(100).unwrap();
        slot.write_at(0, b"dropped, never sent").unwrap();
    }
    let mut slot = tx.reserve(100).unwrap();
    slot.write_at(0, b"zero").unwrap();
    slot.write_pod(4, &0xC0FFEE_u32).unwrap();
    assert!(slot.write_at(98, b"xyz").is_err(), "past the slot");
    slot.commit_len(8).unwrap();
    let mut buf = [0u8; 128];
    assert_eq!(rx.recv(&mut buf).unwrap(), Some(8));
    assert_eq!(&buf[..4], b"zero");
    assert_eq!(u32::from_ne_bytes(buf[4..8].try_into().unwrap()), 0xC0FFEE);
    assert!(matches!(rx.try_recv(&mut buf).unwrap_err().cause(), Cause::Empty));
}

#[test]
fn full_empty_timeouts_and_limits() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    let max = tx.max_message_len();
    let big = vec![1u8; max + 1];
    let e = tx.send(&big).unwrap_err();
    assert!(
        matches!(e.cause(), Cause::TooLarge { limit, .. } if *limit == max),
        "{e}"
    );
    // An owned message comes back in the SendError; a slice stays the caller's.
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Big([u8; 8192]);
    // SAFETY: a byte array has no padding and every bit pattern is valid.
    unsafe impl ipcraft::Zeroable for Big {}
    // SAFETY: as above; Big is Copy and 'static.
    unsafe impl ipcraft::Pod for Big {}
    let e = tx.send_pod(Big([7; 8192])).unwrap_err();
    assert!(matches!(e.cause(), Cause::TooLarge { .. }), "{e}");
    assert_eq!(e.into_inner().0[8191], 7, "the message comes back");
    let mut sent = 0;
    while tx.try_send(&[2u8; 100]).is_ok() {
        sent += 1;
    }
    assert!(sent > 10);
    let e = tx.try_send(&[2u8; 100]).unwrap_err();
    assert!(matches!(e.cause(), Cause::Full), "{e}");
    let start = Instant::now();
    let e = tx.send_timeout(&[2u8; 100], Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    let mut small = [0u8; 10];
    let e = rx.recv(&mut small).unwrap_err();
    assert!(matches!(e.cause(), Cause::BufferTooSmall { need: 100, .. }), "{e}");
    let mut buf = [0u8; 100];
    for _ in 0..sent {
        assert_eq!(
            rx.try_recv(&mut buf).unwrap(),
            Some(100),
            "the too-small call took nothing"
        );
    }
    let e = rx.recv_timeout(&mut buf, Duration::from_millis(30)).unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
}

#[test]
fn closed_receiver_is_an_error_for_the_sender() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let rx = Receiver::open(&name.0).unwrap();
    drop(rx);
    // The message waits in the ring for a next receiver; success is only
    // reported once a receiver took it, and this one left.
    tx.send(b"anyone?").unwrap();
    let e = tx.flush_timeout(TIMEOUT).unwrap_err();
    assert!(matches!(e.cause(), Cause::Closed { side: "receiver" }), "{e}");
    // A next receiver takes it.
    let mut rx = Receiver::open(&name.0).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), Some(7));
    tx.flush_timeout(TIMEOUT).unwrap();
}

#[test]
fn one_sender_and_one_receiver_only() {
    let name = ShmName::new("chan");
    let _tx = Sender::create(&name.0, 4096).unwrap();
    let _rx = Receiver::open(&name.0).unwrap();
    assert!(matches!(
        Sender::open(&name.0).unwrap_err().cause(),
        Cause::InUse { side: "sender", .. }
    ));
    assert!(matches!(
        Receiver::open(&name.0).unwrap_err().cause(),
        Cause::InUse { side: "receiver", .. }
    ));
}

#[test]
fn pair_across_fork() {
    let (mut tx, mut rx) = channel::pair(4096).unwrap();
    let (count, max) = (2000u64, 1000usize);
    let expected: Vec<Vec<u8>> = (0..count).map(|s| message(s, max)).collect();
    // Allocated before the fork: the child of this multi-threaded harness
    // must not allocate (another thread may hold the allocator's lock).
    let mut buf = vec![0u8; max];
    // The ring is a memfd, never a /dev/shm object.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains("/memfd:ipcraft-channel"),
        "the pair is mapped from a memfd"
    );
    // SAFETY: the child only receives into the preallocated buffer, compares
    // with preallocated data (no allocation on success) and `_exit`s.
    match unsafe { ipcraft::process::fork() }.unwrap() {
        ipcraft::process::Fork::Child => {
            std::mem::forget(tx); // the parent's: neither closed nor freed here
            let mut ok = true;
            for want in &expected {
                match rx.recv_timeout(&mut buf, TIMEOUT) {
                    Ok(Some(n)) => ok &= &buf[..n] == want.as_slice(),
                    _ => ok = false,
                }
            }
            ok &= matches!(rx.recv_timeout(&mut buf, TIMEOUT), Ok(None));
            ipcraft::process::exit_child(if ok { 0 } else { 1 });
        }
        ipcraft::process::Fork::Parent(pid) => {
            drop(rx); // the parent's unused copy: does not close the channel
            for m in &expected {
                tx.send_timeout(m, TIMEOUT).unwrap();
            }
            drop(tx);
            let status = ipcraft::process::wait_pid_timeout(pid, TIMEOUT)
                .unwrap()
                .expect("child finished");
            assert_eq!(status.code(), Some(0), "child saw wrong data: {status}");
        }
    }
}

/// Child-process role, started with `role("role_endless_sender", ...)`.
fn role_endless_sender(a: Vec<String>) {
    let max: usize = a[1].parse().unwrap();
    let mut tx = Sender::open(&a[0]).unwrap();
    for seq in 0.. {
        tx.send(&message(seq, max)).unwrap();
    }
}

#[test]
fn sender_killed_at_random_points() {
    let max = 2000;
    for run in 0..8u64 {
        let name = ShmName::new("chan");
        let mut rx = Receiver::create(&name.0, 8192).unwrap();
        let mut sender = role("role_endless_sender", &[&name.0, &max.to_string()])
            .spawn()
            .unwrap();
        let mut buf = vec![0u8; max];
        let kill_after = 1 + (run * 7919) % 3000;
        let mut seq = 0;
        while seq < kill_after {
            let n = rx.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
            check(&buf[..n], seq, max);
            seq += 1;
        }
        sender.kill().unwrap();
        let killed = Instant::now();
        assert_eq!(wait(&mut sender).signal(), Some(libc::SIGKILL));
        // Whatever was committed arrives intact and in order; then the death is reported.
        let e = loop {
            match rx.recv_timeout(&mut buf, TIMEOUT) {
                Ok(Some(n)) => {
                    check(&buf[..n], seq, max);
                    seq += 1;
                }
                Ok(None) => panic!("a killed sender must not look like a clean close"),
                Err(e) => break e,
            }
        };
        assert!(matches!(e.cause(), Cause::PeerDied { side: "sender", .. }), "{e}");
        assert!(killed.elapsed() < Duration::from_secs(5), "took {:?}", killed.elapsed());
    }
}

/// Child-process role, started with `role("role_half_frame_sender", ...)`.
fn role_half_frame_sender(a: Vec<String>) {
    let mut tx = Sender::open(&a[0]).unwrap();
    tx.send(b"complete").unwrap();
    let mut slot = tx.reserve(1000).unwrap();
    slot.write_at(0, &[0xAB; 500]).unwrap();
    // Tell the parent, then wait to be killed mid-frame.
    // SAFETY: fd 3 is the pipe the parent passed.
    let mut ready = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(3) };
    ready.write_all(b"r").unwrap();
    let mut block = [0u8; 1];
    let _ = std::io::stdin().read(&mut block);
    slot.commit();
}

/// Starts `role_half_frame_sender` on `name` and waits until it has sent
/// its complete message and is halfway through the next.
fn half_frame_sender(name: &str) -> std::process::Child {
    let (mut ready_r, ready_w) = ipcraft::pipe::pipe().unwrap();
    let mut cmd = role("role_half_frame_sender", &[name]);
    common::pass_fd(&mut cmd, ready_w.into(), 3);
    let sender = cmd.stdin(Stdio::piped()).spawn().unwrap();
    drop(cmd);
    let mut flag = [0u8; 1];
    ready_r.read_exact(&mut flag).unwrap();
    sender
}

#[test]
fn half_written_frame_is_never_delivered() {
    let name = ShmName::new("chan");
    let mut rx = Receiver::create(&name.0, 8192).unwrap();
    let mut sender = half_frame_sender(&name.0);
    sender.kill().unwrap();
    wait(&mut sender);
    let mut buf = [0u8; 2000];
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), Some(8));
    assert_eq!(&buf[..8], b"complete");
    let e = rx.recv_timeout(&mut buf, TIMEOUT).unwrap_err();
    assert!(matches!(e.cause(), Cause::PeerDied { .. }), "{e}");
}

/// A sender killed after publishing a frame but before publishing its new
/// position leaves the shared write position behind a frame the receiver
/// may already have taken (found by `scripts/torture-patterns.sh`: the next
/// client on that lane failed with "read position 1664 is impossible").
/// Its successor continues after that frame.
#[test]
fn a_successor_continues_after_frames_taken_past_the_published_position() {
    let name = ShmName::new("chan");
    let mut rx = Receiver::create(&name.0, 8192).unwrap();
    let mut sender = half_frame_sender(&name.0);
    let mut buf = [0u8; 2000];
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), Some(8));
    assert_eq!(&buf[..8], b"complete");
    sender.kill().unwrap();
    wait(&mut sender);
    // As if its last store, the new write position, never happened: the
    // position (the line after the identity) back to 0, behind the
    // receiver's.
    Shm::open(&name.0).unwrap().map().unwrap().write(128, &0u64).unwrap();
    let mut tx = Sender::open(&name.0).unwrap();
    tx.send(b"successor").unwrap();
    // The successor's message, then (the ring empty) the predecessor's death.
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), Some(9));
    assert_eq!(&buf[..9], b"successor");
    let e = rx.recv_timeout(&mut buf, TIMEOUT).unwrap_err();
    assert!(matches!(e.cause(), Cause::PeerDied { side: "sender", .. }), "{e}");
}

#[test]
fn receiver_killed_unblocks_the_sender() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut receiver = ipcraft()
        .args(["chan", "recv", &name.0])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the receiver take one message, so it is attached and alive.
    tx.send(b"first\n").unwrap();
    let mut first = [0u8; 6];
    receiver.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    receiver.kill().unwrap();
    let killed = Instant::now();
    wait(&mut receiver);
    // The ring fills up; then the sender must learn the receiver is gone.
    let e = loop {
        if let Err(e) = tx.send_timeout(&[7u8; 512], TIMEOUT) {
            break e;
        }
    };
    assert!(matches!(e.cause(), Cause::PeerDied { side: "receiver", .. }), "{e}");
    assert!(killed.elapsed() < Duration::from_secs(5));
}

/// Child-process role, started with `role("role_scribbler", ...)`.
fn role_scribbler(a: Vec<String>) {
    let seed: u64 = a[1].parse().unwrap();
    let shm = Shm::open(&a[0]).unwrap();
    let map = shm.map().unwrap();
    let len = map.len();
    let mut x = seed | 1;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x as usize) % (len - 8);
        let _ = map.write(at, &x.rotate_left(17));
    }
}

/// Child-process role, started with `role("role_tolerant_receiver", ...)`.
fn role_tolerant_receiver(a: Vec<String>) {
    let Ok(mut rx) = Receiver::open(&a[0]) else { return };
    let mut buf = vec![0u8; 1 << 16];
    // Any outcome but a crash or a hang is acceptable under scribbling.
    for _ in 0..100_000 {
        match rx.recv_timeout(&mut buf, Duration::from_millis(500)) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

#[test]
fn scribbling_third_process_causes_errors_not_crashes() {
    for seed in 1..=4u64 {
        let name = ShmName::new("chan");
        let mut tx = Sender::create(&name.0, 4096).unwrap();
        let mut receiver = role("role_tolerant_receiver", &[&name.0]).spawn().unwrap();
        let mut scribbler = role("role_scribbler", &[&name.0, &seed.to_string()]).spawn().unwrap();
        let start = Instant::now();
        let mut outcome = Ok(());
        while start.elapsed() < Duration::from_millis(300) {
            if let Err(e) = tx.send_timeout(
                &message(start.elapsed().as_nanos() as u64, 800),
                Duration::from_millis(500),
            ) {
                outcome = Err(e);
                break;
            }
        }
        drop(tx);
        wait_ok(&mut scribbler);
        let status = wait(&mut receiver);
        assert_eq!(status.signal(), None, "receiver killed by a signal: {status}");
        // The role returns on any error; 101 would be a panic.
        assert_eq!(status.code(), Some(0), "receiver panicked: {status}");
        // The sender (this process) is alive to make the assertion; its
        // error, if any, is one a scribbled ring or a gone receiver explains.
        if let Err(e) = outcome {
            assert!(
                matches!(
                    e.cause(),
                    Cause::Corrupted(_) | Cause::Closed { .. } | Cause::PeerDied { .. } | Cause::TimedOut
                ),
                "{e}"
            );
        }
    }
}

#[test]
fn scribbled_frame_header_is_reported_as_corruption() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    tx.send(b"fine").unwrap();
    let map = Shm::open(&name.0).unwrap().map().unwrap();
    // The first frame is at the start of the ring (offset 4096): its stamp
    // word, then its length word. A length no frame can have is corruption.
    map.write(4096 + 8, &0x0000_0000_7fff_0000u64).unwrap();
    let e = rx.recv(&mut [0u8; 64]).unwrap_err();
    assert!(matches!(e.cause(), Cause::Corrupted(_)), "{e}");
    // The word's high half is the frame's tag (a service's request id):
    // whatever it holds, the length is checked.
    map.write(4096 + 8, &0xffff_ffff_0000_1000u64).unwrap();
    let e = rx.try_recv(&mut [0u8; 64]).unwrap_err();
    assert!(matches!(e.cause(), Cause::Corrupted(_)), "{e}");
    // A scribbled stamp is no frame at all: the receiver waits for one (the
    // sender is alive), within its timeout.
    let stamp: u64 = map.read(4096).unwrap();
    map.write(4096, &0x1234u64).unwrap();
    let e = rx.recv_timeout(&mut [0u8; 64], Duration::from_millis(100)).unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
    // The stamp back and a plausible length under a tag: the message is
    // delivered, the tag never read as part of its length.
    map.write(4096 + 8, &(1u64 << 40 | 4)).unwrap();
    map.write(4096, &stamp).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), Some(4));
    assert_eq!(&buf[..4], b"fine");
}

/// Writes `bytes` as the whole content of a new shm object `name`.
fn garbage(name: &str, bytes: &[u8]) -> Shm {
    let mut shm = ShmOptions::new()
        .create_new(true)
        .size(bytes.len() as u64)
        .open(name)
        .unwrap();
    if !bytes.is_empty() {
        shm.map().unwrap().write_at(0, bytes).unwrap();
    }
    shm.keep();
    shm
}

#[test]
fn garbage_objects_are_refused_clearly() {
    let magic = u64::from_le_bytes(*b"IPCKCHAN").to_le_bytes();
    let mut huge_cap = vec![0u8; 8192];
    huge_cap[..8].copy_from_slice(&magic);
    huge_cap[8..12].copy_from_slice(&2u32.to_le_bytes()); // layout version 2
    huge_cap[12..16].copy_from_slice(&4096u32.to_le_bytes());
    huge_cap[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut too_big_for_object = huge_cap.clone();
    too_big_for_object[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
    let mut bad_version = huge_cap.clone();
    bad_version[8..12].copy_from_slice(&99u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random", pattern(8192, 3), "bad magic"),
        ("wrong magic", b"NOTACHANNEL".repeat(800), "bad magic"),
        ("short", pattern(100, 4), "smaller than a channel header"),
        ("huge capacity", huge_cap, "impossible capacity"),
        ("capacity past the end", too_big_for_object, "does not fit"),
        ("other version", bad_version, "version 99"),
    ];
    for (what, bytes, needle) in cases {
        let name = ShmName::new("chan");
        let _obj = garbage(&name.0, &bytes);
        let e = Receiver::open(&name.0).unwrap_err();
        assert!(matches!(e.cause(), Cause::Corrupted(_)), "{what}: {e}");
        assert!(e.to_string().contains(needle), "{what}: {e}");
        let out = run(ipcraft().args(["chan", "recv", &name.0]), b"");
        assert_fails(&out, 1, needle);
        let out = run(ipcraft().args(["chan", "send", &name.0]), b"data");
        assert_fails(&out, 1, needle);
    }
    // All zeros: a creator that never finished; opening gives up after its timeout.
    let name = ShmName::new("chan");
    let _obj = garbage(&name.0, &[0u8; 8192]);
    let e = ChannelOptions::new()
        .open_timeout(Duration::from_millis(100))
        .open_receiver(&name.0)
        .unwrap_err();
    assert!(e.to_string().contains("did not finish"), "{e}");
    let name = ShmName::new("chan");
    let _obj = garbage(&name.0, &[]);
    let e = ChannelOptions::new()
        .open_timeout(Duration::from_millis(100))
        .open_receiver(&name.0)
        .unwrap_err();
    assert!(e.to_string().contains("still empty"), "{e}");
}

#[test]
fn cli_streams_256_mib_with_matching_sha256() {
    let name = ShmName::new("chan");
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "1M"]),
        b"",
    ));
    let script = r#"
        set -euo pipefail
        head -c 268435456 /dev/urandom > "$2"
        "$0" chan recv "$1" | sha256sum > "$2.recv" &
        "$0" chan send "$1" < "$2"
        wait
        sha256sum < "$2" > "$2.sent"
        cmp "$2.sent" "$2.recv"
        cat "$2.recv"
    "#;
    let dir = common::TempDir::new();
    let out = run(
        Command::new("bash")
            .args(["-c", script])
            .arg(env!("CARGO_BIN_EXE_ipcraft"))
            .arg(&name.0)
            .arg(dir.join("sum")),
        b"",
    );
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .len(),
        64
    );
    let stat = run(ipcraft().args(["chan", "stat", &name.0]), b"");
    assert_eq!(
        String::from_utf8(stat.stdout).unwrap(),
        "capacity=1048576 in_flight=0 stream=1 sender=closed receiver=closed\n"
    );
    assert_ok(&run(ipcraft().args(["chan", "rm", &name.0]), b""));
    assert_fails(&run(ipcraft().args(["chan", "stat", &name.0]), b""), 1, "No such file");
}

#[test]
fn cli_kill_either_side_is_reported_within_5_seconds() {
    for victim in ["send", "recv"] {
        let name = ShmName::new("chan");
        assert_ok(&run(
            ipcraft().args(["chan", "create", &name.0, "--capacity", "64K"]),
            b"",
        ));
        let mut recv = ipcraft()
            .args(["chan", "recv", &name.0])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut send, mut input) = spawn_fed(ipcraft().args(["chan", "send", &name.0]));
        // Stream enough that both sides are attached and busy.
        let chunk = pattern(1 << 20, 5);
        for _ in 0..4 {
            input.write_all(&chunk).unwrap();
        }
        let (killed, survivor) = if victim == "send" {
            (&mut send, &mut recv)
        } else {
            (&mut recv, &mut send)
        };
        killed.kill().unwrap();
        let at = Instant::now();
        wait(killed);
        if victim == "recv" {
            // Keep the sender's stdin busy so it keeps sending into the full ring.
            std::thread::spawn(move || while input.write_all(&[0u8; 65536]).is_ok() {});
        } else {
            drop(input);
        }
        let status = wait(survivor);
        assert!(
            at.elapsed() < Duration::from_secs(5),
            "{victim}: took {:?}",
            at.elapsed()
        );
        assert_eq!(status.code(), Some(1), "{victim}: {status}");
        let mut err = String::new();
        survivor.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(err.starts_with("ipcraft: ") && err.contains("died"), "{victim}: {err}");
    }
}

#[test]
fn cli_create_stat_and_rm() {
    let name = ShmName::new("chan");
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "5000"]),
        b"",
    ));
    let out = run(ipcraft().args(["chan", "stat", &name.0]), b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "capacity=8192 in_flight=0 stream=0 sender=absent receiver=absent\n"
    );
    assert_fails(&run(ipcraft().args(["chan", "create", &name.0]), b""), 1, "File exists");
    assert_fails(
        &run(ipcraft().args(["chan", "create", "/x", "--capacity", "2G"]), b""),
        1,
        "largest channel capacity",
    );
    assert_fails(
        &run(ipcraft().args(["chan", "create", "/x", "--capacity", "lots"]), b""),
        2,
        "size",
    );
    let other = ShmName::new("chan");
    let _plain = garbage(&other.0, b"just some shared memory");
    assert_fails(
        &run(ipcraft().args(["chan", "rm", &other.0]), b""),
        1,
        "smaller than a channel header",
    );
    assert!(
        std::path::Path::new("/dev/shm")
            .join(other.0.trim_start_matches('/'))
            .exists(),
        "not removed"
    );
    assert_ok(&run(ipcraft().args(["chan", "rm", &name.0]), b""));
}

#[test]
fn channel_on_a_memfd_between_processes() {
    let fd = rustix::fs::memfd_create("ipcraft-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let theirs = fd.try_clone().unwrap();
    let mut tx = ChannelOptions::new().capacity(4096).create_sender_in(fd).unwrap();
    let mut rx = ChannelOptions::new().open_receiver_in(theirs).unwrap();
    for seq in 0..500 {
        tx.send(&message(seq, 700)).unwrap();
        let mut buf = [0u8; 700];
        let n = rx.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
        check(&buf[..n], seq, 700);
    }
    drop(tx);
    assert_eq!(rx.recv_timeout(&mut [0u8; 8], TIMEOUT).unwrap(), None);
}

#[test]
fn hostile_positions_near_u64_max_are_errors_not_panics() {
    // Offsets of the published positions in the header page (layout.rs):
    // tail on the second 128-byte line, head on the fourth.
    const TAIL: usize = 128;
    const HEAD: usize = 3 * 128;
    for (tail, head) in [
        (0, u64::MAX - 63),
        (u64::MAX - 63, u64::MAX - 63),
        (u64::MAX, 0),
        (64, 4096 * 4),
        (8, 0),
    ] {
        let name = ShmName::new("chan");
        channel::create(&name.0, 4096).unwrap();
        let map = Shm::open(&name.0).unwrap().map().unwrap();
        map.write(TAIL, &tail).unwrap();
        map.write(HEAD, &head).unwrap();
        // Debug builds check every overflow: none of this may panic.
        if let Ok(mut rx) = Receiver::open(&name.0) {
            let _ = rx.try_recv(&mut [0u8; 64]);
        }
        if let Ok(mut tx) = Sender::open(&name.0) {
            for _ in 0..200 {
                if tx.try_send(&[1u8; 100]).is_err() {
                    break;
                }
            }
        }
    }
}

/// The CLI run as another user when the tests run as root (so the object is
/// not this process's), or as this user otherwise.
fn ipcraft_as_other() -> Command {
    common::as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()).unwrap_or_else(ipcraft)
}

/// `chan stat` opens the channel read-only: it works on a channel its
/// owner may only read (it opened it read-write before and failed).
#[test]
fn cli_stat_needs_only_read_access() {
    let name = ShmName::new("chan");
    assert_ok(&run(
        ipcraft_as_other().args(["chan", "create", &name.0, "--capacity", "4K"]),
        b"",
    ));
    assert_ok(&run(
        Command::new("chmod").args(["0400", &format!("/dev/shm{}", name.0)]),
        b"",
    ));
    let out = run(ipcraft_as_other().args(["chan", "stat", &name.0]), b"");
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        b"capacity=4096 in_flight=0 stream=0 sender=absent receiver=absent\n"
    );
}

/// A channel another user made (world-writable, say) is never used without
/// a word: every command that opens it names the owner.
#[test]
fn another_users_channel_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: making a channel owned by another user needs root");
        return;
    }
    let name = ShmName::new("chan");
    let mut nobody = ipcraft_as_other();
    assert_ok(&run(nobody.args(["chan", "create", &name.0, "--capacity", "4K"]), b""));
    assert_ok(&run(
        Command::new("chmod").args(["0666", &format!("/dev/shm{}", name.0)]),
        b"",
    ));
    for args in [["chan", "send"], ["chan", "recv"], ["chan", "stat"], ["chan", "rm"]] {
        assert_fails(
            &run(ipcraft().args(args).arg(&name.0), b"data"),
            1,
            "owned by uid 65534",
        );
    }
    let e = Sender::open(&name.0).unwrap_err();
    assert!(matches!(e.cause(), Cause::ForeignOwner { owner: 65534, .. }), "{e}");
    assert!(ChannelOptions::new().allow_foreign(true).open_receiver(&name.0).is_ok());
}

/// `--capacity 0` is a usage error (it silently became 4K before); the
/// library refuses a zero capacity too.
#[test]
fn zero_capacity_is_refused() {
    let name = ShmName::new("chan");
    assert_fails(
        &run(ipcraft().args(["chan", "create", &name.0, "--capacity", "0"]), b""),
        2,
        "capacity",
    );
    assert!(
        std::fs::symlink_metadata(format!("/dev/shm{}", name.0)).is_err(),
        "nothing created"
    );
    let e = ChannelOptions::new().capacity(0).create(&name.0).unwrap_err();
    assert!(matches!(e.cause(), Cause::Invalid(_)), "{e}");
}

common::roles!(
    role_sender,
    role_receiver,
    role_endless_sender,
    role_half_frame_sender,
    role_scribbler,
    role_tolerant_receiver
);

/// A sender with room for its message sends it, even when the receiver has
/// stopped draining and little of the ring is free (it never waits for
/// more room than the message needs).
#[test]
fn a_sender_never_waits_for_more_room_than_it_needs() {
    let name = ShmName::new("chan");
    let mut tx = Sender::create(&name.0, 4096).unwrap();
    let mut rx = Receiver::open(&name.0).unwrap();
    let msg = [5u8; 100];
    let mut sent = 0;
    while tx.try_send(&msg).is_ok() {
        sent += 1;
    }
    assert!(sent > 10);
    let mut buf = [0u8; 128];
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), Some(100));
    // One message's worth is free; the receiver reads nothing more.
    let start = Instant::now();
    tx.send_timeout(&msg, TIMEOUT).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    for _ in 0..sent {
        assert_eq!(rx.try_recv(&mut buf).unwrap(), Some(100));
        assert_eq!(buf[..100], msg);
    }
}

/// A pair's sender closed on purpose without sending anything still ends
/// the stream for the receiver in the other process.
#[test]
fn closing_an_unused_pair_sender_ends_the_stream() {
    let (tx, mut rx) = channel::pair(4096).unwrap();
    let mut buf = [0u8; 8];
    tx.close().unwrap();
    assert_eq!(rx.recv_timeout(&mut buf, TIMEOUT).unwrap(), None);
}
