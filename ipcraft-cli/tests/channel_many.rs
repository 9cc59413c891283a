//! Many-to-one: several `ipcraft chan send` processes into one
//! `ipcraft chan recv` on a channel made with `--senders N`. Each sender's
//! lines arrive whole and in its order, nothing is lost, no sender starves
//! another, and one sender's death harms nobody else.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, assert_ok, ipcraft, run, spawn_fed, wait, wait_with_stderr, ShmName, TempDir, TIMEOUT};
use ipcraft::channel::{self, SideState};

fn create(name: &str, senders: &str, capacity: &str) {
    assert_ok(&run(
        ipcraft().args(["chan", "create", name, "--senders", senders, "--capacity", capacity]),
        b"",
    ));
}

fn receiver(name: &str, out: &Path) -> Child {
    ipcraft()
        // --timeout: a child left behind by a failed test still ends.
        .args(["chan", "recv", name, "--timeout", "60"])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sender(name: &str) -> (Child, ChildStdin) {
    spawn_fed(ipcraft().args(["chan", "send", name, "--timeout", "60"]))
}

/// Sender `tag`'s input: `count` numbered lines of varied length.
fn input(tag: char, count: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..count {
        writeln!(text, "{tag} {i} {}", "=".repeat((i * 31) % 200)).unwrap();
    }
    text
}

/// Splits the receiver's output by sender tag, checking every line is one
/// some sender wrote whole.
fn by_sender(out: &[u8], tags: &[char]) -> Vec<Vec<u8>> {
    let mut per = vec![Vec::new(); tags.len()];
    for line in out.split_inclusive(|&b| b == b'\n') {
        let tag = line[0] as char;
        let k = tags
            .iter()
            .position(|&t| t == tag)
            .unwrap_or_else(|| panic!("a line no sender wrote whole: {:?}", String::from_utf8_lossy(line)));
        per[k].extend_from_slice(line);
    }
    per
}

fn lane_senders_alive(name: &str) -> usize {
    channel::stat_lanes(name)
        .unwrap()
        .iter()
        .filter(|l| matches!(l.sender, SideState::Alive(_)))
        .count()
}

#[test]
fn three_senders_arrive_whole_in_order_and_complete() {
    let name = ShmName::new("many");
    let dir = TempDir::new();
    create(&name.0, "3", "4K");
    let out = dir.join("out");
    let rx = receiver(&name.0, &out);
    let tags = ['a', 'b', 'c'];
    let inputs: Vec<_> = tags.iter().map(|&t| input(t, 20_000)).collect();
    let senders: Vec<_> = inputs
        .iter()
        .map(|data| {
            let (child, mut stdin) = sender(&name.0);
            let data = data.clone();
            (child, std::thread::spawn(move || stdin.write_all(&data).unwrap()))
        })
        .collect();
    for (child, feeder) in senders {
        feeder.join().unwrap();
        let (status, stderr) = wait_with_stderr(child);
        assert!(status.success(), "sender: {status}: {stderr}");
    }
    let (status, stderr) = wait_with_stderr(rx);
    assert!(status.success(), "receiver: {status}: {stderr}");
    let got = std::fs::read(&out).unwrap();
    for (k, part) in by_sender(&got, &tags).into_iter().enumerate() {
        assert!(part == inputs[k], "sender {} lost or reordered lines", tags[k]);
    }
    // The channel outlives the stream: a second round on the same name.
    let rx = receiver(&name.0, &out);
    assert_ok(&run(ipcraft().args(["chan", "send", &name.0]), b"again\n"));
    assert!(wait_with_stderr(rx).0.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"again\n");
}

#[test]
fn a_busy_sender_does_not_starve_a_quiet_one() {
    let name = ShmName::new("many-fair");
    let dir = TempDir::new();
    create(&name.0, "2", "4K");
    let out = dir.join("out");
    let rx = receiver(&name.0, &out);
    // The busy sender never stops until told to; the quiet one sends a few
    // lines. Round robin takes the quiet one's lines as they come.
    let (mut busy, mut busy_in) = sender(&name.0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let pump = std::thread::spawn(move || {
        let line = b"b busy line\n".repeat(100);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if busy_in.write_all(&line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 100_000 {
        assert!(Instant::now() < deadline, "the busy sender never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_ok(&run(
        ipcraft().args(["chan", "send", &name.0]),
        b"q one\nq two\nq three\n",
    ));
    // The quiet sender exited 0: its receiver took all of it while the
    // busy one kept the channel full.
    let got = std::fs::read(&out).unwrap();
    let quiet: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').filter(|l| l[0] == b'q').collect();
    assert_eq!(quiet, [&b"q one\n"[..], b"q two\n", b"q three\n"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pump.join().unwrap();
    assert!(wait(&mut busy).success());
    assert!(wait_with_stderr(rx).0.success());
}

#[test]
fn a_killed_sender_harms_no_other() {
    let name = ShmName::new("many-kill");
    let dir = TempDir::new();
    create(&name.0, "2", "4K");
    let out = dir.join("out");
    let rx = receiver(&name.0, &out);
    let (mut victim, mut victim_in) = sender(&name.0);
    let doomed = input('v', 1_000_000);
    let feeder = std::thread::spawn(move || {
        let _ = victim_in.write_all(&doomed);
    });
    let good_input = input('g', 20_000);
    let (good, mut good_in) = sender(&name.0);
    let data = good_input.clone();
    let good_feeder = std::thread::spawn(move || good_in.write_all(&data).unwrap());
    let deadline = Instant::now() + TIMEOUT;
    // The victim has far more to send than this: it is mid-stream when killed.
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 50_000 {
        assert!(Instant::now() < deadline, "senders never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill().unwrap();
    wait(&mut victim);
    feeder.join().unwrap();
    good_feeder.join().unwrap();
    let (status, stderr) = wait_with_stderr(good);
    assert!(status.success(), "the other sender: {status}: {stderr}");
    let (status, stderr) = wait_with_stderr(rx);
    assert_eq!(status.code(), Some(1), "the receiver reports the death: {stderr}");
    assert!(
        stderr.contains("died") && stderr.contains(&victim.id().to_string()),
        "{stderr}"
    );
    let got = std::fs::read(&out).unwrap();
    let parts = by_sender(&got, &['g', 'v']);
    assert!(parts[0] == good_input, "the other sender's lines");
    let full = input('v', 1_000_000);
    assert!(
        full.starts_with(&parts[1]),
        "the dead sender's lines are a prefix of its input"
    );
}

#[test]
fn more_senders_than_made_for_are_refused() {
    let name = ShmName::new("many-limit");
    create(&name.0, "1", "4K");
    // One sender is a plain channel: `--senders 1`.
    let name2 = ShmName::new("many-limit");
    create(&name2.0, "2", "4K");
    let (mut a, a_in) = sender(&name2.0);
    let (mut b, b_in) = sender(&name2.0);
    let deadline = Instant::now() + TIMEOUT;
    while lane_senders_alive(&name2.0) < 2 {
        assert!(Instant::now() < deadline, "senders never attached");
        std::thread::sleep(Duration::from_millis(2));
    }
    let third = run(ipcraft().args(["chan", "send", &name2.0]), b"x\n");
    assert_fails(&third, 1, "senders, all attached, (2)");
    drop((a_in, b_in));
    // Nobody received: the senders wait; stop them.
    a.kill().unwrap();
    b.kill().unwrap();
    wait(&mut a);
    wait(&mut b);
    let stat = run(ipcraft().args(["chan", "stat", &name2.0]), b"");
    assert_ok(&stat);
    let text = String::from_utf8(stat.stdout).unwrap();
    assert!(text.starts_with("senders=2\nsender 0: capacity=4096"), "{text}");
    assert_fails(
        &run(ipcraft().args(["chan", "create", "/x", "--senders", "0"]), b""),
        2,
        "",
    );
}
