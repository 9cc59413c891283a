//! Open file description locks: the liveness of a channel's peer. The
//! kernel drops such a lock when the last descriptor of its open file
//! description closes, including when the process dies.
//!
//! A descriptor can outlive its handle in another process: a child that
//! another thread is spawning holds a copy of every descriptor until it
//! execs (`O_CLOEXEC` closes them only then), a child forked without exec
//! for as long as it keeps them. Its copy refers to the same description,
//! so a lock left to the last close would look held after the handle that
//! took it was dropped. A handle therefore releases its lock itself
//! ([`Held::release`]) before it closes the descriptor.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::retry_libc;

fn ofd_flock(kind: i16, byte: i64) -> libc::flock {
    // SAFETY: flock is plain data; zero is a valid value for every field
    // (l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = byte;
    fl.l_len = 1;
    fl
}

/// Takes an exclusive OFD lock (`F_OFD_SETLK`, see
/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)) on one
/// byte of `fd`'s file, without waiting. The kernel drops it when the last
/// descriptor of this open file description closes, including when the
/// process dies; the handle that holds it releases it sooner with
/// [`Held::release`].
pub(crate) fn ofd_lock(fd: BorrowedFd<'_>, byte: i64) -> io::Result<Held> {
    set(fd, libc::F_WRLCK as i16, byte)?;
    Ok(Held {
        byte,
        pid: rustix::process::getpid(),
    })
}

fn set(fd: BorrowedFd<'_>, kind: i16, byte: i64) -> io::Result<()> {
    let fl = ofd_flock(kind, byte);
    // SAFETY: `fl` is a valid flock for the call to read.
    retry_libc(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) })?;
    Ok(())
}

/// An OFD lock this process took with [`ofd_lock`]: which byte, and which
/// process took it.
#[derive(Clone, Copy, Debug)]
#[must_use = "a lock is released by the handle that holds it"]
pub(crate) struct Held {
    byte: i64,
    pid: rustix::process::Pid,
}

impl Held {
    /// Releases the lock (`F_UNLCK` on its byte of `fd`, the descriptor it
    /// was taken on or another of the same description), in the process
    /// that took it only: a forked child's copy of the handle shares the
    /// description, so its release would free the parent's lock. Called as
    /// the handle drops, before the descriptor closes. A failure leaves the
    /// lock to the last close, as before.
    pub(crate) fn release(self, fd: BorrowedFd<'_>) {
        if rustix::process::getpid() == self.pid {
            let _ = set(fd, libc::F_UNLCK as i16, self.byte);
        }
    }
}

/// Whether another open file description holds a lock on `byte`
/// (`F_OFD_GETLK`).
pub(crate) fn ofd_locked_by_other(fd: BorrowedFd<'_>, byte: i64) -> io::Result<bool> {
    let mut fl = ofd_flock(libc::F_WRLCK as i16, byte);
    // SAFETY: `fl` is a valid flock for the call to read and update.
    retry_libc(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as i16)
}
