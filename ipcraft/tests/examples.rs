//! The example programs (the classic exercises) run as real processes.
//! `cargo test` builds them next to this test binary.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{pattern, run, wait_ok, TempDir, TIMEOUT};

fn example(name: &str) -> Command {
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.parent().and_then(|d| d.parent()).unwrap().join("examples");
    Command::new(dir.join(name))
}

#[test]
fn pipe_echo_example() {
    let text: String = pattern(120 * 1024, 4)
        .into_iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    let out = run(example("pipe_echo").arg(&text), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, format!("{text}\n").as_bytes());
}

#[test]
fn fifo_chat_example_two_speakers() {
    let dir = TempDir::new();
    let path = dir.join("chat");
    let mut listener = example("fifo_chat")
        .arg("listen")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the listener to announce that the FIFO exists.
    let mut stderr = BufReader::new(listener.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stderr.read_line(&mut line);
        let _ = tx.send(line);
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
    });
    let line = rx.recv_timeout(TIMEOUT).expect("listener started");
    assert!(line.starts_with("listening on"), "{line:?}");
    // The test holds a write end of its own while the speakers run, so the
    // listener cannot see end of file between one speaker and the next.
    let held = ipcraft::fifo::FifoOptions::new()
        .timeout(TIMEOUT)
        .open_write(&path)
        .unwrap();
    let a = example("fifo_chat")
        .arg("say")
        .arg(&path)
        .args(["a1", "a2", "a3"])
        .spawn();
    let b = example("fifo_chat").arg("say").arg(&path).args(["b1", "b2"]).spawn();
    wait_ok(&mut a.unwrap());
    wait_ok(&mut b.unwrap());
    drop(held);
    let mut out = String::new();
    listener.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    wait_ok(&mut listener);
    let lines: Vec<&str> = out.lines().collect();
    let from = |p: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("> {p}")))
            .copied()
            .collect::<Vec<_>>()
    };
    // Each speaker's lines whole and in order; the listener removed its FIFO.
    assert_eq!(from("a"), ["> a1", "> a2", "> a3"], "{out:?}");
    assert_eq!(from("b"), ["> b1", "> b2"], "{out:?}");
    assert!(!path.exists());
}

#[test]
fn mmap_cat_example() {
    let dir = TempDir::new();
    let path = dir.join("data");
    let data = pattern(1 << 20, 12);
    std::fs::write(&path, &data).unwrap();
    let out = run(example("mmap_cat").arg(&path), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == data, "content differs");
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = run(example("mmap_cat").arg(&empty), b"");
    assert!(out.status.success() && out.stdout.is_empty());
}

#[test]
fn shm_writer_and_reader_examples() {
    let name = format!("/{}", common::unique("shm-example"));
    let wrote = run(example("shm_writer").args([&name, "100"]), b"");
    let read = run(example("shm_reader").arg(&name), b"");
    let _ = ipcraft::shm::remove(&name);
    assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(read.stdout, b"100\n");
}

#[test]
fn mq_priority_example() {
    let name = format!("/{}", common::unique("mq-example"));
    let out = run(example("mq_priority").arg(&name), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"9\thigh\n5\tmid\n5\ttie-a\n1\tlow\n");
    assert!(ipcraft::mq::MessageQueue::open(&name).is_err(), "queue removed");
}

/// `tokio_recv chan NAME`: a blocking sender here, the example's async
/// receiver in its own process; the bytes come out exactly, in order.
#[cfg(feature = "tokio")]
#[test]
fn tokio_recv_example_copies_a_channel() {
    let name = common::ShmName::new("tokio-example");
    let mut tx = ipcraft::channel::Sender::create(&name.0, 16 * 1024).unwrap();
    tx.keep(); // the ShmName removes it
    let mut child = example("tokio_recv")
        .args(["chan", &name.0])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let mut sent = Vec::new();
    for i in 0..500u64 {
        let msg = pattern(1 + (i as usize * 131) % 5000, i);
        tx.send(&msg).unwrap();
        sent.extend_from_slice(&msg);
    }
    tx.close().unwrap();
    let (status, err) = common::wait_with_stderr(child);
    assert!(status.success(), "{err}");
    assert!(
        reader.join().unwrap() == sent,
        "tokio_recv's output differs from what was sent"
    );
}

/// `tokio_recv mq NAME COUNT`: priority order, one `PRIORITY<TAB>MESSAGE`
/// line each; a bad count is a usage error.
#[cfg(feature = "tokio")]
#[test]
fn tokio_recv_example_reads_a_queue_by_priority() {
    let name = format!("/{}", common::unique("tokio-mq-example"));
    let q = ipcraft::mq::MessageQueue::create(&name, 8, 64).unwrap();
    for (text, prio) in [("low", 1), ("high", 9), ("mid", 5), ("tie", 5)] {
        q.send(text.as_bytes(), prio).unwrap();
    }
    let out = run(example("tokio_recv").args(["mq", &name, "4"]), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"9\thigh\n5\tmid\n5\ttie\n1\tlow\n");
    let out = run(example("tokio_recv").args(["mq", &name, "four"]), b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        example("tokio_recv").args(["chan", "/ipcraft-no-such-channel-here"]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("tokio_recv: "));
    // --timeout bounds the wait for a sender that never comes.
    let chan = common::ShmName::new("tokio-example-idle");
    ipcraft::channel::create(&chan.0, 4096).unwrap();
    let out = run(example("tokio_recv").args(["chan", &chan.0, "--timeout", "0.2"]), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no message within 0.2 s"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
}
