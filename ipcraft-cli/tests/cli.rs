//! The `ipcraft` command's contract (SPEC §2): output, exit status, one-line
//! errors, help, and quiet ends on a closed stdout.

mod common;

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use common::{assert_fails, ipcraft, pattern, run, wait_ok};

#[test]
fn smoke() {
    let out = run(ipcraft().args(["pipe", "echo", "hello world"]), b"");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello world\n");
    assert!(out.stderr.is_empty());
}

#[test]
fn pipe_echo_120_kib_argument_comes_back_identical() {
    // Printable, no NUL: the largest single argument the OS accepts is 128 KiB.
    let arg: Vec<u8> = pattern(120 * 1024, 11).into_iter().map(|b| b'!' + b % 94).collect();
    let out = run(
        ipcraft().args(["pipe", "echo"]).arg(std::ffi::OsStr::from_bytes(&arg)),
        b"",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), arg.len() + 1);
    assert!(out.stdout[..arg.len()] == arg[..], "content differs");
    assert_eq!(out.stdout.last(), Some(&b'\n'));
}

#[test]
fn pipe_echo_passes_non_utf8_and_empty_strings() {
    let out = run(
        ipcraft()
            .args(["pipe", "echo"])
            .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe raw")),
        b"",
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, b"\xff\xfe raw\n");
    let out = run(ipcraft().args(["pipe", "echo", ""]), b"");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"\n");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    assert_fails(&run(&mut ipcraft(), b""), 2, "subcommand");
    assert_fails(&run(ipcraft().arg("bogus"), b""), 2, "bogus");
    assert_fails(&run(ipcraft().args(["pipe", "echo"]), b""), 2, "<STRING>");
    assert_fails(
        &run(ipcraft().args(["pipe", "echo", "a", "b"]), b""),
        2,
        "unexpected argument",
    );
    assert_fails(
        &run(ipcraft().args(["fifo", "recv", "/tmp/x", "--timeout=-1"]), b""),
        2,
        "seconds",
    );
}

#[test]
fn help_and_version_succeed_on_stdout() {
    for args in [
        &["--help"][..],
        &["pipe", "--help"],
        &["fifo", "--help"],
        &["fifo", "send", "--help"],
        &["mq", "--help"],
        &["mmap", "--help"],
        &["shm", "--help"],
        &["shm", "write", "--help"],
        &["chan", "--help"],
        &["uds", "--help"],
        &["bench", "--help"],
        &["--version"],
    ] {
        let out = run(ipcraft().args(args), b"");
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
    let out = run(ipcraft().args(["fifo", "--help"]), b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("unrelated processes") && text.contains("recv"), "{text}");
    // The top-level help lists every facility.
    let out = run(ipcraft().arg("--help"), b"");
    let text = String::from_utf8(out.stdout).unwrap();
    for group in ["pipe", "fifo", "mq", "mmap", "shm", "chan", "uds", "bench"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(group)),
            "{group} missing from --help"
        );
    }
}

#[test]
fn output_into_closed_stdout_ends_quietly() {
    let arg: String = "y".repeat(100 * 1024);
    let mut child = ipcraft()
        .args(["pipe", "echo", &arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"y");
    drop(stdout);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    wait_ok(&mut child);
    assert_eq!(stderr, "");
}
