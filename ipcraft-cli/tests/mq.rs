//! POSIX message queues between real processes, with C peers compiled at
//! test time, and every limit and refusal from SPEC §4.

mod common;

use std::io;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{as_nobody, assert_fails, assert_ok, c_program, ipcraft, run, unique, wait, TIMEOUT};
use ipcraft::mq::{self, MessageQueue, MqOptions};
use ipcraft::Cause;

/// Removes the queue it names when dropped, pass or fail.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = mq::remove(&self.0);
    }
}

/// A fresh queue name and a guard that removes the queue, pass or fail.
fn fresh() -> (String, Cleanup) {
    let name = format!("/{}", unique("mq"));
    (name.clone(), Cleanup(name))
}

#[test]
fn smoke() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 4, 32).unwrap();
    q.send(b"smoke", 3).unwrap();
    let mut buf = q.buffer();
    let (n, prio) = q.recv(&mut buf).unwrap();
    assert_eq!((&buf[..n], prio), (&b"smoke"[..], 3));
}

#[test]
fn priority_order_fifo_among_equals() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 10, 64).unwrap();
    for (text, prio) in [("a1", 1), ("b5", 5), ("c5", 5), ("d9", 9), ("e1", 1), ("f5", 5)] {
        q.send(text.as_bytes(), prio).unwrap();
    }
    let mut buf = q.buffer();
    let got: Vec<(String, u32)> = (0..6)
        .map(|_| {
            let (n, p) = q.try_recv(&mut buf).unwrap();
            (String::from_utf8(buf[..n].to_vec()).unwrap(), p)
        })
        .collect();
    let want = [("d9", 9), ("b5", 5), ("c5", 5), ("f5", 5), ("a1", 1), ("e1", 1)];
    assert_eq!(got, want.map(|(t, p)| (t.to_owned(), p)));
}

#[test]
fn c_sender_to_cli_recv_in_priority_order() {
    let (name, _guard) = fresh();
    let _q = MessageQueue::create(&name, 10, 256).unwrap();
    let out = run(
        Command::new(c_program("mq_send")).args([&name, "low/1", "high/9", "mid/5", "tie-a/5"]),
        b"",
    );
    assert_ok(&out);
    let out = run(ipcraft().args(["mq", "recv", &name, "-n", "4", "--with-priority"]), b"");
    assert_ok(&out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "9\thigh\n5\tmid\n5\ttie-a\n1\tlow\n"
    );
}

#[test]
fn c_created_queue_attributes_via_cli() {
    let (name, _guard) = fresh();
    assert_ok(&run(
        Command::new(c_program("mq_create")).args([&name, "10", "256"]),
        b"",
    ));
    let out = run(ipcraft().args(["mq", "attr", &name]), b"");
    assert_ok(&out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "maxmsg=10 msgsize=256 curmsgs=0\n"
    );
    // And the name without its slash means the same queue.
    let bare = name.trim_start_matches('/');
    assert_ok(&run(ipcraft().args(["mq", "send", bare, "one"]), b""));
    let out = run(ipcraft().args(["mq", "attr", bare]), b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "maxmsg=10 msgsize=256 curmsgs=1\n"
    );
}

#[test]
fn cli_sender_to_c_receiver() {
    let (name, _guard) = fresh();
    assert_ok(&run(
        ipcraft().args(["mq", "create", &name, "--max-msgs", "8", "--msg-size", "128"]),
        b"",
    ));
    for (text, prio) in [("first", "2"), ("urgent", "30"), ("second", "2")] {
        assert_ok(&run(
            ipcraft().args(["mq", "send", &name, text, "--priority", prio]),
            b"",
        ));
    }
    let out = run(Command::new(c_program("mq_recv")).args([&name, "3"]), b"");
    assert_ok(&out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "30\turgent\n2\tfirst\n2\tsecond\n"
    );
}

#[test]
fn library_receives_from_c_sender_in_another_process() {
    let (name, _guard) = fresh();
    let q = MqOptions::new()
        .create_new(true)
        .max_msgs(4)
        .msg_size(64)
        .read(true)
        .write(false)
        .open(&name)
        .unwrap();
    let mut buf = q.buffer();
    // A blocking receive that the other process satisfies...
    let mut first = Command::new(c_program("mq_send")).args([&name, "w/3"]).spawn().unwrap();
    let (n, p) = q.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!((&buf[..n], p), (&b"w"[..], 3));
    assert!(wait(&mut first).success());
    // ...and priority order once both messages are queued.
    let mut sender = Command::new(c_program("mq_send"))
        .args([&name, "x/0", "y/7"])
        .spawn()
        .unwrap();
    assert!(wait(&mut sender).success());
    let (n, p) = q.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!((&buf[..n], p), (&b"y"[..], 7));
    let (n, p) = q.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!((&buf[..n], p), (&b"x"[..], 0));
}

#[test]
fn oversized_message_names_the_limit_and_sends_nothing() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 4, 16).unwrap();
    let e = q.send(&[1u8; 17], 0).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Cause::TooLarge {
                len: 17,
                limit: 16,
                limit_name: "mq_msgsize"
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("mq_msgsize"), "{e}");
    assert!(q.try_send(&[1u8; 17], 0).is_err());
    assert!(q.send_timeout(&[1u8; 17], 0, TIMEOUT).is_err());
    assert_eq!(q.attributes().unwrap().cur_msgs, 0, "nothing sent");
    let out = run(ipcraft().args(["mq", "send", &name, &"z".repeat(17)]), b"");
    assert_fails(&out, 1, "larger than mq_msgsize (16 bytes); nothing was sent");
    assert_eq!(q.attributes().unwrap().cur_msgs, 0);
}

#[test]
fn small_receive_buffer_takes_nothing() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 4, 64).unwrap();
    q.send(b"keep me", 1).unwrap();
    let e = q.recv(&mut [0u8; 10]).unwrap_err();
    assert!(matches!(e.cause(), Cause::BufferTooSmall { need: 64, .. }), "{e}");
    assert_eq!(q.attributes().unwrap().cur_msgs, 1);
}

#[test]
fn full_and_empty_without_waiting() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 2, 8).unwrap();
    let mut buf = q.buffer();
    assert!(matches!(q.try_recv(&mut buf).unwrap_err().cause(), Cause::Empty));
    q.try_send(b"1", 0).unwrap();
    q.try_send(b"2", 0).unwrap();
    assert!(matches!(q.try_send(b"3", 0).unwrap_err().cause(), Cause::Full));
    let start = Instant::now();
    let e = q.send_timeout(b"3", 0, Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    // O_NONBLOCK on the descriptor: blocking calls fail instead of waiting.
    q.set_nonblocking(true).unwrap();
    assert!(q.attributes().unwrap().nonblocking);
    assert!(matches!(q.send(b"3", 0).unwrap_err().cause(), Cause::Full));
    assert_eq!(q.attributes().unwrap().cur_msgs, 2);
    let out = run(ipcraft().args(["mq", "send", &name, "3", "--nonblock"]), b"");
    assert_fails(&out, 1, "full");
    let out = run(ipcraft().args(["mq", "send", &name, "3", "--timeout", "0.05"]), b"");
    assert_fails(&out, 1, "timed out");
}

#[test]
fn cli_recv_empty_queue_fails_clearly() {
    let (name, _guard) = fresh();
    let _q = MessageQueue::create(&name, 2, 8).unwrap();
    assert_fails(
        &run(ipcraft().args(["mq", "recv", &name, "--nonblock"]), b""),
        1,
        "empty",
    );
    assert_fails(
        &run(ipcraft().args(["mq", "recv", &name, "--timeout", "0.05"]), b""),
        1,
        "timed out",
    );
}

#[test]
fn readiness_through_poll() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 2, 8).unwrap();
    let e = q.wait_readable(Some(Duration::from_millis(20))).unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut));
    q.wait_writable(Some(TIMEOUT)).unwrap();
    let mut sender = ipcraft()
        .args(["mq", "send", &name, "ping", "-p", "4"])
        .spawn()
        .unwrap();
    q.wait_readable(Some(TIMEOUT)).unwrap();
    // The descriptor is an ordinary pollable fd.
    let mut fds = [rustix::event::PollFd::new(&q, rustix::event::PollFlags::IN)];
    assert_eq!(rustix::event::poll(&mut fds, None).unwrap(), 1);
    let mut buf = q.buffer();
    let (n, p) = q.try_recv(&mut buf).unwrap();
    assert_eq!((&buf[..n], p), (&b"ping"[..], 4));
    assert!(wait(&mut sender).success());
}

#[test]
fn descriptor_is_close_on_exec() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 2, 8).unwrap();
    assert!(rustix::io::fcntl_getfd(q.as_fd())
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC));
}

#[test]
fn create_is_exclusive_and_mode_exact_despite_umask() {
    let (name, _guard) = fresh();
    let out = run(
        Command::new("sh")
            .args(["-c", r#"umask 077; exec "$0" mq create "$1" --mode 644"#])
            .arg(env!("CARGO_BIN_EXE_ipcraft"))
            .arg(&name),
        b"",
    );
    assert_ok(&out);
    let q = MessageQueue::open(&name).unwrap();
    assert_eq!(rustix::fs::fstat(&q).unwrap().st_mode & 0o777, 0o644);
    assert_fails(&run(ipcraft().args(["mq", "create", &name]), b""), 1, "File exists");
    let e = MessageQueue::create(&name, 2, 8).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
}

#[test]
fn default_mode_is_0600() {
    let (name, _guard) = fresh();
    assert_ok(&run(ipcraft().args(["mq", "send", &name, "hi", "--create"]), b""));
    let q = MessageQueue::open(&name).unwrap();
    assert_eq!(rustix::fs::fstat(&q).unwrap().st_mode & 0o777, 0o600);
    assert_eq!(q.attributes().unwrap().cur_msgs, 1);
}

#[test]
fn another_users_queue_is_not_adopted() {
    let Some(mut nobody) = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()) else {
        eprintln!("skipped: creating a queue owned by another user needs root");
        return;
    };
    let (name, _guard) = fresh();
    assert_ok(&run(nobody.args(["mq", "create", &name, "--mode", "666"]), b""));
    let out = run(ipcraft().args(["mq", "send", &name, "x", "--create"]), b"");
    assert_fails(&out, 1, "owned by uid 65534");
    let e = MqOptions::new().create(true).open(&name).unwrap_err();
    assert!(matches!(e.cause(), Cause::ForeignOwner { owner: 65534, .. }), "{e}");
    // A plain open refuses it too, unless another owner is allowed.
    let e = MessageQueue::open(&name).unwrap_err();
    assert!(matches!(e.cause(), Cause::ForeignOwner { owner: 65534, .. }), "{e}");
    let out = run(ipcraft().args(["mq", "recv", &name, "--nonblock"]), b"");
    assert_fails(&out, 1, "owned by uid 65534");
    assert_eq!(
        MqOptions::new()
            .allow_foreign(true)
            .open(&name)
            .unwrap()
            .attributes()
            .unwrap()
            .cur_msgs,
        0,
        "nothing sent"
    );
}

#[test]
fn limits_are_named() {
    let (name, _guard) = fresh();
    // Over the kernel's hard ceiling: refused for everyone.
    let out = run(
        ipcraft().args(["mq", "create", &name, "--max-msgs", "70000", "--msg-size", "8"]),
        b"",
    );
    assert_fails(&out, 1, "70000 is more than");
    let out = run(
        ipcraft().args(["mq", "create", &name, "--msg-size", "20000000", "--max-msgs", "1"]),
        b"",
    );
    assert_fails(&out, 1, "20000000 is more than");
    // Over /proc/sys/fs/mqueue/msg_max as an unprivileged user.
    let msg_max: u64 = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let too_many = (msg_max + 1).to_string();
    let unprivileged = match as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()) {
        Some(cmd) => cmd,
        None => ipcraft(),
    };
    let mut cmd = unprivileged;
    let out = run(
        cmd.args(["mq", "create", &name, "--max-msgs", &too_many, "--msg-size", "8"]),
        b"",
    );
    assert_fails(&out, 1, "/proc/sys/fs/mqueue/msg_max");
    // Over RLIMIT_MSGQUEUE (applies to root too).
    let out = run(
        Command::new("bash")
            .args([
                "-c",
                r#"ulimit -q 4096 && exec "$0" mq create "$1" --max-msgs 8 --msg-size 4096"#,
            ])
            .arg(env!("CARGO_BIN_EXE_ipcraft"))
            .arg(&name),
        b"",
    );
    assert_fails(&out, 1, "RLIMIT_MSGQUEUE");
    assert!(MessageQueue::open(&name).is_err(), "nothing created");
    // A budget that the estimate says fits, but that the kernel's own
    // bookkeeping exhausts: still named, not "Too many open files".
    let out = run(
        Command::new("bash")
            .args([
                "-c",
                r#"ulimit -q 90 && exec "$0" mq create "$1" --max-msgs 1 --msg-size 16"#,
            ])
            .arg(env!("CARGO_BIN_EXE_ipcraft"))
            .arg(&name),
        b"",
    );
    assert_fails(&out, 1, "RLIMIT_MSGQUEUE");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Too many open files"));
    assert!(MessageQueue::open(&name).is_err(), "nothing created");
    let e = MessageQueue::create(&name, 0, 8).unwrap_err();
    assert!(matches!(e.cause(), Cause::Invalid(_)), "{e}");
    assert_eq!(
        e.to_string(),
        format!("create queue {name}: max messages must be at least 1")
    );
    let out = run(ipcraft().args(["mq", "create", &name, "--max-msgs", "0"]), b"");
    assert_fails(&out, 2, "at least 1");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("invalid name"));
}

#[test]
fn bad_names_fail_before_any_system_call() {
    for bad in ["", "/", "/a/b", ".", "..", "/..", "a\0b"] {
        let e = MessageQueue::create(bad, 2, 8).unwrap_err();
        assert!(matches!(e.cause(), Cause::InvalidName(_)), "{bad:?}: {e}");
        assert!(matches!(mq::remove(bad).unwrap_err().cause(), Cause::InvalidName(_)));
    }
    let long = "q".repeat(256);
    assert!(matches!(
        MessageQueue::open(&long).unwrap_err().cause(),
        Cause::InvalidName(_)
    ));
    assert_fails(&run(ipcraft().args(["mq", "create", "/a/b"]), b""), 2, "invalid name");
    assert_fails(&run(ipcraft().args(["mq", "attr", ".."]), b""), 2, "invalid name");
}

#[test]
fn missing_queue_is_a_clear_error() {
    let (name, _guard) = fresh();
    assert_fails(
        &run(ipcraft().args(["mq", "recv", &name]), b""),
        1,
        "No such file or directory",
    );
    assert_fails(&run(ipcraft().args(["mq", "rm", &name]), b""), 1, "remove queue");
}

#[test]
fn killed_receiver_takes_no_message() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 4, 16).unwrap();
    let mut blocked = ipcraft()
        .args(["mq", "recv", &name])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Give the kernel a bounded chance to put the receiver to sleep; whether
    // or not it got there, a killed receiver must not consume the message.
    let _ = q.wait_readable(Some(Duration::from_millis(50)));
    blocked.kill().unwrap();
    wait(&mut blocked);
    q.send(b"survives", 2).unwrap();
    let mut buf = q.buffer();
    let (n, p) = q.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!((&buf[..n], p), (&b"survives"[..], 2));
}

#[test]
fn slow_receiver_gets_back_pressure_not_loss() {
    let (name, _guard) = fresh();
    let q = MessageQueue::create(&name, 3, 16).unwrap();
    // The sender process blocks whenever the 3-slot queue is full.
    let count = 200;
    let script = r#"i=0; while [ $i -lt "$2" ]; do "$0" mq send "$1" "m$i" || exit 1; i=$((i+1)); done"#;
    let mut sender = Command::new("sh")
        .args(["-c", script])
        .arg(env!("CARGO_BIN_EXE_ipcraft"))
        .arg(&name)
        .arg(count.to_string())
        .spawn()
        .unwrap();
    let mut buf = q.buffer();
    for i in 0..count {
        let (n, _) = q.recv_timeout(&mut buf, TIMEOUT).unwrap();
        assert_eq!(&buf[..n], format!("m{i}").as_bytes());
    }
    assert!(wait(&mut sender).success());
}

#[test]
fn ls_lists_queues_or_explains_the_mount() {
    let (name, _guard) = fresh();
    let _q = MessageQueue::create(&name, 2, 8).unwrap();
    let out = run(ipcraft().args(["mq", "ls"]), b"");
    match mq::list() {
        Ok(names) => {
            assert!(names.iter().any(|n| n.as_str() == name), "{names:?}");
            assert_ok(&out);
            assert!(String::from_utf8(out.stdout).unwrap().lines().any(|l| l == name));
        }
        Err(e) => {
            assert!(matches!(e.cause(), Cause::NotMounted { .. }), "{e}");
            assert_fails(&out, 1, "mount -t mqueue none /dev/mqueue");
        }
    }
}

#[test]
fn created_queue_is_removed_on_drop_unless_kept() {
    let (name, _cleanup) = fresh();
    drop(MessageQueue::create(&name, 2, 8).unwrap());
    assert_eq!(MessageQueue::open(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
    MessageQueue::create(&name, 2, 8).unwrap().keep();
    let opened = MessageQueue::open(&name).unwrap();
    drop(opened); // opened, not created: never removes
    let q = MessageQueue::open(&name).unwrap();
    q.send(b"here", 1).unwrap();
    q.remove().unwrap();
    assert_eq!(MessageQueue::open(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
}
