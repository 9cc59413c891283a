//! The thin layer that talks to the kernel where `rustix` has no wrapper or
//! where a call needs care: `EINTR` retry, bounded waits on a descriptor,
//! writes that cannot raise `SIGPIPE`, and `fork` for the seed's
//! parent/child activities.
//!
//! This is the only module that calls `libc` directly.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// Runs `f` until it returns something other than `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Turns an optional timeout into an optional deadline.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// `poll(2)` on one descriptor until one of `events` (or an error/hang-up
/// condition) is reported or `deadline` passes.
///
/// Returns the reported events, or an [`io::ErrorKind::TimedOut`] error.
pub(crate) fn wait_fd(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> io::Result<PollFlags> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(Timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                })
            }
        };
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

/// Whether `SIGPIPE` would kill this process (its disposition is `SIG_DFL`).
///
/// Rust programs ignore `SIGPIPE` from before `main`, so this is normally
/// `false`; it is `true` when ipckit is used from a host that left the default
/// in place. Read once: changing the disposition later is not seen.
fn sigpipe_is_fatal() -> bool {
    static FATAL: OnceLock<bool> = OnceLock::new();
    *FATAL.get_or_init(|| {
        // SAFETY: a zeroed `sigaction` is a valid out-parameter; a null `act`
        // makes this a pure query that changes nothing.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL
        }
    })
}

/// `write(2)` that reports a closed reader as [`io::ErrorKind::BrokenPipe`]
/// and never lets `SIGPIPE` kill the process.
///
/// When `SIGPIPE` is already ignored this is a plain write. Otherwise the
/// signal is blocked in this thread for the call, and a `SIGPIPE` that the
/// write raised is consumed before the old mask is restored.
pub(crate) fn write_nosigpipe(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    if !sigpipe_is_fatal() {
        return retry(|| rustix::io::write(fd, buf));
    }
    // SAFETY: sigset_t values are plain data initialised by sigemptyset /
    // pthread_sigmask before use; these calls only change this thread's mask
    // and consume a signal that this thread's own write raised.
    unsafe {
        let mut pipe_set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old);
        libc::sigemptyset(&mut pending);
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let result = retry(|| rustix::io::write(fd, buf));
        if !was_pending && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            while libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        if libc::sigismember(&old, libc::SIGPIPE) == 0 {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        result
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<()> {
    use rustix::fs::OFlags;
    let fd = fd.as_fd();
    let flags = retry(|| rustix::fs::fcntl_getfl(fd))?;
    let want = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    if want != flags {
        retry(|| rustix::fs::fcntl_setfl(fd, want))?;
    }
    Ok(())
}

/// Whether `O_NONBLOCK` is set on `fd`.
pub(crate) fn is_nonblocking(fd: impl AsFd) -> io::Result<bool> {
    let flags = retry(|| rustix::fs::fcntl_getfl(fd.as_fd()))?;
    Ok(flags.contains(rustix::fs::OFlags::NONBLOCK))
}

/// What `fork` returned.
pub(crate) enum Forked {
    /// In the child.
    Child,
    /// In the parent, with the child's pid.
    Parent(rustix::process::Pid),
}

/// `fork(2)`.
///
/// # Safety
///
/// In the child of a multi-threaded process only async-signal-safe work is
/// allowed: no allocation, no locks, no panics; raw system calls on
/// descriptors and stack buffers, then [`exit_now`].
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the child-side restrictions above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned pid 0"))?,
        )),
    }
}

/// `_exit(2)`: ends the process at once, running no destructors or atexit
/// handlers (which belong to the parent after a `fork`).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor except those in `keep`. Async-signal-safe: used
/// in a forked child so that descriptors another thread created (pipe ends
/// of a concurrent exchange) do not stay open in it and hold off EOF.
pub(crate) fn close_all_except(keep: &[RawFd]) {
    let mut keep_sorted = [RawFd::MAX; 8];
    let n = keep.len().min(keep_sorted.len());
    keep_sorted[..n].copy_from_slice(&keep[..n]);
    keep_sorted[..n].sort_unstable();
    let mut lo: u32 = 0;
    for &fd in &keep_sorted[..n] {
        let fd = fd as u32;
        if fd > lo {
            close_range(lo, fd - 1);
        }
        lo = fd + 1;
    }
    close_range(lo, u32::MAX);
}

fn close_range(lo: u32, hi: u32) {
    // SAFETY: close_range only closes descriptors; the caller (a forked
    // child) owns every descriptor in its table and uses only those it keeps.
    let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
    if r == 0 {
        return;
    }
    // Kernels before 5.9: close one by one up to the descriptor limit.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65536)
        .min(1 << 20) as u32;
    for fd in lo..=hi.min(limit) {
        // SAFETY: as above; closing a descriptor that is not open is harmless.
        unsafe { libc::close(fd as RawFd) };
    }
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
}
