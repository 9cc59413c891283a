//! Sealed anonymous shared memory: a memfd that is never in `/dev/shm`
//! (nothing to leak after a crash) and, once sealed against shrinking, can
//! never be truncated under anyone's mapping (no `SIGBUS`).
//!
//! The owner creates it with [`Memfd::create`], fills or maps it, seals it
//! ([`Memfd::seal`]) and hands the descriptor to another process (inherited
//! or over a Unix socket with [`send_with_fds`]). The receiver checks the
//! seals and size with [`Memfd::from_received`] before mapping.
//!
//! A channel can live in a sealed memfd too:
//! [`ChannelOptions::create_sealed_sender`] and
//! [`ChannelOptions::open_sealed_receiver`].
//!
//! [`send_with_fds`]: crate::unix_socket::send_with_fds
//! [`ChannelOptions::create_sealed_sender`]: crate::channel::ChannelOptions::create_sealed_sender
//! [`ChannelOptions::open_sealed_receiver`]: crate::channel::ChannelOptions::open_sealed_receiver
//!
//! # References
//!
//! - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
//! - [`fcntl(2)`, "File Sealing"](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::fs::MemfdFlags;
pub use rustix::fs::SealFlags;

use crate::error::{Cause, Context, Error, Result};
use crate::mmap::{Mmap, MmapOptions};
use crate::sys;

const WHAT: &str = "memfd";

/// A memfd that can be sealed.
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
}

impl Memfd {
    /// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)` and sized to
    /// `size` bytes. `name` only labels it in `/proc/PID/fd`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::memfd::{Memfd, SealFlags};
    ///
    /// let m = Memfd::create("doc", 4096).unwrap();
    /// m.map().unwrap().write(0, &7u64).unwrap();
    /// m.seal(SealFlags::SHRINK | SealFlags::GROW).unwrap();
    /// assert!(m.set_len(0).is_err()); // sealed: cannot shrink
    /// ```
    pub fn create(name: &str, size: u64) -> Result<Self> {
        let fd = sys::retry(|| rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING))
            .context("create", WHAT)?;
        let memfd = Self { fd };
        memfd.set_len(size)?;
        Ok(memfd)
    }

    /// Checks a memfd received from another process before trusting it: it
    /// must carry at least the seals in `required` (typically
    /// `SHRINK | GROW`) and be at least `min_size` bytes.
    ///
    /// # Errors
    ///
    /// [`Cause::BadSeals`] naming what is missing: not a sealable memfd,
    /// not sealed, or too small.
    pub fn from_received(fd: OwnedFd, min_size: u64, required: SealFlags) -> Result<Self> {
        const OP: &str = "check received";
        let seals = match sys::retry(|| rustix::fs::fcntl_get_seals(&fd)) {
            Ok(s) => s,
            Err(rustix::io::Errno::INVAL) => {
                return Err(Error::new(
                    OP,
                    WHAT,
                    Cause::BadSeals("it is not a sealable memfd".into()),
                ))
            }
            Err(e) => return Err(Error::new(OP, WHAT, e)),
        };
        if !seals.contains(required) {
            let missing = required - seals;
            return Err(Error::new(
                OP,
                WHAT,
                Cause::BadSeals(format!("it is not sealed against {missing:?} (its seals: {seals:?})")),
            ));
        }
        let memfd = Self { fd };
        let size = memfd.size()?;
        if size < min_size {
            return Err(Error::new(
                OP,
                WHAT,
                Cause::BadSeals(format!("it is {size} bytes; at least {min_size} are needed")),
            ));
        }
        Ok(memfd)
    }

    /// `fcntl(F_ADD_SEALS)`—Adds seals. `SHRINK` and `GROW` fix the size;
    /// `WRITE` makes it read-only for everyone (only when no writable
    /// shared mapping exists); `SEAL` forbids further seals.
    ///
    /// # Errors
    ///
    /// [`Cause::BadSeals`] saying why: a writable shared mapping still
    /// exists (`EBUSY` for `WRITE`), or it is already sealed against
    /// further seals (`EPERM`).
    ///
    /// # References
    ///
    /// - [`fcntl(2)`, "File Sealing"](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    #[doc(alias = "F_ADD_SEALS")]
    pub fn seal(&self, seals: SealFlags) -> Result<()> {
        const OP: &str = "seal";
        match sys::retry(|| rustix::fs::fcntl_add_seals(&self.fd, seals)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::BUSY) => Err(Error::new(
                OP,
                WHAT,
                Cause::BadSeals(format!(
                    "cannot add {seals:?} while a writable shared mapping of it exists (drop the Mmap first)"
                )),
            )),
            Err(rustix::io::Errno::PERM) => Err(Error::new(
                OP,
                WHAT,
                Cause::BadSeals(format!(
                    "cannot add {seals:?}: it is already sealed against further seals (SEAL)"
                )),
            )),
            Err(e) => Err(Error::new(OP, WHAT, e)),
        }
    }

    /// `fcntl(F_GET_SEALS)`—The seals in place.
    #[doc(alias = "F_GET_SEALS")]
    pub fn seals(&self) -> Result<SealFlags> {
        sys::retry(|| rustix::fs::fcntl_get_seals(&self.fd)).context("get seals of", WHAT)
    }

    /// Size in bytes.
    pub fn size(&self) -> Result<u64> {
        Ok(sys::retry(|| rustix::fs::fstat(&self.fd))
            .context("stat", WHAT)?
            .st_size as u64)
    }

    /// `ftruncate`—Resizes it.
    ///
    /// # Errors
    ///
    /// [`Cause::BadSeals`] naming the seal when it is sealed against
    /// shrinking or growing.
    ///
    /// # References
    ///
    /// - [`ftruncate(2)`](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
    #[doc(alias = "ftruncate")]
    pub fn set_len(&self, size: u64) -> Result<()> {
        const OP: &str = "resize";
        match sys::retry(|| rustix::fs::ftruncate(&self.fd, size)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::PERM) => {
                let seals = self.seals()?;
                let current = self.size()?;
                let which = if size < current {
                    SealFlags::SHRINK
                } else {
                    SealFlags::GROW
                };
                Err(Error::new(
                    OP,
                    WHAT,
                    Cause::BadSeals(format!(
                        "it is sealed against resizing ({which:?} is among its seals {seals:?}); it stays {current} bytes"
                    )),
                ))
            }
            Err(e) => Err(Error::new(OP, WHAT, e)),
        }
    }

    /// Maps all of it, shared; read-only if sealed against writes.
    pub fn map(&self) -> Result<Mmap> {
        let opts = MmapOptions::new();
        let read_only = self.seals()?.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE);
        if read_only {
            opts.map(&self.fd)
        } else {
            opts.map_shared(&self.fd)
        }
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Memfd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Memfd> for OwnedFd {
    fn from(m: Memfd) -> Self {
        m.fd
    }
}
