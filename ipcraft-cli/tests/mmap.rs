//! Memory mappings: file mappings of every kind, anonymous mappings across
//! `fork`, and truncation under a mapping (an error, never SIGBUS).

mod common;

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{assert_fails, assert_ok, ipcraft, pattern, run, wait, TempDir};
use ipcraft::mmap::MmapOptions;
use ipcraft::Cause;

#[test]
fn smoke() {
    let dir = TempDir::new();
    let path = dir.join("smoke");
    std::fs::write(&path, b"mapped bytes").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = MmapOptions::new().map(&file).unwrap();
    assert_eq!(map.len(), 12);
    let mut buf = [0u8; 12];
    map.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"mapped bytes");
}

#[test]
fn cli_cat_matches_cat_for_text_binary_and_empty() {
    let dir = TempDir::new();
    let text = dir.join("text");
    std::fs::write(&text, "line one\nline two\nno newline at end").unwrap();
    let binary = dir.join("binary");
    std::fs::write(&binary, pattern(3 << 20, 21)).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    for files in [
        vec![&text],
        vec![&binary],
        vec![&empty],
        vec![&text, &empty, &binary, &text],
    ] {
        let ours = run(ipcraft().args(["mmap", "cat"]).args(&files), b"");
        assert_ok(&ours);
        let theirs = run(Command::new("cat").args(&files), b"");
        assert_eq!(ours.stdout.len(), theirs.stdout.len(), "{files:?}");
        assert!(ours.stdout == theirs.stdout, "content differs for {files:?}");
    }
    let out = run(ipcraft().args(["mmap", "cat"]).arg(&empty), b"");
    assert_ok(&out);
    assert!(out.stdout.is_empty());
}

#[test]
fn cli_cat_missing_file_and_directory() {
    let dir = TempDir::new();
    assert_fails(
        &run(ipcraft().args(["mmap", "cat"]).arg(dir.join("missing")), b""),
        1,
        "No such file or directory",
    );
    assert_fails(
        &run(ipcraft().args(["mmap", "cat"]).arg(dir.path()), b""),
        1,
        "(it is a directory)",
    );
    assert_fails(&run(ipcraft().args(["mmap", "cat"]), b""), 2, "FILES");
    // Like cat: a bad file is reported and the others still print.
    let good = dir.join("good");
    std::fs::write(&good, b"still printed\n").unwrap();
    let out = run(ipcraft().args(["mmap", "cat"]).arg(dir.join("missing")).arg(&good), b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"still printed\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn offsets_need_not_be_page_aligned() {
    let dir = TempDir::new();
    let path = dir.join("off");
    let data = pattern(10_000, 5);
    std::fs::write(&path, &data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = MmapOptions::new().offset(4099).len(100).map(&file).unwrap();
    let mut buf = vec![0u8; 100];
    map.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, &data[4099..4199]);
    let tail = MmapOptions::new().offset(9_990).map(&file).unwrap();
    assert_eq!(tail.len(), 10);
    assert_eq!(tail.read::<[u8; 10]>(0).unwrap(), data[9_990..]);
    let e = MmapOptions::new().offset(20_000).map(&file).unwrap_err();
    assert!(matches!(e.cause(), Cause::OverLimit { .. }), "{e}");
}

#[test]
fn out_of_range_and_read_only_are_errors() {
    let dir = TempDir::new();
    let path = dir.join("ro");
    std::fs::write(&path, b"0123456789").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = MmapOptions::new().map(&file).unwrap();
    assert!(matches!(
        map.read_at(8, &mut [0u8; 4]).unwrap_err().cause(),
        Cause::OverLimit { .. }
    ));
    assert!(map.read::<u64>(usize::MAX - 2).is_err());
    assert!(!map.is_writable());
    assert_eq!(
        map.write_at(0, b"x").unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
}

#[test]
fn shared_file_mapping_writes_reach_the_file_private_do_not() {
    let dir = TempDir::new();
    let path = dir.join("rw");
    std::fs::write(&path, b"aaaaaaaa").unwrap();
    let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let private = MmapOptions::new().map_private(&file).unwrap();
    private.write_at(0, b"PP").unwrap();
    let shared = MmapOptions::new().map_shared(&file).unwrap();
    shared.write_at(4, b"SS").unwrap();
    shared.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"aaaaSSaa");
    let mut buf = [0u8; 8];
    private.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf[..2], b"PP", "the private copy keeps its own write");
}

#[test]
fn empty_file_maps_to_an_empty_view() {
    let dir = TempDir::new();
    let path = dir.join("empty");
    std::fs::write(&path, b"").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = MmapOptions::new().map(&file).unwrap();
    assert!(map.is_empty());
    map.read_at(0, &mut []).unwrap();
    map.flush().unwrap();
    let (mut r, w) = ipcraft::pipe::pipe().unwrap();
    map.write_to(&w, 0, 0).unwrap();
    drop(w);
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert!(got.is_empty());
}

/// Forks; the child runs `child` (which must only use the mapping's kernel
/// copies) and exits with its result; returns the child's exit code.
fn in_forked_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only calls `child`, whose work is raw system calls
    // on an existing mapping (no allocation on success), then `_exit`.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", io::Error::last_os_error()),
        0 => {
            let code = child();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child just created.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status), "child died: {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }
}

#[test]
fn anonymous_shared_mapping_is_seen_across_fork() {
    let map = MmapOptions::new().map_anon_shared(4096).unwrap();
    map.write::<u64>(0, &0x1111).unwrap();
    let code = in_forked_child(|| {
        let saw_parent = matches!(map.read::<u64>(0), Ok(0x1111));
        let wrote = map.write::<u64>(8, &0x2222).is_ok();
        if saw_parent && wrote {
            0
        } else {
            1
        }
    });
    assert_eq!(code, 0, "child did not see the parent's write");
    assert_eq!(map.read::<u64>(8).unwrap(), 0x2222, "parent sees the child's write");
}

#[test]
fn anonymous_private_mapping_is_not_shared_across_fork() {
    let map = MmapOptions::new().map_anon(4096).unwrap();
    map.write::<u64>(0, &0x1111).unwrap();
    let code = in_forked_child(|| {
        // The child starts with a copy of the parent's memory...
        let saw_copy = matches!(map.read::<u64>(0), Ok(0x1111));
        let wrote = map.write::<u64>(8, &0x2222).is_ok();
        if saw_copy && wrote {
            0
        } else {
            1
        }
    });
    assert_eq!(code, 0);
    // ...but its writes stay its own.
    assert_eq!(map.read::<u64>(8).unwrap(), 0);
}

#[test]
fn truncation_under_the_mapping_is_an_error_not_sigbus() {
    let dir = TempDir::new();
    let path = dir.join("shrinks");
    std::fs::write(&path, pattern(1 << 20, 8)).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = MmapOptions::new().map(&file).unwrap();
    // Another process truncates the file.
    assert_ok(&run(Command::new("truncate").args(["-s", "0"]).arg(&path), b""));
    let e = map.read_at(8192, &mut [0u8; 64]).unwrap_err();
    assert!(matches!(e.cause(), Cause::Truncated), "{e}");
    assert!(map.read::<u32>(1 << 19).is_err());
    let (_r, w) = ipcraft::pipe::pipe().unwrap();
    let e = map.write_to(&w, 4096, 4096).unwrap_err();
    assert!(matches!(e.cause(), Cause::Truncated), "{e}");
}

#[test]
fn cli_cat_of_a_file_that_shrinks_fails_cleanly() {
    let dir = TempDir::new();
    let path = dir.join("big");
    std::fs::write(&path, pattern(64 << 20, 9)).unwrap();
    let mut child = ipcraft()
        .args(["mmap", "cat"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = vec![0u8; 64 * 1024];
    out.read_exact(&mut first).unwrap();
    // ipcraft is now blocked writing the rest into the full pipe.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = wait(&mut child);
    assert_eq!(status.signal(), None, "killed by a signal: {status}");
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("shrank"), "{stderr}");
    assert!(first.len() + rest.len() < 64 << 20);
}

/// Files that cannot be mapped are printed with read(2) when they read in
/// order (procfs files whose size reads 0, a pipe on /dev/stdin) and
/// refused with one clear line otherwise; none is silently skipped, and a
/// FIFO never hangs the command. (procfs and /dev/stdin printed nothing and
/// exited 0 before; a FIFO hung.)
#[test]
fn cli_cat_of_files_that_cannot_be_mapped() {
    for proc_file in ["/proc/sys/kernel/ostype", "/proc/version"] {
        let expected = std::fs::read(proc_file).unwrap();
        assert!(!expected.is_empty());
        assert_eq!(std::fs::metadata(proc_file).unwrap().len(), 0, "procfs reports size 0");
        let out = run(ipcraft().args(["mmap", "cat", proc_file]), b"");
        assert_ok(&out);
        assert_eq!(out.stdout, expected, "{proc_file}");
    }
    let input = pattern(200_000, 9);
    let out = run(ipcraft().args(["mmap", "cat", "/dev/stdin"]), &input);
    assert_ok(&out);
    assert_eq!(out.stdout, input, "a pipe on stdin is copied like cat");

    let dir = TempDir::new();
    let fifo = dir.join("fifo");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"after the refusals\n").unwrap();
    let out = run(
        ipcraft().args(["mmap", "cat"]).arg(&fifo).arg("/dev/null").arg(&file),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("named FIFO"), "{stderr}");
    assert!(
        stderr.contains("/dev/null") && stderr.contains("character device"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert_eq!(out.stdout, b"after the refusals\n", "the good file is still printed");
}
