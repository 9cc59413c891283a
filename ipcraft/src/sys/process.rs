//! `fork` for the classic parent/child exercises, and what a forked child
//! of a multi-threaded process may still do.

use std::io;
use std::os::fd::RawFd;

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

/// Closes every descriptor except those in `keep` (any number of them, in
/// any order; negative values are ignored). Async-signal-safe: no
/// allocation, so it can run in a forked child of a multi-threaded process,
/// where it stops descriptors another thread created (pipe ends of a
/// concurrent exchange) from staying open and holding off end of file.
pub(crate) fn close_all_except(keep: &[RawFd]) {
    // Walk the kept descriptors in ascending order without sorting a copy:
    // each step takes the smallest kept descriptor at or above `lo`.
    let mut lo: u32 = 0;
    loop {
        let next = keep
            .iter()
            .filter_map(|&fd| u32::try_from(fd).ok())
            .filter(|&fd| fd >= lo)
            .min();
        match next {
            Some(fd) => {
                if fd > lo {
                    close_range(lo, fd - 1);
                }
                match fd.checked_add(1) {
                    Some(after) => lo = after,
                    None => return,
                }
            }
            None => {
                close_range(lo, u32::MAX);
                return;
            }
        }
    }
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
    use std::os::fd::AsRawFd;

    /// More than eight kept descriptors all survive, and the rest close
    /// (in a forked child, so the test process's own descriptors are safe).
    #[test]
    fn keeps_any_number_of_descriptors() {
        let pipes: Vec<_> = (0..6).map(|_| rustix::pipe::pipe().unwrap()).collect();
        let mut keep: Vec<RawFd> = pipes.iter().flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()]).collect();
        let dropped = keep.pop().unwrap();
        keep.reverse();
        assert!(keep.len() > 8);
        // SAFETY: the child only makes raw system calls on a stack array
        // and ends with _exit.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                close_all_except(&keep);
                let mut bad = 0;
                for &fd in &keep {
                    // SAFETY: F_GETFD only queries the descriptor table.
                    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
                        bad |= 1;
                    }
                }
                // SAFETY: as above.
                if unsafe { libc::fcntl(dropped, libc::F_GETFD) } != -1 {
                    bad |= 2;
                }
                exit_now(bad);
            }
            Forked::Parent(pid) => {
                let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                    .unwrap()
                    .unwrap()
                    .1;
                assert_eq!(
                    status.exit_status(),
                    Some(0),
                    "1: a kept fd closed; 2: an unkept fd stayed"
                );
            }
        }
    }
}
