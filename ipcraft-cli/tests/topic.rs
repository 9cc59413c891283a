//! Publish–subscribe across real processes: `ipcraft topic pub` and several
//! `ipcraft topic sub`, byte-exact delivery to every subscriber, a
//! subscriber killed mid-stream, lag reports in overwrite mode, a dead
//! publisher, and bad input.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, assert_ok, ipcraft, run, spawn_fed, wait, wait_with_stderr, ShmName, TempDir, TIMEOUT};
use ipcraft::channel::SideState;
use ipcraft::topic;

/// `topic sub NAME > out`, stderr piped.
fn subscriber(name: &str, out: &Path, extra: &[&str]) -> Child {
    subscriber_cmd(name, out, extra).spawn().unwrap()
}

/// The command of [`subscriber`], to add to before it starts.
fn subscriber_cmd(name: &str, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = ipcraft();
    cmd.args(["topic", "sub", name])
        // A child left behind by a failed test still ends.
        .args(["--timeout", "60"])
        .args(extra)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped());
    cmd
}

/// `topic pub NAME` reading from a pipe the test writes, stderr piped.
fn publisher(name: &str) -> (Child, std::process::ChildStdin) {
    spawn_fed(ipcraft().args(["topic", "pub", name]))
}

/// Waits, bounded, until `n` subscribers are attached and alive.
fn until_subscribed(name: &str, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stat = topic::stat(name).unwrap();
        let alive = stat
            .subscribers
            .iter()
            .filter(|(_, s, _)| matches!(s, SideState::Alive(_)))
            .count();
        if alive >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} subscribers never attached: {stat}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lines of varied length (some empty, some long), numbered so order and
/// loss show.
fn lines(count: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..count {
        let filler = "x".repeat((i * 7919) % 300);
        if i % 97 == 0 {
            text.extend_from_slice(b"\n");
        } else {
            writeln!(text, "{i} {filler}").unwrap();
        }
    }
    text
}

fn create(name: &str, extra: &[&str]) {
    assert_ok(&run(ipcraft().args(["topic", "create", name]).args(extra), b""));
}

#[test]
fn every_subscriber_gets_every_message_byte_exact() {
    let name = ShmName::new("topic-all");
    let dir = TempDir::new();
    // A small ring, so the stream wraps it many times and the publisher
    // waits for the slowest subscriber again and again.
    create(&name.0, &["--capacity", "4K", "--subscribers", "3"]);
    let outs: Vec<_> = (0..3).map(|i| dir.join(&format!("sub{i}"))).collect();
    let subs: Vec<_> = outs.iter().map(|o| subscriber(&name.0, o, &[])).collect();
    until_subscribed(&name.0, 3);
    let input = lines(20_000);
    assert_ok(&run(ipcraft().args(["topic", "pub", &name.0]), &input));
    for (sub, out) in subs.into_iter().zip(&outs) {
        let (status, stderr) = wait_with_stderr(sub);
        assert!(status.success(), "{status}: {stderr}");
        assert!(
            std::fs::read(out).unwrap() == input,
            "{} differs from the input",
            out.display()
        );
    }
    // The stat shows the finished stream.
    let stat = topic::stat(&name.0).unwrap();
    assert_eq!(stat.publisher, SideState::Closed);
    assert_eq!(stat.slots, 3);
    assert_ok(&run(ipcraft().args(["topic", "rm", &name.0]), b""));
    assert!(topic::stat(&name.0).is_err());
}

#[test]
fn a_killed_subscriber_stops_neither_the_publisher_nor_the_others() {
    let name = ShmName::new("topic-kill");
    let dir = TempDir::new();
    create(&name.0, &["--capacity", "4K"]);
    let (slow_out, good_out) = (dir.join("slow"), dir.join("good"));
    let mut slow = subscriber(&name.0, &slow_out, &[]);
    let good = subscriber(&name.0, &good_out, &[]);
    until_subscribed(&name.0, 2);
    // The slow one stops reading: the publisher fills the ring and waits for it.
    rustix::process::kill_process(rustix::process::Pid::from_child(&slow), rustix::process::Signal::STOP).unwrap();
    let input = lines(5_000);
    let (publisher, mut stdin) = publisher(&name.0);
    let feed = input.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&feed);
    });
    // Wait until the publisher is held up by the stopped subscriber.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stat = topic::stat(&name.0).unwrap();
        if stat.subscribers.iter().any(|(_, _, unread)| *unread > 2048) {
            break;
        }
        assert!(Instant::now() < deadline, "the publisher never filled the ring: {stat}");
        std::thread::sleep(Duration::from_millis(2));
    }
    slow.kill().unwrap();
    let killed = Instant::now();
    assert_eq!(wait(&mut slow).signal(), Some(9));
    let (status, stderr) = wait_with_stderr(publisher);
    // The liveness interval is 50 ms; a loaded machine gets ample slack.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "publisher took {:?}",
        killed.elapsed()
    );
    assert!(status.success(), "{status}: {stderr}");
    feeder.join().unwrap();
    let (status, stderr) = wait_with_stderr(good);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        std::fs::read(&good_out).unwrap() == input,
        "the live subscriber lost data"
    );
}

#[test]
fn overwrite_mode_reports_exactly_what_a_stalled_subscriber_missed() {
    let name = ShmName::new("topic-lag");
    let dir = TempDir::new();
    create(&name.0, &["--capacity", "4K", "--overwrite"]);
    let out = dir.join("sub");
    let sub = subscriber(&name.0, &out, &[]);
    until_subscribed(&name.0, 1);
    // Shown alive, a subscriber may still be finishing its attach (which
    // starts it at the oldest message held, missing nothing): stop it only
    // once it waits for the first message.
    let deadline = Instant::now() + TIMEOUT;
    while !common::asleep(&sub) {
        assert!(Instant::now() < deadline, "the subscriber never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = rustix::process::Pid::from_child(&sub);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    // The publisher never waits, even for a subscriber that does not read.
    let count = 3_000;
    let input: Vec<u8> = (0..count).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    assert_ok(&run(ipcraft().args(["topic", "pub", &name.0]), &input));
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let (status, stderr) = wait_with_stderr(sub);
    assert!(status.success(), "{status}: {stderr}");
    let got: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let prefix = format!("ipcraft: {}: missed ", name.0);
    let missed: u64 = stderr
        .lines()
        .map(|l| {
            l.strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(" messages"))
                .unwrap_or_else(|| panic!("unexpected stderr line {l:?}"))
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(missed > 0, "a 4K ring cannot hold {count} messages; stderr: {stderr:?}");
    // What arrived is in order, ends with the last message, and together
    // with what was reported missed accounts for every message.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    assert_eq!(got.last(), Some(&(count - 1)));
    assert_eq!(
        got.len() as u64 + missed,
        count,
        "received {} + missed {missed}",
        got.len()
    );
}

/// Each message wakes every subscriber asleep waiting for it, not just
/// one: the subscribers run without the 50 ms safety nap
/// (`IPCRAFT_CHANNEL_NO_NAP=1`), so one left asleep would never see the
/// message. Each message is sent only after every subscriber printed the
/// one before, by which time they have stopped spinning and sleep.
#[test]
fn every_sleeping_subscriber_is_woken_for_each_message() {
    let name = ShmName::new("topic-wake");
    let dir = TempDir::new();
    create(&name.0, &["--subscribers", "3"]);
    let outs: Vec<_> = (0..3).map(|i| dir.join(&format!("sub{i}"))).collect();
    let subs: Vec<_> = outs
        .iter()
        .map(|out| {
            subscriber_cmd(&name.0, out, &[])
                .env("IPCRAFT_CHANNEL_NO_NAP", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    until_subscribed(&name.0, 3);
    let (mut publisher, mut stdin) = publisher(&name.0);
    let mut sent = Vec::new();
    for i in 0..20 {
        let line = format!("message {i}\n");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        sent.extend_from_slice(line.as_bytes());
        let deadline = Instant::now() + Duration::from_secs(10);
        for out in &outs {
            loop {
                let got = std::fs::read(out).unwrap();
                if got == sent {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never got message {i}: has {:?}",
                    out.display(),
                    String::from_utf8_lossy(&got)
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    drop(stdin);
    assert!(wait(&mut publisher).success());
    for sub in subs {
        let (status, stderr) = wait_with_stderr(sub);
        assert!(status.success(), "{status}: {stderr}");
    }
}

#[test]
fn a_dead_publisher_is_reported_within_a_second() {
    let name = ShmName::new("topic-pubdeath");
    let dir = TempDir::new();
    create(&name.0, &[]);
    let out = dir.join("sub");
    let sub = subscriber(&name.0, &out, &[]);
    until_subscribed(&name.0, 1);
    let (mut publisher, mut stdin) = publisher(&name.0);
    stdin.write_all(b"first\nsecond\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read(&out).unwrap() != b"first\nsecond\n" {
        assert!(Instant::now() < deadline, "messages never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    publisher.kill().unwrap();
    let killed = Instant::now();
    wait(&mut publisher);
    let (status, stderr) = wait_with_stderr(sub);
    assert!(killed.elapsed() < Duration::from_secs(1), "took {:?}", killed.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("publisher") && stderr.contains("died"), "{stderr}");
    drop(stdin);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let name = ShmName::new("topic-bad");
    // Not a topic: a channel of the same name.
    assert_ok(&run(ipcraft().args(["chan", "create", &name.0]), b""));
    assert_fails(&run(ipcraft().args(["topic", "sub", &name.0]), b""), 1, "not a topic");
    assert_fails(
        &run(ipcraft().args(["topic", "pub", &name.0]), b"x\n"),
        1,
        "not a topic",
    );
    assert_fails(&run(ipcraft().args(["topic", "rm", &name.0]), b""), 1, "not a topic");
    assert_ok(&run(ipcraft().args(["chan", "rm", &name.0]), b""));
    // No such topic; bad names and counts are usage errors.
    assert_fails(&run(ipcraft().args(["topic", "sub", &name.0]), b""), 1, "No such file");
    assert_fails(&run(ipcraft().args(["topic", "create", "/a/b"]), b""), 2, "");
    assert_fails(
        &run(ipcraft().args(["topic", "create", &name.0, "--subscribers", "0"]), b""),
        2,
        "",
    );
    // Every slot taken: the next subscriber is refused, naming the limit.
    create(&name.0, &["--subscribers", "1"]);
    let dir = TempDir::new();
    let mut first = subscriber(&name.0, &dir.join("one"), &[]);
    until_subscribed(&name.0, 1);
    assert_fails(
        &run(ipcraft().args(["topic", "sub", &name.0]), b""),
        1,
        "subscriber slots",
    );
    // A second publisher while one is alive is refused with its pid.
    let (mut publisher, stdin) = publisher(&name.0);
    let deadline = Instant::now() + TIMEOUT;
    while !matches!(topic::stat(&name.0).unwrap().publisher, SideState::Alive(_)) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = run(ipcraft().args(["topic", "pub", &name.0]), b"x\n");
    assert_fails(&out, 1, &format!("already has a publisher (pid {})", publisher.id()));
    drop(stdin);
    assert!(wait(&mut publisher).success());
    assert!(wait(&mut first).success());
    // A message larger than the ring's largest is split, not refused.
    let big = ShmName::new("topic-big");
    create(&big.0, &["--capacity", "4K"]);
    let out_path = dir.join("big");
    let sub = subscriber(&big.0, &out_path, &[]);
    until_subscribed(&big.0, 1);
    let line = "y".repeat(10_000);
    assert_ok(&run(
        ipcraft().args(["topic", "pub", &big.0]),
        format!("{line}\n").as_bytes(),
    ));
    assert!(wait_with_stderr(sub).0.success());
    let got = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(got.replace('\n', ""), line);
    assert!(
        got.lines().count() >= 3,
        "split into pieces that fit: {}",
        got.lines().count()
    );
}
