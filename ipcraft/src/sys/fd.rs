//! Descriptor flags, bounded `poll(2)` waits, and opening a path without
//! following a link.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::{retry_on_intr, Errno};

/// Turns an optional timeout into an optional deadline (a timeout too
/// large to add is a deadline a century away).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| {
        let now = Instant::now();
        now.checked_add(t)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
    })
}

/// `poll(2)` on one descriptor until one of `events` (or an error/hang-up
/// condition) is reported or `deadline` passes.
///
/// Returns the reported events, or an [`io::ErrorKind::TimedOut`] error.
pub(crate) fn wait_fd(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> io::Result<PollFlags> {
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Ok(_) => return Ok(fds[0].revents()),
        }
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = retry_on_intr(|| rustix::fs::fcntl_getfl(fd))?;
    let want = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    if want != flags {
        retry_on_intr(|| rustix::fs::fcntl_setfl(fd, want))?;
    }
    Ok(())
}

/// Whether `O_NONBLOCK` is set on `fd`.
pub(crate) fn is_nonblocking(fd: impl AsFd) -> io::Result<bool> {
    let flags = retry_on_intr(|| rustix::fs::fcntl_getfl(fd.as_fd()))?;
    Ok(flags.contains(OFlags::NONBLOCK))
}

/// `open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)`: a symbolic link
/// at `path` fails with `ELOOP` instead of being followed.
pub(crate) fn open_nofollow(path: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
    retry_on_intr(|| {
        rustix::fs::openat(
            CWD,
            path,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            mode,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_fd_times_out_on_an_idle_pipe() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let start = Instant::now();
        let err = wait_fd(r.as_fd(), PollFlags::IN, deadline(Some(Duration::from_millis(20)))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn nonblocking_round_trip() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(!is_nonblocking(&r).unwrap());
        set_nonblocking(&r, true).unwrap();
        assert!(is_nonblocking(&r).unwrap());
        set_nonblocking(&r, false).unwrap();
        assert!(!is_nonblocking(&r).unwrap());
    }

    #[test]
    fn huge_timeout_is_a_far_deadline_not_a_panic() {
        assert!(deadline(Some(Duration::MAX)).unwrap() > Instant::now());
    }
}
