//! Anonymous pipes: a one-way byte stream through a kernel buffer, the
//! classic way for a parent and its children to talk.
//!
//! [`pipe`] returns a [`PipeReader`] and a [`PipeWriter`]. Both are
//! close-on-exec, implement [`Read`]/[`Write`] and [`AsFd`], and convert into
//! [`Stdio`] so a child process can be given either end. When every writer
//! has closed, the reader drains the buffer and then reads 0 bytes: end of
//! file, which works as a signal that all writers are done. A write whose
//! reader is gone fails with [`io::ErrorKind::BrokenPipe`]; `SIGPIPE` never
//! kills the process.
//!
//! [`PipeWriter::write_atomic`] writes at most [`PIPE_BUF`] bytes that are
//! never interleaved with other writers'. Child processes bound to pipe
//! ends, shell-style pipelines and `popen`-style commands are in
//! [`command`](crate::command).
//!
//! # References
//!
//! - [`pipe(7)`](https://man7.org/linux/man-pages/man7/pipe.7.html)

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::pipe::PipeFlags;

use crate::error::{Cause, Context, Error, Result};
use crate::sys;

/// Writes of at most this many bytes to a pipe or FIFO are atomic: they are
/// never interleaved with writes from other processes. 4096 on Linux.
pub const PIPE_BUF: usize = rustix::pipe::PIPE_BUF;

/// `pipe2(O_CLOEXEC)`—Creates a pipe and returns its read and write ends.
///
/// # Errors
///
/// `EMFILE`/`ENFILE` when the process or system is out of descriptors.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut reader, mut writer) = ipcraft::pipe::pipe().unwrap();
/// writer.write_all(b"hello").unwrap();
/// drop(writer); // the last writer closes: the reader will see EOF
/// let mut text = String::new();
/// reader.read_to_string(&mut text).unwrap();
/// assert_eq!(text, "hello");
/// ```
///
/// # References
///
/// - [`pipe2(2)`](https://man7.org/linux/man-pages/man2/pipe2.2.html)
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = sys::retry(|| rustix::pipe::pipe_with(PipeFlags::CLOEXEC)).context("create", "pipe")?;
    Ok((PipeReader(r), PipeWriter(w)))
}

/// The read end of a pipe or FIFO.
pub struct PipeReader(OwnedFd);

/// The write end of a pipe or FIFO.
pub struct PipeWriter(OwnedFd);

/// Methods and conversions shared by both ends.
macro_rules! pipe_end {
    ($end:ident, $what:literal) => {
        impl $end {
            /// Duplicates this end (`fcntl(F_DUPFD_CLOEXEC)`); both copies
            /// refer to the same pipe.
            pub fn try_clone(&self) -> Result<Self> {
                self.0.try_clone().map(Self).context("duplicate", $what)
            }

            /// Sets or clears `O_NONBLOCK`. In non-blocking mode a read or
            /// write that would wait fails with
            /// [`io::ErrorKind::WouldBlock`] instead.
            pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
                sys::set_nonblocking(&self.0, nonblocking).context("set O_NONBLOCK on", $what)
            }

            /// Whether `O_NONBLOCK` is set.
            pub fn is_nonblocking(&self) -> Result<bool> {
                sys::is_nonblocking(&self.0).context("get flags of", $what)
            }

            /// `fcntl(F_GETPIPE_SZ)`—The size of the pipe's kernel buffer
            /// in bytes (64 KiB by default).
            ///
            /// # References
            ///
            /// - [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
            #[doc(alias = "F_GETPIPE_SZ")]
            pub fn capacity(&self) -> Result<usize> {
                sys::retry(|| rustix::pipe::fcntl_getpipe_size(&self.0)).context("get capacity of", $what)
            }

            /// `fcntl(F_SETPIPE_SZ)`—Resizes the kernel buffer to at least
            /// `bytes` and returns the size the kernel chose (a power of
            /// two pages).
            ///
            /// # Errors
            ///
            /// [`Cause::OverLimit`] naming `/proc/sys/fs/pipe-max-size` when
            /// an unprivileged process asks for more than it allows;
            /// `EBUSY` when shrinking below the data in the pipe.
            ///
            /// # References
            ///
            /// - [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
            #[doc(alias = "F_SETPIPE_SZ")]
            pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
                set_capacity(self.as_fd(), bytes, $what)
            }
        }

        impl AsFd for $end {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }

        impl AsRawFd for $end {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }

        impl IntoRawFd for $end {
            fn into_raw_fd(self) -> RawFd {
                self.0.into_raw_fd()
            }
        }

        impl FromRawFd for $end {
            /// # Safety
            ///
            /// `fd` must be an open descriptor of a pipe or FIFO end that
            /// nothing else owns.
            unsafe fn from_raw_fd(fd: RawFd) -> Self {
                // SAFETY: forwarded to the caller's contract.
                Self(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        }

        /// Takes ownership of a descriptor. It is not checked to be a pipe.
        impl From<OwnedFd> for $end {
            fn from(fd: OwnedFd) -> Self {
                Self(fd)
            }
        }

        impl From<$end> for OwnedFd {
            fn from(end: $end) -> Self {
                end.0
            }
        }

        /// Gives this end to a child process as its stdin, stdout or stderr.
        impl From<$end> for Stdio {
            fn from(end: $end) -> Self {
                Stdio::from(end.0)
            }
        }

        impl fmt::Debug for $end {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($end))
                    .field(&self.0.as_raw_fd())
                    .finish()
            }
        }
    };
}

pipe_end!(PipeReader, "pipe read end");
pipe_end!(PipeWriter, "pipe write end");

fn set_capacity(fd: BorrowedFd<'_>, bytes: usize, what: &'static str) -> Result<usize> {
    match sys::retry(|| rustix::pipe::fcntl_setpipe_size(fd, bytes)) {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::PERM) => {
            let limit = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            Err(Error::new(
                "resize",
                what,
                Cause::OverLimit {
                    requested: bytes as u64,
                    limit,
                    limit_name: "/proc/sys/fs/pipe-max-size",
                },
            ))
        }
        Err(e) => Err(Error::new("resize", what, e)),
    }
}

impl PipeReader {
    /// Reads into `buf`, waiting at most `timeout` for data or end of file.
    ///
    /// Returns the byte count; 0 means every writer has closed.
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`] if nothing arrived in time (nothing is consumed).
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let deadline = sys::deadline(Some(timeout));
        loop {
            match sys::wait_fd(self.as_fd(), PollFlags::IN, deadline) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Error::new("read from", "pipe", Cause::TimedOut))
                }
                Err(e) => return Err(Error::new("read from", "pipe", e)),
                Ok(_) => {}
            }
            match sys::retry(|| rustix::io::read(&self.0, &mut *buf)) {
                // Another reader took the data first; wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other.context("read from", "pipe"),
            }
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(sys::retry(|| rustix::io::read(&self.0, &mut *buf))?)
    }
}

impl PipeWriter {
    /// Writes all of `buf` in one `write(2)`, which the kernel guarantees is
    /// not interleaved with any other writer's, because `buf` is at most
    /// [`PIPE_BUF`] bytes.
    ///
    /// In blocking mode this waits for room for the whole buffer; in
    /// non-blocking mode it fails with `EAGAIN` and writes nothing if there
    /// is not room for all of it.
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`] naming `PIPE_BUF` if `buf` is longer (nothing is
    /// written); `EPIPE` ([`io::ErrorKind::BrokenPipe`]) if no reader is left.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_reader, writer) = ipcraft::pipe::pipe().unwrap();
    /// writer.write_atomic(b"one whole record\n").unwrap();
    /// assert!(writer.write_atomic(&[0; ipcraft::pipe::PIPE_BUF + 1]).is_err());
    /// ```
    ///
    /// # References
    ///
    /// - [`pipe(7)`, section "PIPE_BUF"](https://man7.org/linux/man-pages/man7/pipe.7.html)
    pub fn write_atomic(&self, buf: &[u8]) -> Result<()> {
        if buf.len() > PIPE_BUF {
            return Err(Error::new(
                "write to",
                "pipe",
                Cause::TooLarge {
                    len: buf.len(),
                    limit: PIPE_BUF,
                    limit_name: "PIPE_BUF",
                },
            ));
        }
        let n = sys::write_nosigpipe(self.as_fd(), buf).context("write to", "pipe")?;
        if n != buf.len() {
            // The kernel promises all-or-nothing for ≤ PIPE_BUF bytes.
            return Err(Error::new(
                "write to",
                "pipe",
                io::Error::from(io::ErrorKind::WriteZero),
            ));
        }
        Ok(())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::write_nosigpipe(self.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Turns a child's std pipe handle into an ipcraft end.
impl From<ChildStdout> for PipeReader {
    fn from(out: ChildStdout) -> Self {
        Self(out.into())
    }
}

/// Turns a child's std pipe handle into an ipcraft end.
impl From<ChildStdin> for PipeWriter {
    fn from(input: ChildStdin) -> Self {
        Self(input.into())
    }
}
