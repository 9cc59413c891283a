//! The thin layer that talks to the kernel where `rustix` has no wrapper or
//! where a call needs care: `EINTR` retry, bounded waits on a descriptor,
//! writes that cannot raise `SIGPIPE`, and `fork` for the seed's
//! parent/child activities.
//!
//! This is the only module that calls `libc` directly.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// Refuses an IPC object this user does not own: opening one that already
/// existed when asked to create it must not adopt someone else's.
pub(crate) fn check_owner(fd: &OwnedFd, op: &'static str, name: &crate::Name) -> crate::Result<()> {
    use crate::error::Context;
    let stat = retry(|| rustix::fs::fstat(fd)).context(op, name)?;
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(crate::Error::new(
            op,
            name,
            crate::Cause::ForeignOwner { owner: stat.st_uid, me },
        ));
    }
    Ok(())
}

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
/// `false`; it is `true` when ipcraft is used from a host that left the default
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
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    unsafe { write_raw_nosigpipe(fd, buf.as_ptr(), buf.len()) }
}

/// [`write_nosigpipe`] from a raw pointer: the kernel, not Rust code, reads
/// the source, so memory that may fault (a mapping of a file that shrank)
/// yields `EFAULT` instead of `SIGBUS`.
///
/// # Safety
///
/// `ptr..ptr+len` must be a range of this process's address space (it may
/// be unmapped or beyond a file's end; the kernel reports that as `EFAULT`).
pub(crate) unsafe fn write_raw_nosigpipe(fd: BorrowedFd<'_>, ptr: *const u8, len: usize) -> io::Result<usize> {
    // SAFETY: the kernel validates the user range and reports bad pages as
    // EFAULT; nothing in Rust dereferences `ptr`.
    let write = || retry_libc(|| unsafe { libc::write(fd.as_raw_fd(), ptr.cast(), len) as i64 }).map(|n| n as usize);
    if !sigpipe_is_fatal() {
        return write();
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
        let result = write();
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

/// Writes all `len` bytes at `ptr` to `fd` with [`write_raw_nosigpipe`],
/// retrying short writes.
///
/// # Safety
///
/// As [`write_raw_nosigpipe`].
pub(crate) unsafe fn write_all_raw(fd: BorrowedFd<'_>, mut ptr: *const u8, mut len: usize) -> io::Result<()> {
    while len > 0 {
        // SAFETY: forwarded to the caller's contract for `ptr..ptr+len`.
        match unsafe { write_raw_nosigpipe(fd, ptr, len) }? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                len -= n;
                // SAFETY: n <= len, so the pointer stays within the range.
                ptr = unsafe { ptr.add(n) };
            }
        }
    }
    Ok(())
}

/// Copies `len` bytes between two ranges of this process's memory through
/// the kernel (`process_vm_readv`), so that a source or destination page
/// that faults (a shared object truncated by another process, a full
/// tmpfs) gives `EFAULT` instead of killing the process with `SIGBUS`.
///
/// # Safety
///
/// `local` must be valid for writes of `len` bytes if `to_local`, for reads
/// otherwise; `remote` may be any range of this address space.
pub(crate) unsafe fn kernel_copy(local: *mut u8, remote: *mut u8, len: usize, to_local: bool) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let local_iov = libc::iovec {
        iov_base: local.cast(),
        iov_len: len,
    };
    let remote_iov = libc::iovec {
        iov_base: remote.cast(),
        iov_len: len,
    };
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    loop {
        // SAFETY: both iovecs describe `len` bytes of this process; the
        // kernel checks the remote range and copies into the local one,
        // which the caller guarantees is valid.
        let n = unsafe {
            if to_local {
                libc::process_vm_readv(pid, &local_iov, 1, &remote_iov, 1, 0)
            } else {
                libc::process_vm_writev(pid, &local_iov, 1, &remote_iov, 1, 0)
            }
        };
        match n {
            n if n as usize == len => return Ok(()),
            // A partial copy means a page in the range faulted.
            n if n >= 0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            _ => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
        }
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

// ---- POSIX message queues: rustix has no wrapper, so these call libc. ----
//
// On Linux an `mqd_t` is a file descriptor (always close-on-exec), so an
// open queue is held as an `OwnedFd` and `mq_close` is `close`.

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

/// Runs a libc call that returns -1 and sets errno on failure, retrying on
/// `EINTR`.
fn retry_libc<T: Copy + PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        let r = f();
        if r != T::from(-1) {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

// ---- Open file description locks: liveness of a channel's peer. ----

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

/// `read(2)` into raw memory (such as a reserved frame in shared memory).
///
/// # Safety
///
/// `ptr..ptr+len` must be writable memory of this process.
pub(crate) unsafe fn read_raw(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: the caller guarantees the destination range; the kernel writes it.
    retry_libc(|| unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), len) as i64 }).map(|n| n as usize)
}

/// Blocks `SIGINT`, `SIGTERM` and `SIGHUP` in the calling thread (and the
/// threads it creates afterwards) and returns a `signalfd` that becomes
/// readable when one of them arrives.
pub(crate) fn termination_signalfd() -> io::Result<OwnedFd> {
    // SAFETY: the sigset is initialised by sigemptyset before use; these
    // calls only change this thread's signal mask and create a descriptor.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
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
