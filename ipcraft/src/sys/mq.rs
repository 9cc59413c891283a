//! POSIX message queues: rustix has no wrapper, so these call libc.
//!
//! On Linux an `mqd_t` is a file descriptor (always close-on-exec), so an
//! open queue is held as an `OwnedFd` and `mq_close` is `close`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::retry_libc;

/// `mq_open(3)`. `attr` is `(mq_maxmsg, mq_msgsize)` when creating.
pub(crate) fn mq_open(name: &std::ffi::CStr, oflag: i32, mode: u32, attr: Option<(i64, i64)>) -> io::Result<OwnedFd> {
    // SAFETY: a zeroed mq_attr is a valid value; only the two fields the
    // kernel reads at creation are set.
    let mut raw: libc::mq_attr = unsafe { std::mem::zeroed() };
    let attr_ptr = match attr {
        Some((max, size)) => {
            raw.mq_maxmsg = max as _;
            raw.mq_msgsize = size as _;
            &mut raw as *mut libc::mq_attr
        }
        None => std::ptr::null_mut(),
    };
    loop {
        // SAFETY: `name` is NUL-terminated; `attr_ptr` is null or points to
        // `raw`, which outlives the call; mode is passed as the variadic
        // argument mq_open reads when O_CREAT is set.
        let fd = unsafe { libc::mq_open(name.as_ptr(), oflag, mode as libc::mode_t, attr_ptr) };
        if fd >= 0 {
            // SAFETY: mq_open returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// An absolute `CLOCK_REALTIME` time that has already passed: a timed
/// send/receive with it returns at once instead of waiting.
const EXPIRED: libc::timespec = libc::timespec { tv_sec: 0, tv_nsec: 0 };

/// `mq_timedsend(3)` that never waits (the expired timeout makes a full
/// queue fail at once with `ETIMEDOUT`, or `EAGAIN` if `O_NONBLOCK` is set).
pub(crate) fn mq_try_send(fd: BorrowedFd<'_>, msg: &[u8], prio: u32) -> io::Result<()> {
    // SAFETY: `msg` is valid for `msg.len()` bytes; the timeout is a valid timespec.
    let r =
        retry_libc(|| unsafe { libc::mq_timedsend(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), prio, &EXPIRED) })?;
    debug_assert_eq!(r, 0);
    Ok(())
}

/// `mq_timedreceive(3)` that never waits; returns (length, priority).
pub(crate) fn mq_try_receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, u32)> {
    let mut prio: u32 = 0;
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes and `prio` for
    // one u32; the timeout is a valid timespec.
    let n = retry_libc(|| unsafe {
        libc::mq_timedreceive(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), &mut prio, &EXPIRED) as i64
    })?;
    Ok((n as usize, prio))
}

/// `mq_send(3)`: waits while the queue is full (unless `O_NONBLOCK`).
pub(crate) fn mq_send(fd: BorrowedFd<'_>, msg: &[u8], prio: u32) -> io::Result<()> {
    // SAFETY: `msg` is valid for `msg.len()` bytes.
    retry_libc(|| unsafe { libc::mq_send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), prio) })?;
    Ok(())
}

/// `mq_receive(3)`: waits while the queue is empty (unless `O_NONBLOCK`).
pub(crate) fn mq_receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, u32)> {
    let mut prio: u32 = 0;
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes and `prio` for one u32.
    let n = retry_libc(|| unsafe {
        libc::mq_receive(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), &mut prio) as i64
    })?;
    Ok((n as usize, prio))
}

/// `mq_getattr(3)`: (maxmsg, msgsize, curmsgs, O_NONBLOCK set).
pub(crate) fn mq_getattr(fd: BorrowedFd<'_>) -> io::Result<(i64, i64, i64, bool)> {
    // SAFETY: a zeroed mq_attr is a valid out-parameter.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a valid mq_attr to write into.
    retry_libc(|| unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) })?;
    Ok((
        attr.mq_maxmsg as i64,
        attr.mq_msgsize as i64,
        attr.mq_curmsgs as i64,
        attr.mq_flags as i64 & libc::O_NONBLOCK as i64 != 0,
    ))
}

/// `mq_setattr(3)`: sets or clears `O_NONBLOCK`, the only changeable flag.
pub(crate) fn mq_set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: zeroed mq_attr values are valid; mq_setattr reads only mq_flags.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_flags = if on { libc::O_NONBLOCK as _ } else { 0 };
    // SAFETY: both pointers are valid mq_attr values for the call.
    retry_libc(|| unsafe { libc::mq_setattr(fd.as_raw_fd(), &attr, std::ptr::null_mut()) })?;
    Ok(())
}

/// `mq_unlink(3)`.
pub(crate) fn mq_unlink(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    retry_libc(|| unsafe { libc::mq_unlink(name.as_ptr()) })?;
    Ok(())
}
