//! Termination signals as a descriptor.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

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
        // pthread_sigmask returns the error number; it does not set errno.
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
