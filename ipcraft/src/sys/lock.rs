//! Open file description locks: the liveness of a channel's peer. The
//! kernel drops such a lock when the last descriptor of its open file
//! description closes, including when the process dies.

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

/// Takes an exclusive OFD lock (`F_OFD_SETLK`) on one byte of `fd`'s file,
/// without waiting. The kernel drops it when the last descriptor of this
/// open file description closes, including when the process dies.
pub(crate) fn ofd_lock(fd: BorrowedFd<'_>, byte: i64) -> io::Result<()> {
    let fl = ofd_flock(libc::F_WRLCK as i16, byte);
    // SAFETY: `fl` is a valid flock for the call to read.
    retry_libc(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) })?;
    Ok(())
}

/// Whether another open file description holds a lock on `byte`
/// (`F_OFD_GETLK`).
pub(crate) fn ofd_locked_by_other(fd: BorrowedFd<'_>, byte: i64) -> io::Result<bool> {
    let mut fl = ofd_flock(libc::F_WRLCK as i16, byte);
    // SAFETY: `fl` is a valid flock for the call to read and update.
    retry_libc(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as i16)
}
