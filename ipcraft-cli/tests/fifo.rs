//! FIFOs between unrelated processes: the library, the CLI, and the shell's
//! own `cat` and `echo`, plus every refusal SPEC §4 asks for.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_fails, assert_ok, ipcraft, pattern, run, wait_ok, TempDir, TIMEOUT};
use ipcraft::fifo::{self, FifoOptions};
use ipcraft::Cause;

#[test]
fn smoke() {
    let dir = TempDir::new();
    let path = dir.join("smoke");
    let guard = fifo::create(&path, 0o600).unwrap();
    let mut reader = ipcraft()
        .args(["fifo", "recv"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = fifo::open_write(&path).unwrap();
    w.write_all(b"through the fifo\n").unwrap();
    drop(w);
    let mut got = String::new();
    reader.stdout.take().unwrap().read_to_string(&mut got).unwrap();
    wait_ok(&mut reader);
    assert_eq!(got, "through the fifo\n");
    drop(guard);
    assert!(!path.exists());
}

#[test]
fn create_is_exclusive_and_never_adopts() {
    let dir = TempDir::new();
    let path = dir.join("f");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let e = fifo::create(&path, 0o600).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    let file = dir.join("regular");
    std::fs::write(&file, b"keep me").unwrap();
    assert!(fifo::create(&file, 0o600).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn mode_is_exact_despite_umask() {
    let dir = TempDir::new();
    for (mode, text) in [(0o666, "666"), (0o640, "640"), (0o600, "600")] {
        let path = dir.join(&format!("m{text}"));
        // umask is per process: set it in a child shell, not in the test harness.
        let out = run(
            std::process::Command::new("sh")
                .args(["-c", r#"umask 077; exec "$0" fifo make "$1" --mode "$2""#])
                .arg(env!("CARGO_BIN_EXE_ipcraft"))
                .arg(&path)
                .arg(text),
            b"",
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "mode {text}");
    }
}

#[test]
fn default_cli_mode_is_0600() {
    let dir = TempDir::new();
    let path = dir.join("d");
    let out = run(ipcraft().args(["fifo", "make"]).arg(&path), b"");
    assert!(out.status.success());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    let out = run(ipcraft().args(["fifo", "rm"]).arg(&path), b"");
    assert!(out.status.success());
    assert!(!path.exists());
}

#[test]
fn guard_removes_unless_kept() {
    let dir = TempDir::new();
    let path = dir.join("g");
    fifo::create(&path, 0o600).unwrap().remove().unwrap();
    assert!(!path.exists());
    fifo::create(&path, 0o600).unwrap().keep();
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
    fifo::remove(&path).unwrap();
    assert!(!path.exists());
}

#[test]
fn guard_leaves_a_replacement_alone() {
    let dir = TempDir::new();
    let path = dir.join("r");
    let guard = fifo::create(&path, 0o600).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"someone else's").unwrap();
    drop(guard);
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
}

#[test]
fn refuses_regular_file_directory_symlink_and_missing() {
    let dir = TempDir::new();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let real = dir.join("real");
    let _guard = fifo::create(&real, 0o600).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let nonblocking = {
        let mut o = FifoOptions::new();
        o.nonblocking(true);
        o
    };

    let e = nonblocking.open_read(&file).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Cause::WrongType {
                found: "a regular file",
                ..
            }
        ),
        "{e}"
    );
    let e = nonblocking.open_write(dir.path()).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Cause::WrongType {
                found: "a directory",
                ..
            }
        ),
        "{e}"
    );
    let e = nonblocking.open_read(&link).unwrap_err();
    assert!(matches!(e.cause(), Cause::Symlink), "{e}");
    let e = nonblocking.open_write(&link).unwrap_err();
    assert!(matches!(e.cause(), Cause::Symlink), "{e}");
    let e = fifo::open_read(dir.join("missing")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().starts_with("open fifo "), "{e}");

    assert!(matches!(
        fifo::remove(&file).unwrap_err().cause(),
        Cause::WrongType { .. }
    ));
    assert!(matches!(fifo::remove(&link).unwrap_err().cause(), Cause::Symlink));
    assert!(
        file.exists() && std::fs::symlink_metadata(&link).is_ok(),
        "nothing removed"
    );
}

#[test]
fn cli_refusals_are_one_clear_line() {
    let dir = TempDir::new();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = run(ipcraft().args(["fifo", "recv"]).arg(&file), b"");
    assert_fails(&out, 1, "not a FIFO (it is a regular file)");
    let out = run(ipcraft().args(["fifo", "recv"]).arg(&link), b"");
    assert_fails(&out, 1, "symbolic link");
    let out = run(ipcraft().args(["fifo", "send"]).arg(dir.join("missing")).arg("hi"), b"");
    assert_fails(&out, 1, "No such file or directory");
    let out = run(ipcraft().args(["fifo", "rm"]).arg(&file), b"");
    assert_fails(&out, 1, "not a FIFO");
    let out = run(ipcraft().args(["fifo", "make"]).arg(&file), b"");
    assert_fails(&out, 1, "File exists");
    let out = run(ipcraft().args(["fifo", "make", "--mode", "9z"]).arg(dir.join("x")), b"");
    assert_fails(&out, 2, "octal");
    let out = run(ipcraft().args(["fifo", "send"]), b"");
    assert_fails(&out, 2, "<PATH>");
    assert!(file.exists());
}

#[test]
fn nonblocking_writer_without_reader_says_so() {
    let dir = TempDir::new();
    let path = dir.join("nr");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let e = FifoOptions::new().nonblocking(true).open_write(&path).unwrap_err();
    assert!(matches!(e.cause(), Cause::NoReader), "{e}");
    assert_eq!(
        e.to_string(),
        format!("open fifo {}: no process has it open for reading", path.display())
    );
}

#[test]
fn timed_open_gives_up_without_the_other_side() {
    let dir = TempDir::new();
    let path = dir.join("t");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let t = Duration::from_millis(100);
    let start = Instant::now();
    let e = FifoOptions::new().timeout(t).open_write(&path).unwrap_err();
    assert!(matches!(e.cause(), Cause::NoReader), "{e}");
    assert!(start.elapsed() >= t);
    let e = FifoOptions::new().timeout(t).open_read(&path).unwrap_err();
    assert!(matches!(e.cause(), Cause::NoWriter), "{e}");
    let out = run(ipcraft().args(["fifo", "recv", "--timeout", "0.1"]).arg(&path), b"");
    assert_fails(&out, 1, "no writer within the timeout");
    let out = run(
        ipcraft()
            .args(["fifo", "send", "--timeout", "0.1"])
            .arg(&path)
            .arg("hi"),
        b"",
    );
    assert_fails(&out, 1, "no process has it open for reading");
}

#[test]
fn timed_writer_waits_for_a_reader_process() {
    let dir = TempDir::new();
    let path = dir.join("w");
    let _guard = fifo::create(&path, 0o600).unwrap();
    // The reader is `cat`, blocked in open(2) until we arrive.
    let mut cat = std::process::Command::new("cat")
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = FifoOptions::new().timeout(TIMEOUT).open_write(&path).unwrap();
    assert!(!w.is_nonblocking().unwrap(), "blocking unless asked");
    w.write_all(b"to cat\n").unwrap();
    drop(w);
    let mut got = String::new();
    cat.stdout.take().unwrap().read_to_string(&mut got).unwrap();
    wait_ok(&mut cat);
    assert_eq!(got, "to cat\n");
}

#[test]
fn timed_reader_waits_for_a_writer_process() {
    let dir = TempDir::new();
    let path = dir.join("r");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let mut sender = ipcraft()
        .args(["fifo", "send", "--timeout", "60"])
        .arg(&path)
        .arg("from the cli")
        .spawn()
        .unwrap();
    let mut r = FifoOptions::new().timeout(TIMEOUT).open_read(&path).unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    wait_ok(&mut sender);
    assert_eq!(got, "from the cli\n");
}

#[test]
fn shell_echo_into_cli_recv() {
    let dir = TempDir::new();
    let path = dir.join("echo");
    let out = run(ipcraft().args(["fifo", "make"]).arg(&path), b"");
    assert!(out.status.success());
    let mut recv = ipcraft()
        .args(["fifo", "recv"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sh = std::process::Command::new("sh")
        .args(["-c", r#"echo hi > "$0""#])
        .arg(&path)
        .spawn()
        .unwrap();
    wait_ok(&mut sh);
    let mut got = String::new();
    recv.stdout.take().unwrap().read_to_string(&mut got).unwrap();
    wait_ok(&mut recv);
    assert_eq!(got, "hi\n");
    fifo::remove(&path).unwrap();
}

/// Streams `len` pattern bytes into a new FIFO with `ipcraft fifo send`
/// (stdin) while `reader` (given the FIFO's path) copies it to its stdout,
/// and checks every byte arrived.
fn send_through_fifo(mut reader: std::process::Command, len: usize, seed: u64) {
    let dir = TempDir::new();
    let path = dir.join("stream");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let data = pattern(len, seed);
    let mut reader = reader.arg(&path).stdout(Stdio::piped()).spawn().unwrap();
    let mut out_pipe = reader.stdout.take().unwrap();
    let collector = std::thread::spawn(move || {
        let mut got = Vec::new();
        out_pipe.read_to_end(&mut got).unwrap();
        got
    });
    let sent = run(ipcraft().args(["fifo", "send"]).arg(&path), &data);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    wait_ok(&mut reader);
    let got = collector.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "content differs");
}

#[test]
fn cli_send_stdin_to_shell_cat_one_mebibyte() {
    send_through_fifo(std::process::Command::new("cat"), 1 << 20, 7);
}

#[test]
fn two_cli_processes_move_bytes_exactly() {
    let mut recv = ipcraft();
    recv.args(["fifo", "recv"]);
    send_through_fifo(recv, 3 << 20, 9);
}

#[test]
fn reader_gone_mid_stream_is_an_error_not_a_signal() {
    let dir = TempDir::new();
    let path = dir.join("gone");
    let _guard = fifo::create(&path, 0o600).unwrap();
    // `head -c 10` reads a little, then exits while the sender still writes.
    let mut head = std::process::Command::new("head")
        .args(["-c", "10"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = run(ipcraft().args(["fifo", "send"]).arg(&path), &pattern(4 << 20, 1));
    let mut got = Vec::new();
    head.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    wait_ok(&mut head);
    assert_eq!(got.len(), 10);
    assert_fails(&sent, 1, "Broken pipe");
}

#[test]
fn cli_recv_into_closed_stdout_ends_quietly() {
    let dir = TempDir::new();
    let path = dir.join("q");
    let _guard = fifo::create(&path, 0o600).unwrap();
    let script = r#"set -o pipefail; "$0" fifo recv "$1" | head -c 5"#;
    let mut pipeline = std::process::Command::new("bash")
        .args(["-c", script])
        .arg(env!("CARGO_BIN_EXE_ipcraft"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = FifoOptions::new().timeout(TIMEOUT).open_write(&path).unwrap();
    // Keep writing until the reader side goes away (it exits after head closes).
    let chunk = pattern(64 * 1024, 5);
    let mut broke = false;
    for _ in 0..1024 {
        if let Err(e) = w.write_all(&chunk) {
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
            broke = true;
            break;
        }
    }
    assert!(broke, "ipcraft fifo recv kept reading after stdout closed");
    let mut stderr = String::new();
    pipeline.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut stdout = Vec::new();
    pipeline.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    wait_ok(&mut pipeline);
    assert_eq!(stdout, &chunk[..5]);
    assert_eq!(stderr, "", "a closed stdout ends quietly");
}

/// A FIFO another user made in a shared directory is refused, naming the
/// owner, unless the caller allows it (it was used without a word before).
#[test]
fn another_users_fifo_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut nobody) = common::as_nobody("/usr/bin/mkfifo".as_ref()) else {
        eprintln!("skipped: making a FIFO owned by another user needs root");
        return;
    };
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = dir.join("theirs");
    assert_ok(&run(nobody.args(["-m", "666"]).arg(&path), b""));
    for args in [["fifo", "send"], ["fifo", "recv"]] {
        let out = run(ipcraft().args(args).arg(&path).args(["--timeout", "1"]), b"x");
        assert_fails(&out, 1, "owned by uid 65534");
    }
    let e = FifoOptions::new().nonblocking(true).open_read(&path).unwrap_err();
    assert!(matches!(e.cause(), Cause::ForeignOwner { owner: 65534, .. }), "{e}");
    let r = FifoOptions::new()
        .nonblocking(true)
        .allow_foreign(true)
        .open_read(&path);
    assert!(r.is_ok(), "allowed explicitly");
}
