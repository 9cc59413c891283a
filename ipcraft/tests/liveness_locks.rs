//! A side's liveness lock belongs to its open file description, which a
//! child process shares while it holds a copy of the descriptor: one that
//! another thread is spawning (until it execs) or one forked without exec.
//! A handle that is dropped releases its lock itself, so the side is free
//! at once for the next process or handle, whatever children hold.

mod common;

use std::io::Write;

use common::{run, ShmName, TIMEOUT};
use ipcraft::channel::{self, ChannelOptions, Receiver, Sender, SideState};
use ipcraft::process::{self, Fork};
use ipcraft::topic::{self, TopicOptions};

common::roles!(role_reattach_while_a_child_holds_the_descriptors);

/// `CHANNEL TOPIC`: attaches a receiver of the channel and the publisher
/// and a subscriber of the one-slot topic (each takes one message), forks
/// a child that keeps copies of all their descriptors until this process
/// closes a pipe, drops the three handles, and prints each side's state
/// as `stat` tells it (a slot left free is not listed); then attaches a new receiver, publisher and
/// subscriber, moves one message through each pair, and prints what came.
fn role_reattach_while_a_child_holds_the_descriptors(args: Vec<String>) {
    let (chan, topic) = (&args[0], &args[1]);
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 64];
    let mut tx = Sender::open(chan).unwrap();
    let mut rx = Receiver::open(chan).unwrap();
    tx.send(b"first through the channel").unwrap();
    let n = rx.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(&buf[..n])).unwrap();
    let options = TopicOptions::new();
    let mut publisher = options.open_publisher(topic).unwrap();
    let mut subscriber = options.open_subscriber(topic).unwrap();
    publisher.send(b"first on the topic").unwrap();
    let n = subscriber.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(&buf[..n])).unwrap();

    let (hold_r, hold_w) = ipcraft::pipe::pipe().unwrap();
    // SAFETY: a role runs before the test harness starts any thread; the
    // child only blocks in read(2) and leaves through exit_child.
    let child = match unsafe { process::fork() }.unwrap() {
        Fork::Child => {
            drop(hold_w);
            let mut byte = [0u8; 1];
            // Returns at end of file: when the parent closes its end (or dies).
            let _ = rustix::io::read(&hold_r, &mut byte);
            process::exit_child(0);
        }
        Fork::Parent(pid) => pid,
    };
    drop(hold_r);

    drop(rx);
    drop(publisher);
    drop(subscriber);
    let chan_stat = channel::stat(chan).unwrap();
    let topic_stat = topic::stat(topic).unwrap();
    writeln!(
        out,
        "receiver {:?}, publisher {:?}, subscribers {:?}",
        chan_stat.receiver,
        topic_stat.publisher,
        topic_stat.subscribers.iter().map(|s| s.1).collect::<Vec<_>>()
    )
    .unwrap();

    let mut rx = Receiver::open(chan).unwrap();
    tx.send(b"second through the channel").unwrap();
    let n = rx.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(&buf[..n])).unwrap();
    let mut publisher = options.open_publisher(topic).unwrap();
    let mut subscriber = options.open_subscriber(topic).unwrap();
    publisher.send(b"second on the topic").unwrap();
    let n = subscriber.recv_timeout(&mut buf, TIMEOUT).unwrap().unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(&buf[..n])).unwrap();
    out.flush().unwrap();

    drop(hold_w);
    let status = process::wait_pid_timeout(child, TIMEOUT)
        .unwrap()
        .expect("the child ended once its pipe closed");
    assert!(status.success(), "child: {status}");
}

#[test]
fn a_dropped_side_is_free_at_once_though_a_child_holds_its_descriptor() {
    let chan = ShmName::new("held-chan");
    let topic_name = ShmName::new("held-topic");
    ChannelOptions::new().capacity(4096).create(&chan.0).unwrap();
    TopicOptions::new()
        .capacity(4096)
        .subscribers(1)
        .create(&topic_name.0)
        .unwrap();
    let out = run(
        &mut common::role(
            "role_reattach_while_a_child_holds_the_descriptors",
            &[chan.0.as_str(), topic_name.0.as_str()],
        ),
        b"",
    );
    assert!(out.status.success(), "role: {}", String::from_utf8_lossy(&out.stderr));
    let free = SideState::Closed;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "first through the channel\nfirst on the topic\n\
             receiver {free:?}, publisher {free:?}, subscribers []\n\
             second through the channel\nsecond on the topic\n"
        )
    );
}
