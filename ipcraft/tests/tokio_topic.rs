//! The async topic ends (feature `tokio`): async publishers and
//! subscribers, each in its own process with its own current-thread
//! runtime, against async and blocking peers — every message to every
//! subscriber, waiting for the slowest, a dead subscriber, the publisher's
//! death, cancellation, idle cost.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use common::ends::{assert_stream, cpu_micros, fail, kill_leftover, message, record, records, runtime};
use common::{role, roles, wait_with_stderr, ShmName, TIMEOUT};
use ipcraft::tokio::{AsyncPublisher, AsyncSubscriber};
use ipcraft::topic::{Policy, TopicOptions};

roles!(
    role_async_sub,
    role_blocking_sub,
    role_async_pub,
    role_stuck_sub,
    role_hanging_pub
);

// ---- roles ----

/// `NAME MODE`: an async subscriber; says `ready` once attached, then
/// writes every message as a record until the end of the stream. MODE
/// `plain`; `cancel`: every receive raced against a 20 µs timer, so many
/// are cancelled part-way; `idle`: prints the CPU time (µs) it used
/// waiting 2 s for a message that never comes.
fn role_async_sub(args: Vec<String>) {
    let (name, mode) = (&args[0], args[1].as_str());
    runtime().block_on(async {
        let mut sub = AsyncSubscriber::open(name).unwrap_or_else(|e| fail(e));
        let mut out = std::io::stdout().lock();
        out.write_all(b"ready\n").unwrap();
        out.flush().unwrap();
        if mode == "idle" {
            let before = cpu_micros();
            let waited = tokio::time::timeout(Duration::from_secs(2), sub.recv_vec()).await;
            let used = cpu_micros() - before;
            assert!(waited.is_err(), "a message arrived: {waited:?}");
            writeln!(out, "{used}").unwrap();
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let got = if mode == "cancel" {
                match tokio::time::timeout(Duration::from_micros(20), sub.recv(&mut buf)).await {
                    Ok(got) => got,
                    Err(_cancelled) => continue,
                }
            } else {
                sub.recv(&mut buf).await
            };
            match got {
                Ok(Some(n)) => record(&mut out, &buf[..n]),
                Ok(None) => break,
                Err(e) => {
                    out.flush().unwrap();
                    fail(e)
                }
            }
        }
        out.flush().unwrap();
    });
}

/// `NAME`: a blocking subscriber, otherwise as `role_async_sub plain`.
fn role_blocking_sub(args: Vec<String>) {
    let mut sub = TopicOptions::new()
        .open_subscriber(&args[0])
        .unwrap_or_else(|e| fail(e));
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n").unwrap();
    out.flush().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = sub.recv_timeout(&mut buf, TIMEOUT).unwrap_or_else(|e| fail(e)) {
        record(&mut out, &buf[..n]);
    }
    out.flush().unwrap();
}

/// `NAME`: a subscriber that attaches, says `ready`, and never reads.
fn role_stuck_sub(args: Vec<String>) {
    let _sub = TopicOptions::new()
        .open_subscriber(&args[0])
        .unwrap_or_else(|e| fail(e));
    println!("ready");
    loop {
        std::thread::park();
    }
}

/// `NAME COUNT MAX SEED`: an async publisher of COUNT messages (1 to MAX
/// bytes), then the end of the stream.
fn role_async_pub(args: Vec<String>) {
    let (count, max, seed): (u64, usize, u64) = (
        args[1].parse().unwrap(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
    );
    runtime().block_on(async {
        let publisher = TopicOptions::new().open_publisher(&args[0]).unwrap_or_else(|e| fail(e));
        let mut publisher = AsyncPublisher::new(publisher).unwrap_or_else(|e| fail(e));
        for i in 0..count {
            let send = tokio::time::timeout(TIMEOUT, publisher.send(&message(i, max, seed))).await;
            send.unwrap().unwrap_or_else(|e| fail(e));
        }
        tokio::time::timeout(TIMEOUT, publisher.close())
            .await
            .unwrap()
            .unwrap_or_else(|e| fail(e));
    });
}

/// `NAME COUNT`: a blocking publisher that sends COUNT messages, says
/// `sent`, and never ends its stream.
fn role_hanging_pub(args: Vec<String>) {
    let count: u64 = args[1].parse().unwrap();
    let mut publisher = TopicOptions::new().open_publisher(&args[0]).unwrap_or_else(|e| fail(e));
    for i in 0..count {
        publisher.send(&message(i, 100, 7)).unwrap_or_else(|e| fail(e));
    }
    println!("sent");
    loop {
        std::thread::park();
    }
}

// ---- helpers ----

/// The records a subscriber role wrote after its `ready` line.
fn after_ready(raw: &[u8]) -> Vec<Vec<u8>> {
    records(raw.strip_prefix(b"ready\n").expect("a ready line first"))
}

/// A child whose `ready` line the test waits for, whose stdout is read to
/// its end in a thread; killed if the test fails before waiting for it.
struct Proc {
    child: Option<Child>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Proc {
    /// Spawns the role and waits for its first line (`ready`, `sent`).
    fn ready(role_name: &str, args: &[&str], first: &str) -> Self {
        let mut child = role(role_name, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout: BufReader<ChildStdout> = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{first}\n"), "{role_name} did not start");
        let mut v = line.into_bytes();
        let stdout = std::thread::spawn(move || {
            stdout.read_to_end(&mut v).unwrap();
            v
        });
        Self {
            child: Some(child),
            stdout: Some(stdout),
        }
    }

    /// Spawns the role without waiting for a first line.
    fn ready_silent(role_name: &str, args: &[&str]) -> Self {
        let mut child = role(role_name, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            stdout.read_to_end(&mut v).unwrap();
            v
        });
        Self {
            child: Some(child),
            stdout: Some(stdout),
        }
    }

    /// Waits (bounded) for it to exit: status, stdout, stderr.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let (status, stderr) = wait_with_stderr(self.child.take().unwrap());
        (status, self.stdout.take().unwrap().join().unwrap(), stderr)
    }

    /// Waits for it to exit 0 and returns the records it wrote.
    fn records(self) -> Vec<Vec<u8>> {
        let (status, out, err) = self.finish();
        assert!(status.success(), "{status}: {err}");
        after_ready(&out)
    }

    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_leftover(&mut self.child);
    }
}

/// A block-policy topic with a small ring, so publishers wait for room.
fn topic(prefix: &str) -> ShmName {
    let name = ShmName::new(prefix);
    TopicOptions::new()
        .capacity(16 * 1024)
        .subscribers(4)
        .policy(Policy::Block)
        .create(name.0.as_str())
        .unwrap();
    name
}

// ---- tests ----

#[test]
fn an_async_publisher_reaches_async_and_blocking_subscribers() {
    let name = topic("atopic-mixed");
    let n = name.0.as_str();
    let plain = Proc::ready("role_async_sub", &[n, "plain"], "ready");
    let cancel = Proc::ready("role_async_sub", &[n, "cancel"], "ready");
    let blocking = Proc::ready("role_blocking_sub", &[n], "ready");
    // 2,000 messages of up to 3,000 bytes through a 16 KiB ring: the
    // publisher waits for the slowest subscriber again and again.
    let publisher = Proc::ready_silent("role_async_pub", &[n, "2000", "3000", "11"]);
    let (status, _, err) = publisher.finish();
    assert!(status.success(), "publisher: {status}: {err}");
    for sub in [plain, cancel, blocking] {
        assert_stream(&sub.records(), 2000, 3000, 11);
    }
}

#[test]
fn async_subscribers_of_a_blocking_publisher_get_every_message() {
    let name = topic("atopic-blocking");
    let n = name.0.as_str();
    let subs: Vec<_> = ["plain", "cancel"]
        .iter()
        .map(|mode| Proc::ready("role_async_sub", &[n, mode], "ready"))
        .collect();
    let mut publisher = TopicOptions::new().open_publisher(n).unwrap();
    for i in 0..3000 {
        publisher.send_timeout(&message(i, 2000, 12), TIMEOUT).unwrap();
    }
    publisher.close_timeout(TIMEOUT).unwrap();
    for sub in subs {
        assert_stream(&sub.records(), 3000, 2000, 12);
    }
}

#[test]
fn an_async_publisher_stops_waiting_for_a_dead_subscriber() {
    let name = topic("atopic-stuck");
    let n = name.0.as_str();
    let mut stuck = Proc::ready("role_stuck_sub", &[n], "ready");
    let live = Proc::ready("role_async_sub", &[n, "plain"], "ready");
    let publisher = Proc::ready_silent("role_async_pub", &[n, "500", "1000", "13"]);
    // The stuck subscriber holds the publisher up until it dies.
    stuck.kill();
    let (status, _, err) = publisher.finish();
    assert!(status.success(), "publisher: {status}: {err}");
    assert_stream(&live.records(), 500, 1000, 13);
}

#[test]
fn an_async_subscriber_learns_of_its_publishers_death() {
    let name = topic("atopic-death");
    let n = name.0.as_str();
    let sub = Proc::ready("role_async_sub", &[n, "plain"], "ready");
    let mut publisher = Proc::ready("role_hanging_pub", &[n, "5"], "sent");
    publisher.kill();
    let (status, out, err) = sub.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("publisher") && err.contains("died"), "{err}");
    // Everything it published came first.
    assert_stream(&after_ready(&out), 5, 100, 7);
}

#[test]
fn an_idle_async_subscriber_costs_no_cpu() {
    let name = topic("atopic-idle");
    // A live publisher, so the subscriber has a process to watch.
    let _publisher = TopicOptions::new().open_publisher(name.0.as_str()).unwrap();
    let sub = Proc::ready("role_async_sub", &[name.0.as_str(), "idle"], "ready");
    let (status, out, err) = sub.finish();
    assert!(status.success(), "{err}");
    let micros: i64 = String::from_utf8(out).unwrap().lines().nth(1).unwrap().parse().unwrap();
    eprintln!("an idle async subscriber used {micros} µs of CPU in 2 s");
    assert!(
        micros < 20_000,
        "an idle async subscriber used {micros} µs of CPU in 2 s"
    );
}

/// Compiles only if the async ends and their futures can move between
/// threads.
#[allow(dead_code)]
fn the_async_ends_and_their_futures_are_send(mut publisher: AsyncPublisher, mut sub: AsyncSubscriber) {
    fn send<T: Send>(_: T) {}
    let mut buf = [0u8; 8];
    send(publisher.send(b"x"));
    send(sub.recv(&mut buf));
    send(sub.recv_vec());
    send(publisher);
    send(sub);
}
