//! Unix domain sockets: what std's `UnixStream`/`UnixListener`/
//! `UnixDatagram` leave out.
//!
//! - [`Listener::bind`] checks the 107-byte path limit up front, refuses to
//!   replace a live socket (it connects first: a stale file left by a dead
//!   server is removed, a live one is an error), creates the socket file
//!   mode 0600 whatever the umask (before it listens, so nobody connects
//!   through wider permissions), and removes it on drop unless kept (only
//!   if the file is still the one it created).
//! - Abstract-namespace addresses ([`Listener::bind_abstract`],
//!   [`connect_abstract`]): no file at all.
//! - [`peer_credentials`]: the peer's pid, uid and gid (`SO_PEERCRED`).
//! - Descriptor passing ([`send_with_fds`], [`recv_with_fds`]):
//!   `SCM_RIGHTS` with received descriptors close-on-exec, and a truncated
//!   control message reported as an error with nothing leaked.
//!
//! # References
//!
//! - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

use crate::error::{Cause, Context, Error, Result};
use crate::object::RemoveOnDrop;
use crate::sys;

/// Longest socket path: `sun_path` holds 108 bytes including the NUL.
pub const SUN_PATH_MAX: usize = 107;

/// Most descriptors one message carries (`SCM_MAX_FD` in the kernel).
pub const SCM_MAX_FD: usize = 253;

/// Who is on the other end of a connected socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id (at the time it connected).
    pub pid: u32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
}

impl std::fmt::Display for PeerCred {
    /// `pid=P uid=U gid=G`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid={} uid={} gid={}", self.pid, self.uid, self.gid)
    }
}

/// `getsockopt(SO_PEERCRED)`—The credentials of the process that connected
/// (or created the socket pair).
///
/// # References
///
/// - [`unix(7)`, `SO_PEERCRED`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "SO_PEERCRED")]
pub fn peer_credentials(socket: impl AsFd) -> Result<PeerCred> {
    let cred =
        sys::retry(|| rustix::net::sockopt::socket_peercred(&socket)).context("get peer credentials of", "socket")?;
    Ok(PeerCred {
        pid: cred.pid.as_raw_nonzero().get() as u32,
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// Refuses a path `sun_path` cannot hold, before any system call.
fn check_path(path: &Path, op: &'static str) -> Result<()> {
    let len = path.as_os_str().len();
    if len == 0 || len > SUN_PATH_MAX {
        return Err(Error::new(
            op,
            path.display(),
            Cause::OverLimit {
                requested: len as u64,
                limit: SUN_PATH_MAX as u64,
                limit_name: "a socket path (sun_path holds 108 bytes with its NUL)",
            },
        ));
    }
    Ok(())
}

fn abstract_addr(name: &[u8], op: &'static str) -> Result<SocketAddr> {
    let shown = String::from_utf8_lossy(name);
    if name.len() > SUN_PATH_MAX {
        return Err(Error::new(
            op,
            format!("@{shown}"),
            Cause::OverLimit {
                requested: name.len() as u64,
                limit: SUN_PATH_MAX as u64,
                limit_name: "an abstract socket name",
            },
        ));
    }
    SocketAddr::from_abstract_name(name).context(op, format!("@{shown}"))
}

/// Connects a stream socket to `path`.
///
/// # Errors
///
/// [`Cause::OverLimit`] for a path over [`SUN_PATH_MAX`] bytes; `ENOENT`
/// if nothing is there; `ECONNREFUSED` if no server is listening (a stale
/// socket file).
pub fn connect(path: impl AsRef<Path>) -> Result<UnixStream> {
    let path = path.as_ref();
    check_path(path, "connect to")?;
    UnixStream::connect(path).context("connect to", path.display())
}

/// Connects a stream socket to the abstract address `name` (no file).
pub fn connect_abstract(name: &[u8]) -> Result<UnixStream> {
    let addr = abstract_addr(name, "connect to")?;
    UnixStream::connect_addr(&addr).context("connect to", format!("@{}", String::from_utf8_lossy(name)))
}

/// Binds a datagram socket at `path` (checked length; an existing file is
/// not replaced).
pub fn bind_datagram(path: impl AsRef<Path>) -> Result<UnixDatagram> {
    let path = path.as_ref();
    check_path(path, "bind")?;
    UnixDatagram::bind(path).context("bind", path.display())
}

/// A listening stream socket that removes its socket file when dropped,
/// unless [`keep`](Self::keep) was called.
#[derive(Debug)]
pub struct Listener {
    inner: UnixListener,
    /// The socket file this listener created.
    file: Option<(PathBuf, RemoveOnDrop)>,
}

/// How many connections may wait to be accepted.
const BACKLOG: i32 = 128;

impl Listener {
    /// Binds and listens at `path`; the socket file is mode 0600 (see
    /// [`bind_with_mode`](Self::bind_with_mode)).
    ///
    /// If a socket file is already there, a connection is tried first: if
    /// a server answers, binding fails with `EADDRINUSE` and the file is
    /// left alone; if nobody answers (the server died), the stale file is
    /// removed and the bind goes ahead. Anything that is not a socket is
    /// never removed.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] for a path over [`SUN_PATH_MAX`] bytes,
    /// `EADDRINUSE` for a live server, [`Cause::WrongType`] for a file that
    /// is not a socket, or the OS error from `bind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-{}.sock", std::process::id()));
    /// let listener = ipcraft::unix_socket::Listener::bind(&path).unwrap();
    /// let mut client = ipcraft::unix_socket::connect(&path).unwrap();
    /// let (mut server, cred) = listener.accept().unwrap();
    /// assert_eq!(cred.pid, std::process::id());
    /// client.write_all(b"hi").unwrap();
    /// let mut buf = [0u8; 2];
    /// server.read_exact(&mut buf).unwrap();
    /// drop(listener); // removes the socket file
    /// assert!(!path.exists());
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with_mode(path, 0o600)
    }

    /// Binds and listens at `path` with the socket file's permission bits
    /// set to exactly `mode` (connecting needs write permission), before
    /// the socket starts listening. Otherwise as [`bind`](Self::bind).
    ///
    /// # References
    ///
    /// - [`bind(2)`](https://man7.org/linux/man-pages/man2/bind.2.html)
    /// - [`listen(2)`](https://man7.org/linux/man-pages/man2/listen.2.html)
    #[doc(alias = "bind")]
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> Result<Self> {
        const OP: &str = "listen on";
        let path = path.as_ref();
        check_path(path, OP)?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                let cause = Cause::WrongType {
                    expected: "socket",
                    found: "some other kind of file",
                };
                return Err(Error::new(OP, path.display(), cause));
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    let busy = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
                    return Err(Error::new(OP, path.display(), busy));
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    // A socket nobody listens on: left by a server that died.
                    std::fs::remove_file(path).context("remove stale socket", path.display())?;
                }
                Err(e) => return Err(Error::new(OP, path.display(), e)),
            }
        }
        let fd = sys::retry(|| {
            rustix::net::socket_with(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
        })
        .context(OP, path.display())?;
        let addr = rustix::net::SocketAddrUnix::new(path).context(OP, path.display())?;
        sys::retry(|| rustix::net::bind(&fd, &addr)).context(OP, path.display())?;
        // From here on the file is ours: removed again if anything fails.
        let removal = RemoveOnDrop::path(path).context(OP, path.display())?;
        // Not listening yet, so nobody can connect before the mode is set.
        crate::object::set_mode_nofollow(path, rustix::fs::FileType::Socket, mode)
            .context("set mode of socket", path.display())?;
        sys::retry(|| rustix::net::listen(&fd, BACKLOG)).context(OP, path.display())?;
        Ok(Self {
            inner: UnixListener::from(fd),
            file: Some((path.to_owned(), removal)),
        })
    }

    /// Binds and listens at the abstract address `name` (no file; gone when
    /// the listener closes).
    pub fn bind_abstract(name: &[u8]) -> Result<Self> {
        let addr = abstract_addr(name, "listen on")?;
        let inner =
            UnixListener::bind_addr(&addr).context("listen on", format!("@{}", String::from_utf8_lossy(name)))?;
        Ok(Self { inner, file: None })
    }

    /// Accepts a connection and reports who connected.
    pub fn accept(&self) -> Result<(UnixStream, PeerCred)> {
        let (stream, _) = self.inner.accept().context("accept on", "socket")?;
        let cred = peer_credentials(&stream)?;
        Ok((stream, cred))
    }

    /// The socket file's path, for a listener bound to one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Leaves the socket file in place when this listener drops.
    pub fn keep(&mut self) {
        if let Some((_, removal)) = &mut self.file {
            removal.keep();
        }
    }

    /// The std listener, for everything else.
    pub fn as_std(&self) -> &UnixListener {
        &self.inner
    }

    /// The std listener. The socket file stays (a std listener never
    /// removes it): without it nobody could connect.
    pub fn into_std(mut self) -> UnixListener {
        self.keep();
        self.inner
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// The listening descriptor; like [`Listener::into_std`], the socket file
/// stays.
impl From<Listener> for OwnedFd {
    fn from(listener: Listener) -> Self {
        listener.into_std().into()
    }
}

/// `sendmsg(SCM_RIGHTS)`—Sends `data` (at least one byte) with copies of
/// `fds` to the peer of a connected Unix socket. Returns the bytes sent.
///
/// # Errors
///
/// [`Cause::Invalid`] for empty data (descriptors travel with data, so a
/// stream socket needs at least one byte); [`Cause::OverLimit`] for more
/// than 253 descriptors (`SCM_MAX_FD`).
///
/// # References
///
/// - [`unix(7)`, `SCM_RIGHTS`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[doc(alias = "SCM_RIGHTS")]
pub fn send_with_fds(socket: impl AsFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
    const OP: &str = "send descriptors over";
    if data.is_empty() {
        let cause = Cause::Invalid("descriptors travel with data: send at least one byte with them");
        return Err(Error::new(OP, "socket", cause));
    }
    if fds.len() > SCM_MAX_FD {
        let cause = Cause::OverLimit {
            requested: fds.len() as u64,
            limit: SCM_MAX_FD as u64,
            limit_name: "SCM_MAX_FD (descriptors in one message)",
        };
        return Err(Error::new(OP, "socket", cause));
    }
    sendmsg_fds(socket.as_fd(), data, fds, SendFlags::empty()).context(OP, "socket")
}

/// The [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
/// under [`send_with_fds`] and the channel doorbell's: `data` with copies
/// of `fds` (at most [`SCM_MAX_FD`]), never raising `SIGPIPE`, with
/// `flags` besides.
pub(crate) fn sendmsg_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: SendFlags,
) -> rustix::io::Result<usize> {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // The space is sized for exactly these descriptors.
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(rustix::io::Errno::NOBUFS);
    }
    let iov = [IoSlice::new(data)];
    sys::retry(|| rustix::net::sendmsg(socket, &iov, &mut control, flags | SendFlags::NOSIGNAL))
}

/// `recvmsg(SCM_RIGHTS)`—Receives data into `buf` and up to `max_fds`
/// descriptors (close-on-exec). Returns the byte count (0 at end of
/// stream) and the descriptors.
///
/// # Errors
///
/// [`Cause::ControlTruncated`] if the peer sent more descriptors than
/// `max_fds`: every descriptor that did arrive is closed, so none leaks.
#[doc(alias = "SCM_RIGHTS")]
pub fn recv_with_fds(socket: impl AsFd, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
    const OP: &str = "receive descriptors from";
    let (bytes, fds, truncated) =
        recvmsg_fds(socket.as_fd(), buf, max_fds, RecvFlags::empty()).context(OP, "socket")?;
    if truncated {
        drop(fds);
        return Err(Error::new(OP, "socket", Cause::ControlTruncated { room: max_fds }));
    }
    Ok((bytes, fds))
}

/// The [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
/// under [`recv_with_fds`] and the channel doorbell's, with `flags`
/// besides: the byte count, the descriptors that came (close-on-exec), and
/// whether more were sent than `max_fds` (the kernel closes those that did
/// not fit; the caller closes the rest by dropping them).
pub(crate) fn recvmsg_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    flags: RecvFlags,
) -> rustix::io::Result<(usize, Vec<OwnedFd>, bool)> {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(max_fds.max(1)))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = sys::retry(|| rustix::net::recvmsg(socket, &mut iov, &mut control, flags | RecvFlags::CMSG_CLOEXEC))?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    // The control buffer is rounded up to alignment and may hold a few more
    // than asked for; more than `max_fds` counts as truncation too.
    let truncated = msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() > max_fds;
    Ok((msg.bytes, fds, truncated))
}
