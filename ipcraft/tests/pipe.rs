//! Pipes between real processes: EOF signalling, PIPE_BUF atomicity,
//! redirection, pipelines, popen, broken pipes, and the classic echo exercise.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pass_fd, pattern, role, wait, wait_ok, TIMEOUT};
use ipcraft::command::{self, Pipeline};
use ipcraft::pipe::{self, PipeReader, PipeWriter, PIPE_BUF};
use ipcraft::Cause;

#[test]
fn smoke() {
    let (mut r, mut w) = pipe::pipe().unwrap();
    w.write_all(b"smoke").unwrap();
    drop(w);
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "smoke");
}

#[test]
fn ends_are_close_on_exec() {
    let (r, w) = pipe::pipe().unwrap();
    for fd in [
        rustix::io::fcntl_getfd(&r).unwrap(),
        rustix::io::fcntl_getfd(&w).unwrap(),
    ] {
        assert!(fd.contains(rustix::io::FdFlags::CLOEXEC));
    }
}

/// Reads exactly `n` bytes, each read bounded by `TIMEOUT`.
fn read_exact_timeout(r: &PipeReader, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = r.read_timeout(&mut buf[got..], TIMEOUT).expect("read");
        assert_ne!(k, 0, "EOF after {got} of {n} bytes");
        got += k;
    }
    buf
}

/// The classic signal: the parent's read returns 0 only once every child has
/// closed its write end, and not before.
#[test]
fn eof_only_after_every_writer_closed() {
    const N: usize = 4;
    let (reader, writer) = pipe::pipe().unwrap();
    let mut gates = Vec::new();
    let mut children = Vec::new();
    for id in 0..N {
        let (gate_r, gate_w) = pipe::pipe().unwrap();
        // Each child waits for its gate to close, writes its id, and exits.
        let child = Command::new("sh")
            .args(["-c", r#"cat >/dev/null; printf '%s;' "$1""#, "sh", &format!("c{id}")])
            .stdin(gate_r)
            .stdout(writer.try_clone().unwrap())
            .spawn()
            .unwrap();
        gates.push(Some(gate_w));
        children.push(child);
    }
    drop(writer);
    let short = Duration::from_millis(50);
    let mut buf = [0u8; 64];
    for id in 0..N {
        // While any child still holds a write end there is no EOF.
        let e = reader.read_timeout(&mut buf, short).unwrap_err();
        assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
        gates[id] = None;
        let expected = format!("c{id};");
        assert_eq!(read_exact_timeout(&reader, expected.len()), expected.as_bytes());
        wait_ok(&mut children[id]);
    }
    assert_eq!(
        reader.read_timeout(&mut buf, TIMEOUT).unwrap(),
        0,
        "EOF once all have closed"
    );
}

const WRITERS: u8 = 8;
const RECORDS: u32 = 3000;

/// Record layout: tag 0xA5, writer id, sequence (u32 LE), total length (u16
/// LE), payload derived from (id, seq). Lengths range up to PIPE_BUF.
fn record(id: u8, seq: u32) -> Vec<u8> {
    let len = 8 + (seq as usize * 7919 + id as usize * 131) % (PIPE_BUF - 8 + 1);
    let mut rec = Vec::with_capacity(len);
    rec.push(0xA5);
    rec.push(id);
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(&(len as u16).to_le_bytes());
    rec.extend((8..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq).wrapping_add(id as u32) as u8));
    rec
}

/// Child-process role, started with `role("role_atomic_writer", ...)`.
fn role_atomic_writer(args: Vec<String>) {
    let id: u8 = args[0].parse().unwrap();
    // SAFETY: the parent passed the pipe's write end as descriptor 3.
    let w = unsafe { PipeWriter::from_raw_fd(3) };
    for seq in 0..RECORDS {
        w.write_atomic(&record(id, seq)).unwrap();
    }
}

#[test]
fn atomic_writes_from_8_processes_never_tear() {
    let (reader, writer) = pipe::pipe().unwrap();
    let mut children: Vec<_> = (0..WRITERS)
        .map(|id| {
            let mut cmd = role("role_atomic_writer", &[&id.to_string()]);
            pass_fd(&mut cmd, writer.try_clone().unwrap().into(), 3);
            cmd.spawn().unwrap()
        })
        .collect();
    drop(writer);
    let mut stream = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read_timeout(&mut buf, TIMEOUT).unwrap();
        if n == 0 {
            break;
        }
        stream.extend_from_slice(&buf[..n]);
    }
    for child in &mut children {
        wait_ok(child);
    }
    let mut next: HashMap<u8, u32> = HashMap::new();
    let mut at = 0;
    while at < stream.len() {
        assert_eq!(stream[at], 0xA5, "record boundary lost at byte {at}");
        let id = stream[at + 1];
        let seq = u32::from_le_bytes(stream[at + 2..at + 6].try_into().unwrap());
        let len = u16::from_le_bytes(stream[at + 6..at + 8].try_into().unwrap()) as usize;
        assert_eq!(
            &stream[at..at + len],
            &record(id, seq)[..],
            "torn record {id}/{seq} at byte {at}"
        );
        let expected = next.entry(id).or_insert(0);
        assert_eq!(seq, *expected, "writer {id} out of order");
        *expected += 1;
        at += len;
    }
    assert_eq!(next.len(), WRITERS as usize);
    assert!(next.values().all(|&n| n == RECORDS), "{next:?}");
}

#[test]
fn write_atomic_refuses_more_than_pipe_buf_and_writes_nothing() {
    let (reader, writer) = pipe::pipe().unwrap();
    let e = writer.write_atomic(&vec![7u8; PIPE_BUF + 1]).unwrap_err();
    assert!(
        matches!(e.cause(), Cause::TooLarge { len, limit, limit_name: "PIPE_BUF" } if *len == PIPE_BUF + 1 && *limit == PIPE_BUF),
        "{e}"
    );
    assert!(e.to_string().contains("PIPE_BUF"), "{e}");
    reader.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!((&reader).read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    writer.write_atomic(&[9u8; PIPE_BUF]).unwrap();
    assert_eq!(read_exact_timeout(&reader, PIPE_BUF), vec![9u8; PIPE_BUF]);
}

#[test]
fn nonblocking_write_atomic_is_all_or_nothing() {
    let (reader, writer) = pipe::pipe().unwrap();
    writer.set_nonblocking(true).unwrap();
    assert!(writer.is_nonblocking().unwrap());
    let cap = writer.capacity().unwrap();
    let fill = vec![1u8; cap - 100];
    (&writer).write_all(&fill).unwrap();
    // 100 bytes free: a 200-byte atomic write must not be split.
    let e = writer.write_atomic(&[2u8; 200]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    writer.write_atomic(&[3u8; 100]).unwrap();
    drop(writer);
    let mut all = Vec::new();
    (&reader).read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), cap);
    assert!(all[..cap - 100].iter().all(|&b| b == 1));
    assert!(all[cap - 100..].iter().all(|&b| b == 3));
}

#[test]
fn capacity_can_be_resized() {
    let (reader, writer) = pipe::pipe().unwrap();
    let got = writer.set_capacity(1 << 20).unwrap();
    assert!(got >= 1 << 20);
    assert_eq!(reader.capacity().unwrap(), got);
    // A whole megabyte now fits without a reader draining it.
    writer.set_nonblocking(true).unwrap();
    (&writer).write_all(&pattern(1 << 20, 1)).unwrap();
    assert_eq!(read_exact_timeout(&reader, 1 << 20), pattern(1 << 20, 1));
}

#[test]
fn reader_gone_is_broken_pipe_not_death() {
    let (reader, mut writer) = pipe::pipe().unwrap();
    drop(reader);
    let e = writer.write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    let e = writer.write_atomic(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

/// Child-process role, started with `role("role_sigpipe_default_writer", ...)`.
fn role_sigpipe_default_writer(_args: Vec<String>) {
    // Restore the C default that Rust's runtime replaced: SIGPIPE kills.
    // SAFETY: setting a standard disposition before any other thread of
    // this role process writes to a pipe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let (reader, mut writer) = pipe::pipe().unwrap();
    drop(reader);
    for _ in 0..3 {
        assert_eq!(writer.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
    // No SIGPIPE is left pending to kill us later.
    // SAFETY: plain queries of this thread's signal state into zeroed sets.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        assert_eq!(libc::sigismember(&pending, libc::SIGPIPE), 0);
    }
    // SAFETY: fd 3 was passed by the parent; write a success marker to it.
    let mut done = unsafe { PipeWriter::from_raw_fd(3) };
    done.write_all(b"survived").unwrap();
}

#[test]
fn broken_pipe_with_default_sigpipe_does_not_kill() {
    let (reader, writer) = pipe::pipe().unwrap();
    let mut cmd = role("role_sigpipe_default_writer", &[]);
    pass_fd(&mut cmd, writer.into(), 3);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let status = wait(&mut child);
    assert!(status.success(), "role died: {status}");
    let mut got = String::new();
    (&reader).read_to_string(&mut got).unwrap();
    assert_eq!(got, "survived");
}

/// Child-process role, started with `role("role_redirected_printer", ...)`.
fn role_redirected_printer(args: Vec<String>) {
    // SAFETY: fd 3 is the pipe's write end passed by the parent.
    let w = unsafe { OwnedFd::from_raw_fd(3) };
    command::redirect_stdout(&w).unwrap();
    drop(w);
    let mut out = io::stdout().lock();
    write!(out, "via stdout: {}", args[0]).unwrap();
    out.flush().unwrap();
}

#[test]
fn redirect_stdout_binds_a_pipe_end() {
    let (reader, writer) = pipe::pipe().unwrap();
    let mut cmd = role("role_redirected_printer", &["dup2 works"]);
    pass_fd(&mut cmd, writer.into(), 3);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut got = String::new();
    (&reader).read_to_string(&mut got).unwrap();
    wait_ok(&mut child);
    // The harness's own output also went to the redirected stdout; ours is in it.
    assert!(got.contains("via stdout: dup2 works"), "{got:?}");
}

#[test]
fn child_stdio_bound_to_pipe_ends() {
    let (to_child_r, mut to_child_w) = pipe::pipe().unwrap();
    let (mut from_child_r, from_child_w) = pipe::pipe().unwrap();
    let mut child = Command::new("tr")
        .arg("a-z")
        .arg("A-Z")
        .stdin(to_child_r)
        .stdout(from_child_w)
        .spawn()
        .unwrap();
    to_child_w.write_all(b"shout this").unwrap();
    drop(to_child_w);
    let mut got = String::new();
    from_child_r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "SHOUT THIS");
    wait_ok(&mut child);
}

#[test]
fn pipeline_printf_grep_wc() {
    let mut printf = Command::new("printf");
    printf.arg("alpha\nbeta\ngamma\nalphabet\n");
    let mut grep = Command::new("grep");
    grep.arg("alpha");
    let mut wc = Command::new("wc");
    wc.arg("-l");
    let out = Pipeline::new(printf).pipe(grep).pipe(wc).output().unwrap();
    assert!(out.success(), "{:?}", out.statuses);
    assert_eq!(out.statuses.len(), 3);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "2");
}

#[test]
fn pipeline_reports_each_status() {
    let mut grep = Command::new("grep");
    grep.arg("absent");
    let out = Pipeline::new(Command::new("true")).pipe(grep).output().unwrap();
    assert!(!out.success());
    assert!(out.statuses[0].success());
    assert_eq!(out.statuses[1].code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn pipeline_to_our_own_pipe_end() {
    let (mut reader, writer) = pipe::pipe().unwrap();
    let mut seq = Command::new("seq");
    seq.arg("1000");
    let mut tail = Command::new("tail");
    tail.arg("-n1").stdout(writer);
    let running = Pipeline::new(seq).pipe(tail).spawn().unwrap();
    let statuses = running.wait_timeout(TIMEOUT).unwrap();
    assert!(statuses.iter().all(|s| s.success()));
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "1000\n");
}

#[test]
fn pipeline_missing_program_names_it() {
    let e = Pipeline::new(Command::new("true"))
        .pipe(Command::new("ipcraft-no-such-program"))
        .spawn()
        .unwrap_err();
    assert_eq!(e.object(), Some("ipcraft-no-such-program"));
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}

#[test]
fn popen_read_collects_output_and_status() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "printf 'line one\\nline two\\n'; exit 3"]);
    let mut child = command::popen_read(&mut cmd).unwrap();
    let mut got = String::new();
    child.read_to_string(&mut got).unwrap();
    assert_eq!(got, "line one\nline two\n");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn popen_write_feeds_input() {
    let (mut reader, writer) = pipe::pipe().unwrap();
    let mut cmd = Command::new("wc");
    cmd.arg("-c").stdout(writer);
    let mut child = command::popen_write(&mut cmd).unwrap();
    drop(cmd);
    child.write_all(&pattern(100_000, 2)).unwrap();
    assert!(child.wait().unwrap().success());
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got.trim(), "100000");
}

#[test]
fn popen_missing_program_is_an_error() {
    let e = command::popen_read(&mut Command::new("ipcraft-no-such-program")).unwrap_err();
    assert!(e.to_string().starts_with("spawn ipcraft-no-such-program: "), "{e}");
}

#[test]
fn echo_round_trips_small_and_empty() {
    assert_eq!(command::echo(b"hello world").unwrap(), b"hello world");
    assert_eq!(command::echo(b"").unwrap(), b"");
    let binary: Vec<u8> = (0..=255).collect();
    assert_eq!(command::echo(&binary).unwrap(), binary);
}

#[test]
fn echo_four_mebibytes_does_not_deadlock() {
    let data = pattern(4 << 20, 3);
    let back = command::echo(&data).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "content differs");
}

#[test]
fn echo_from_many_threads_at_once() {
    // Concurrent forks must not leak one exchange's pipe ends into another's
    // child (which would hold off EOF and deadlock both).
    let threads: Vec<_> = (0..6)
        .map(|i| std::thread::spawn(move || (i, command::echo(&pattern(300_000, i)).unwrap())))
        .collect();
    for t in threads {
        let (i, back) = t.join().unwrap();
        assert!(back == pattern(300_000, i), "thread {i} got wrong bytes");
    }
}

#[test]
fn into_stdio_and_back() {
    let (r, w) = pipe::pipe().unwrap();
    let _: Stdio = r.into();
    let fd: OwnedFd = w.into();
    let w2 = PipeWriter::from(fd);
    assert!(w2.capacity().unwrap() > 0);
}

#[test]
fn writer_killed_mid_stream_gives_eof_not_a_hang() {
    let (reader, writer) = pipe::pipe().unwrap();
    let mut yes = Command::new("yes").arg("abcdefg").stdout(writer).spawn().unwrap();
    // Some data arrives, and it is the writer's text.
    let first = read_exact_timeout(&reader, 8 * 1000);
    assert!(first.chunks(8).all(|c| c == b"abcdefg\n"));
    yes.kill().unwrap();
    let status = wait(&mut yes);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // What was buffered drains (whole lines from `yes`), then EOF.
    let mut rest = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match reader.read_timeout(&mut buf, TIMEOUT).unwrap() {
            0 => break,
            n => rest.extend_from_slice(&buf[..n]),
        }
    }
    assert!(rest.chunks(8).all(|c| b"abcdefg\n".starts_with(c)));
}

#[test]
fn reader_killed_gives_broken_pipe() {
    let (reader, mut writer) = pipe::pipe().unwrap();
    let mut cat = Command::new("cat").stdin(reader).stdout(Stdio::null()).spawn().unwrap();
    writer.write_all(b"before").unwrap();
    cat.kill().unwrap();
    wait(&mut cat);
    let chunk = vec![0u8; 64 * 1024];
    // The buffer may take one more chunk; after that the write must fail.
    let e = (0..4)
        .find_map(|_| writer.write_all(&chunk).err())
        .expect("write never failed");
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

common::roles!(role_atomic_writer, role_redirected_printer, role_sigpipe_default_writer);
