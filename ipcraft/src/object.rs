//! The rules every named object follows (FIFOs, message queues, shared
//! memory objects, channels, socket files), checked on the descriptor that
//! was actually opened, never on a path that another process could swap:
//!
//! - a symbolic link is never followed (`O_NOFOLLOW`);
//! - the object must be of the kind asked for (a FIFO, a regular file);
//! - an object another user owns is refused unless the caller allowed it,
//!   so one planted in a shared directory (`/dev/shm`, `/tmp`) is never
//!   adopted silently.

use std::fmt;
use std::os::fd::AsFd;

use rustix::fs::{FileType, Stat};

use crate::error::{Cause, Context, Error, Result};
use crate::sys;

/// This process's effective user id.
pub(crate) fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `fstat`s `fd` and checks it against the rules above: `kind`, when given,
/// is the file type it must have; `allow_foreign` accepts another owner.
pub(crate) fn check_opened(
    fd: impl AsFd,
    op: &'static str,
    object: &dyn fmt::Display,
    kind: Option<(FileType, &'static str)>,
    allow_foreign: bool,
) -> Result<Stat> {
    let stat = sys::retry(|| rustix::fs::fstat(fd.as_fd())).context(op, object)?;
    if let Some((want, expected)) = kind {
        let found = FileType::from_raw_mode(stat.st_mode);
        if found != want {
            return Err(Error::new(
                op,
                object,
                Cause::WrongType {
                    expected,
                    found: type_name(found),
                },
            ));
        }
    }
    check_owner(stat.st_uid, op, object, allow_foreign)?;
    Ok(stat)
}

/// Refuses an object that `owner` owns, when that is another user,
/// unless `allow_foreign`.
pub(crate) fn check_owner(owner: u32, op: &'static str, object: &dyn fmt::Display, allow_foreign: bool) -> Result<()> {
    let me = my_uid();
    if owner != me && !allow_foreign {
        return Err(Error::new(op, object, Cause::ForeignOwner { owner, me }));
    }
    Ok(())
}

/// Sets the mode of the file this process just made at `path` without
/// following a link: the file is opened `O_PATH | O_NOFOLLOW` (no reader or
/// writer appears on a FIFO), checked to be of `kind`, and changed through
/// its `/proc/self/fd` entry, so a link or other file swapped in at the
/// path (in a directory others can write) is refused, never followed.
/// Without `/proc`, a plain `chmod` of the path. Returns the `O_PATH`
/// descriptor, which pins down the file for later checks.
pub(crate) fn set_mode_nofollow(
    path: &std::path::Path,
    kind: FileType,
    mode: u32,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    let mode = Mode::from_raw_mode(mode & 0o7777);
    let fd = sys::open_nofollow(path, OFlags::PATH, Mode::empty())?;
    let stat = sys::retry(|| rustix::fs::fstat(&fd))?;
    if FileType::from_raw_mode(stat.st_mode) != kind {
        return Err(std::io::Error::other(format!(
            "it was replaced by {} before its mode was set",
            type_name(FileType::from_raw_mode(stat.st_mode))
        )));
    }
    let via_proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match sys::retry(|| rustix::fs::chmod(via_proc.as_str(), mode)) {
        Err(rustix::io::Errno::NOENT) => sys::retry(|| rustix::fs::chmod(path, mode))?,
        other => other?,
    }
    Ok(fd)
}

/// `a FIFO`, `a symbolic link`, ...: what an error says was found.
pub(crate) fn type_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Fifo => "a FIFO",
        _ => "of unknown type",
    }
}

/// A named object that a handle created: removed when the handle drops,
/// unless it was kept. This is the one lifetime rule for every named
/// object (see the crate docs): `create` removes on drop, `open` never does.
#[derive(Debug)]
pub(crate) struct RemoveOnDrop {
    what: Removable,
    armed: bool,
}

#[derive(Debug)]
enum Removable {
    /// A file (shared memory object, FIFO, socket file), removed only while
    /// the path still names the same file: another process may have
    /// replaced it since.
    File {
        path: std::path::PathBuf,
        dev: u64,
        ino: u64,
        kind: FileType,
    },
    /// A POSIX message queue.
    Queue(crate::Name),
}

impl RemoveOnDrop {
    /// Removes `path` on drop while it is still the file `fd` refers to
    /// (armed only when `created`).
    pub(crate) fn file(path: impl Into<std::path::PathBuf>, fd: impl AsFd, created: bool) -> std::io::Result<Self> {
        let stat = sys::retry(|| rustix::fs::fstat(fd.as_fd()))?;
        Ok(Self {
            what: Removable::File {
                path: path.into(),
                dev: stat.st_dev,
                ino: stat.st_ino,
                kind: FileType::from_raw_mode(stat.st_mode),
            },
            armed: created,
        })
    }

    /// Removes `path` on drop while it names the file `lstat` finds there
    /// now (for files with no descriptor of their own, such as a socket
    /// file).
    pub(crate) fn path(path: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let stat = sys::retry(|| rustix::fs::lstat(&path))?;
        Ok(Self {
            what: Removable::File {
                path,
                dev: stat.st_dev,
                ino: stat.st_ino,
                kind: FileType::from_raw_mode(stat.st_mode),
            },
            armed: true,
        })
    }

    /// Removes the queue `name` on drop (armed only when `created`).
    pub(crate) fn queue(name: crate::Name, created: bool) -> Self {
        Self {
            what: Removable::Queue(name),
            armed: created,
        }
    }

    /// Whether drop will remove the object.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed
    }

    /// Leaves the object in place when this drops.
    pub(crate) fn keep(&mut self) {
        self.armed = false;
    }

    /// Removes the object now (whether or not armed), reporting the error
    /// that drop would ignore; afterwards drop does nothing.
    pub(crate) fn remove_now(&mut self) -> std::io::Result<()> {
        self.armed = false;
        match &self.what {
            Removable::File { path, dev, ino, kind } => {
                let stat = sys::retry(|| rustix::fs::lstat(path))?;
                // A freed inode number can be reused at once, so the kind
                // is compared too.
                if stat.st_dev != *dev || stat.st_ino != *ino || FileType::from_raw_mode(stat.st_mode) != *kind {
                    // Someone else's file now stands at the path.
                    return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
                }
                Ok(sys::retry(|| rustix::fs::unlink(path))?)
            }
            Removable::Queue(name) => sys::mq_unlink(name.as_c_str()),
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            // Nothing to report from drop; the handles' `remove` reports errors.
            let _ = self.remove_now();
        }
    }
}
