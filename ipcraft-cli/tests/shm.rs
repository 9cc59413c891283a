//! POSIX shared memory between real processes: the classic writer/reader exercise
//! activity against C programs in both directions, and SPEC §4's refusals.

mod common;

use std::io;
use std::process::Command;

use common::{as_nobody, assert_fails, assert_ok, c_program, ipcraft, role, run, unique, wait_ok, ShmName};
use ipcraft::shm::{self, Shm, ShmOptions};
use ipcraft::Cause;

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm")
        .join(name.trim_start_matches('/'))
        .exists()
}

#[test]
fn smoke() {
    let name = ShmName::new("shm");
    {
        let obj = Shm::create(&name.0, 16).unwrap();
        let map = obj.map().unwrap();
        map.write(0, &0xDEAD_BEEFu32).unwrap();
        map.write(4, &-7i64).unwrap();
        let other = Shm::open_read_only(&name.0).unwrap().map().unwrap();
        assert_eq!(other.read::<u32>(0).unwrap(), 0xDEAD_BEEF);
        assert_eq!(other.read::<i64>(4).unwrap(), -7);
        assert!(exists(&name.0));
    }
    assert!(!exists(&name.0), "created object is unlinked on drop");
}

#[test]
fn c_writer_then_cli_reader() {
    let name = ShmName::new("shm");
    assert_ok(&run(Command::new(c_program("shm_writer")).args([&name.0, "100"]), b""));
    let out = run(ipcraft().args(["shm", "read", &name.0]), b"");
    assert_ok(&out);
    assert_eq!(out.stdout, b"100\n");
    // The library reads it too, without the name's slash.
    let map = Shm::open_read_only(name.0.trim_start_matches('/'))
        .unwrap()
        .map()
        .unwrap();
    assert_eq!(map.read::<u8>(0).unwrap(), 100);
}

#[test]
fn cli_writer_then_c_reader() {
    let name = ShmName::new("shm");
    assert_ok(&run(ipcraft().args(["shm", "write", &name.0, "42"]), b""));
    assert_eq!(shm::stat(&name.0).unwrap().size, 1, "sized to the u8 value");
    let out = run(Command::new(c_program("shm_reader")).arg(&name.0), b"");
    assert_ok(&out);
    assert_eq!(out.stdout, b"42\n");
}

#[test]
fn cli_round_trips_every_type() {
    let name = ShmName::new("shm");
    for (ty, value, size) in [
        ("u8", "255", 1),
        ("i32", "-2147483648", 4),
        ("u32", "4294967295", 4),
        ("i64", "-9000000000", 8),
        ("u64", "18446744073709551615", 8),
        ("f64", "3.25", 8),
        ("str", "hello, shared world", 19),
    ] {
        assert_ok(&run(
            ipcraft().args(["shm", "write", &name.0, value, "--type", ty]),
            b"",
        ));
        assert_eq!(shm::stat(&name.0).unwrap().size, size, "{ty}");
        let out = run(ipcraft().args(["shm", "read", &name.0, "--type", ty]), b"");
        assert_ok(&out);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{value}\n"), "{ty}");
    }
}

#[test]
fn cli_bad_values_and_short_objects() {
    let name = ShmName::new("shm");
    assert_fails(
        &run(ipcraft().args(["shm", "write", &name.0, "256"]), b""),
        2,
        "is not a u8",
    );
    assert_fails(
        &run(ipcraft().args(["shm", "write", &name.0, "x", "-t", "f64"]), b""),
        2,
        "is not an f64",
    );
    assert!(!exists(&name.0), "nothing created for a bad value");
    assert_ok(&run(ipcraft().args(["shm", "write", &name.0, "7"]), b""));
    assert_fails(
        &run(ipcraft().args(["shm", "read", &name.0, "-t", "u64"]), b""),
        1,
        "is 1 bytes, but a u64 is 8 bytes",
    );
    // A value read as a type of another size is an error naming both
    // sizes, never a wrong number (this printed 0 before).
    assert_ok(&run(
        ipcraft().args(["shm", "write", &name.0, "3.5", "--type", "f64"]),
        b"",
    ));
    assert_fails(
        &run(ipcraft().args(["shm", "read", &name.0]), b""),
        1,
        "is 8 bytes, but a u8 is 1 bytes",
    );
    assert_fails(
        &run(ipcraft().args(["shm", "read", &name.0, "-t", "u32"]), b""),
        1,
        "is 8 bytes, but a u32 is 4 bytes",
    );
    let out = run(ipcraft().args(["shm", "read", &name.0, "-t", "f64"]), b"");
    assert_eq!(out.stdout, b"3.5\n");
    assert_fails(
        &run(ipcraft().args(["shm", "read", "/ipcraft-test-missing"]), b""),
        1,
        "No such file or directory",
    );
}

#[test]
fn create_is_exclusive_and_resizable() {
    let name = ShmName::new("shm");
    let obj = Shm::create(&name.0, 100).unwrap();
    assert_eq!(
        Shm::create(&name.0, 1).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(obj.size().unwrap(), 100);
    obj.resize(1 << 20).unwrap();
    assert_eq!(obj.size().unwrap(), 1 << 20);
    obj.map().unwrap().write(1 << 19, &9u8).unwrap();
    obj.resize(10).unwrap();
    assert_eq!(obj.size().unwrap(), 10);
    let info = obj.info().unwrap();
    assert_eq!((info.mode, info.uid), (0o600, rustix::process::geteuid().as_raw()));
}

/// Child-process role, started with `role("role_create_with_umask", ...)`.
fn role_create_with_umask(args: Vec<String>) {
    // SAFETY: umask only changes this role process's file creation mask.
    unsafe { libc::umask(0o077) };
    let mut obj = ShmOptions::new()
        .create_new(true)
        .mode(0o644)
        .size(8)
        .open(&args[0])
        .unwrap();
    obj.keep();
}

#[test]
fn mode_is_exact_despite_umask() {
    let name = ShmName::new("shm");
    let mut child = role("role_create_with_umask", &[&name.0]).spawn().unwrap();
    wait_ok(&mut child);
    let info = shm::stat(&name.0).unwrap();
    assert_eq!((info.mode, info.size), (0o644, 8));
}

#[test]
fn another_users_object_is_not_adopted() {
    let Some(mut nobody) = as_nobody(env!("CARGO_BIN_EXE_ipcraft").as_ref()) else {
        eprintln!("skipped: creating an object owned by another user needs root");
        return;
    };
    let name = ShmName::new("shm");
    assert_ok(&run(nobody.args(["shm", "write", &name.0, "5"]), b""));
    assert_eq!(shm::stat(&name.0).unwrap().uid, 65534);
    assert_fails(
        &run(ipcraft().args(["shm", "write", &name.0, "9"]), b""),
        1,
        "owned by uid 65534",
    );
    let e = ShmOptions::new().create(true).open(&name.0).unwrap_err();
    assert!(matches!(e.cause(), Cause::ForeignOwner { owner: 65534, .. }), "{e}");
    // Reading it is refused too unless the user says another owner is fine.
    assert_fails(
        &run(ipcraft().args(["shm", "read", &name.0]), b""),
        1,
        "owned by uid 65534",
    );
    let out = run(ipcraft().args(["shm", "read", &name.0, "--allow-foreign"]), b"");
    assert_eq!(out.stdout, b"5\n", "the value was not touched");
    // Removing it names the owner and leaves it (root could unlink it).
    assert_fails(
        &run(ipcraft().args(["shm", "rm", &name.0]), b""),
        1,
        "owned by uid 65534",
    );
    assert_eq!(shm::stat(&name.0).unwrap().uid, 65534, "still there");
}

#[test]
fn ls_stat_and_rm() {
    let name = ShmName::new("shm");
    assert_ok(&run(
        ipcraft().args(["shm", "write", &name.0, "12345", "-t", "u32"]),
        b"",
    ));
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let line = format!("{} size=4 mode=0600 uid={uid} gid={gid}", name.0);
    let out = run(ipcraft().args(["shm", "stat", &name.0]), b"");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{line}\n"));
    let out = run(ipcraft().args(["shm", "ls"]), b"");
    assert_ok(&out);
    assert!(String::from_utf8(out.stdout).unwrap().lines().any(|l| l == line));
    assert!(shm::list().unwrap().iter().any(|i| i.name.as_str() == name.0));
    assert_ok(&run(ipcraft().args(["shm", "rm", &name.0]), b""));
    assert!(!exists(&name.0));
    assert_fails(
        &run(ipcraft().args(["shm", "rm", &name.0]), b""),
        1,
        "No such file or directory",
    );
    assert_fails(
        &run(ipcraft().args(["shm", "stat", &name.0]), b""),
        1,
        "No such file or directory",
    );
}

#[test]
fn bad_names_fail_before_any_system_call() {
    let long = "s".repeat(256);
    for bad in ["", "/", "/a/b", ".", "..", "/.", "a\0b", long.as_str()] {
        let e = Shm::create(bad, 8).unwrap_err();
        assert!(matches!(e.cause(), Cause::InvalidName(_)), "{bad:?}: {e}");
        assert!(matches!(shm::remove(bad).unwrap_err().cause(), Cause::InvalidName(_)));
        assert!(matches!(shm::stat(bad).unwrap_err().cause(), Cause::InvalidName(_)));
    }
    assert_fails(
        &run(ipcraft().args(["shm", "write", "/a/b", "1"]), b""),
        2,
        "invalid name",
    );
    assert_fails(&run(ipcraft().args(["shm", "read", ".."]), b""), 2, "invalid name");
    let non_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/bad\xff");
    assert_fails(&run(ipcraft().args(["shm", "stat"]).arg(non_utf8), b""), 2, "UTF-8");
}

#[test]
fn read_only_open_cannot_write() {
    let name = ShmName::new("shm");
    let _obj = Shm::create(&name.0, 8).unwrap();
    let ro = Shm::open_read_only(&name.0).unwrap().map().unwrap();
    assert!(!ro.is_writable());
    assert!(ro.write(0, &1u8).is_err());
}

#[test]
fn truncated_by_another_process_is_an_error() {
    let name = ShmName::new("shm");
    let obj = Shm::create(&name.0, 1 << 16).unwrap();
    let map = obj.map().unwrap();
    map.write(60_000, &1u64).unwrap();
    let path = format!("/dev/shm/{}", name.0.trim_start_matches('/'));
    assert_ok(&run(Command::new("truncate").args(["-s", "0", &path]), b""));
    let e = map.read::<u64>(60_000).unwrap_err();
    assert!(matches!(e.cause(), Cause::Truncated), "{e}");
    assert!(matches!(map.write(100, &1u8).unwrap_err().cause(), Cause::Truncated));
}

#[test]
fn full_dev_shm_is_an_error_not_sigbus() {
    // A private mount namespace with a 64 KiB tmpfs over /dev/shm.
    let probe = run(
        Command::new("unshare").args(["--mount", "--map-root-user", "true"]),
        b"",
    );
    let unshare_args: &[&str] = if rustix::process::geteuid().is_root() {
        &["--mount"]
    } else if probe.status.success() {
        &["--mount", "--map-root-user"]
    } else {
        eprintln!(
            "skipped: cannot create a mount namespace here (unshare: {})",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    };
    let script = r#"mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 99
        "$0" shm write /big "$1" --type str; echo "status=$?"; ls /dev/shm"#;
    let big = "x".repeat(100 * 1024);
    let out = run(
        Command::new("unshare")
            .args(unshare_args)
            .args(["sh", "-c", script])
            .arg(env!("CARGO_BIN_EXE_ipcraft"))
            .arg(&big),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(99) {
        eprintln!("skipped: cannot mount a tmpfs in the namespace ({})", stderr.trim());
        return;
    }
    assert!(stdout.contains("status=1"), "stdout: {stdout}; stderr: {stderr}");
    assert!(
        stderr.starts_with("ipcraft: ") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(!stdout.contains("big"), "the failed object was removed: {stdout}");
}

/// A symbolic link planted in /dev/shm (by an unprivileged user when the
/// tests run as root) is refused by every command that opens an object;
/// the file it points to is never touched. glibc's shm_open refuses links
/// too (O_NOFOLLOW); this once truncated the link's target.
#[test]
fn planted_symlink_is_refused_and_its_target_untouched() {
    let dir = common::TempDir::new();
    let target = dir.join("precious");
    std::fs::write(&target, b"root's data").unwrap();
    let name = ShmName::new("shm");
    let link = format!("/dev/shm{}", name.0);
    let plant = match as_nobody("/bin/ln".as_ref()) {
        Some(mut cmd) => run(cmd.arg("-s").arg(&target).arg(&link), b""),
        None => run(Command::new("ln").arg("-s").arg(&target).arg(&link), b""),
    };
    assert_ok(&plant);
    for args in [
        vec!["shm", "write", &name.0, "7"],
        vec!["shm", "write", &name.0, "7", "--type", "u64"],
        vec!["shm", "read", &name.0],
        vec!["shm", "read", &name.0, "--allow-foreign"],
        vec!["shm", "stat", &name.0],
        vec!["chan", "send", &name.0],
        vec!["chan", "recv", &name.0],
        vec!["chan", "stat", &name.0],
        vec!["chan", "rm", &name.0],
    ] {
        assert_fails(&run(ipcraft().args(&args), b"x"), 1, "symbolic link");
    }
    for opts in [
        ShmOptions::new(),
        ShmOptions::new().create(true).clone(),
        ShmOptions::new().allow_foreign(true).clone(),
    ] {
        let e = opts.open(&name.0).unwrap_err();
        assert!(matches!(e.cause(), Cause::Symlink), "{e}");
    }
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"root's data",
        "the link's target was touched"
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

/// Something other than a regular file under a /dev/shm name (a FIFO here)
/// is refused at once, without blocking in open.
#[test]
fn planted_fifo_is_refused_without_blocking() {
    let name = ShmName::new("shm");
    let path = format!("/dev/shm{}", name.0);
    rustix::fs::mkfifoat(rustix::fs::CWD, path.as_str(), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let e = Shm::open_read_only(&name.0).unwrap_err();
    assert!(matches!(e.cause(), Cause::WrongType { found: "a FIFO", .. }), "{e}");
    assert_fails(
        &run(ipcraft().args(["shm", "read", &name.0]), b""),
        1,
        "not a shared memory object",
    );
}

/// One name rule for every facility: 255 bytes after the slash work for
/// shared memory, channels and queues alike; 256 are refused up front.
#[test]
fn longest_name_works_everywhere() {
    let mut long = format!("/{}-", unique("long"));
    while long.len() < 256 {
        long.push('n');
    }
    let name = ShmName(long);
    let obj = Shm::create(&name.0, 8).unwrap();
    obj.map().unwrap().write(0, &5u64).unwrap();
    assert_eq!(Shm::open(&name.0).unwrap().map().unwrap().read::<u64>(0).unwrap(), 5);
    drop(obj);
    assert_ok(&run(
        ipcraft().args(["chan", "create", &name.0, "--capacity", "4K"]),
        b"",
    ));
    let out = run(ipcraft().args(["chan", "stat", &name.0]), b"");
    assert_ok(&out);
    assert_ok(&run(ipcraft().args(["chan", "rm", &name.0]), b""));
    let q = ipcraft::mq::MessageQueue::create(&name.0, 1, 8).unwrap();
    q.send(b"x", 0).unwrap();
    drop(q);
    let too_long = format!("/{}", "n".repeat(256));
    for args in [["shm", "stat"], ["chan", "stat"], ["mq", "attr"]] {
        assert_fails(
            &run(ipcraft().args(args).arg(&too_long), b""),
            2,
            "longer than 255 bytes",
        );
    }
}

common::roles!(role_create_with_umask);
