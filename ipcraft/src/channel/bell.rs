//! The doorbell an async end sleeps on: an abstract Unix datagram socket
//! and an [eventfd(2)], descriptors the kernel can report readiness on,
//! because a futex cannot be polled.
//!
//! An async end binds a socket named `ipcraft-bell-<nonce>` in the abstract
//! namespace ([unix(7)]), writes the random nonce into its side of the
//! shared header, and sets its sleeping flag to [`BELL`] instead of the
//! futex value. A peer that publishes (or attaches) and sees that flag
//! rings: its first ring is a datagram to the name carrying one end of a
//! fresh socket pair, which the doorbell answers (when it next takes its
//! rings) with its eventfd; from then on that peer rings by adding one to
//! the eventfd. The eventfd is the fast path: measured between two
//! processes asleep in `epoll_wait`, a ping-pong through eventfds took
//! 10.0–11.9 µs where datagrams took 12.6–15.1 µs and a futex 9.2–11.0 µs
//! (the datagram's socket buffer allocation and queueing, on every ring).
//! The socket stays for first rings and for peers that never get the
//! eventfd. An async end registers both with its runtime; a blocking waiter
//! (the many-sender receiver) watches both through one [epoll(7)]
//! descriptor ([`Bell::watch`]: one more wake-up callback on every ring,
//! 0.3–0.5 µs a round trip in the same measurement, so async ends skip
//! it). A ring that lands between arming and awaiting is never lost: it
//! leaves a descriptor readable, and the end takes the rings when it wakes.
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
//! `ipcraft-bell-*` name, or none at all. An abstract name has no
//! permissions, so anyone on the host can ask for the eventfd: with it they
//! can ring (as they could with a datagram) or take rings (the wake-up has
//! happened by then: the async end looks at the channel whatever it
//! counts). A peer that cannot add to the eventfd (its counter held near
//! the maximum) rings by datagram instead. A ringer uses only a descriptor
//! that cannot block it or raise `SIGPIPE`: an anonymous inode (an eventfd
//! is one) in non-blocking mode.
//!
//! [unix(7)]: https://man7.org/linux/man-pages/man7/unix.7.html
//! [eventfd(2)]: https://man7.org/linux/man-pages/man2/eventfd.2.html
//! [epoll(7)]: https://man7.org/linux/man-pages/man7/epoll.7.html

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::fs::{FileType, OFlags};
use rustix::io::{retry_on_intr, Errno};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// Sleeping-flag value of an end asleep on its doorbell (1 is the futex).
pub(crate) const BELL: u32 = 2;
/// The flag once a peer has rung the doorbell for this sleep (it moves
/// there from [`BELL`] by compare-and-swap, so only one peer rings).
pub(crate) const RUNG: u32 = 3;

/// A datagram that only rings.
const RING: u8 = 1;
/// A datagram that rings and carries a socket to send the eventfd back on.
const ASK: u8 = 2;

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

/// Sends `byte` on `socket` with `fd` attached, never waiting.
fn send_fd(socket: BorrowedFd<'_>, byte: u8, fd: BorrowedFd<'_>) -> rustix::io::Result<usize> {
    crate::unix_socket::sendmsg_fds(socket, &[byte], &[fd], SendFlags::DONTWAIT)
}

/// Receives one datagram of at most one byte from `socket`, never
/// waiting: the byte (0 for an empty one) and the first descriptor that
/// came with it (any others are closed).
fn recv_fd(socket: BorrowedFd<'_>) -> rustix::io::Result<(u8, Option<OwnedFd>)> {
    let mut byte = [0u8];
    let (_, fds, _) = crate::unix_socket::recvmsg_fds(socket, &mut byte, 1, RecvFlags::DONTWAIT)?;
    Ok((byte[0], fds.into_iter().next()))
}

/// A bound doorbell: its socket or its eventfd is readable while a ring is
/// pending. (Async ends and the receiver of a many-sender channel bind
/// one; every end can ring one.)
#[derive(Debug)]
pub(crate) struct Bell {
    socket: OwnedFd,
    event: OwnedFd,
    nonce: u64,
}

impl Bell {
    /// Binds a doorbell under a fresh random nonce (never 0, which means
    /// "no doorbell" in the header).
    pub(crate) fn bind() -> std::io::Result<Self> {
        let socket = datagram_socket()?;
        let mut seed = super::object::random_key();
        let mut nonce = 0;
        for _ in 0..16 {
            match rustix::net::bind(&socket, &address(seed | 1)?) {
                Ok(()) => {
                    nonce = seed | 1;
                    break;
                }
                // Taken (by chance or by someone guessing): another nonce.
                Err(Errno::ADDRINUSE) => seed = seed.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                Err(e) => return Err(e.into()),
            }
        }
        if nonce == 0 {
            return Err(Errno::ADDRINUSE.into());
        }
        let event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { socket, event, nonce })
    }

    /// A second handle on the same doorbell (the same nonce, socket and
    /// eventfd), for a second place to wait on it.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            socket: self.socket.try_clone()?,
            event: self.event.try_clone()?,
            nonce: self.nonce,
        })
    }

    /// The two descriptors a ring makes readable: the socket and the
    /// eventfd.
    pub(crate) fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.socket.as_fd(), self.event.as_fd()]
    }

    /// An [epoll(7)] descriptor watching both (level-triggered): readable
    /// while a ring is pending, for one `poll(2)` or an event loop.
    ///
    /// [epoll(7)]: https://man7.org/linux/man-pages/man7/epoll.7.html
    pub(crate) fn watch(&self) -> std::io::Result<OwnedFd> {
        let watch = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for fd in self.fds() {
            epoll::add(&watch, fd, epoll::EventData::new_u64(0), epoll::EventFlags::IN)?;
        }
        Ok(watch)
    }

    /// The nonce peers ring.
    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Takes the pending rings ([`drain`]).
    pub(crate) fn drain(&self, most: usize) -> std::io::Result<usize> {
        drain(self.socket.as_fd(), self.event.as_fd(), most)
    }

    /// The doorbell's socket and eventfd, and its nonce, to be watched
    /// elsewhere (the name lives as long as the socket).
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (OwnedFd, OwnedFd, u64) {
        (self.socket, self.event, self.nonce)
    }
}

/// Takes the pending rings of the doorbell with this `socket` and `event`:
/// the eventfd's count and up to `most` datagrams, answering each request
/// for the eventfd on the way. How many rings it took (0 when there were
/// none).
pub(crate) fn drain(socket: BorrowedFd<'_>, event: BorrowedFd<'_>, most: usize) -> std::io::Result<usize> {
    let mut count = [0u8; 8];
    let mut took = match retry_on_intr(|| rustix::io::read(event, &mut count)) {
        Ok(8) => usize::try_from(u64::from_ne_bytes(count)).unwrap_or(usize::MAX),
        Ok(_) | Err(Errno::AGAIN) => 0,
        Err(e) => return Err(e.into()),
    };
    for _ in 0..most {
        let (byte, fd) = match recv_fd(socket) {
            Ok(got) => got,
            Err(Errno::AGAIN) => break,
            Err(e) => return Err(e.into()),
        };
        took = took.saturating_add(1);
        if let (ASK, Some(reply)) = (byte, fd) {
            // Only to a socket; failing (the asker gone, its buffer
            // full) leaves the asker ringing by datagram.
            let is_socket =
                rustix::fs::fstat(&reply).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Socket);
            if is_socket {
                let _ = send_fd(reply.as_fd(), RING, event);
            }
        }
    }
    Ok(took)
}

/// How many doorbells a process keeps a connection to (the ones rung most
/// recently).
const LINKS: usize = 8;

/// Where a ringer stands with a doorbell's eventfd.
#[derive(Debug)]
enum Upgrade {
    /// Not asked yet.
    Ask,
    /// Asked; the answer comes on `reply`. Given up after `tries` rings.
    Asked { reply: OwnedFd, tries: u32 },
    /// Ring through this eventfd.
    Event(OwnedFd),
    /// No eventfd: rings by datagram.
    Datagram,
}

/// How many rings a ringer waits for the eventfd it asked for.
const ASK_TRIES: u32 = 64;

/// A ringer's connection to one doorbell.
#[derive(Debug)]
struct Link {
    nonce: u64,
    /// Connected to the doorbell's name.
    socket: OwnedFd,
    upgrade: Upgrade,
}

impl Link {
    fn connect(nonce: u64) -> Option<Self> {
        let socket = datagram_socket().ok()?;
        // No such doorbell (its end is gone): nothing to ring.
        let name = address(nonce).ok()?;
        retry_on_intr(|| rustix::net::connect(&socket, &name)).ok()?;
        Some(Self {
            nonce,
            socket,
            upgrade: Upgrade::Ask,
        })
    }

    /// Rings once; `false` when the doorbell is gone.
    fn ring(&mut self) -> bool {
        match &mut self.upgrade {
            Upgrade::Event(event) => {
                // Fails only with the counter near its maximum (someone
                // else wrote it): then by datagram, which always wakes.
                if retry_on_intr(|| rustix::io::write(&*event, &1u64.to_ne_bytes())).is_ok() {
                    return true;
                }
            }
            Upgrade::Asked { reply, tries } => match recv_fd(reply.as_fd()) {
                Ok((_, Some(event))) if usable_eventfd(&event) => {
                    self.upgrade = Upgrade::Event(event);
                    return self.ring();
                }
                Err(Errno::AGAIN) if *tries < ASK_TRIES => *tries += 1,
                _ => self.upgrade = Upgrade::Datagram,
            },
            Upgrade::Ask => {
                if let Ok((mine, theirs)) = rustix::net::socketpair(
                    AddressFamily::UNIX,
                    SocketType::DGRAM,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                    None,
                ) {
                    match send_fd(self.socket.as_fd(), ASK, theirs.as_fd()) {
                        Ok(_) => {
                            self.upgrade = Upgrade::Asked { reply: mine, tries: 0 };
                            return true;
                        }
                        // A full doorbell is readable already, and rung;
                        // ask again next time.
                        Err(Errno::AGAIN) => return true,
                        // The doorbell closed (its end went).
                        Err(Errno::CONNREFUSED | Errno::NOTCONN) => return false,
                        Err(_) => {}
                    }
                }
                self.upgrade = Upgrade::Datagram;
            }
            Upgrade::Datagram => {}
        }
        let sent =
            retry_on_intr(|| rustix::net::send(&self.socket, &[RING], SendFlags::DONTWAIT | SendFlags::NOSIGNAL));
        !gone(sent)
    }
}

/// Whether a send failed because the doorbell closed (its end went).
fn gone<T>(sent: rustix::io::Result<T>) -> bool {
    matches!(sent, Err(Errno::CONNREFUSED) | Err(Errno::NOTCONN))
}

/// Whether a descriptor a doorbell sent can be rung without risk: an
/// anonymous inode (no pipe, socket or file: nothing that can block or
/// raise `SIGPIPE`) in non-blocking mode. An eventfd is one; any other
/// anonymous inode refuses the write.
fn usable_eventfd(fd: &OwnedFd) -> bool {
    let anonymous = rustix::fs::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == 0);
    anonymous && rustix::fs::fcntl_getfl(fd).is_ok_and(|flags| flags.contains(OFlags::NONBLOCK))
}

/// Rings the doorbell with this nonce, never waiting. A bell that is gone
/// or full is left alone (a full one is already readable).
///
/// The process keeps a connection to the doorbells it rang last (a socket
/// connected to the name, then the eventfd), so the common case — one
/// peer, rung again and again — costs one `write(2)`.
#[cold]
pub(crate) fn ring(nonce: u64) {
    static RUNG_LAST: Mutex<Vec<Link>> = Mutex::new(Vec::new());
    if nonce == 0 {
        return;
    }
    let mut links = RUNG_LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // The most recently rung last, so the one evicted is the one rung
    // least recently.
    let link = match links.iter().position(|l| l.nonce == nonce) {
        Some(at) => links.remove(at),
        None => {
            let Some(link) = Link::connect(nonce) else { return };
            if links.len() == LINKS {
                links.remove(0);
            }
            link
        }
    };
    links.push(link);
    let last = links.len() - 1;
    if !links[last].ring() {
        links.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the eventfd's count without the doorbell's help.
    fn eventfd_count(bell: &Bell) -> u64 {
        let mut count = [0u8; 8];
        match rustix::io::read(&bell.event, &mut count) {
            Ok(8) => u64::from_ne_bytes(count),
            Err(Errno::AGAIN) => 0,
            other => panic!("eventfd read: {other:?}"),
        }
    }

    /// How many datagrams wait in the socket (taken here).
    fn datagrams(bell: &Bell) -> usize {
        std::iter::from_fn(|| recv_fd(bell.socket.as_fd()).ok()).count()
    }

    #[test]
    fn the_first_ring_asks_for_the_eventfd_and_later_rings_use_it() {
        let bell = Bell::bind().unwrap();
        ring(bell.nonce());
        assert_eq!(eventfd_count(&bell), 0);
        // The first ring is a datagram carrying the asker's socket;
        // draining it counts one ring and answers.
        assert_eq!(bell.drain(16).unwrap(), 1);
        for _ in 0..5 {
            ring(bell.nonce());
        }
        assert_eq!(datagrams(&bell), 0, "rings after the answer go through the eventfd");
        assert_eq!(eventfd_count(&bell), 5);
        ring(bell.nonce());
        ring(bell.nonce());
        assert_eq!(bell.drain(16).unwrap(), 2);
        assert_eq!(bell.drain(16).unwrap(), 0);
    }

    #[test]
    fn a_ringer_refuses_a_descriptor_that_could_block_or_raise_sigpipe() {
        let bell = Bell::bind().unwrap();
        let mut link = Link::connect(bell.nonce()).unwrap();
        // A forged answer: a pipe's write end instead of an eventfd.
        let (mine, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let (pipe_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        send_fd(theirs.as_fd(), RING, pipe_w.as_fd()).unwrap();
        drop(pipe_w);
        link.upgrade = Upgrade::Asked { reply: mine, tries: 0 };
        assert!(link.ring());
        assert!(matches!(link.upgrade, Upgrade::Datagram));
        let mut byte = [0u8; 1];
        assert_eq!(
            rustix::io::read(&pipe_r, &mut byte),
            Ok(0),
            "nothing written to the pipe"
        );
        assert_eq!(datagrams(&bell), 1, "the ring went by datagram");
    }

    #[test]
    fn a_request_with_something_other_than_a_socket_is_only_a_ring() {
        let bell = Bell::bind().unwrap();
        let asker = datagram_socket().unwrap();
        rustix::net::connect(&asker, &address(bell.nonce()).unwrap()).unwrap();
        let (pipe_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        send_fd(asker.as_fd(), ASK, pipe_w.as_fd()).unwrap();
        assert_eq!(bell.drain(16).unwrap(), 1);
        drop(pipe_w);
        let mut byte = [0u8; 1];
        assert_eq!(
            rustix::io::read(&pipe_r, &mut byte),
            Ok(0),
            "nothing sent into the pipe"
        );
    }

    #[test]
    fn a_ringer_that_finds_the_doorbell_full_asks_again_later() {
        let bell = Bell::bind().unwrap();
        let filler = datagram_socket().unwrap();
        rustix::net::connect(&filler, &address(bell.nonce()).unwrap()).unwrap();
        let mut queued = 0;
        while rustix::net::send(&filler, &[RING], SendFlags::DONTWAIT).is_ok() {
            queued += 1;
        }
        // The socket is full: this ring cannot ask (and need not ring).
        ring(bell.nonce());
        assert_eq!(bell.drain(1000).unwrap(), queued);
        ring(bell.nonce());
        assert_eq!(bell.drain(16).unwrap(), 1, "the request, answered");
        ring(bell.nonce());
        assert_eq!(eventfd_count(&bell), 1, "rung through the eventfd");
    }

    #[test]
    fn a_full_eventfd_falls_back_to_a_datagram() {
        let bell = Bell::bind().unwrap();
        ring(bell.nonce());
        assert_eq!(bell.drain(16).unwrap(), 1);
        ring(bell.nonce());
        assert_eq!(eventfd_count(&bell), 1);
        // Someone holding the eventfd fills its counter: an add would block.
        rustix::io::write(&bell.event, &(u64::MAX - 1).to_ne_bytes()).unwrap();
        ring(bell.nonce());
        assert_eq!(datagrams(&bell), 1, "the ring still arrives");
    }
}
