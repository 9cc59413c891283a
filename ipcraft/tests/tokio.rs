//! The async ends (feature `tokio`), each in its own process with its own
//! current-thread runtime, against async or blocking peers in other
//! processes: content, end of stream, peer death, cancellation, idle cost.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::ends::{assert_stream, cpu_micros, fail, message, record, records, runtime};
use common::{pass_fd, pattern, role, roles, unique, wait_with_stderr, ShmName, TempDir, TIMEOUT};
use ipcraft::channel::{ChannelOptions, Receiver, Sender};
use ipcraft::error::Cause;
use ipcraft::tokio::{AsyncMessageQueue, AsyncReceiver, AsyncSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

roles!(
    role_chan_recv,
    role_chan_send,
    role_blocking_paced_send,
    role_memfd_recv,
    role_idle_recv,
    role_pipe_write,
    role_fifo_write,
    role_mq_send,
    role_uds_send,
    role_pair_after_fork,
    role_drop_and_live_on,
);

// ---- roles ----

/// `NAME MODE`: receives until the end of the stream, writing records to
/// stdout. MODE `plain`, or `cancel`: every receive raced against a 20 µs
/// timer, so most are cancelled part-way.
fn role_chan_recv(args: Vec<String>) {
    let (name, mode) = (&args[0], args[1].as_str());
    runtime().block_on(async {
        let mut rx = AsyncReceiver::open(name).unwrap_or_else(|e| fail(e));
        let mut out = std::io::stdout().lock();
        let mut buf = vec![0u8; 64 * 1024];
        let mut cancelled = 0u64;
        loop {
            let got = if mode == "cancel" {
                match tokio::time::timeout(Duration::from_micros(20), rx.recv(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => {
                        cancelled += 1;
                        continue;
                    }
                }
            } else {
                rx.recv(&mut buf).await
            };
            match got {
                Ok(Some(n)) => {
                    record(&mut out, &buf[..n]);
                    out.flush().unwrap();
                }
                Ok(None) => break,
                Err(e) => fail(e),
            }
        }
        eprintln!("cancelled {cancelled}");
    });
}

/// `NAME COUNT MAX SEED MODE`: sends the stream async. MODE `close` ends
/// it; `die` is killed by SIGKILL right after the last send; `cancel`
/// races every send against a 20 µs timer and sends again what did not go;
/// `blocked` says `blocked` on stdout once a send has to wait for room;
/// `paced` pauses 1 ms after every 100th message, so the receiver waits
/// (and its waits are cut short) many times.
fn role_chan_send(args: Vec<String>) {
    let name = &args[0];
    let (count, max, seed): (u64, usize, u64) = (
        args[1].parse().unwrap(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
    );
    let mode = args[4].as_str();
    runtime().block_on(async {
        let mut tx = AsyncSender::open(name).unwrap_or_else(|e| fail(e));
        let mut said = false;
        for i in 0..count {
            let msg = message(i, max, seed);
            match mode {
                "cancel" => loop {
                    match tokio::time::timeout(Duration::from_micros(20), tx.send(&msg)).await {
                        Ok(r) => break r.unwrap_or_else(|e| fail(e)),
                        Err(_) => continue,
                    }
                },
                "blocked" => match tokio::time::timeout(Duration::from_millis(20), tx.send(&msg)).await {
                    Ok(r) => r.unwrap_or_else(|e| fail(e)),
                    Err(_) => {
                        if !said {
                            println!("blocked");
                            std::io::stdout().flush().unwrap();
                            said = true;
                        }
                        tx.send(&msg).await.unwrap_or_else(|e| fail(e));
                    }
                },
                "paced" => {
                    tx.send(&msg).await.unwrap_or_else(|e| fail(e));
                    if i % 100 == 99 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                _ => tx.send(&msg).await.unwrap_or_else(|e| fail(e)),
            }
        }
        if mode == "die" {
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL).unwrap();
        }
        tx.close().await.unwrap_or_else(|e| fail(e));
    });
}

/// `NAME COUNT MAX SEED`: a blocking sender (no runtime in this process)
/// that pauses 1 ms after every 50th message, so an async receiver sleeps
/// and is rung many times; after closing it prints how many eventfds this
/// process holds (`eventfds N`): each came from a doorbell it rang.
fn role_blocking_paced_send(args: Vec<String>) {
    let name = &args[0];
    let (count, max, seed): (u64, usize, u64) = (
        args[1].parse().unwrap(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
    );
    let mut tx = Sender::open(name.as_str()).unwrap_or_else(|e| fail(e));
    for i in 0..count {
        tx.send(&message(i, max, seed)).unwrap_or_else(|e| fail(e));
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    tx.close().unwrap_or_else(|e| fail(e));
    let eventfds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:[eventfd]")
        .count();
    println!("eventfds {eventfds}");
}

/// Receives from a sealed memfd channel handed over as descriptor 3.
fn role_memfd_recv(_: Vec<String>) {
    use std::os::fd::FromRawFd;
    // SAFETY: the parent passed the memfd as descriptor 3 and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    runtime().block_on(async {
        let rx = ChannelOptions::new()
            .open_sealed_receiver(fd)
            .unwrap_or_else(|e| fail(e));
        let mut rx = AsyncReceiver::new(rx).unwrap_or_else(|e| fail(e));
        let mut out = std::io::stdout().lock();
        while let Some(view) = rx.recv_view().await.unwrap_or_else(|e| fail(e)) {
            record(&mut out, &view.to_vec());
        }
    });
}

/// `NAME`: waits 2 s for a message that never comes, then prints the CPU
/// time (µs) this process used meanwhile.
fn role_idle_recv(args: Vec<String>) {
    runtime().block_on(async {
        let mut rx = AsyncReceiver::open(&args[0]).unwrap_or_else(|e| fail(e));
        let mut buf = [0u8; 64];
        // Attached and registered: the measurement covers the wait alone.
        let before = cpu_micros();
        let waited = tokio::time::timeout(Duration::from_secs(2), rx.recv(&mut buf)).await;
        let used = cpu_micros() - before;
        assert!(waited.is_err(), "a message arrived: {waited:?}");
        println!("{used}");
    });
}

/// `LEN SEED`: writes the pattern into the pipe end at descriptor 3, async.
fn role_pipe_write(args: Vec<String>) {
    use std::os::fd::FromRawFd;
    let (len, seed) = (args[0].parse().unwrap(), args[1].parse().unwrap());
    // SAFETY: the parent passed the write end as descriptor 3.
    let end = unsafe { ipcraft::pipe::PipeWriter::from_raw_fd(3) };
    runtime().block_on(async {
        let mut w = ipcraft::tokio::sender(end).unwrap_or_else(|e| fail(e));
        w.write_all(&pattern(len, seed)).await.unwrap();
    });
}

/// `PATH LEN SEED`: opens the FIFO for writing async (waiting for the
/// reader) and writes the pattern.
fn role_fifo_write(args: Vec<String>) {
    let (len, seed) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    runtime().block_on(async {
        let mut opts = ipcraft::fifo::FifoOptions::new();
        opts.timeout(TIMEOUT);
        let mut w = ipcraft::tokio::open_fifo_write(&opts, &args[0])
            .await
            .unwrap_or_else(|e| fail(e));
        w.write_all(&pattern(len, seed)).await.unwrap();
    });
}

/// `NAME COUNT`: sends COUNT messages `m<i>` with priority `i % 4` into a
/// queue that holds fewer, so most sends wait for room.
fn role_mq_send(args: Vec<String>) {
    let count: u32 = args[1].parse().unwrap();
    runtime().block_on(async {
        let q = ipcraft::mq::MqOptions::new()
            .read(false)
            .write(true)
            .open(&args[0])
            .unwrap_or_else(|e| fail(e));
        let q = AsyncMessageQueue::new(q).unwrap_or_else(|e| fail(e));
        for i in 0..count {
            q.send(format!("m{i}").as_bytes(), i % 4)
                .await
                .unwrap_or_else(|e| fail(e));
        }
    });
}

/// `PATH LEN SEED`: connects to the listener at PATH and sends a pipe's
/// read end holding the pattern, async; then waits for the peer to close.
fn role_uds_send(args: Vec<String>) {
    let (len, seed): (usize, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    runtime().block_on(async {
        let socket = tokio::net::UnixStream::connect(&args[0])
            .await
            .unwrap_or_else(|e| fail(e));
        let (r, w) = ipcraft::pipe::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::File::from(OwnedFd::from(w));
            w.write_all(&pattern(len, seed)).unwrap();
        });
        let sent = ipcraft::tokio::send_with_fds(&socket, b"F", &[r.as_fd()])
            .await
            .unwrap_or_else(|e| fail(e));
        assert_eq!(sent, 1);
        drop(r);
        writer.join().unwrap();
        let mut end = [0u8; 1];
        let (n, fds) = ipcraft::tokio::recv_with_fds(&socket, &mut end, 1)
            .await
            .unwrap_or_else(|e| fail(e));
        assert_eq!((n, fds.len()), (0, 0), "the peer closes without sending");
    });
}

/// A pair made before `fork`: the child receives async, this process
/// sends async, each in its own runtime made after the fork.
fn role_pair_after_fork(_: Vec<String>) {
    use ipcraft::process::{self, Fork};
    let (tx, rx) = ChannelOptions::new().capacity(4096).pair().unwrap();
    // SAFETY: a role runs before the test harness starts any thread, so
    // the child may run ordinary code; it leaves through exit_child.
    match unsafe { process::fork() }.unwrap() {
        Fork::Child => {
            drop(tx);
            let ok = runtime().block_on(async {
                let mut rx = AsyncReceiver::new(rx).unwrap();
                let mut i = 0u64;
                while let Some(view) = rx.recv_view().await.unwrap() {
                    if view.to_vec() != message(i, 3000, 31) {
                        return false;
                    }
                    i += 1;
                }
                i == 2000
            });
            process::exit_child(if ok { 0 } else { 1 });
        }
        Fork::Parent(pid) => {
            drop(rx);
            runtime().block_on(async {
                let mut tx = AsyncSender::new(tx).unwrap();
                for i in 0..2000 {
                    let msg = message(i, 3000, 31);
                    let mut slot = tx.reserve(msg.len()).await.unwrap();
                    slot.write_at(0, &msg).unwrap();
                    slot.commit();
                }
                tx.close().await.unwrap();
            });
            let status = process::wait_pid_timeout(pid, TIMEOUT)
                .unwrap()
                .expect("the child finished");
            assert!(status.success(), "the child received a wrong stream: {status}");
        }
    }
}

/// `NAME receiver|sender`: attaches as that side, receives one message (a
/// receiver) or fills the ring (a sender: messages of at most 48 bytes,
/// one 64-byte frame each, `try_send` until the ring is full), drops the
/// end, says `dropped N` (messages
/// sent), and lives on until its stdin closes.
fn role_drop_and_live_on(args: Vec<String>) {
    let sent = if args[1] == "receiver" {
        let mut rx = Receiver::open(&args[0]).unwrap();
        let mut buf = vec![0u8; 4096];
        rx.recv_timeout(&mut buf, TIMEOUT).unwrap();
        0
    } else {
        let mut tx = Sender::open(&args[0]).unwrap();
        let mut i = 0;
        while tx.try_send(&message(i, 48, 41)).is_ok() {
            i += 1;
        }
        i
    };
    println!("dropped {sent}");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// Starts `role_drop_and_live_on` and waits for it to have dropped its
/// end; returns the process and the count it printed.
fn drop_and_live_on(name: &str, side: &str) -> (Child, u64) {
    let (child, line) = first_line(role("role_drop_and_live_on", &[name, side]).stdin(Stdio::piped()));
    let n = line
        .trim()
        .strip_prefix("dropped ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    (child, n)
}

// ---- helpers ----

/// Starts `cmd` with its stdout and stderr piped and reads its first line
/// of stdout (the child's own word that it got somewhere).
fn first_line(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// An async sender of 100 messages of up to 1000 bytes into `name` that
/// has had to wait for room (it said `blocked`).
fn blocked_sender(name: &str, seed: &str) -> Proc {
    let (child, line) = first_line(&mut role("role_chan_send", &[name, "100", "1000", seed, "blocked"]));
    assert_eq!(line, "blocked\n");
    Proc {
        child,
        stdout: std::thread::spawn(Vec::new),
    }
}

/// Reads an async pipe or FIFO to its end (bounded by [`TIMEOUT`]).
async fn read_all(mut r: ipcraft::tokio::PipeReceiver) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(TIMEOUT, r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    got
}

/// A child whose stdout is read from the start (it may write more than a
/// pipe holds before the test gets to it).
struct Proc {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

fn spawn(cmd: &mut Command) -> Proc {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    Proc { child, stdout }
}

/// Waits (bounded) for the child, returning status, stdout and stderr.
fn finish(p: Proc) -> (std::process::ExitStatus, Vec<u8>, String) {
    let (status, stderr) = wait_with_stderr(p.child);
    (status, p.stdout.join().unwrap(), stderr)
}

fn channel(prefix: &str, capacity: u64) -> ShmName {
    let name = ShmName::new(prefix);
    ChannelOptions::new()
        .capacity(capacity)
        .create(name.0.as_str())
        .unwrap();
    name
}

// ---- the channel ----

#[test]
fn async_receiver_gets_a_blocking_senders_stream() {
    let name = channel("tokio-a", 16 * 1024);
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    // Messages up to 6 KiB through a 16 KiB ring: the receiver sleeps and
    // is rung many times.
    let mut tx = Sender::open(name.0.as_str()).unwrap();
    for i in 0..3000 {
        tx.send(&message(i, 6000, 11)).unwrap();
    }
    tx.close().unwrap();
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 3000, 6000, 11);
}

#[test]
fn a_blocking_sender_in_another_process_rings_an_async_receiver_through_its_eventfd() {
    // The first ring is a datagram asking for the doorbell's eventfd; the
    // doorbell answers; the rings after that are writes to the eventfd.
    let name = channel("tokio-ev", 16 * 1024);
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    let tx = spawn(&mut role(
        "role_blocking_paced_send",
        &[name.0.as_str(), "3000", "2000", "14"],
    ));
    let (status, said, err) = finish(tx);
    assert!(status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&said).trim(), "eventfds 1", "{err}");
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 3000, 2000, 14);
}

#[test]
fn blocking_receiver_gets_an_async_senders_stream() {
    let name = channel("tokio-b", 8 * 1024);
    let tx = spawn(&mut role(
        "role_chan_send",
        &[name.0.as_str(), "3000", "3000", "12", "close"],
    ));
    let mut rx = Receiver::open(name.0.as_str()).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Some(n) = rx.recv_timeout(&mut buf, TIMEOUT).unwrap() {
        got.push(buf[..n].to_vec());
    }
    let (status, _, err) = finish(tx);
    assert!(status.success(), "{err}");
    assert_stream(&got, 3000, 3000, 12);
}

#[test]
fn async_to_async_across_processes_both_ways_waiting() {
    let name = channel("tokio-c", 4096);
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    let tx = spawn(&mut role(
        "role_chan_send",
        &[name.0.as_str(), "5000", "2000", "13", "close"],
    ));
    let (status, _, err) = finish(tx);
    assert!(status.success(), "{err}");
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 5000, 2000, 13);
}

#[test]
fn cancelled_receives_lose_and_duplicate_nothing() {
    let name = channel("tokio-d", 4096);
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "cancel"]));
    let tx = spawn(&mut role(
        "role_chan_send",
        &[name.0.as_str(), "4000", "1500", "14", "paced"],
    ));
    let (status, _, err) = finish(tx);
    assert!(status.success(), "{err}");
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 4000, 1500, 14);
    let cancelled: u64 = err.trim().strip_prefix("cancelled ").unwrap().parse().unwrap();
    assert!(cancelled > 0, "no receive was cancelled, so nothing was tested");
}

#[test]
fn cancelled_sends_lose_and_duplicate_nothing() {
    let name = channel("tokio-e", 4096);
    let tx = spawn(&mut role(
        "role_chan_send",
        &[name.0.as_str(), "4000", "1500", "15", "cancel"],
    ));
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    let (status, _, err) = finish(tx);
    assert!(status.success(), "{err}");
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 4000, 1500, 15);
}

#[test]
fn async_receiver_delivers_everything_then_reports_the_senders_death() {
    let name = channel("tokio-f", 64 * 1024);
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    let tx = spawn(&mut role(
        "role_chan_send",
        &[name.0.as_str(), "200", "1000", "16", "die"],
    ));
    let (status, _, _) = finish(tx);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let (status, out, err) = finish(rx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("sender") && err.contains("died"), "{err}");
    assert_stream(&records(&out), 200, 1000, 16);
}

#[test]
fn async_sender_waiting_for_room_learns_of_the_receivers_death() {
    let name = channel("tokio-g", 4096);
    // A receiver that attaches and never reads: this process, through a
    // child that holds it; killing the child kills the receiver.
    let mut holder = spawn(&mut role("role_idle_recv", &[name.0.as_str()]));
    let tx = blocked_sender(&name.0, "17");
    holder.child.kill().unwrap();
    common::wait(&mut holder.child);
    let (status, _, err) = finish(tx);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("receiver") && err.contains("died"), "{err}");
}

#[test]
fn async_sender_learns_that_a_live_receiver_dropped_its_end() {
    let name = channel("tokio-j", 4096);
    let tx = blocked_sender(&name.0, "42");
    // The receiver takes one message and drops its end; its process lives
    // on, so no pidfd will tell the sender: the departure must.
    let (mut holder, _) = drop_and_live_on(&name.0, "receiver");
    let (status, _, err) = finish(tx);
    drop(holder.stdin.take());
    common::wait(&mut holder);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("receiver") && err.contains("closed"), "{err}");
}

/// A sender that fills the ring and drops its end (its process living on)
/// still ends the stream: the ring keeps room for the end marker.
#[test]
fn a_live_sender_that_drops_its_end_on_a_full_ring_still_ends_the_stream() {
    let name = channel("tokio-k", 8192);
    // The sender fills the ring before anyone reads, drops its end and
    // lives on; then the async receiver comes.
    let (mut holder, sent) = drop_and_live_on(&name.0, "sender");
    let rx = spawn(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]));
    let (status, out, err) = finish(rx);
    drop(holder.stdin.take());
    common::wait(&mut holder);
    assert!(status.success(), "{err}");
    assert!(sent > 0);
    assert_stream(&records(&out), sent, 48, 41);
}

#[test]
fn async_receiver_on_a_sealed_memfd_channel() {
    let (mut tx, fd) = ChannelOptions::new().capacity(8192).create_sealed_sender().unwrap();
    let mut cmd = role("role_memfd_recv", &[]);
    pass_fd(&mut cmd, fd, 3);
    let rx = spawn(&mut cmd);
    drop(cmd);
    for i in 0..1000 {
        tx.send(&message(i, 3000, 18)).unwrap();
    }
    tx.close().unwrap();
    let (status, out, err) = finish(rx);
    assert!(status.success(), "{err}");
    assert_stream(&records(&out), 1000, 3000, 18);
}

#[test]
fn async_pair_across_fork_with_reserve_and_views() {
    let out = common::run(&mut role("role_pair_after_fork", &[]), b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_idle_async_receiver_costs_no_cpu() {
    let name = channel("tokio-h", 4096);
    // An attached, idle sender, so the receiver has a live peer to watch.
    let mut tx = Sender::open(name.0.as_str()).unwrap();
    tx.flush_timeout(Duration::ZERO).unwrap();
    let (status, out, err) = finish(spawn(&mut role("role_idle_recv", &[name.0.as_str()])));
    assert!(status.success(), "{err}");
    let micros: i64 = String::from_utf8(out).unwrap().trim().parse().unwrap();
    eprintln!("an idle async receiver used {micros} µs of CPU in 2 s");
    assert!(micros < 20_000, "an idle async receiver used {micros} µs of CPU in 2 s");
    drop(tx);
}

#[test]
fn an_async_end_refuses_a_second_live_receiver() {
    let name = channel("tokio-i", 4096);
    let _rx = Receiver::open(name.0.as_str()).unwrap();
    let out = common::run(&mut role("role_chan_recv", &[name.0.as_str(), "plain"]), b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("receiver") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
}

// ---- pipes, FIFOs, queues, sockets ----

#[test]
fn async_pipe_between_processes() {
    let (r, w) = ipcraft::pipe::pipe().unwrap();
    let mut cmd = role("role_pipe_write", &["300000", "21"]);
    pass_fd(&mut cmd, OwnedFd::from(w), 3);
    let child = spawn(&mut cmd);
    drop(cmd); // our copy of the write end, or the read never ends
               // The receiver registers with the reactor: made inside the runtime.
    let got = runtime().block_on(async { read_all(ipcraft::tokio::receiver(r).unwrap()).await });
    let (status, _, err) = finish(child);
    assert!(status.success(), "{err}");
    assert!(
        got == pattern(300_000, 21),
        "pipe content differs ({} bytes)",
        got.len()
    );
}

#[test]
fn async_fifo_open_waits_for_the_peer_both_ways() {
    let dir = TempDir::new();
    let path = dir.join("f");
    let _fifo = ipcraft::fifo::create(&path, 0o600).unwrap();
    let child = spawn(&mut role("role_fifo_write", &[path.to_str().unwrap(), "200000", "22"]));
    let got = runtime().block_on(async {
        let mut opts = ipcraft::fifo::FifoOptions::new();
        opts.timeout(TIMEOUT);
        read_all(ipcraft::tokio::open_fifo_read(&opts, &path).await.unwrap()).await
    });
    let (status, _, err) = finish(child);
    assert!(status.success(), "{err}");
    assert!(
        got == pattern(200_000, 22),
        "fifo content differs ({} bytes)",
        got.len()
    );
}

#[test]
fn async_fifo_opens_time_out_without_a_peer() {
    let dir = TempDir::new();
    let path = dir.join("f");
    let _fifo = ipcraft::fifo::create(&path, 0o600).unwrap();
    runtime().block_on(async {
        let mut opts = ipcraft::fifo::FifoOptions::new();
        opts.timeout(Duration::from_millis(100));
        let e = ipcraft::tokio::open_fifo_write(&opts, &path).await.unwrap_err();
        assert!(matches!(e.cause(), Cause::NoReader), "{e}");
        let e = ipcraft::tokio::open_fifo_read(&opts, &path).await.unwrap_err();
        assert!(matches!(e.cause(), Cause::NoWriter), "{e}");
    });
}

#[test]
fn async_message_queue_waits_for_room_and_messages() {
    let name = format!("/{}", unique("tokio-mq"));
    let q = ipcraft::mq::MessageQueue::create(&name, 3, 64).unwrap();
    let child = spawn(&mut role("role_mq_send", &[&name, "40"]));
    let got = runtime().block_on(async {
        let q = AsyncMessageQueue::new(q).unwrap();
        let mut buf = q.get_ref().buffer();
        let mut got = Vec::new();
        for _ in 0..40 {
            let (n, prio) = tokio::time::timeout(TIMEOUT, q.recv(&mut buf)).await.unwrap().unwrap();
            got.push((String::from_utf8(buf[..n].to_vec()).unwrap(), prio));
        }
        got
    });
    let (status, _, err) = finish(child);
    assert!(status.success(), "{err}");
    // Every message once, with its priority; same-priority ones in order.
    let mut seen: Vec<u32> = got
        .iter()
        .map(|(m, p)| {
            let i: u32 = m[1..].parse().unwrap();
            assert_eq!(*p, i % 4, "{m} came with priority {p}");
            i
        })
        .collect();
    for prio in 0..4 {
        let order: Vec<u32> = seen.iter().copied().filter(|i| i % 4 == prio).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "priority {prio} out of order: {order:?}"
        );
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
}

#[test]
fn async_descriptor_passing_and_peer_credentials() {
    let dir = TempDir::new();
    let path = dir.join("sock");
    let listener = ipcraft::unix_socket::Listener::bind(&path).unwrap().into_std();
    listener.set_nonblocking(true).unwrap();
    let child = spawn(&mut role("role_uds_send", &[path.to_str().unwrap(), "100000", "23"]));
    let child_pid = child.child.id();
    let (cred, content) = runtime().block_on(async {
        let listener = tokio::net::UnixListener::from_std(listener).unwrap();
        let (socket, _) = tokio::time::timeout(TIMEOUT, listener.accept()).await.unwrap().unwrap();
        let cred = ipcraft::tokio::peer_credentials(&socket).unwrap();
        let mut buf = [0u8; 8];
        let (n, mut fds) = tokio::time::timeout(TIMEOUT, ipcraft::tokio::recv_with_fds(&socket, &mut buf, 4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"F");
        assert_eq!(fds.len(), 1);
        let mut content = Vec::new();
        std::fs::File::from(fds.remove(0)).read_to_end(&mut content).unwrap();
        (cred, content)
    });
    let (status, _, err) = finish(child);
    assert!(status.success(), "{err}");
    assert_eq!(cred.pid, child_pid);
    assert!(content == pattern(100_000, 23), "passed pipe content differs");
}
