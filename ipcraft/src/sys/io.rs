//! Reads and writes on raw memory: writes that never raise `SIGPIPE`, and
//! copies through the kernel so a page that vanished is `EFAULT`, not
//! `SIGBUS`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;

use super::retry_libc;

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
        // pthread_sigmask returns its error instead of setting errno; with a
        // valid set and `how` it cannot fail.
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

/// `read(2)` into raw memory (such as a reserved frame in shared memory).
///
/// # Safety
///
/// `ptr..ptr+len` must be writable memory of this process.
pub(crate) unsafe fn read_raw(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: the caller guarantees the destination range; the kernel writes it.
    retry_libc(|| unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), len) as i64 }).map(|n| n as usize)
}
