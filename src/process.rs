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
/// let status = ipckit::process::wait_timeout(&mut child, Duration::from_secs(10)).unwrap();
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
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => match sys::wait_fd(pidfd.as_fd(), PollFlags::IN, deadline) {
            Ok(_) => child.wait().map(Some).context("wait for", &object),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(Error::new("wait for", &object, e)),
        },
        Err(Errno::NOSYS) => {
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
