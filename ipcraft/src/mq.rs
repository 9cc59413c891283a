//! POSIX message queues: named queues of discrete messages, delivered
//! highest priority first and first-in first-out among equal priorities.
//!
//! [`MessageQueue::create`] makes a new queue (exclusive, mode 0600 exactly)
//! that is removed when the handle drops unless you [`keep`](MessageQueue::keep)
//! it; [`MessageQueue::open`] opens an existing one; [`MqOptions`] covers the
//! rest (access, create-if-missing, mode, sizes, non-blocking). Sends and
//! receives come in blocking, `try_` and `_timeout` forms. On Linux the
//! queue descriptor is a file descriptor, so [`MessageQueue`] implements
//! [`AsFd`] and can be polled for readiness alongside sockets and pipes.
//!
//! The kernel bounds queues with `/proc/sys/fs/mqueue/msg_max`,
//! `msgsize_max` and `queues_max`, and each user's total with
//! `RLIMIT_MSGQUEUE`; errors name whichever limit was hit.
//!
//! # References
//!
//! - [`mq_overview(7)`](https://man7.org/linux/man-pages/man7/mq_overview.7.html)

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::PollFlags;

use crate::error::{Cause, Context, Error, Result};
use crate::name::Name;
use crate::object::{self, RemoveOnDrop};
use crate::sys;

/// Priorities run from 0 to `PRIO_MAX - 1` (`MQ_PRIO_MAX` is 32768 on Linux).
pub const PRIO_MAX: u32 = 32768;

/// The kernel's ceiling on `mq_maxmsg` even with `CAP_SYS_RESOURCE`.
const HARD_MSGMAX: u64 = 65536;
/// The kernel's ceiling on `mq_msgsize` even with `CAP_SYS_RESOURCE`.
const HARD_MSGSIZEMAX: u64 = 16 * 1024 * 1024;

/// Where the mqueue file system lists queues.
pub const MQUEUE_DIR: &str = "/dev/mqueue";

/// A queue's attributes (`struct mq_attr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// Most messages the queue holds (`mq_maxmsg`).
    pub max_msgs: usize,
    /// Largest message in bytes (`mq_msgsize`).
    pub msg_size: usize,
    /// Messages waiting now (`mq_curmsgs`).
    pub cur_msgs: usize,
    /// Whether this descriptor is non-blocking (`O_NONBLOCK`).
    pub nonblocking: bool,
}

/// How to open or create a queue. Starts as "open an existing queue for
/// reading and writing, blocking".
#[derive(Clone, Debug)]
pub struct MqOptions {
    read: bool,
    write: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    max_msgs: Option<usize>,
    msg_size: Option<usize>,
    nonblocking: bool,
    allow_foreign: bool,
}

impl Default for MqOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MqOptions {
    /// Open an existing queue for reading and writing, blocking.
    pub fn new() -> Self {
        Self {
            read: true,
            write: true,
            create: false,
            create_new: false,
            mode: 0o600,
            max_msgs: None,
            msg_size: None,
            nonblocking: false,
            allow_foreign: false,
        }
    }

    /// Whether to receive from the queue.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Whether to send to the queue.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Create the queue if it does not exist. An existing queue is opened
    /// only if this user owns it: another user's queue is never adopted.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the queue, failing with `EEXIST` if it exists (`O_EXCL`).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// Permission bits for a new queue (default 0600), applied exactly:
    /// the umask does not narrow them.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// `mq_maxmsg` for a new queue (default: `/proc/sys/fs/mqueue/msg_default`).
    pub fn max_msgs(&mut self, max_msgs: usize) -> &mut Self {
        self.max_msgs = Some(max_msgs);
        self
    }

    /// `mq_msgsize` for a new queue (default: `/proc/sys/fs/mqueue/msgsize_default`).
    pub fn msg_size(&mut self, msg_size: usize) -> &mut Self {
        self.msg_size = Some(msg_size);
        self
    }

    /// Open with `O_NONBLOCK`: blocking sends and receives fail with
    /// [`Cause::Full`]/[`Cause::Empty`] instead of waiting.
    pub fn nonblocking(&mut self, nonblocking: bool) -> &mut Self {
        self.nonblocking = nonblocking;
        self
    }

    /// Accept an existing queue that another user owns (refused by default
    /// with [`Cause::ForeignOwner`], so a planted queue is never adopted).
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    /// `mq_open(name, ...)`—Opens or creates the queue. A queue this call
    /// created is removed when the returned handle drops unless kept.
    ///
    /// # Errors
    ///
    /// [`Cause::InvalidName`] before any system call; [`Cause::OverLimit`]
    /// naming `msg_max`, `msgsize_max` or `RLIMIT_MSGQUEUE` when the sizes
    /// are too large; [`Cause::LimitReached`] for `queues_max`;
    /// [`Cause::ForeignOwner`] for another user's queue (unless
    /// [`allow_foreign`](Self::allow_foreign)); `EEXIST` with
    /// [`create_new`](Self::create_new); `ENOENT` for a missing queue.
    ///
    /// # References
    ///
    /// - [`mq_open(3)`](https://man7.org/linux/man-pages/man3/mq_open.3.html)
    #[doc(alias = "mq_open")]
    pub fn open(&self, name: impl AsRef<OsStr>) -> Result<MessageQueue> {
        let name = Name::new(name)?;
        let mut oflag = match (self.read, self.write) {
            (true, true) | (false, false) => libc::O_RDWR,
            (true, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
        };
        if self.nonblocking {
            oflag |= libc::O_NONBLOCK;
        }
        if self.max_msgs == Some(0) {
            return Err(Error::new(
                "create queue",
                &name,
                Cause::Invalid("max messages must be at least 1"),
            ));
        }
        if self.msg_size == Some(0) {
            return Err(Error::new(
                "create queue",
                &name,
                Cause::Invalid("the message size must be at least 1"),
            ));
        }
        let attr = match (self.max_msgs, self.msg_size) {
            (None, None) => None,
            (max, size) => Some((
                max.map_or_else(|| read_proc_u64("msg_default").unwrap_or(10), |m| m as u64) as i64,
                size.map_or_else(|| read_proc_u64("msgsize_default").unwrap_or(8192), |s| s as u64) as i64,
            )),
        };
        let open_existing = || sys::mq_open(name.as_c_str(), oflag, 0, None).context("open queue", &name);
        let (fd, created) = if self.create_new || self.create {
            match sys::mq_open(name.as_c_str(), oflag | libc::O_CREAT | libc::O_EXCL, self.mode, attr) {
                Ok(fd) => (fd, true),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && !self.create_new => (open_existing()?, false),
                Err(e) => return Err(Error::new("create queue", &name, creation_cause(e, attr))),
            }
        } else {
            (open_existing()?, false)
        };
        let queue = MessageQueue {
            fd,
            removal: RemoveOnDrop::queue(name.clone(), created),
            name,
            max_msgs: 0,
            msg_size: 0,
        };
        if created {
            // The umask narrowed the mode given to mq_open; set it exactly.
            let mode = rustix::fs::Mode::from_raw_mode(self.mode);
            sys::retry(|| rustix::fs::fchmod(&queue.fd, mode)).context("set mode of queue", &queue.name)?;
        } else {
            object::check_opened(&queue.fd, "open queue", &queue.name, None, self.allow_foreign)?;
        }
        let (max_msgs, msg_size, _, _) =
            sys::mq_getattr(queue.fd.as_fd()).context("get attributes of queue", &queue.name)?;
        Ok(MessageQueue {
            max_msgs: max_msgs as usize,
            msg_size: msg_size as usize,
            ..queue
        })
    }
}

/// Whether this process has `CAP_SYS_RESOURCE`, which lifts the
/// `/proc/sys/fs/mqueue` limits up to the kernel's hard ceilings. Being root
/// is not enough: containers often drop the capability.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

fn read_proc_u64(file: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Turns a failed creation into the limit that refused it.
fn creation_cause(e: io::Error, attr: Option<(i64, i64)>) -> Cause {
    let privileged = has_cap_sys_resource();
    let (max, size) = attr.map_or((0, 0), |(m, s)| (m as u64, s as u64));
    match e.raw_os_error() {
        Some(libc::EINVAL) => {
            let checks = [
                (
                    max,
                    "/proc/sys/fs/mqueue/msg_max",
                    "msg_max",
                    HARD_MSGMAX,
                    "HARD_MSGMAX (the kernel's ceiling)",
                ),
                (
                    size,
                    "/proc/sys/fs/mqueue/msgsize_max",
                    "msgsize_max",
                    HARD_MSGSIZEMAX,
                    "HARD_MSGSIZEMAX (the kernel's ceiling)",
                ),
            ];
            for (requested, proc_name, file, hard, hard_name) in checks {
                let (limit, limit_name) = match read_proc_u64(file) {
                    Some(l) if !privileged => (l, proc_name),
                    _ => (hard, hard_name),
                };
                if requested > limit {
                    return Cause::OverLimit {
                        requested,
                        limit,
                        limit_name,
                    };
                }
            }
            Cause::Os(e)
        }
        Some(libc::EMFILE) => {
            // EMFILE means either "out of descriptors" or "this user's
            // queues would exceed RLIMIT_MSGQUEUE": tell them apart by
            // counting this process's descriptors.
            const LIMIT_NAME: &str = "RLIMIT_MSGQUEUE (bytes for all of this user's queues, `ulimit -q`)";
            let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).ok();
            let out_of_fds = matches!((open_fds, nofile), (Some(n), Some(l)) if n + 1 >= l);
            // The kernel charges each queue roughly its messages plus
            // bookkeeping against RLIMIT_MSGQUEUE.
            let needed = max.saturating_mul(size.saturating_add(64));
            match rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current {
                Some(limit) if needed > limit => Cause::OverLimit {
                    requested: needed,
                    limit,
                    limit_name: LIMIT_NAME,
                },
                Some(limit) if !out_of_fds => Cause::LimitReached {
                    limit_name: LIMIT_NAME,
                    limit,
                },
                _ => Cause::Os(e),
            }
        }
        Some(libc::ENOSPC) => Cause::LimitReached {
            limit_name: "/proc/sys/fs/mqueue/queues_max",
            limit: read_proc_u64("queues_max").unwrap_or(0),
        },
        _ => Cause::Os(e),
    }
}

/// An open POSIX message queue, closed on drop. A queue this handle created
/// is removed on drop too, unless [`keep`](Self::keep) was called.
pub struct MessageQueue {
    fd: OwnedFd,
    name: Name,
    removal: RemoveOnDrop,
    max_msgs: usize,
    msg_size: usize,
}

impl MessageQueue {
    /// Creates a new queue (exclusive, mode 0600) holding up to `max_msgs`
    /// messages of up to `msg_size` bytes, open for reading and writing. It
    /// is removed when this handle drops unless [`keep`](Self::keep) is called.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::mq::MessageQueue;
    ///
    /// let name = format!("/ipcraft-doc-{}", std::process::id());
    /// let q = MessageQueue::create(&name, 4, 64).unwrap();
    /// q.send(b"low", 1).unwrap();
    /// q.send(b"high", 9).unwrap();
    /// let mut buf = [0u8; 64];
    /// let (n, prio) = q.recv(&mut buf).unwrap();
    /// assert_eq!((&buf[..n], prio), (&b"high"[..], 9));
    /// drop(q); // created here, so removed now
    /// assert!(MessageQueue::open(&name).is_err());
    /// ```
    pub fn create(name: impl AsRef<OsStr>, max_msgs: usize, msg_size: usize) -> Result<Self> {
        MqOptions::new()
            .create_new(true)
            .max_msgs(max_msgs)
            .msg_size(msg_size)
            .open(name)
    }

    /// Opens an existing queue for reading and writing.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        MqOptions::new().open(name)
    }

    /// The queue's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Leaves a queue this handle created in place when it drops.
    pub fn keep(&mut self) {
        self.removal.keep();
    }

    /// `mq_unlink`—Removes the queue's name now (this handle and other open
    /// ones keep working), reporting what drop would ignore.
    #[doc(alias = "mq_unlink")]
    pub fn remove(mut self) -> Result<()> {
        self.removal.remove_now().context("remove queue", &self.name)
    }

    /// `mq_msgsize`: the largest message, and the smallest receive buffer.
    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    /// `mq_maxmsg`: how many messages the queue holds.
    pub fn max_msgs(&self) -> usize {
        self.max_msgs
    }

    fn check_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        if msg.len() > self.msg_size {
            return Err(Error::new(
                "send to queue",
                &self.name,
                Cause::TooLarge {
                    len: msg.len(),
                    limit: self.msg_size,
                    limit_name: "mq_msgsize",
                },
            ));
        }
        if priority >= PRIO_MAX {
            return Err(Error::new(
                "send to queue",
                &self.name,
                Cause::OverLimit {
                    requested: priority.into(),
                    limit: (PRIO_MAX - 1).into(),
                    limit_name: "MQ_PRIO_MAX - 1",
                },
            ));
        }
        Ok(())
    }

    fn check_recv(&self, buf: &[u8]) -> Result<()> {
        if buf.len() < self.msg_size {
            return Err(Error::new(
                "receive from queue",
                &self.name,
                Cause::BufferTooSmall {
                    len: buf.len(),
                    need: self.msg_size,
                    limit_name: "mq_msgsize",
                },
            ));
        }
        Ok(())
    }

    fn send_error(&self, e: io::Error) -> Error {
        let cause = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => Cause::Full,
            _ => Cause::Os(e),
        };
        Error::new("send to queue", &self.name, cause)
    }

    fn recv_error(&self, e: io::Error) -> Error {
        let cause = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => Cause::Empty,
            _ => Cause::Os(e),
        };
        Error::new("receive from queue", &self.name, cause)
    }

    /// `mq_send`—Sends `msg` with `priority` (0 to [`PRIO_MAX`]` - 1`),
    /// waiting while the queue is full (unless opened non-blocking).
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`] naming `mq_msgsize` (nothing is sent);
    /// [`Cause::OverLimit`] for a priority too high; [`Cause::Full`] in
    /// non-blocking mode; `EBADF` if not opened for writing.
    ///
    /// # References
    ///
    /// - [`mq_send(3)`](https://man7.org/linux/man-pages/man3/mq_send.3.html)
    #[doc(alias = "mq_send")]
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.check_send(msg, priority)?;
        sys::mq_send(self.fd.as_fd(), msg, priority).map_err(|e| self.send_error(e))
    }

    /// Sends `msg` if there is room now; [`Cause::Full`] otherwise.
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.check_send(msg, priority)?;
        sys::mq_try_send(self.fd.as_fd(), msg, priority).map_err(|e| self.send_error(e))
    }

    /// `mq_timedsend`—Sends `msg`, waiting at most `timeout` for room.
    ///
    /// The wait is measured on the monotonic clock (a `poll` on the queue
    /// descriptor), so changes to the wall clock do not stretch it.
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`] if the queue stayed full; otherwise as [`send`](Self::send).
    ///
    /// # References
    ///
    /// - [`mq_timedsend(3)`](https://man7.org/linux/man-pages/man3/mq_send.3.html)
    #[doc(alias = "mq_timedsend")]
    pub fn send_timeout(&self, msg: &[u8], priority: u32, timeout: Duration) -> Result<()> {
        self.check_send(msg, priority)?;
        let deadline = sys::deadline(Some(timeout));
        loop {
            match sys::mq_try_send(self.fd.as_fd(), msg, priority).map_err(|e| self.send_error(e)) {
                Err(e) if matches!(e.cause(), Cause::Full) => self.wait(PollFlags::OUT, deadline, "send to queue")?,
                other => return other,
            }
        }
    }

    /// `mq_receive`—Receives the oldest message of the highest priority into
    /// `buf`, waiting while the queue is empty (unless non-blocking).
    /// Returns the message length and its priority.
    ///
    /// # Errors
    ///
    /// [`Cause::BufferTooSmall`] if `buf` is shorter than
    /// [`msg_size`](Self::msg_size) (nothing is taken from the queue);
    /// [`Cause::Empty`] in non-blocking mode.
    ///
    /// # References
    ///
    /// - [`mq_receive(3)`](https://man7.org/linux/man-pages/man3/mq_receive.3.html)
    #[doc(alias = "mq_receive")]
    pub fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.check_recv(buf)?;
        sys::mq_receive(self.fd.as_fd(), buf).map_err(|e| self.recv_error(e))
    }

    /// Receives a message if one is waiting; [`Cause::Empty`] otherwise.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.check_recv(buf)?;
        sys::mq_try_receive(self.fd.as_fd(), buf).map_err(|e| self.recv_error(e))
    }

    /// `mq_timedreceive`—Receives a message, waiting at most `timeout`
    /// (monotonic clock).
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`] if none arrived; otherwise as [`recv`](Self::recv).
    ///
    /// # References
    ///
    /// - [`mq_timedreceive(3)`](https://man7.org/linux/man-pages/man3/mq_receive.3.html)
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.check_recv(buf)?;
        let deadline = sys::deadline(Some(timeout));
        loop {
            match sys::mq_try_receive(self.fd.as_fd(), buf).map_err(|e| self.recv_error(e)) {
                Err(e) if matches!(e.cause(), Cause::Empty) => {
                    self.wait(PollFlags::IN, deadline, "receive from queue")?
                }
                other => return other,
            }
        }
    }

    /// A receive buffer sized for this queue (`mq_msgsize` bytes).
    pub fn buffer(&self) -> Vec<u8> {
        vec![0; self.msg_size]
    }

    fn wait(&self, events: PollFlags, deadline: Option<std::time::Instant>, op: &'static str) -> Result<()> {
        match sys::wait_fd(self.fd.as_fd(), events, deadline) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(Error::new(op, &self.name, Cause::TimedOut)),
            Err(e) => Err(Error::new(op, &self.name, e)),
        }
    }

    /// Waits at most `timeout` (forever if `None`) until a message can be
    /// received, without taking it.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<()> {
        self.wait(PollFlags::IN, sys::deadline(timeout), "wait for queue")
    }

    /// Waits at most `timeout` (forever if `None`) until there is room to send.
    pub fn wait_writable(&self, timeout: Option<Duration>) -> Result<()> {
        self.wait(PollFlags::OUT, sys::deadline(timeout), "wait for queue")
    }

    /// `mq_getattr`—The queue's attributes, including how many messages wait.
    ///
    /// # References
    ///
    /// - [`mq_getattr(3)`](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    #[doc(alias = "mq_getattr")]
    pub fn attributes(&self) -> Result<Attributes> {
        let (max, size, cur, nonblocking) =
            sys::mq_getattr(self.fd.as_fd()).context("get attributes of queue", &self.name)?;
        Ok(Attributes {
            max_msgs: max as usize,
            msg_size: size as usize,
            cur_msgs: cur as usize,
            nonblocking,
        })
    }

    /// `mq_setattr`—Sets or clears `O_NONBLOCK` on this descriptor (the
    /// only attribute that can change after creation).
    ///
    /// # References
    ///
    /// - [`mq_setattr(3)`](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    #[doc(alias = "mq_setattr")]
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        sys::mq_set_nonblocking(self.fd.as_fd(), nonblocking).context("set attributes of queue", &self.name)
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The queue descriptor; the name follows the handle's rule (removed if
/// this handle created it and did not keep it).
impl From<MessageQueue> for OwnedFd {
    fn from(q: MessageQueue) -> Self {
        q.fd
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("max_msgs", &self.max_msgs)
            .field("msg_size", &self.msg_size)
            .field("remove_on_drop", &self.removal.is_armed())
            .finish()
    }
}

/// `mq_unlink(name)`—Removes a queue's name; processes that have it open
/// keep using it until they close it.
///
/// # References
///
/// - [`mq_unlink(3)`](https://man7.org/linux/man-pages/man3/mq_unlink.3.html)
#[doc(alias = "mq_unlink")]
pub fn remove(name: impl AsRef<OsStr>) -> Result<()> {
    let name = Name::new(name)?;
    sys::mq_unlink(name.as_c_str()).context("remove queue", &name)
}

/// Lists the queues on this machine, by reading [`MQUEUE_DIR`].
///
/// # Errors
///
/// [`Cause::NotMounted`] (with the command that mounts it) when no mqueue
/// file system is mounted at `/dev/mqueue`.
pub fn list() -> Result<Vec<Name>> {
    const MQUEUE_MAGIC: i64 = 0x1980_0202;
    let not_mounted = || {
        Error::new(
            "list queues in",
            MQUEUE_DIR,
            Cause::NotMounted {
                fs: "mqueue",
                hint: "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue",
            },
        )
    };
    match rustix::fs::statfs(MQUEUE_DIR) {
        // f_type's integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        Ok(s) if s.f_type as i64 == MQUEUE_MAGIC => {}
        Ok(_) => return Err(not_mounted()),
        Err(rustix::io::Errno::NOENT) => return Err(not_mounted()),
        Err(e) => return Err(Error::new("list queues in", MQUEUE_DIR, e)),
    }
    let mut names: Vec<Name> = std::fs::read_dir(MQUEUE_DIR)
        .context("list queues in", MQUEUE_DIR)?
        .filter_map(|entry| Name::new(entry.ok()?.file_name()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}
