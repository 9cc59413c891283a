//! `ipcraft ls`, `gc` and `doctor` against objects made by real processes,
//! some killed with SIGKILL. One test owns gc (gc acts on every stale
//! channel of this user, so it must not race this binary's other tests).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{as_nobody, assert_ok, ipcraft, run, settled, wait, ShmName, TIMEOUT};
use ipcraft::channel::{self, ChannelOptions, SideState};
use ipcraft::Cause;
use serde_json::Value;

/// `ls --json`, as name → entry, for the names asked about.
fn ls(extra: &[&str], names: &[&str]) -> BTreeMap<String, Value> {
    let out = run(ipcraft().arg("ls").arg("--json").args(extra), b"");
    assert_ok(&out);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("ls --json is JSON");
    all.into_iter()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            names.contains(&name.as_str()).then_some((name, e))
        })
        .collect()
}

/// Waits, bounded, until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `chan recv NAME` process attached as the receiver.
fn receiver(cmd: &mut Command, name: &str) -> Child {
    let child = cmd.args(["chan", "recv", name]).stdout(Stdio::null()).spawn().unwrap();
    // Settled, not just alive: killed mid-attach it would look absent.
    eventually("the receiver attached", || {
        ChannelOptions::new()
            .allow_foreign(true)
            .stat(name)
            .is_ok_and(|s| settled(&child, s.receiver))
    });
    child
}

/// A `chan send NAME` process attached and waiting for input.
fn sender(cmd: &mut Command, name: &str) -> Child {
    let child = cmd.args(["chan", "send", name]).stdin(Stdio::piped()).spawn().unwrap();
    eventually("the sender attached", || {
        ChannelOptions::new()
            .allow_foreign(true)
            .stat(name)
            .is_ok_and(|s| settled(&child, s.sender))
    });
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    wait(&mut child);
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(format!("/dev/shm{name}")).is_ok()
}

#[test]
fn ls_marks_killed_users_dead_and_gc_removes_exactly_those() {
    // Both sides killed: stale.
    let both = ShmName::new("gc-both");
    assert_ok(&run(ipcraft().args(["chan", "create", &both.0]), b""));
    let r = receiver(&mut ipcraft(), &both.0);
    let s = sender(&mut ipcraft(), &both.0);
    // Receiver killed, sender alive (waiting for input): in use.
    let live = ShmName::new("gc-live");
    assert_ok(&run(ipcraft().args(["chan", "create", &live.0]), b""));
    let live_rx = receiver(&mut ipcraft(), &live.0);
    let live_tx = sender(&mut ipcraft(), &live.0);
    // Never used: waiting for its users, not garbage.
    let fresh = ShmName::new("gc-fresh");
    assert_ok(&run(ipcraft().args(["chan", "create", &fresh.0]), b""));
    // Not a channel at all.
    let plain = ShmName::new("gc-plain");
    assert_ok(&run(ipcraft().args(["shm", "write", &plain.0, "9"]), b""));

    // The patterns: a topic whose only subscriber is killed, one whose
    // subscriber lives, a many-sender channel whose sender is killed, a
    // service whose server is killed.
    let topic = ShmName::new("gc-topic");
    let topic_live = ShmName::new("gc-topic-live");
    for t in [&topic, &topic_live] {
        assert_ok(&run(ipcraft().args(["topic", "create", &t.0]), b""));
    }
    let subscribers: Vec<Child> = [&topic, &topic_live]
        .iter()
        .map(|t| {
            let child = ipcraft()
                .args(["topic", "sub", &t.0, "--timeout", "60"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            eventually("the subscriber attached", || {
                ipcraft::topic::stat(&t.0).is_ok_and(|s| s.subscribers.iter().any(|(_, st, _)| settled(&child, *st)))
            });
            child
        })
        .collect();
    let many = ShmName::new("gc-many");
    assert_ok(&run(ipcraft().args(["chan", "create", &many.0, "--senders", "2"]), b""));
    let many_tx = ipcraft()
        .args(["chan", "send", &many.0])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the sender attached", || {
        channel::stat_lanes(&many.0).is_ok_and(|l| l.iter().any(|l| settled(&many_tx, l.sender)))
    });
    let svc = ShmName::new("gc-svc");
    let server = ipcraft()
        .args(["service", "serve", &svc.0, "--clients", "2"])
        .spawn()
        .unwrap();
    eventually("the server serves", || {
        ipcraft::service::stat(&svc.0).is_ok_and(|s| settled(&server, s.server))
    });
    let patterns = [topic.0.as_str(), topic_live.0.as_str(), many.0.as_str(), svc.0.as_str()];
    let seen = ls(&[], &patterns);
    assert_eq!(seen[&topic.0]["kind"], "topic", "{seen:?}");
    assert_eq!(seen[&many.0]["kind"], "channel");
    assert_eq!(seen[&svc.0]["kind"], "service");
    for name in patterns {
        assert_eq!(seen[name]["state"], "alive", "{}", seen[name]);
    }
    let server_pid = server.id();
    let mut subscribers = subscribers.into_iter();
    let (dead_sub, live_sub) = (subscribers.next().unwrap(), subscribers.next().unwrap());
    let dead_sub_pid = dead_sub.id();
    kill(dead_sub);
    kill(many_tx);
    kill(server);
    let seen = ls(&[], &patterns);
    for name in [&topic.0, &many.0, &svc.0] {
        assert_eq!(seen[name]["state"], "dead", "{}", seen[name]);
    }
    assert_eq!(seen[&topic_live.0]["state"], "alive");
    let sides = seen[&topic.0]["sides"].as_array().unwrap();
    assert!(
        sides.iter().any(|s| s["role"] == "subscriber"
            && s["pid"] == dead_sub_pid
            && s["alive"] == false
            && s["slot"].is_u64()),
        "{sides:?}"
    );
    let sides = seen[&svc.0]["sides"].as_array().unwrap();
    assert!(
        sides
            .iter()
            .any(|s| s["role"] == "server" && s["pid"] == server_pid && s["alive"] == false),
        "{sides:?}"
    );

    let names = [both.0.as_str(), live.0.as_str(), fresh.0.as_str(), plain.0.as_str()];
    let before = ls(&[], &names);
    assert_eq!(before.len(), 4, "{before:?}");
    let e = &before[&both.0];
    assert_eq!(e["kind"], "channel");
    assert_eq!(e["state"], "alive");
    assert_eq!(e["mode"], "0600");
    assert_eq!(e["uid"], rustix::process::geteuid().as_raw());
    assert!(e["size"].as_u64().unwrap() > 1 << 20);
    let holders: Vec<u64> = e["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(
        holders.contains(&(r.id() as u64)) && holders.contains(&(s.id() as u64)),
        "{e}"
    );
    let sides = e["sides"].as_array().unwrap();
    assert!(sides
        .iter()
        .any(|s| s["role"] == "receiver" && s["pid"] == r.id() && s["alive"] == true));
    assert_eq!(before[&plain.0]["kind"], "shm");
    assert_eq!(before[&fresh.0]["state"], "idle");

    let (r_pid, s_pid) = (r.id(), s.id());
    kill(r);
    kill(s);
    kill(live_rx);

    let after = ls(&[], &names);
    let e = &after[&both.0];
    assert_eq!(e["state"], "dead", "{e}");
    assert!(e["holders"].as_array().unwrap().is_empty());
    let sides = e["sides"].as_array().unwrap();
    assert!(sides
        .iter()
        .any(|s| s["role"] == "receiver" && s["pid"] == r_pid && s["alive"] == false));
    assert!(sides
        .iter()
        .any(|s| s["role"] == "sender" && s["pid"] == s_pid && s["alive"] == false));
    assert_eq!(after[&live.0]["state"], "alive", "a live sender keeps it alive");
    assert_eq!(after[&fresh.0]["state"], "idle");
    let text = String::from_utf8(run(ipcraft().arg("ls"), b"").stdout).unwrap();
    let line = text.lines().find(|l| l.contains(both.0.as_str())).unwrap();
    assert!(
        line.contains("dead") && line.contains(&format!("dead:{r_pid}")),
        "{line}"
    );

    // Another user's stale channel: seen with --all-users, never collected.
    let theirs = ShmName::new("gc-theirs");
    let nobody = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref());
    if let Some(mut cmd) = nobody {
        assert_ok(&run(cmd.args(["chan", "create", &theirs.0]), b""));
        let mut cmd = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()).unwrap();
        kill(sender(&mut cmd, &theirs.0));
        assert!(ls(&[], &[&theirs.0]).is_empty(), "not listed without --all-users");
        assert_eq!(ls(&["--all-users"], &[&theirs.0])[&theirs.0]["state"], "dead");
        // Their topic and many-sender channel are known for what they are
        // (read-only), not as plain shared memory.
        let (their_topic, their_many) = (ShmName::new("ls-their-topic"), ShmName::new("ls-their-many"));
        let mut cmd = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()).unwrap();
        assert_ok(&run(cmd.args(["topic", "create", &their_topic.0]), b""));
        let mut cmd = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()).unwrap();
        assert_ok(&run(cmd.args(["chan", "create", &their_many.0, "--senders", "3"]), b""));
        let seen = ls(&["--all-users"], &[&their_topic.0, &their_many.0]);
        assert_eq!(seen[&their_topic.0]["kind"], "topic", "{seen:?}");
        assert_eq!(seen[&their_many.0]["kind"], "channel", "{seen:?}");
        assert_eq!(seen[&their_many.0]["state"], "idle", "{seen:?}");
    }

    let dry = run(ipcraft().args(["gc", "--dry-run"]), b"");
    assert_ok(&dry);
    let dry = String::from_utf8(dry.stdout).unwrap();
    assert!(dry.contains(&format!("would remove {}", both.0)), "{dry}");
    for name in [&topic.0, &many.0, &svc.0] {
        assert!(dry.contains(&format!("would remove {name}")), "{dry}");
    }
    for name in [&live.0, &fresh.0, &plain.0, &theirs.0, &topic_live.0] {
        assert!(!dry.contains(name.as_str()), "{name} in {dry}");
    }
    assert!(exists(&both.0), "dry run removes nothing");

    let gc = run(ipcraft().arg("gc"), b"");
    assert_ok(&gc);
    let gc = String::from_utf8(gc.stdout).unwrap();
    assert!(gc.contains(&format!("removed {}", both.0)), "{gc}");
    assert!(!exists(&both.0));
    for name in [&topic.0, &many.0, &svc.0] {
        assert!(gc.contains(&format!("removed {name}")), "{gc}");
        assert!(!exists(name), "{name} is still there");
    }
    for name in [&live.0, &fresh.0, &plain.0, &topic_live.0] {
        assert!(exists(name), "{name} was removed: {gc}");
    }
    if rustix::process::geteuid().is_root() {
        assert!(exists(&theirs.0), "another user's channel was removed");
    }
    kill(live_tx);
    kill(live_sub);

    // The library: remove_if_stale leaves a live or fresh channel, and
    // collect_stale on create replaces a stale one of the same name.
    assert!(!channel::remove_if_stale(&fresh.0).unwrap());
    let e = channel::remove_if_stale(&plain.0).unwrap_err();
    assert!(matches!(e.cause(), Cause::Corrupted(_)), "{e}");
    let s = sender(&mut ipcraft(), &fresh.0);
    kill(s);
    let e = ChannelOptions::new().create(&fresh.0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    ChannelOptions::new().collect_stale(true).create(&fresh.0).unwrap();
    let stat = channel::stat(&fresh.0).unwrap();
    assert_eq!(
        (stat.sender, stat.receiver),
        (SideState::Absent, SideState::Absent),
        "a new channel"
    );
}

/// ls shows queues with their messages, FIFOs and sockets held open, and
/// memfds, each with its holders.
#[test]
fn ls_shows_every_kind_with_holders() {
    let dir = common::TempDir::new();
    let fifo = dir.join("held");
    let _made = ipcraft::fifo::Fifo::create(&fifo, 0o600).unwrap();
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<>\"$0\"; read line")
        .arg(&fifo)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = dir.join("s.sock");
    let _listener = ipcraft::unix_socket::Listener::bind(&sock).unwrap();
    let q = format!("/{}", common::unique("lsq"));
    let queue = ipcraft::mq::MessageQueue::create(&q, 4, 32).unwrap();
    queue.send(b"one", 0).unwrap();
    queue.send(b"two", 0).unwrap();
    let memfd = ipcraft::memfd::Memfd::create("ipcraft-ls-test", 4096).unwrap();
    memfd.seal(ipcraft::memfd::SealFlags::SHRINK).unwrap();
    // ls leaves itself out, not the test: a child holds the memfd.
    let mut memfd_holder = Command::new("sleep");
    memfd_holder.arg("60");
    common::pass_fd(&mut memfd_holder, memfd.into(), 3);
    let mut memfd_holder = memfd_holder.spawn().unwrap();
    let fifo_name = fifo.display().to_string();
    let sock_name = sock.display().to_string();
    eventually("the FIFO is held", || {
        ls(&[], &[&fifo_name])
            .get(&fifo_name)
            .is_some_and(|e| e["holders"].as_array().unwrap().iter().any(|p| p == holder.id()))
    });
    let found = ls(&[], &[&fifo_name, &sock_name, &q, "memfd:ipcraft-ls-test"]);
    assert_eq!(found[&fifo_name]["kind"], "fifo");
    assert_eq!(found[&fifo_name]["state"], "alive");
    assert_eq!(found[&sock_name]["kind"], "socket");
    assert_eq!(found[&sock_name]["mode"], "0600");
    assert_eq!(found[&q]["kind"], "mqueue");
    assert_eq!(found[&q]["messages"], 2);
    let m = &found["memfd:ipcraft-ls-test"];
    assert_eq!(m["kind"], "memfd");
    assert_eq!(m["size"], 4096);
    assert!(m["seals"].as_str().unwrap().contains("SHRINK"), "{m}");
    assert!(
        m["holders"].as_array().unwrap().iter().any(|p| p == memfd_holder.id()),
        "{m}"
    );
    memfd_holder.kill().unwrap();
    wait(&mut memfd_holder);
    // The holder ends when it reads a line.
    std::io::Write::write_all(&mut holder.stdin.take().unwrap(), b"done\n").unwrap();
    assert!(wait(&mut holder).success());
    drop(queue);
}

/// doctor's values are the host's: /proc/sys/fs/mqueue/* and `ulimit -q`.
#[test]
fn doctor_reports_the_hosts_values() {
    let out = run(ipcraft().args(["doctor", "--json"]), b"");
    assert_ok(&out);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let value = |name: &str| -> String {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}"))["value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for file in ["msg_max", "msgsize_max", "msg_default", "msgsize_default"] {
        let proc_value = std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}")).unwrap();
        assert_eq!(value(&format!("fs.mqueue.{file}")), proc_value.trim(), "{file}");
    }
    let queues_max = std::fs::read_to_string("/proc/sys/fs/mqueue/queues_max").unwrap();
    assert!(value("fs.mqueue.queues_max").starts_with(queues_max.trim()));
    let ulimit = run(Command::new("bash").args(["-c", "ulimit -q"]), b"");
    let q = String::from_utf8(ulimit.stdout).unwrap();
    assert!(
        value("RLIMIT_MSGQUEUE").starts_with(q.trim()),
        "{} vs {q}",
        value("RLIMIT_MSGQUEUE")
    );
    // A smaller limit in a child shell is what that shell's doctor sees.
    let out = run(
        Command::new("bash")
            .args(["-c", "ulimit -q 1000 && exec \"$0\" doctor --json"])
            .arg(env!("CARGO_BIN_EXE_ipcraft")),
        b"",
    );
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let rl = checks.iter().find(|c| c["name"] == "RLIMIT_MSGQUEUE").unwrap();
    assert!(rl["value"].as_str().unwrap().starts_with("1000 "), "{rl}");
    assert_eq!(rl["ok"], false, "1000 bytes cannot hold a default queue");
    for c in &checks {
        for field in ["name", "value", "ok", "blocking", "meaning", "raise"] {
            assert!(!c[field].is_null(), "{c} lacks {field}");
        }
    }
    // --strict fails exactly when a blocking check fails.
    let strict = run(
        Command::new("bash")
            .args(["-c", "ulimit -q 1000 && exec \"$0\" doctor --strict"])
            .arg(env!("CARGO_BIN_EXE_ipcraft")),
        b"",
    );
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("RLIMIT_MSGQUEUE"));
}
