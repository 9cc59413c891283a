//! Unix domain sockets, descriptor passing and sealed memfds between real
//! processes, and the `uds` commands.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, assert_ok, ipcraft, pass_fd, pattern, role, run, unique, wait, wait_ok, TempDir, TIMEOUT};
use ipcraft::channel::ChannelOptions;
use ipcraft::memfd::{Memfd, SealFlags};
use ipcraft::unix_socket::{self, Listener};
use ipcraft::Cause;

#[test]
fn smoke() {
    let dir = TempDir::new();
    let path = dir.join("smoke.sock");
    let listener = Listener::bind(&path).unwrap();
    let mut client = unix_socket::connect(&path).unwrap();
    let (mut server, cred) = listener.accept().unwrap();
    assert_eq!(cred.pid, std::process::id());
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    drop(listener);
    assert!(!path.exists(), "socket file removed on drop");
}

#[test]
fn credentials_name_the_connecting_process() {
    let dir = TempDir::new();
    let path = dir.join("cred.sock");
    let listener = Listener::bind(&path).unwrap();
    // A real client process: `ipcraft uds send` waits for the reply we send.
    let mut client = ipcraft()
        .args(["uds", "send"])
        .arg(&path)
        .arg("who am i")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut conn, cred) = listener.accept().unwrap();
    assert_eq!(cred.pid, client.id(), "pid of the client process");
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());
    assert_eq!(cred.gid, rustix::process::getegid().as_raw());
    let mut msg = String::new();
    conn.read_to_string(&mut msg).unwrap();
    assert_eq!(msg, "who am i");
    conn.write_all(b"you are pid ").unwrap();
    drop(conn);
    let mut out = String::new();
    client.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    wait_ok(&mut client);
    assert_eq!(out, "you are pid \n");
}

#[test]
fn path_too_long_is_refused_before_any_system_call() {
    let long = std::path::PathBuf::from(format!("/tmp/{}", "p".repeat(103)));
    assert_eq!(long.as_os_str().len(), 108);
    let e = Listener::bind(&long).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Cause::OverLimit {
                requested: 108,
                limit: 107,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("108 bytes"), "{e}");
    assert!(unix_socket::connect(&long).is_err());
    assert!(!long.exists());
    assert_fails(
        &run(ipcraft().args(["uds", "serve"]).arg(&long), b""),
        1,
        "allows (107)",
    );
}

#[test]
fn live_socket_is_never_replaced_stale_one_is() {
    let dir = TempDir::new();
    let path = dir.join("live.sock");
    let first = Listener::bind(&path).unwrap();
    let e = Listener::bind(&path).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}");
    assert!(path.exists(), "the live server's file is still there");
    // Still the first listener's socket: a client reaches it.
    let _c = unix_socket::connect(&path).unwrap();
    first.accept().unwrap();
    // A stale file: left by a process that bound it and exited without
    // cleaning up (made in another process, so no copy of its descriptor
    // can linger in a child that this test binary is forking).
    std::mem::forget(first);
    let stale = dir.join("stale.sock");
    let mut binder = role("role_bind_and_exit", &[stale.to_str().unwrap()]).spawn().unwrap();
    wait_ok(&mut binder);
    assert!(stale.exists());
    let again = Listener::bind(&stale).unwrap();
    assert!(unix_socket::connect(&stale).is_ok());
    drop(again);
    // Not a socket: never removed.
    let file = dir.join("file");
    std::fs::write(&file, b"precious").unwrap();
    assert!(matches!(
        Listener::bind(&file).unwrap_err().cause(),
        Cause::WrongType { .. }
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

/// Child-process role, started with `role("role_bind_and_exit", ...)`.
fn role_bind_and_exit(a: Vec<String>) {
    // std's listener leaves its file behind, as a crashed server would.
    let _listener = std::os::unix::net::UnixListener::bind(&a[0]).unwrap();
}

#[test]
fn abstract_namespace_leaves_no_file() {
    let name = unique("abstract");
    let listener = Listener::bind_abstract(name.as_bytes()).unwrap();
    assert!(listener.path().is_none());
    let mut client = unix_socket::connect_abstract(name.as_bytes()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"abs").unwrap();
    let mut buf = [0u8; 3];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abs");
    drop(listener);
    // Another test thread's child may hold a copy of the descriptor for the
    // moment between its fork and exec; the address goes once that closes.
    let deadline = Instant::now() + TIMEOUT;
    while unix_socket::connect_abstract(name.as_bytes()).is_ok() {
        assert!(
            Instant::now() < deadline,
            "abstract address still bound after the listener closed"
        );
        std::thread::yield_now();
    }
}

/// How many of this process's descriptors refer to the pipes of `fds`
/// (by inode, so descriptors other test threads open do not count).
fn open_fds_to(fds: &[&OwnedFd]) -> usize {
    let targets: Vec<String> = fds
        .iter()
        .map(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|link| targets.contains(&link.to_string_lossy().into_owned()))
        .count()
}

#[test]
fn truncated_control_message_closes_what_arrived() {
    let (a, b) = UnixStream::pair().unwrap();
    let (r1, w1) = ipcraft::pipe::pipe().unwrap();
    let (r2, _w2) = ipcraft::pipe::pipe().unwrap();
    unix_socket::send_with_fds(&a, b"3 fds", &[r1.as_fd(), w1.as_fd(), r2.as_fd()]).unwrap();
    let ours: Vec<OwnedFd> = vec![r1.into(), w1.into(), r2.into()];
    let refs: Vec<&OwnedFd> = ours.iter().collect();
    let before = open_fds_to(&refs);
    let mut buf = [0u8; 16];
    let e = unix_socket::recv_with_fds(&b, &mut buf, 1).unwrap_err();
    assert!(matches!(e.cause(), Cause::ControlTruncated { room: 1 }), "{e}");
    assert_eq!(open_fds_to(&refs), before, "no descriptor leaked");
}

#[test]
fn received_descriptors_are_close_on_exec() {
    let (a, b) = UnixStream::pair().unwrap();
    let (r, w) = ipcraft::pipe::pipe().unwrap();
    unix_socket::send_with_fds(&a, b"x", &[r.as_fd(), w.as_fd()]).unwrap();
    let mut buf = [0u8; 1];
    let (n, fds) = unix_socket::recv_with_fds(&b, &mut buf, 4).unwrap();
    assert_eq!((n, fds.len()), (1, 2));
    for fd in &fds {
        assert!(rustix::io::fcntl_getfd(fd)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));
    }
    assert!(
        unix_socket::send_with_fds(&a, b"", &[r.as_fd()]).is_err(),
        "descriptors need data"
    );
}

/// Child-process role, started with `role("role_fd_receiver", ...)`.
fn role_fd_receiver(a: Vec<String>) {
    let sock = unix_socket::connect(&a[0]).unwrap();
    let mut buf = [0u8; 16];
    let (n, mut fds) = unix_socket::recv_with_fds(&sock, &mut buf, 2).unwrap();
    assert_eq!(&buf[..n], b"take these");
    let memfd = Memfd::from_received(fds.pop().unwrap(), 4096, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let pipe_end = ipcraft::pipe::PipeWriter::from(fds.pop().unwrap());
    // Report through the passed pipe what the passed memfd holds.
    let value: u64 = memfd.map().unwrap().read(0).unwrap();
    pipe_end.write_atomic(format!("memfd says {value}").as_bytes()).unwrap();
    // A sealed memfd cannot be shrunk by this (or any) process.
    let e = memfd.set_len(0).unwrap_err();
    assert!(matches!(e.cause(), Cause::BadSeals(_)), "{e}");
    assert!(e.to_string().contains("sealed against resizing"), "{e}");
}

#[test]
fn pipe_end_and_sealed_memfd_passed_to_an_unrelated_process() {
    let dir = TempDir::new();
    let path = dir.join("pass.sock");
    let listener = Listener::bind(&path).unwrap();
    let (mut reader, writer) = ipcraft::pipe::pipe().unwrap();
    let memfd = Memfd::create("ipcraft-test", 4096).unwrap();
    let map = memfd.map().unwrap();
    map.write(0, &4242u64).unwrap();
    memfd.seal(SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let mut child = role("role_fd_receiver", &[path.to_str().unwrap()]).spawn().unwrap();
    let (conn, cred) = listener.accept().unwrap();
    assert_eq!(cred.pid, child.id());
    unix_socket::send_with_fds(&conn, b"take these", &[writer.as_fd(), memfd.as_fd()]).unwrap();
    drop(writer);
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    wait_ok(&mut child);
    assert_eq!(got, "memfd says 4242");
    // The owner keeps reading its mapping: no SIGBUS, nothing shrank.
    assert_eq!(map.read::<u64>(0).unwrap(), 4242);
    assert_eq!(memfd.size().unwrap(), 4096);
}

#[test]
fn unsealed_or_small_memfd_is_refused() {
    let unsealed = Memfd::create("loose", 8192).unwrap();
    let e = Memfd::from_received(unsealed.into(), 4096, SealFlags::SHRINK | SealFlags::GROW).unwrap_err();
    assert!(
        matches!(e.cause(), Cause::BadSeals(_)) && e.to_string().contains("not sealed"),
        "{e}"
    );
    let small = Memfd::create("small", 100).unwrap();
    small.seal(SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let e = Memfd::from_received(small.into(), 4096, SealFlags::SHRINK).unwrap_err();
    assert!(e.to_string().contains("at least 4096"), "{e}");
    let (r, _w) = ipcraft::pipe::pipe().unwrap();
    let e = Memfd::from_received(r.into(), 0, SealFlags::SHRINK).unwrap_err();
    assert!(e.to_string().contains("not a sealable memfd"), "{e}");
    let loose = Memfd::create("loose", 8192).unwrap();
    let e = ChannelOptions::new().open_sealed_receiver(loose.into()).unwrap_err();
    assert!(matches!(e.cause(), Cause::BadSeals(_)), "{e}");
}

fn checksum(seq: u64, data: &[u8]) -> u64 {
    data.iter().fold(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// Child-process role, started with `role("role_sealed_channel_receiver", ...)`.
fn role_sealed_channel_receiver(a: Vec<String>) {
    let sock = unix_socket::connect(&a[0]).unwrap();
    let mut buf = [0u8; 8];
    let (_, mut fds) = unix_socket::recv_with_fds(&sock, &mut buf, 1).unwrap();
    let mut rx = ChannelOptions::new().open_sealed_receiver(fds.pop().unwrap()).unwrap();
    let mut msg = vec![0u8; 1 << 16];
    let (mut seq, mut total, mut digest) = (0u64, 0u64, 0u64);
    while let Some(n) = rx.recv_timeout(&mut msg, TIMEOUT).unwrap() {
        let body = &msg[..n];
        assert_eq!(u64::from_le_bytes(body[..8].try_into().unwrap()), seq, "order");
        let sum = u64::from_le_bytes(body[8..16].try_into().unwrap());
        assert_eq!(sum, checksum(seq, &body[16..]), "message {seq} damaged");
        digest = digest.rotate_left(1) ^ sum;
        total += n as u64;
        seq += 1;
    }
    // Tell the sender what arrived.
    let mut sock = sock;
    sock.write_all(format!("{seq} {total} {digest}").as_bytes()).unwrap();
}

#[test]
fn sealed_memfd_channel_streams_64_mib_between_unrelated_processes() {
    let dir = TempDir::new();
    let path = dir.join("chan.sock");
    let listener = Listener::bind(&path).unwrap();
    let mut child = role("role_sealed_channel_receiver", &[path.to_str().unwrap()])
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let (mut tx, fd) = ChannelOptions::new().capacity(1 << 20).create_sealed_sender().unwrap();
    // The ring lives in a memfd, not in /dev/shm: asserted on this channel's
    // own descriptor and mapping, never on the whole of /dev/shm (which
    // other programs use while the tests run).
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert!(
        target.to_string_lossy().starts_with("/memfd:ipcraft-channel"),
        "{target:?}"
    );
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains("/memfd:ipcraft-channel"),
        "the ring is mapped from the memfd"
    );
    unix_socket::send_with_fds(&conn, b"chan", &[fd.as_fd()]).unwrap();
    drop(fd);
    let body = pattern(64 * 1024 - 16, 77);
    let (mut seq, mut total, mut digest) = (0u64, 0u64, 0u64);
    let mut msg = vec![0u8; 64 * 1024];
    while total < 64 << 20 {
        let sum = checksum(seq, &body);
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..16].copy_from_slice(&sum.to_le_bytes());
        msg[16..].copy_from_slice(&body);
        tx.send_timeout(&msg, TIMEOUT).unwrap();
        digest = digest.rotate_left(1) ^ sum;
        total += msg.len() as u64;
        seq += 1;
    }
    tx.close().unwrap();
    let mut report = String::new();
    conn.read_to_string(&mut report).unwrap();
    wait_ok(&mut child);
    assert_eq!(report, format!("{seq} {total} {digest}"));
}

#[test]
fn cli_serve_send_live_stale_and_signals() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let start_server = || {
        let mut server = ipcraft()
            .args(["uds", "serve"])
            .arg(&path)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = listening(&mut server);
        (server, stderr)
    };
    let (mut server, mut server_err) = start_server();
    let out = run(ipcraft().args(["uds", "send"]).arg(&path).arg("hello"), b"");
    assert_ok(&out);
    assert_eq!(out.stdout, b"hello\n");
    let big = "y".repeat(100_000);
    let out = run(ipcraft().args(["uds", "send"]).arg(&path).arg(&big), b"");
    assert_eq!(out.stdout.len(), big.len() + 1);
    // A second server on the live path fails and leaves the file alone.
    let out = run(ipcraft().args(["uds", "serve"]).arg(&path), b"");
    assert_fails(&out, 1, "Address already in use");
    assert!(path.exists());
    assert_eq!(
        run(ipcraft().args(["uds", "send"]).arg(&path).arg("still me"), b"").stdout,
        b"still me\n"
    );
    // SIGKILL leaves a stale file; a new server replaces it.
    server.kill().unwrap();
    assert_eq!(wait(&mut server).signal(), Some(libc::SIGKILL));
    assert!(path.exists(), "stale socket file left by the killed server");
    assert_fails(
        &run(ipcraft().args(["uds", "send"]).arg(&path).arg("x"), b""),
        1,
        "Connection refused",
    );
    let (mut server, mut server_err2) = start_server();
    assert_eq!(
        run(ipcraft().args(["uds", "send"]).arg(&path).arg("again"), b"").stdout,
        b"again\n"
    );
    // SIGTERM: a clean exit that removes the socket file.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = wait(&mut server);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!path.exists(), "socket file removed on exit");
    let mut log = String::new();
    server_err2.read_to_string(&mut log).unwrap();
    let me = rustix::process::geteuid().as_raw();
    assert!(
        log.contains(&format!("uid={me} gid=")) && log.contains("client pid="),
        "{log}"
    );
    let mut first_log = String::new();
    server_err.read_to_string(&mut first_log).unwrap();
    assert!(first_log.contains("client pid="), "{first_log}");
}

#[test]
fn cli_send_to_nothing_is_a_clear_error() {
    let dir = TempDir::new();
    assert_fails(
        &run(ipcraft().args(["uds", "send"]).arg(dir.join("none.sock")).arg("x"), b""),
        1,
        "No such file",
    );
    assert_fails(&run(ipcraft().args(["uds", "send"]), b""), 2, "<PATH>");
}

#[test]
fn killed_peer_mid_transfer_is_an_error_not_a_hang() {
    let (a, b) = UnixStream::pair().unwrap();
    // SAFETY: `b` is a valid socket; the child gets a dup as its stdout.
    let b_fd = unsafe { OwnedFd::from_raw_fd(libc::dup(b.as_raw_fd())) };
    drop(b);
    let mut cmd = Command::new("yes");
    pass_fd(&mut cmd, b_fd, 1);
    let mut yes = cmd.stderr(Stdio::null()).spawn().unwrap();
    drop(cmd);
    let mut a = a;
    a.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    let n = a.read(&mut buf).unwrap();
    assert!(n > 0 && buf[..n].starts_with(b"y\n"));
    yes.kill().unwrap();
    wait(&mut yes);
    let start = Instant::now();
    loop {
        match a.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Starts `uds serve` through `sh` (so `umask` can be set first) and waits,
/// bounded, for its "listening on" line.
fn serve_with_umask(
    umask: &str,
    path: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::process::ChildStderr) {
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" uds serve \"$1\" {}",
            extra.join(" ")
        ))
        .arg(env!("CARGO_BIN_EXE_ipcraft"))
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = listening(&mut server);
    (server, stderr)
}

/// Takes `server`'s piped stderr and reads its first line, which a `uds
/// serve` prints once it listens (a bounded wait: it ends with the process).
fn listening(server: &mut std::process::Child) -> std::process::ChildStderr {
    let mut stderr = server.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(stderr.read(&mut byte).unwrap(), 1, "server exited early");
        line.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&line).contains("listening on"), "{line:?}");
    stderr
}

fn stop(mut server: std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(wait(&mut server).code(), Some(0));
}

/// The socket file is 0600 whatever the umask (it was 0777 under umask
/// 000), and exactly --mode when given; `uds send` without MESSAGE sends
/// stdin, as `fifo send` does.
#[test]
fn cli_serve_socket_mode_and_send_from_stdin() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.join("m.sock");
    let (server, _err) = serve_with_umask("000", &path, &[]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let out = run(ipcraft().args(["uds", "send"]).arg(&path), b"from stdin\nline two");
    assert_ok(&out);
    assert_eq!(out.stdout, b"from stdin\nline two\n");
    stop(server);
    let (server, _err) = serve_with_umask("077", &path, &["--mode", "660"]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    stop(server);
    assert!(!path.exists());
}

/// The library's listener: 0600 by default, `keep` leaves the file,
/// `into_std` keeps serving.
#[test]
fn listener_mode_keep_and_into_std() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.join("l.sock");
    let mut listener = Listener::bind(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    listener.keep();
    drop(listener);
    assert!(path.exists(), "kept");
    std::fs::remove_file(&path).unwrap();
    let listener = Listener::bind_with_mode(&path, 0o640).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    let std_listener = listener.into_std();
    let mut client = unix_socket::connect(&path).unwrap();
    let (mut server, _) = std_listener.accept().unwrap();
    client.write_all(b"via std").unwrap();
    let mut buf = [0u8; 7];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"via std");
}

/// Errors say what is wrong: descriptors need a data byte (not "SCM_MAX_FD"),
/// a sealed memfd cannot be resized or write-sealed under a live mapping,
/// and a mapping's errors name what is mapped.
#[test]
fn descriptor_seal_and_mapping_errors_say_why() {
    let (a, _b) = UnixStream::pair().unwrap();
    let memfd = Memfd::create("errors", 4096).unwrap();
    let e = unix_socket::send_with_fds(&a, b"", &[memfd.as_fd()]).unwrap_err();
    assert!(matches!(e.cause(), Cause::Invalid(_)), "{e}");
    assert!(e.to_string().contains("at least one byte"), "{e}");
    assert!(!e.to_string().contains("SCM_MAX_FD"), "{e}");

    memfd.seal(SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let e = memfd.set_len(0).unwrap_err();
    assert!(e.to_string().contains("sealed against resizing"), "{e}");
    assert!(e.to_string().contains("SHRINK"), "{e}");
    assert_eq!(memfd.size().unwrap(), 4096);
    let map = memfd.map().unwrap();
    let e = memfd.seal(SealFlags::WRITE).unwrap_err();
    assert!(e.to_string().contains("writable shared mapping"), "{e}");
    // The mapping's own errors name the memfd it maps.
    let e = map.read::<u64>(4096).unwrap_err();
    assert!(e.to_string().contains("memfd:errors"), "{e}");
    drop(map);
    memfd.seal(SealFlags::WRITE).unwrap();

    let dir = TempDir::new();
    let file = dir.join("data");
    std::fs::write(&file, b"12345678").unwrap();
    let map = ipcraft::mmap::MmapOptions::new()
        .map(std::fs::File::open(&file).unwrap())
        .unwrap();
    let e = map.read::<u64>(4).unwrap_err();
    assert!(e.to_string().contains(file.to_str().unwrap()), "{e}");
    let e = ipcraft::mmap::MmapOptions::new()
        .map(std::fs::File::open(dir.path()).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains(dir.path().to_str().unwrap()), "{e}");
}

common::roles!(role_bind_and_exit, role_fd_receiver, role_sealed_channel_receiver);
