//! The crate's error type: the operation that failed, the object it was
//! applied to, and why.
//!
//! Every fallible library call returns [`Result<T>`]. The [`Display`] form is
//! one line, `open fifo /tmp/x: No such file or directory`, which is exactly
//! what the `ipcraft` command prints after its `ipcraft: ` prefix.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;
use std::io;

/// `Result<T, ipcraft::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from an ipcraft operation: what was attempted, on which object,
/// and the underlying [`Cause`].
///
/// Converts into [`io::Error`] (keeping the [`io::ErrorKind`]) so it can be
/// returned with `?` from functions that return `io::Result`.
///
/// `Debug` prints the same one line as `Display`, so `fn main() ->
/// Result<(), ipcraft::Error>` reports `Error: open fifo /tmp/x: No such
/// file or directory`, not a struct dump; [`cause`](Self::cause) gives the
/// structured reason.
pub struct Error(Box<Inner>);

/// What an [`Error`] holds, boxed so that an `Error` is one pointer and a
/// `Result<()>` or `Result<usize>` comes back in registers: the channel's
/// send and receive paths return one per message, and a larger error made
/// every call store its result to memory (one more store per message
/// waiting in the CPU's store buffer behind the ring's lines).
struct Inner {
    op: &'static str,
    object: Option<String>,
    cause: Cause,
}

const _: () = assert!(std::mem::size_of::<Result<()>>() == std::mem::size_of::<usize>());

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// The operating system refused the call.
    #[error("{}", os_message(.0))]
    Os(#[from] io::Error),
    /// A POSIX IPC name was rejected before any system call was made.
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// An argument that can never work, such as a zero size; rejected
    /// before any system call.
    #[error("{0}")]
    Invalid(&'static str),
    /// A buffer or message is larger than a limit; nothing was sent.
    #[error("{len} bytes is larger than {limit_name} ({limit} bytes); nothing was sent")]
    TooLarge {
        /// Length that was asked for.
        len: usize,
        /// The limit that applies.
        limit: usize,
        /// Name of the limit, such as `PIPE_BUF` or `mq_msgsize`.
        limit_name: &'static str,
    },
    /// A requested size or count is over a system limit.
    #[error("{requested} is more than {limit_name} allows ({limit})")]
    OverLimit {
        /// What was asked for.
        requested: u64,
        /// The limit in force.
        limit: u64,
        /// Where the limit comes from, such as `/proc/sys/fs/pipe-max-size`.
        limit_name: &'static str,
    },
    /// A receive buffer is smaller than the largest message it may get.
    #[error("a {len}-byte buffer is smaller than {limit_name} ({need} bytes)")]
    BufferTooSmall {
        /// Length of the buffer given.
        len: usize,
        /// Length it must have.
        need: usize,
        /// Name of the limit, such as `mq_msgsize`.
        limit_name: &'static str,
    },
    /// An object's size is not the size of the value asked for.
    #[error("is {size} bytes, but {what} is {need} bytes")]
    WrongSize {
        /// The object's size.
        size: u64,
        /// The value's size.
        need: u64,
        /// The value, such as `an f64`.
        what: &'static str,
    },
    /// A system-wide count limit has been reached.
    #[error("{limit_name} ({limit}) has been reached")]
    LimitReached {
        /// Where the limit comes from, such as `/proc/sys/fs/mqueue/queues_max`.
        limit_name: &'static str,
        /// The limit in force.
        limit: u64,
    },
    /// A file system the operation needs is not mounted.
    #[error("no {fs} file system is mounted there; mount one with: {hint}")]
    NotMounted {
        /// The file system type, such as `mqueue`.
        fs: &'static str,
        /// The command that mounts it.
        hint: &'static str,
    },
    /// The object exists but is not of the expected kind.
    #[error("not a {expected} (it is {found})")]
    WrongType {
        /// The kind of object that was expected.
        expected: &'static str,
        /// The kind that was found.
        found: &'static str,
    },
    /// The path is a symbolic link, which is never followed.
    #[error("is a symbolic link; refusing to follow it")]
    Symlink,
    /// A FIFO has no process with it open for reading.
    #[error("no process has it open for reading")]
    NoReader,
    /// A FIFO had no writer within the timeout.
    #[error("no writer within the timeout")]
    NoWriter,
    /// A queue or ring had no room and the call was not to wait.
    #[error("full: no room for another message")]
    Full,
    /// A queue or ring had nothing to take and the call was not to wait.
    #[error("empty: no message is waiting")]
    Empty,
    /// The object exists but belongs to another user, so it is not adopted.
    #[error("exists and is owned by uid {owner}, not by this user (uid {me}); not adopting it")]
    ForeignOwner {
        /// Owner of the existing object.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// A mapped object shrank under its mapping (another process truncated
    /// it); the bytes past its new end are gone.
    #[error("the mapped object shrank while in use (truncated by another process?)")]
    Truncated,
    /// Shared memory holds values that cannot come from a correct peer (or
    /// the object is not a channel at all); nothing outside it was touched.
    #[error("corrupted or not an ipcraft channel: {0}")]
    Corrupted(String),
    /// The other side closed its end.
    #[error("the {side} has closed its end")]
    Closed {
        /// `sender`, `receiver`, `publisher`, `subscriber`, `server` or `client`.
        side: &'static str,
    },
    /// The sender abandoned the stream (it failed, or was dropped while
    /// panicking): what it sent before was delivered, but the stream is
    /// not complete.
    #[error("the sender aborted the stream")]
    Aborted,
    /// The other side's process ended without closing its end.
    #[error("the {side} (pid {pid}) died without closing its end")]
    PeerDied {
        /// `sender`, `receiver`, `publisher`, `subscriber`, `server` or `client`.
        side: &'static str,
        /// Its process id.
        pid: u32,
    },
    /// The side being opened is already attached to another handle.
    #[error("it already has a {side} (pid {pid})")]
    InUse {
        /// `sender`, `receiver`, `publisher`, `subscriber`, `server` or `client`.
        side: &'static str,
        /// The process that has it.
        pid: u32,
    },
    /// A peer sent more file descriptors than there was room for; those
    /// that arrived were closed.
    #[error("the peer sent more than the {room} descriptors there was room for; those that arrived were closed")]
    ControlTruncated {
        /// How many descriptors the receiver made room for.
        room: usize,
    },
    /// A memfd's seals forbid the operation, or a received file is not
    /// sealed the way it must be (or is too small).
    #[error("{0}")]
    BadSeals(String),
    /// A topic subscriber fell behind a publisher that does not wait
    /// (overwrite policy): this many messages were overwritten before it
    /// read them. It continues from the oldest message still held.
    #[error("missed {missed} messages")]
    Lagged {
        /// How many messages it missed.
        missed: u64,
    },
    /// A bounded wait ran out.
    #[error("timed out")]
    TimedOut,
    /// A child process ended unsuccessfully.
    #[error("child process {0}")]
    ChildFailed(std::process::ExitStatus),
    /// A child process ended before the exchange finished.
    #[error("child process exited before the exchange finished")]
    ChildGone,
}

/// The OS message without std's ` (os error N)` suffix: `No such file or directory`.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if e.raw_os_error().is_some() => text[..at].to_owned(),
        _ => text,
    }
}

impl Error {
    /// An error for `op` on `object` with `cause`.
    pub fn new(op: &'static str, object: impl fmt::Display, cause: impl Into<Cause>) -> Self {
        Self(Box::new(Inner {
            op,
            object: Some(object.to_string()),
            cause: cause.into(),
        }))
    }

    /// An error for `op`, which has no named object, with `cause`.
    pub fn bare(op: &'static str, cause: impl Into<Cause>) -> Self {
        Self(Box::new(Inner {
            op,
            object: None,
            cause: cause.into(),
        }))
    }

    /// The same cause, reported as `op` on `object` (for a caller that
    /// knows the object better, such as a file's path).
    pub fn relabel(self, op: &'static str, object: impl fmt::Display) -> Self {
        Self::new(op, object, self.0.cause)
    }

    /// The operation that failed, such as `open fifo`.
    pub fn op(&self) -> &'static str {
        self.0.op
    }

    /// The name or path of the object, if the operation had one.
    pub fn object(&self) -> Option<&str> {
        self.0.object.as_deref()
    }

    /// Why it failed.
    pub fn cause(&self) -> &Cause {
        &self.0.cause
    }

    /// The OS error number, if the OS refused the call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.0.cause {
            Cause::Os(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// The closest [`io::ErrorKind`].
    pub fn kind(&self) -> io::ErrorKind {
        match &self.0.cause {
            Cause::Os(e) => e.kind(),
            Cause::InvalidName(_)
            | Cause::Invalid(_)
            | Cause::TooLarge { .. }
            | Cause::OverLimit { .. }
            | Cause::BufferTooSmall { .. }
            | Cause::WrongSize { .. } => io::ErrorKind::InvalidInput,
            Cause::WrongType { .. } | Cause::Symlink => io::ErrorKind::InvalidInput,
            Cause::NoReader | Cause::ChildGone => io::ErrorKind::BrokenPipe,
            Cause::NoWriter | Cause::TimedOut => io::ErrorKind::TimedOut,
            Cause::Full | Cause::Empty => io::ErrorKind::WouldBlock,
            Cause::ForeignOwner { .. } => io::ErrorKind::PermissionDenied,
            Cause::ChildFailed(_) => io::ErrorKind::Other,
            Cause::Truncated => io::ErrorKind::UnexpectedEof,
            Cause::Corrupted(_) => io::ErrorKind::InvalidData,
            Cause::Closed { .. } | Cause::PeerDied { .. } | Cause::Aborted => io::ErrorKind::BrokenPipe,
            Cause::InUse { .. } => io::ErrorKind::ResourceBusy,
            Cause::ControlTruncated { .. } | Cause::BadSeals(_) => io::ErrorKind::InvalidData,
            Cause::LimitReached { .. } => io::ErrorKind::OutOfMemory,
            Cause::Lagged { .. } => io::ErrorKind::Other,
            Cause::NotMounted { .. } => io::ErrorKind::NotFound,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.op)?;
        if let Some(object) = &self.0.object {
            write!(f, " {object}")?;
        }
        write!(f, ": {}", self.0.cause)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.cause {
            Cause::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

impl From<rustix::io::Errno> for Cause {
    fn from(e: rustix::io::Errno) -> Self {
        Cause::Os(e.into())
    }
}

/// Attaches an operation and object to a lower-level result.
pub(crate) trait Context<T> {
    /// Wraps the error as `op object: cause`.
    fn context(self, op: &'static str, object: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Cause>> Context<T> for std::result::Result<T, E> {
    fn context(self, op: &'static str, object: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(op, object, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_without_os_error_suffix() {
        let e = Error::new("open fifo", "/tmp/x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.to_string(), "open fifo /tmp/x: No such file or directory");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn debug_is_the_one_line_message() {
        let e = Error::new("open fifo", "/tmp/x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(format!("{e:?}"), "open fifo /tmp/x: No such file or directory");
    }

    #[test]
    fn too_large_names_the_limit() {
        let e = Error::bare(
            "write to pipe",
            Cause::TooLarge {
                len: 5000,
                limit: 4096,
                limit_name: "PIPE_BUF",
            },
        );
        assert_eq!(
            e.to_string(),
            "write to pipe: 5000 bytes is larger than PIPE_BUF (4096 bytes); nothing was sent"
        );
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
    }
}
