//! Helpers shared by ipcraft's integration tests (every crate of the
//! workspace): unique names, temporary directories that clean up, child
//! processes that run a role from the same test binary, bounded waits and
//! C peers compiled at test time.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bound for any wait in a test; a hang fails instead of stalling CI.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables that tell a re-executed test binary which role to
/// play, and with which arguments.
const ROLE_NAME_ENV: &str = "IPCRAFT_TEST_ROLE";
const ROLE_ARGS_ENV: &str = "IPCRAFT_TEST_ROLE_ARGS";

/// A name no other test or process uses: prefix, pid and a counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "ipcraft-test-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh POSIX object name (`/ipcraft-test-PREFIX-PID-N`) whose
/// `/dev/shm` entry is removed on drop, pass or fail, whoever owns it (some
/// tests make objects as another user, which `shm::remove` rightly refuses).
pub struct ShmName(pub String);

impl ShmName {
    pub fn new(prefix: &str) -> Self {
        ShmName(format!("/{}", unique(prefix)))
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm{}", self.0));
    }
}

/// A temporary directory removed (with its contents) on drop, pass or fail.
pub struct TempDir(PathBuf);

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("dir"));
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command that re-runs this test binary to play `role` (a function
/// registered with [`roles!`]) with `args`. The role runs instead of the
/// test harness; its exit status is 0 when it returns, 101 when it panics.
pub fn role(role: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.env(ROLE_NAME_ENV, role)
        .env(ROLE_ARGS_ENV, args.join("\u{1f}"))
        .stdout(Stdio::null());
    cmd
}

/// Registers the child-process roles of a test binary. Roles are plain
/// functions taking their arguments, not tests: the harness never lists or
/// runs them, so none can pass without doing anything. When [`role`]
/// re-runs the binary, the named role runs before the harness starts (from
/// the binary's initialisers) and the process exits with its outcome.
///
/// ```text
/// fn role_writer(args: Vec<String>) { /* ... */ }
/// ipcraft_testkit::roles!(role_writer);
/// ```
#[macro_export]
macro_rules! roles {
    ($($role:ident),+ $(,)?) => {
        #[used]
        #[link_section = ".init_array"]
        static IPCRAFT_TEST_ROLES: extern "C" fn() = {
            extern "C" fn dispatch() {
                $crate::dispatch_role(&[$((stringify!($role), $role as $crate::Role)),+]);
            }
            dispatch
        };
    };
}

/// A child-process role: a function of its arguments.
pub type Role = fn(Vec<String>);

/// Runs the role this process was started for, if any, and exits; returns
/// at once in a process started by the test harness. Called by [`roles!`].
#[doc(hidden)]
pub fn dispatch_role(roles: &[(&str, Role)]) {
    let Ok(name) = std::env::var(ROLE_NAME_ENV) else { return };
    let raw = std::env::var(ROLE_ARGS_ENV).unwrap_or_default();
    let args = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split('\u{1f}').map(str::to_owned).collect()
    };
    let Some(&(_, run)) = roles.iter().find(|(n, _)| *n == name) else {
        eprintln!("no role {name:?} in this test binary");
        std::process::exit(2);
    };
    // As Rust's own start-up does before main: a closed pipe is an error,
    // not a death by SIGPIPE.
    // SAFETY: setting a standard disposition before this process has other threads.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = match std::panic::catch_unwind(move || run(args)) {
        Ok(()) => 0,
        Err(_) => 101,
    };
    std::process::exit(code);
}

/// Makes `fd` appear as descriptor `target` in the child `cmd` starts.
pub fn pass_fd(cmd: &mut Command, fd: OwnedFd, target: i32) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls dup2 or fcntl, which are async-signal-safe. `fd` is moved into the closure
    // so it stays open in the parent until the command is dropped.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            // dup2 onto itself would leave close-on-exec set; clear it instead.
            let r = if raw == target {
                libc::fcntl(raw, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, target)
            };
            if r == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `child` has finished attaching as a channel side whose state is
/// `side`: the side shows alive (its lock is held) and the process sleeps
/// (waiting for data, for room or for its stdin). A side whose lock is held
/// may still be between taking the lock and marking itself attached
/// (preempted there on a busy host); killed then, it leaves the channel
/// looking as if nobody had come.
pub fn settled(child: &Child, side: ipcraft::channel::SideState) -> bool {
    matches!(side, ipcraft::channel::SideState::Alive(_)) && asleep(child)
}

/// Whether `child` sleeps (state `S` in `/proc/PID/stat`): a process that
/// attached to an IPC object and now waits on it has finished attaching.
pub fn asleep(child: &Child) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // The state letter follows the command name in parentheses.
    state.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('S'))
}

/// Waits for `child` at most [`TIMEOUT`]; kills it and panics on time-out.
pub fn wait(child: &mut Child) -> ExitStatus {
    match ipcraft::process::wait_timeout(child, TIMEOUT).expect("wait") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {TIMEOUT:?}", child.id());
        }
    }
}

/// Waits (bounded) for `child`, whose stderr is piped, and returns its
/// status and what it wrote to stderr.
pub fn wait_with_stderr(mut child: Child) -> (ExitStatus, String) {
    let mut err = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait(&mut child);
    (status, reader.join().expect("stderr reader"))
}

/// Waits for `child` and asserts it exited 0.
pub fn wait_ok(child: &mut Child) {
    let status = wait(child);
    assert!(status.success(), "child {} failed: {status}", child.id());
}

/// Runs `cmd` with `input` on stdin, collecting stdout and stderr, bounded
/// by [`TIMEOUT`].
pub fn run(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The command may exit without reading everything; that is its business.
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    // Both outputs are read in threads and the wait comes first: it is
    // bounded (the child is killed at the time-out), a read to the end of a
    // hung child's output is not.
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let status = wait(&mut child);
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    feeder.join().expect("stdin feeder");
    Output { status, stdout, stderr }
}

/// Asserts a command failed the ipcraft way: exit `code`, one line on stderr
/// starting `ipcraft: ` and containing `needle`, nothing on stdout.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "status; stderr: {stderr}");
    assert!(stderr.starts_with("ipcraft: "), "stderr: {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Deterministic pseudo-random bytes (xorshift), so content checks are exact.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Compiles the C program `src` (a test's own `tests/c/NAME.c`) with `cc`,
/// once per test binary, and returns the executable's path.
pub fn c_program(src: impl AsRef<Path>) -> PathBuf {
    let src = src.as_ref();
    let name = src.file_stem().and_then(|s| s.to_str()).expect("C source named NAME.c");
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let map = built.get_or_insert_with(HashMap::new);
    if let Some(path) = map.get(name) {
        return path.clone();
    }
    // target/<profile>/deps/TEST-HASH -> target/<profile>/c
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir").join("c");
    std::fs::create_dir_all(&dir).expect("create C output dir");
    let out = dir.join(name);
    // Build under a unique name and rename, so test binaries compiling the
    // same program at once never see a half-written executable.
    let tmp = dir.join(format!("{name}.{}", unique("cc")));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(src)
        .arg("-lrt")
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {}", src.display());
    std::fs::rename(&tmp, &out).expect("rename compiled program");
    map.insert(name.to_owned(), out.clone());
    out
}

/// A command that runs `cmd` as the unprivileged user `nobody` when the
/// tests run as root (via `setpriv`), or `None` when they do not run as
/// root (then the test's process already is unprivileged).
pub fn as_nobody(program: &Path) -> Option<Command> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    Some(cmd)
}

/// Asserts `out` succeeded, showing its stderr if not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
