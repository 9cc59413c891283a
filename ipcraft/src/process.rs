//! Bounded waits for child processes.

use std::os::fd::AsFd;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::error::{Cause, Context, Error, Result};
use crate::sys;

/// Waits at most `timeout` for `child` to exit.
///
/// Returns `Ok(None)` if it is still running when the time is up (it is not
/// killed). Uses a pidfd (`pidfd_open(2)`) so the wait is a single `poll`,
/// not a sleep loop; on kernels without pidfds it polls `try_wait` with a
/// growing back-off.
///
/// # Errors
///
/// The OS error from `pidfd_open` or `waitpid`.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
///
/// let mut child = Command::new("true").spawn().unwrap();
/// let status = ipcraft::process::wait_timeout(&mut child, Duration::from_secs(10)).unwrap();
/// assert!(status.unwrap().success());
/// ```
///
/// # References
///
/// - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let object = format!("pid {}", child.id());
    if let Some(status) = child.try_wait().context("wait for", &object)? {
        return Ok(Some(status));
    }
    let deadline = sys::deadline(Some(timeout));
    let pid = Pid::from_raw(child.id() as i32).ok_or_else(|| Error::new("wait for", &object, Cause::ChildGone))?;
    match exits_by(pid, deadline) {
        Ok(true) => child.wait().map(Some).context("wait for", &object),
        Ok(false) => Ok(None),
        Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
            let mut nap = Duration::from_micros(100);
            loop {
                if let Some(status) = child.try_wait().context("wait for", &object)? {
                    return Ok(Some(status));
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(None);
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
        Err(e) => Err(Error::new("wait for", &object, e)),
    }
}

/// Waits on a pidfd of `pid` until it exits (`true`) or `deadline` passes
/// (`false`). `ENOSYS` on kernels without pidfds.
fn exits_by(pid: Pid, deadline: Option<std::time::Instant>) -> std::io::Result<bool> {
    let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
    match sys::wait_fd(pidfd.as_fd(), PollFlags::IN, deadline) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(false),
        Err(e) => Err(e),
    }
}

/// What [`fork`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// Running in the new child process.
    Child,
    /// Running in the parent; the child's pid.
    Parent(u32),
}

/// `fork()`—Creates a child process that is a copy of this one, as the
/// classic parent/child exercises do.
///
/// # Safety
///
/// If this process has other threads, the child may only do
/// async-signal-safe work (no allocation or locks that another thread might
/// have held) before it `exec`s or ends with [`exit_child`]. From a
/// single-threaded process the child may do anything. Either way the child
/// must end with [`exit_child`], not by returning, so it does not run the
/// parent's destructors (which would, for example, remove IPC objects the
/// parent still uses).
///
/// # References
///
/// - [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html)
pub unsafe fn fork() -> Result<Fork> {
    // SAFETY: forwarded to the caller's contract.
    match unsafe { sys::fork() }.context("fork", "process")? {
        sys::Forked::Child => Ok(Fork::Child),
        sys::Forked::Parent(pid) => Ok(Fork::Parent(pid.as_raw_nonzero().get() as u32)),
    }
}

/// `_exit(code)`—Ends the calling (child) process at once, without running
/// destructors or `atexit` handlers.
pub fn exit_child(code: i32) -> ! {
    sys::exit_now(code)
}

/// Waits at most `timeout` for the child `pid` (from [`fork`]) to exit and
/// reaps it; `Ok(None)` if it is still running.
pub fn wait_pid_timeout(pid: u32, timeout: Duration) -> Result<Option<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let object = format!("pid {pid}");
    let raw = Pid::from_raw(pid as i32).ok_or_else(|| Error::new("wait for", &object, Cause::ChildGone))?;
    if !exits_by(raw, sys::deadline(Some(timeout))).context("wait for", &object)? {
        return Ok(None);
    }
    let status = sys::retry(|| rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty()))
        .context("wait for", &object)?;
    Ok(status.map(|(_, s)| ExitStatus::from_raw(s.as_raw())))
}

/// Turns `SIGINT`, `SIGTERM` and `SIGHUP` into an event: they are blocked
/// in the calling thread (call it before starting threads) and the returned
/// descriptor becomes readable when one arrives. Poll it beside your other
/// descriptors to shut down cleanly (remove socket files, unlink objects)
/// instead of dying mid-operation.
///
/// # References
///
/// - [`signalfd(2)`](https://man7.org/linux/man-pages/man2/signalfd.2.html)
#[doc(alias = "signalfd")]
pub fn termination_signals() -> Result<std::os::fd::OwnedFd> {
    sys::termination_signalfd().context("watch", "termination signals")
}
