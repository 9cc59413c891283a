//! A named channel outlives its users: streams one after another, sides
//! killed with SIGKILL and replaced, and nothing committed ever lost or
//! reported as taken when it was not. Real `ipcraft chan send`/`recv`
//! processes throughout.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, ipcraft, pattern, run, settled, spawn_fed, wait, ShmName, TempDir, TIMEOUT};
use ipcraft::channel::{self, SideState};

/// `chan recv NAME > file`, with stderr kept for the assertions.
fn receiver(name: &str, out: &Path) -> Child {
    ipcraft()
        .args(["chan", "recv", name])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `chan send NAME` reading from a pipe this test writes.
fn sender(name: &str) -> (Child, ChildStdin) {
    spawn_fed(ipcraft().args(["chan", "send", name]))
}

/// Waits, bounded, until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn stat(name: &str) -> channel::ChannelStat {
    channel::stat(name).unwrap()
}

fn alive(s: SideState) -> bool {
    matches!(s, SideState::Alive(_))
}

fn kill9(child: &mut Child) -> ExitStatus {
    child.kill().unwrap();
    let status = wait(child);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    status
}

/// Waits for `child` and returns its status and stderr.
fn finish(child: Child) -> (ExitStatus, String) {
    common::wait_with_stderr(child)
}

/// One clean stream: everything sent arrives, both exit 0.
fn clean_stream(name: &str, dir: &TempDir, tag: &str, data: &[u8]) {
    let out = dir.join(&format!("{tag}.out"));
    let rx = receiver(name, &out);
    let send = run(ipcraft().args(["chan", "send", name]), data);
    assert_ok(&send);
    let (status, err) = finish(rx);
    assert!(status.success(), "{tag}: receiver: {status} {err}");
    assert!(std::fs::read(&out).unwrap() == data, "{tag}: not byte-exact");
}

#[test]
fn five_streams_on_one_channel_with_sides_killed_and_replaced() {
    let name = ShmName::new("streams");
    let dir = TempDir::new();
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "64K"]),
        b"",
    ));

    clean_stream(&name.0, &dir, "s1", &pattern(300_000, 1));
    assert_eq!(stat(&name.0).stream, 1);

    // Stream 2: the receiver is killed mid-stream. The sender notices (and
    // aborts unless all its input was in); a replacement receiver gets
    // exactly the rest, then the abort or the end.
    let input2 = pattern(2 << 20, 2);
    let out2a = dir.join("s2a.out");
    let mut rx = receiver(&name.0, &out2a);
    let (tx, mut stdin) = sender(&name.0);
    // The input stays open until the receiver is killed, so the stream
    // cannot end (and the receiver exit) before the kill.
    let (killed, wait_for_kill) = std::sync::mpsc::channel::<()>();
    let feeder = {
        let input = input2.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            let _ = wait_for_kill.recv();
        })
    };
    eventually("the first receiver took some", || size(&out2a) >= 256 * 1024);
    kill9(&mut rx);
    killed.send(()).unwrap();
    let (status, err) = finish(tx);
    assert_eq!(status.code(), Some(1), "the sender reports the cut: {err}");
    assert!(err.contains("receiver") && err.contains("died"), "{err}");
    feeder.join().unwrap();
    let out2b = dir.join("s2b.out");
    let (status, err) = finish(receiver(&name.0, &out2b));
    // The first receiver's output is a prefix; the replacement continues
    // from the first message the dead one had not consumed. A message the
    // dead one had written out but not yet marked consumed (the kill fell
    // between the two) comes again: the replacement may start up to one
    // message (64 KiB here) before where the first output ends.
    let a = std::fs::read(&out2a).unwrap();
    let b = std::fs::read(&out2b).unwrap();
    assert!(
        a.len() >= 256 * 1024 && input2.starts_with(&a),
        "the first receiver printed a prefix"
    );
    let from = a.len().saturating_sub(64 * 1024);
    let start = (from..=a.len()).find(|&off| input2[off..].starts_with(&b));
    assert!(
        start.is_some(),
        "the replacement continues where the first stopped (a={} b={})",
        a.len(),
        b.len()
    );
    // Either the sender had committed all of its input when the receiver
    // died (the stream is complete and ends cleanly for the next
    // receiver), or it aborted: never a clean end of a cut stream.
    if status.code() == Some(0) {
        assert!(input2.ends_with(&b), "a clean end means the whole stream");
    } else {
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("aborted"), "{err}");
    }

    clean_stream(&name.0, &dir, "s3", &pattern(500_000, 3));

    // Stream 4: the sender is killed mid-stream. The receiver delivers all
    // it committed, then reports the death; a replacement sender continues
    // the stream and the next receiver gets exactly the continuation.
    let part_a = pattern(100_000, 41);
    let out4a = dir.join("s4a.out");
    let rx = receiver(&name.0, &out4a);
    let (mut tx, mut stdin) = sender(&name.0);
    stdin.write_all(&part_a).unwrap();
    eventually("the receiver took part A", || size(&out4a) == part_a.len() as u64);
    kill9(&mut tx);
    let (status, err) = finish(rx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("sender") && err.contains("died"), "{err}");
    assert!(std::fs::read(&out4a).unwrap() == part_a);
    let stream4 = stat(&name.0).stream;
    let part_b = pattern(200_000, 42);
    let out4b = dir.join("s4b.out");
    let rx = receiver(&name.0, &out4b);
    assert_ok(&run(ipcraft().args(["chan", "send", &name.0]), &part_b));
    let (status, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert!(std::fs::read(&out4b).unwrap() == part_b, "the continuation, exactly");
    assert_eq!(stat(&name.0).stream, stream4, "a replacement continues its stream");

    clean_stream(&name.0, &dir, "s5", &pattern(700_000, 5));
    let s = stat(&name.0);
    assert_eq!(
        (s.sender, s.receiver, s.in_flight),
        (SideState::Closed, SideState::Closed, 0)
    );
}

/// A receiver stopped while the sender fills the ring and dies gets every
/// committed byte before it hears of the death (it got nothing before).
#[test]
fn committed_data_is_delivered_before_the_senders_death() {
    let name = ShmName::new("drain");
    let dir = TempDir::new();
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "1M"]),
        b"",
    ));
    let out = dir.join("out");
    let rx = receiver(&name.0, &out);
    eventually("the receiver attached", || alive(stat(&name.0).receiver));
    let pid = rustix::process::Pid::from_raw(rx.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let mut tx = ipcraft()
        .args(["chan", "send", &name.0])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the ring is full", || stat(&name.0).in_flight >= (1 << 20) - 64 * 1024);
    kill9(&mut tx);
    let committed = stat(&name.0).in_flight;
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let (status, err) = finish(rx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("died"), "{err}");
    let got = std::fs::read(&out).unwrap();
    // Frames carry up to 64 KiB each with a 16-byte header, padded to lines.
    assert!(
        got.len() as u64 > committed - committed / 64,
        "{} of {committed}",
        got.len()
    );
    assert!(got.iter().all(|&b| b == 0));
}

/// The sender reports success only for bytes a receiver took: with the
/// receiver dead it fails (this exited 0 when the data fit in the ring).
#[test]
fn no_success_for_data_nobody_took() {
    let name = ShmName::new("untaken");
    let dir = TempDir::new();
    assert_ok(&run(ipcraft().args(["chan", "create", &name.0]), b""));
    let mut rx = receiver(&name.0, &dir.join("out"));
    eventually("the receiver attached", || settled(&rx, stat(&name.0).receiver));
    kill9(&mut rx);
    let out = run(ipcraft().args(["chan", "send", &name.0]), &pattern(3000, 7));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("died"));

    // No receiver at all: a bounded wait, then a clear failure, not a hang;
    // the message stays for the next receiver.
    let name = ShmName::new("untaken");
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "4K"]),
        b"",
    ));
    let start = Instant::now();
    let out = run(ipcraft().args(["chan", "send", &name.0, "--timeout", "0.5"]), b"hi\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wait for the receiver to take what was sent to channel") && err.ends_with("timed out\n"),
        "{err}"
    );
    assert!(start.elapsed() < TIMEOUT);
    let got = run(ipcraft().args(["chan", "recv", &name.0, "--timeout", "5"]), b"");
    assert_ok(&got);
    assert_eq!(got.stdout, b"hi\n");
}

/// A sender that fails (stdin is a directory) aborts the stream: the
/// receiver exits 1 saying so, not 0 as for a clean end.
#[test]
fn a_failing_sender_aborts_the_stream() {
    let name = ShmName::new("abort");
    let dir = TempDir::new();
    assert_ok(&run(ipcraft().args(["chan", "create", &name.0]), b""));
    let rx = receiver(&name.0, &dir.join("out"));
    let tx = ipcraft()
        .args(["chan", "send", &name.0])
        .stdin(std::fs::File::open("/").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = finish(tx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("read stdin"), "{err}");
    let (status, err) = finish(rx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("aborted"), "{err}");
}

/// Scribbled state words never make a side wait past the liveness check
/// once the peer is dead: the sender's state is set to "closed" without an
/// end marker (or back to "absent"), then the sender is killed.
#[test]
fn scribbled_state_words_do_not_hang_the_receiver() {
    for scribble in [2u32, 0] {
        let name = ShmName::new("scribble");
        let dir = TempDir::new();
        assert_ok(&run(ipcraft().args(["chan", "create", &name.0]), b""));
        let (mut tx, _stdin) = sender(&name.0);
        eventually("the sender attached", || settled(&tx, stat(&name.0).sender));
        let rx = receiver(&name.0, &dir.join("out"));
        eventually("the receiver attached", || alive(stat(&name.0).receiver));
        // The sender's state word: after the identity and tail lines.
        let map = ipcraft::shm::Shm::open(&name.0).unwrap().map().unwrap();
        map.write(256, &scribble).unwrap();
        kill9(&mut tx);
        let start = Instant::now();
        let (status, err) = finish(rx);
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("died"), "state {scribble}: {err}");
    }
}

/// Both sides asleep between every message, with the sleep timeout off:
/// a lost wake-up would hang here (and fail the bounded wait) instead of
/// costing 50 ms.
#[test]
fn no_lost_wake_ups_without_the_sleep_timeout() {
    let name = ShmName::new("nonap");
    let dir = TempDir::new();
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "4K"]),
        b"",
    ));
    let out = dir.join("out");
    let mut rx = Command::new(env!("CARGO_BIN_EXE_ipcraft"));
    rx.env("IPCRAFT_CHANNEL_NO_NAP", "1");
    let rx = rx
        .args(["chan", "recv", &name.0])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tx = Command::new(env!("CARGO_BIN_EXE_ipcraft"));
    tx.env("IPCRAFT_CHANNEL_NO_NAP", "1");
    // Many small writes through a 4 KiB ring: the sides keep waking each other.
    let data = pattern(2 << 20, 11);
    let mut tx = tx
        .args(["chan", "send", &name.0])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = tx.stdin.take().unwrap();
    for chunk in data.chunks(1000) {
        stdin.write_all(chunk).unwrap();
    }
    drop(stdin);
    assert!(wait(&mut tx).success());
    let (status, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert!(std::fs::read(&out).unwrap() == data);
}

/// `shm write` (which resizes the object to its value) refuses to shrink a
/// channel; and a channel shrunk anyway (any process of the same user can
/// truncate it) makes both sides fail with an error, never SIGBUS.
#[test]
fn shrinking_a_channel_is_refused_or_survived() {
    let name = ShmName::new("shrink");
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "1M"]),
        b"",
    ));
    let out = run(ipcraft().args(["shm", "write", &name.0, "1"]), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ipcraft channel"));
    let path = format!("/dev/shm{}", name.0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 + (1 << 20), "not shrunk");

    for new_len in [0u64, 4096, 4096 + 8192] {
        let dir = TempDir::new();
        let rx = receiver(&name.0, &dir.join("out"));
        let tx = ipcraft()
            .args(["chan", "send", &name.0])
            .stdin(std::fs::File::open("/dev/zero").unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        eventually("data flows", || size(&dir.join("out")) > 1 << 20);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        for (side, child) in [("receiver", rx), ("sender", tx)] {
            let (status, err) = finish(child);
            assert_eq!(
                status.signal(),
                None,
                "{side} killed by a signal after truncation to {new_len}: {err}"
            );
            assert_eq!(status.code(), Some(1), "{side}: {err}");
            // The side that notices first fails with "shrank"; the other may
            // first see its peer leave, die or abort.
            assert!(
                ["shrank", "died", "aborted", "closed"].iter().any(|w| err.contains(w)),
                "{side}: {err}"
            );
        }
        // Start over for the next size.
        let _ = std::fs::remove_file(&path);
        assert_ok(&run(
            ipcraft().args(["chan", "create", &name.0, "--capacity", "1M"]),
            b"",
        ));
    }
}

/// A sender killed mid-stream and replaced before the receiver looked:
/// the receiver (stopped meanwhile) gets what the dead sender committed
/// and the replacement's continuation, then reports the death by the dead
/// sender's pid (exit 1) instead of a clean end; the replacement's end
/// marker is taken, so the replacement exits 0. On a many-sender channel
/// with every lane taken, the same for the lane taken over.
#[test]
fn a_death_between_two_senders_is_reported_even_when_unseen() {
    for senders in [None, Some("2")] {
        let name = ShmName::new("takeover");
        let dir = TempDir::new();
        let mut create = vec!["chan", "create", name.0.as_str()];
        if let Some(n) = senders {
            create.extend(["--senders", n]);
        }
        assert_ok(&run(ipcraft().args(&create), b""));
        let out = dir.join("out");
        let rx = receiver(&name.0, &out);
        eventually("the receiver attached", || {
            channel::stat_lanes(&name.0).is_ok_and(|l| alive(l[0].receiver))
        });
        // SIGSTOP: it cannot look at the first sender between its death and
        // its replacement.
        rustix::process::kill_process(rustix::process::Pid::from_child(&rx), rustix::process::Signal::STOP).unwrap();
        let (mut first, mut first_in) = sender(&name.0);
        first_in.write_all(b"from the first\n").unwrap();
        first_in.flush().unwrap();
        let in_flight = |name: &str| {
            channel::stat_lanes(name)
                .unwrap()
                .iter()
                .map(|l| l.in_flight)
                .sum::<u64>()
        };
        eventually("the first sender committed", || in_flight(&name.0) > 0);
        let first_committed = in_flight(&name.0);
        // On the many-sender channel a second, live sender takes the other
        // lane, so the replacement must take over the dead one's.
        let other = senders.map(|_| {
            let (child, stdin) = sender(&name.0);
            eventually("the other sender attached", || {
                channel::stat_lanes(&name.0).unwrap().iter().all(|l| alive(l.sender))
            });
            (child, stdin)
        });
        let first_pid = first.id();
        kill9(&mut first);
        drop(first_in);
        let (replacement, mut stdin) = sender(&name.0);
        stdin.write_all(b"from the replacement\n").unwrap();
        drop(stdin);
        eventually("the replacement took over", || {
            channel::stat_lanes(&name.0)
                .unwrap()
                .iter()
                .any(|l| l.sender == SideState::Alive(replacement.id()))
        });
        // Until its message is in the ring, a receiver let go would find
        // nothing after the first's and rightly report the death at once.
        eventually("the replacement committed", || in_flight(&name.0) > first_committed);
        // Its input ends; it waits for the receiver to take its end.
        let other = other.map(|(child, stdin)| {
            drop(stdin);
            child
        });
        rustix::process::kill_process(rustix::process::Pid::from_child(&rx), rustix::process::Signal::CONT).unwrap();
        let (status, err) = finish(rx);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("sender (pid {first_pid}) died")),
            "{senders:?}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "from the first\nfrom the replacement\n",
            "{senders:?}"
        );
        let (status, err) = finish(replacement);
        assert!(status.success(), "{senders:?}: the replacement: {err}");
        if let Some(other) = other {
            let (status, err) = finish(other);
            assert!(status.success(), "the other sender: {err}");
        }
    }
}

/// The sender publishes its position only now and then (every 4 KiB);
/// `chan stat`, in a process of its own, still counts every frame it
/// committed, before and after a publication, the end marker included.
#[test]
fn stat_counts_every_committed_frame_published_position_or_not() {
    let name = ShmName::new("statpos");
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "64K"]),
        b"",
    ));
    let in_flight = || {
        let out = run(ipcraft().args(["chan", "stat", &name.0]), b"");
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        let field = text
            .split_whitespace()
            .find_map(|f| f.strip_prefix("in_flight="))
            .map(str::to_owned);
        field
            .unwrap_or_else(|| panic!("no in_flight in {text:?}"))
            .parse::<u64>()
            .unwrap()
    };
    let mut tx = channel::Sender::open(&name.0).unwrap();
    let mut expect = 0;
    // 3456 bytes of frames, then past 4096 with the last two.
    for (i, len) in [100usize, 1, 48, 49, 3000, 0, 700].into_iter().enumerate() {
        tx.send(&vec![i as u8; len]).unwrap();
        expect += (16 + len as u64).div_ceil(64) * 64;
        assert_eq!(in_flight(), expect, "after the message of {len} bytes");
    }
    tx.close().unwrap();
    assert_eq!(in_flight(), expect + 64, "the end marker is a line");
    let out = run(ipcraft().args(["chan", "recv", &name.0]), b"");
    assert_ok(&out);
    assert_eq!(out.stdout.len(), 100 + 1 + 48 + 49 + 3000 + 700);
    assert_eq!(in_flight(), 0);
}
