//! The doorbell an async end sleeps on: an abstract Unix datagram socket
//! the kernel can report readiness on, because a futex cannot be polled.
//!
//! An async end binds a socket named `ipcraft-bell-<nonce>` in the abstract
//! namespace ([unix(7)]), writes the random nonce into its side of the
//! shared header, and sets its sleeping flag to [`BELL`] instead of the
//! futex value. A peer that publishes (or attaches) and sees that flag
//! sends one byte to the name instead of a futex wake-up. The socket is
//! level-triggered, so a ring that lands between arming and awaiting is
//! never lost; the async end drains it when it wakes.
//!
//! Why this design (see ARCHITECTURE.md for the alternatives weighed): it
//! works the same for named channels between unrelated processes, for
//! pairs made before `fork` and for sealed memfds handed over a socket,
//! needs nothing handed over (the nonce travels in the shared header),
//! leaves no file behind (an abstract name vanishes with its socket), and
//! costs a blocking peer nothing until the async end is actually asleep.
//! Abstract names are per network namespace: peers in different network
//! namespaces cannot ring each other, and an async end there notices
//! progress only at its liveness checks.
//!
//! A Unix datagram socket queues at most `net.unix.max_dgram_qlen`
//! datagrams (10 by default) and refuses more, so a peer rings only when it
//! moves the flag from `BELL` to `RUNG`: at most one ring per sleep, and
//! the async end counts the rings it is owed and takes them all when it
//! wakes, so stale rings never fill the socket and crowd out a real one.
//!
//! The nonce is read from memory another process can write: the worst a
//! forged one does is send a one-byte datagram to some other
//! `ipcraft-bell-*` name, or none at all.
//!
//! [unix(7)]: https://man7.org/linux/man-pages/man7/unix.7.html

use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// Sleeping-flag value of an end asleep on its doorbell (1 is the futex).
pub(crate) const BELL: u32 = 2;
/// The flag once a peer has rung the doorbell for this sleep (it moves
/// there from [`BELL`] by compare-and-swap, so only one peer rings).
pub(crate) const RUNG: u32 = 3;

/// The abstract address of the doorbell with this nonce.
fn address(nonce: u64) -> std::io::Result<SocketAddrUnix> {
    Ok(SocketAddrUnix::new_abstract_name(
        format!("ipcraft-bell-{nonce:016x}").as_bytes(),
    )?)
}

fn datagram_socket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// A bound doorbell: readable while a ring is pending. (Async ends and
/// the receiver of a many-sender channel bind one; every end can ring one.)
#[derive(Debug)]
pub(crate) struct Bell {
    fd: OwnedFd,
    nonce: u64,
}

impl Bell {
    /// Binds a doorbell under a fresh random nonce (never 0, which means
    /// "no doorbell" in the header).
    pub(crate) fn bind() -> std::io::Result<Self> {
        let fd = datagram_socket()?;
        let mut seed = super::object::random_key();
        for _ in 0..16 {
            let nonce = seed | 1;
            match rustix::net::bind(&fd, &address(nonce)?) {
                Ok(()) => return Ok(Self { fd, nonce }),
                // Taken (by chance or by someone guessing): another nonce.
                Err(Errno::ADDRINUSE) => seed = seed.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::ADDRINUSE.into())
    }

    /// The nonce peers ring.
    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Takes one pending ring ([`WouldBlock`](std::io::ErrorKind::WouldBlock)
    /// when there is none).
    pub(crate) fn take_one(&self) -> std::io::Result<()> {
        let mut byte = [0u8; 1];
        rustix::io::retry_on_intr(|| rustix::net::recv(&self.fd, &mut byte[..], rustix::net::RecvFlags::DONTWAIT))?;
        Ok(())
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Rings the doorbell with this nonce: one datagram, never waiting. A bell
/// that is gone or full is left alone (a full one is already readable).
///
/// The socket stays connected to the last doorbell rung, so the common
/// case — one peer, rung again and again — skips the name lookup of an
/// addressed send.
#[cold]
pub(crate) fn ring(nonce: u64) {
    static LAST: Mutex<Option<(u64, OwnedFd)>> = Mutex::new(None);
    if nonce == 0 {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if last.as_ref().is_none_or(|(n, _)| *n != nonce) {
        *last = None;
        let Ok(fd) = datagram_socket() else { return };
        let Ok(addr) = address(nonce) else { return };
        // No such doorbell (its end is gone): nothing to ring.
        if rustix::io::retry_on_intr(|| rustix::net::connect(&fd, &addr)).is_err() {
            return;
        }
        *last = Some((nonce, fd));
    }
    if let Some((_, fd)) = last.as_ref() {
        let sent = rustix::io::retry_on_intr(|| rustix::net::send(fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL));
        // The doorbell closed (its end went): forget the connection.
        if matches!(sent, Err(Errno::CONNREFUSED) | Err(Errno::NOTCONN)) {
            *last = None;
        }
    }
}
