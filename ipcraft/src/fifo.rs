//! FIFOs (named pipes): a pipe with a name in the file system, so unrelated
//! processes can share it.
//!
//! [`Fifo::create`] makes one with an exact mode (the umask does not change
//! it) and returns a [`Fifo`] that removes it on drop unless you
//! [`keep`](Fifo::keep) it. [`open_read`] and [`open_write`] return the
//! same [`PipeReader`]/[`PipeWriter`] types as an anonymous pipe;
//! [`FifoOptions`] adds non-blocking mode and a timeout on the open.
//!
//! Opening refuses a path that is a symbolic link or not a FIFO, checked
//! before the open (so a device or a regular file is never opened by
//! mistake) and again on the opened descriptor with `fstat` (so a file
//! swapped in between is caught). A FIFO another user owns is refused too
//! unless [`FifoOptions::allow_foreign`] says otherwise: in a shared
//! directory such as `/tmp` anyone could have made it.
//!
//! # References
//!
//! - [`fifo(7)`](https://man7.org/linux/man-pages/man7/fifo.7.html)
//! - [`mkfifo(3)`](https://man7.org/linux/man-pages/man3/mkfifo.3.html)

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::error::{Cause, Context, Error, Result};
use crate::object::{self, RemoveOnDrop};
use crate::pipe::{PipeReader, PipeWriter};
use crate::sys;

/// The mode [`create`] uses unless told otherwise: owner read/write only.
pub const DEFAULT_MODE: u32 = 0o600;

/// `mkfifo(path, mode)`—Creates a FIFO; shorthand for [`Fifo::create`].
#[doc(alias = "mkfifo")]
pub fn create(path: impl AsRef<Path>, mode: u32) -> Result<Fifo> {
    Fifo::create(path, mode)
}

/// Removes the FIFO at `path` (`unlink`), refusing anything that is not a
/// FIFO, including a symbolic link to one.
///
/// # Errors
///
/// [`Cause::WrongType`] or [`Cause::Symlink`] for something else at `path`;
/// `ENOENT` if nothing is there.
#[doc(alias = "unlink")]
pub fn remove(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    check_is_fifo(path, "remove fifo")?;
    sys::retry(|| rustix::fs::unlink(path)).context("remove fifo", path.display())
}

/// Opens the FIFO at `path` for reading, waiting until a writer opens it.
///
/// Shorthand for `FifoOptions::new().open_read(path)`.
pub fn open_read(path: impl AsRef<Path>) -> Result<PipeReader> {
    FifoOptions::new().open_read(path)
}

/// Opens the FIFO at `path` for writing, waiting until a reader opens it.
///
/// Shorthand for `FifoOptions::new().open_write(path)`.
pub fn open_write(path: impl AsRef<Path>) -> Result<PipeWriter> {
    FifoOptions::new().open_write(path)
}

/// How to open a FIFO: blocking or not, and how long to wait for the other
/// side.
///
/// | options | `open_read` | `open_write` |
/// |---|---|---|
/// | default | waits for a writer | waits for a reader |
/// | `nonblocking` | returns at once; reads give `WouldBlock` while a writer is idle and 0 when none is open | fails with [`Cause::NoReader`] at once if no reader |
/// | `timeout(t)` | waits at most `t` for a writer to send data or close ([`Cause::NoWriter`]) | waits at most `t` for a reader ([`Cause::NoReader`]) |
///
/// With a timeout the returned end is blocking unless `nonblocking` is also
/// set.
#[derive(Clone, Debug, Default)]
pub struct FifoOptions {
    nonblocking: bool,
    timeout: Option<Duration>,
    allow_foreign: bool,
}

impl FifoOptions {
    /// Blocking, no timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens with `O_NONBLOCK` and leaves it set on the returned end.
    pub fn nonblocking(&mut self, nonblocking: bool) -> &mut Self {
        self.nonblocking = nonblocking;
        self
    }

    /// Waits at most `timeout` for the other side.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Accept a FIFO another user owns (refused by default with
    /// [`Cause::ForeignOwner`]).
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    /// Opens `path` for reading.
    ///
    /// # Errors
    ///
    /// [`Cause::Symlink`], [`Cause::WrongType`], [`Cause::ForeignOwner`],
    /// [`Cause::NoWriter`] (with a timeout), or the OS error from `open`.
    ///
    /// # References
    ///
    /// - [`open(2)`](https://man7.org/linux/man-pages/man2/open.2.html)
    /// - [`fifo(7)`](https://man7.org/linux/man-pages/man7/fifo.7.html)
    pub fn open_read(&self, path: impl AsRef<Path>) -> Result<PipeReader> {
        let path = path.as_ref();
        const OP: &str = "open fifo";
        self.check_before_open(path, OP)?;
        let Some(timeout) = self.timeout else {
            let nonblock = if self.nonblocking {
                OFlags::NONBLOCK
            } else {
                OFlags::empty()
            };
            return self
                .open_checked(path, OFlags::RDONLY | nonblock, OP)
                .map(PipeReader::from);
        };
        // A non-blocking open for reading succeeds at once; poll then waits
        // until a writer has sent data or has come and gone (Linux reports
        // no hang-up for a FIFO that has never had a writer).
        let fd = self.open_checked(path, OFlags::RDONLY | OFlags::NONBLOCK, OP)?;
        match sys::wait_fd(fd.as_fd(), PollFlags::IN, sys::deadline(Some(timeout))) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(Error::new(OP, path.display(), Cause::NoWriter))
            }
            Err(e) => return Err(Error::new(OP, path.display(), e)),
        }
        if !self.nonblocking {
            sys::set_nonblocking(&fd, false).context(OP, path.display())?;
        }
        Ok(PipeReader::from(fd))
    }

    /// Opens `path` for writing.
    ///
    /// # Errors
    ///
    /// [`Cause::Symlink`], [`Cause::WrongType`], [`Cause::ForeignOwner`],
    /// [`Cause::NoReader`] (when non-blocking or timed out), or the OS error
    /// from `open`.
    ///
    /// # References
    ///
    /// - [`open(2)`](https://man7.org/linux/man-pages/man2/open.2.html)
    /// - [`fifo(7)`](https://man7.org/linux/man-pages/man7/fifo.7.html)
    pub fn open_write(&self, path: impl AsRef<Path>) -> Result<PipeWriter> {
        let path = path.as_ref();
        const OP: &str = "open fifo";
        self.check_before_open(path, OP)?;
        if !self.nonblocking && self.timeout.is_none() {
            return self.open_checked(path, OFlags::WRONLY, OP).map(PipeWriter::from);
        }
        // Linux has no event for "a reader opened this FIFO" that also covers
        // readers still blocked inside open(2), so a timed open retries the
        // non-blocking open with a short, growing pause (at most 10 ms).
        let deadline = sys::deadline(self.timeout);
        let mut pause = Duration::from_micros(200);
        let fd = loop {
            match self.open_checked(path, OFlags::WRONLY | OFlags::NONBLOCK, OP) {
                Ok(fd) => break fd,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() {
                        return Err(Error::new(OP, path.display(), Cause::NoReader));
                    }
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        if !self.nonblocking {
            sys::set_nonblocking(&fd, false).context(OP, path.display())?;
        }
        Ok(PipeWriter::from(fd))
    }

    /// The timeout set with [`timeout`](Self::timeout).
    #[cfg(feature = "tokio")]
    pub(crate) fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// A checked, non-blocking open of `path` for reading or writing (for
    /// the async opens, which do their waiting themselves).
    #[cfg(feature = "tokio")]
    pub(crate) fn open_nonblocking(&self, path: &Path, write: bool) -> Result<OwnedFd> {
        const OP: &str = "open fifo";
        self.check_before_open(path, OP)?;
        let access = if write { OFlags::WRONLY } else { OFlags::RDONLY };
        self.open_checked(path, access | OFlags::NONBLOCK, OP)
    }

    /// The checks made before opening (so a refused FIFO is refused at
    /// once, not after waiting for the other side): a FIFO, not a link,
    /// and this user's unless allowed. They are made again on the
    /// descriptor opened.
    fn check_before_open(&self, path: &Path, op: &'static str) -> Result<()> {
        let stat = check_is_fifo(path, op)?;
        object::check_owner(stat.st_uid, op, &path.display(), self.allow_foreign)
    }

    /// `open(path, flags | O_NOFOLLOW | O_CLOEXEC)` and an `fstat` check of
    /// the descriptor: a FIFO, owned by this user unless allowed.
    fn open_checked(&self, path: &Path, flags: OFlags, op: &'static str) -> Result<OwnedFd> {
        let fd = match sys::open_nofollow(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(Error::new(op, path.display(), Cause::Symlink)),
            Err(e) => return Err(Error::new(op, path.display(), e)),
        };
        object::check_opened(
            &fd,
            op,
            &path.display(),
            Some((FileType::Fifo, "FIFO")),
            self.allow_foreign,
        )?;
        Ok(fd)
    }
}

/// `lstat` check: `path` exists and is a FIFO, not a link to one.
fn check_is_fifo(path: &Path, op: &'static str) -> Result<rustix::fs::Stat> {
    let stat = sys::retry(|| rustix::fs::lstat(path)).context(op, path.display())?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Fifo => Ok(stat),
        FileType::Symlink => Err(Error::new(op, path.display(), Cause::Symlink)),
        other => Err(Error::new(
            op,
            path.display(),
            Cause::WrongType {
                expected: "FIFO",
                found: object::type_name(other),
            },
        )),
    }
}

/// A FIFO this process created: removed when dropped, unless
/// [`keep`](Self::keep) was called.
///
/// It only removes the FIFO it made: if something else has replaced it at
/// that path, that is left alone.
#[derive(Debug)]
#[must_use = "dropping the Fifo removes it at once"]
pub struct Fifo {
    path: PathBuf,
    removal: RemoveOnDrop,
}

impl Fifo {
    /// `mkfifo(path, mode)`—Creates a FIFO that did not exist, with exactly
    /// `mode` (then `fchmod`, so the umask does not narrow it), removed
    /// when the returned value drops.
    ///
    /// # Errors
    ///
    /// `EEXIST` if anything already has that path (it is never adopted);
    /// `ENOENT`/`EACCES` for the directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::fifo::Fifo;
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-{}", std::process::id()));
    /// let fifo = Fifo::create(&path, 0o600).unwrap();
    /// assert!(Fifo::create(&path, 0o600).is_err()); // exclusive
    /// drop(fifo); // removed
    /// assert!(!path.exists());
    /// ```
    ///
    /// # References
    ///
    /// - [`mkfifo(3)`](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
    #[doc(alias = "mkfifo")]
    pub fn create(path: impl AsRef<Path>, mode: u32) -> Result<Self> {
        const OP: &str = "create fifo";
        let path = path.as_ref();
        let mode = Mode::from_bits_truncate(mode & 0o7777);
        sys::retry(|| rustix::fs::mkfifoat(CWD, path, mode)).context(OP, path.display())?;
        // The mode is set, and the removal aimed, at the file made and at
        // nothing swapped in since (pinned down by an O_PATH descriptor,
        // which opens no reader on the FIFO).
        let fd =
            object::set_mode_nofollow(path, FileType::Fifo, mode.bits()).context("set mode of fifo", path.display());
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) => {
                let _ = remove(path);
                return Err(e);
            }
        };
        Ok(Fifo {
            path: path.to_owned(),
            removal: RemoveOnDrop::file(path, &fd, true).context(OP, path.display())?,
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the FIFO in place when this value drops.
    pub fn keep(&mut self) {
        self.removal.keep();
    }

    /// Removes the FIFO now, reporting any error that drop would ignore.
    pub fn remove(mut self) -> Result<()> {
        self.removal.remove_now().context("remove fifo", self.path.display())
    }

    /// Opens it for reading ([`open_read`]).
    pub fn open_read(&self) -> Result<PipeReader> {
        open_read(&self.path)
    }

    /// Opens it for writing ([`open_write`]).
    pub fn open_write(&self) -> Result<PipeWriter> {
        open_write(&self.path)
    }
}
