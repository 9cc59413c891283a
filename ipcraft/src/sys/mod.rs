//! The thin layer that talks to the kernel where `rustix` has no wrapper or
//! where a call needs care: bounded waits on a descriptor, writes that
//! cannot raise `SIGPIPE`, copies that cannot raise `SIGBUS`, `fork` for
//! the classic parent/child exercises, POSIX message queues, OFD locks and
//! `signalfd`.
//!
//! A leaf: these functions return [`rustix::io::Errno`] or
//! [`std::io::Error`] and import nothing from the rest of the crate. Policy
//! (who may own an object, which object an error names) lives in the
//! facility modules. This is the only module that calls `libc` directly.

mod fd;
mod io;
mod lock;
mod mq;
mod process;
mod sigbus;
mod signal;

pub(crate) use fd::{deadline, is_nonblocking, open_nofollow, set_nonblocking, wait_fd};
pub(crate) use io::{kernel_copy, read_raw, write_all_raw, write_nosigpipe};
pub(crate) use lock::{ofd_lock, ofd_locked_by_other, Held as HeldLock};
pub(crate) use mq::{
    mq_getattr, mq_open, mq_receive, mq_send, mq_set_nonblocking, mq_try_receive, mq_try_send, mq_unlink,
};
pub(crate) use process::{close_all_except, exit_now, fork, Forked};
pub(crate) use sigbus::{protect as protect_from_truncation, Guard as TruncationGuard};
pub(crate) use signal::termination_signalfd;

pub(crate) use rustix::io::retry_on_intr as retry;

/// Runs a libc call that returns -1 and sets errno on failure, retrying on
/// `EINTR`.
fn retry_libc<T: Copy + PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> std::io::Result<T> {
    loop {
        let r = f();
        if r != T::from(-1) {
            return Ok(r);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
