//! The shared-memory channel: the fastest safe way for two processes on one
//! machine to exchange bytes.
//!
//! A channel is a shared memory object holding a small header and a ring of
//! variable-length messages. One [`Sender`] and one [`Receiver`] attach to
//! it, from unrelated processes (by name) or from a parent and its child
//! ([`pair`], before `fork`).
//!
//! - **Bounded, never lossy.** A full ring makes the sender wait (or
//!   report [`Cause::Full`]); nothing is dropped or overwritten.
//! - **Messages.** Byte messages of any length up to
//!   [`Sender::max_message_len`], and plain-old-data values
//!   ([`Sender::send_pod`]). Zero-copy both ways: [`Sender::reserve`] hands
//!   out space in the ring to fill and commit; [`Receiver::recv_view`]
//!   lends the message in place until the view drops.
//! - **Waiting.** Blocking, `try_` and `_timeout` forms. A waiting side
//!   spins briefly (~50 µs by default) and then sleeps on a futex in the
//!   shared memory; the other side only makes a wake-up system call when
//!   the waiter is actually asleep, so the fast path is system-call free.
//! - **End of stream.** When the sender closes (drop, [`Sender::close`],
//!   or process exit after dropping), the receiver drains what is left and
//!   then gets `Ok(None)`, like a pipe's end of file.
//! - **Peer death.** Each side holds an OFD lock on a byte of the object;
//!   the kernel drops it when the process dies, however it dies. A waiting
//!   side checks the lock whenever a sleep times out (at most every 50 ms)
//!   and fails with [`Cause::PeerDied`]. A frame the dead sender had
//!   reserved but not committed is never delivered.
//! - **Hostile memory.** The other process can write anything into the
//!   shared object at any time. Geometry is read once at open, checked, and
//!   kept in private memory; every position and length read afterwards is
//!   checked before use, and a bad one is [`Cause::Corrupted`]. Payload
//!   bytes are copied with operations the compiler cannot assume stable.
//!   A hostile peer can make the *data* wrong; it cannot make this process
//!   touch memory outside the ring, panic, or hit undefined behaviour. (It
//!   could still shrink a named object under the mapping: use a channel on
//!   a sealed memfd for peers you do not trust with that.)
//!
//! ```
//! use ipcraft::channel::{Receiver, Sender};
//!
//! let name = format!("/ipcraft-doc-chan-{}", std::process::id());
//! let mut tx = Sender::create(&name, 64 * 1024).unwrap(); // removed when `tx` drops
//! let mut rx = Receiver::open(&name).unwrap();            // normally another process
//! tx.send(b"hello").unwrap();
//! tx.close().unwrap();
//! let mut buf = [0u8; 16];
//! assert_eq!(rx.recv(&mut buf).unwrap(), Some(5));
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(rx.recv(&mut buf).unwrap(), None); // end of stream
//! ```

mod layout;
mod ring;
mod wait;

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use layout::{
    Header, Side, ABSENT, ATTACHED, CLOSED, HEADER_SIZE, MAGIC, RECEIVER_LOCK_BYTE, SENDER_LOCK_BYTE, VERSION,
};
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
use ring::{Peek, Ring, Room};
use wait::{Stop, Waiter};

use crate::error::{Cause, Context, Error, Result};
use crate::mmap::{Mmap, MmapOptions};
use crate::name::Name;
use crate::shm::{Shm, ShmOptions};
use crate::sys;

/// Ring size used when none is given: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// How long a waiting side spins before it sleeps, unless told otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// How long opening waits for a creator that has not finished.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How to create or open a channel.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    capacity: u64,
    mode: u32,
    spin: Duration,
    open_timeout: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelOptions {
    /// [`DEFAULT_CAPACITY`], mode 0600, [`DEFAULT_SPIN`], [`DEFAULT_OPEN_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            mode: 0o600,
            spin: DEFAULT_SPIN,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        }
    }

    /// Ring size in bytes for a new channel, rounded up to a power of two
    /// between [`MIN_CAPACITY`] and [`MAX_CAPACITY`].
    pub fn capacity(&mut self, bytes: u64) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// Permission bits of a new channel object (default 0600, exact).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// How long a waiting side spins before sleeping. `Duration::ZERO`
    /// sleeps at once (lowest CPU use, higher latency).
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// How long opening waits for a creator that is still setting up.
    pub fn open_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.open_timeout = timeout;
        self
    }

    fn ring_capacity(&self, name: &dyn fmt::Display) -> Result<u64> {
        let cap = self
            .capacity
            .max(MIN_CAPACITY)
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX);
        if cap > MAX_CAPACITY {
            return Err(Error::new(
                "create channel",
                name,
                Cause::OverLimit {
                    requested: self.capacity,
                    limit: MAX_CAPACITY,
                    limit_name: "the largest channel capacity",
                },
            ));
        }
        Ok(cap)
    }

    /// Creates the named channel object (exclusive) without attaching
    /// either side. The object stays until [`remove`]d.
    pub fn create(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let mut mapped = self.create_named(name)?;
        if let Backing::Named(shm) = &mut mapped.backing {
            shm.keep();
        }
        Ok(())
    }

    fn create_named(&self, name: impl AsRef<OsStr>) -> Result<Mapped> {
        let name = Name::new(name)?;
        let cap = self.ring_capacity(&name)?;
        let shm = ShmOptions::new()
            .create_new(true)
            .mode(self.mode)
            .size(HEADER_SIZE + cap)
            .open(&name)
            .map_err(|e| e.relabel("create channel", &name))?;
        Mapped::initialise(Backing::Named(shm), cap, name.to_string())
    }

    /// Creates the named channel and attaches as its sender. The object is
    /// removed when the sender drops unless [`Sender::keep`] is called (the
    /// receiver must have opened it by then).
    pub fn create_sender(&self, name: impl AsRef<OsStr>) -> Result<Sender> {
        Sender::attach(self.create_named(name)?, self.spin)
    }

    /// Creates the named channel and attaches as its receiver (removed on
    /// drop unless [`Receiver::keep`] is called).
    pub fn create_receiver(&self, name: impl AsRef<OsStr>) -> Result<Receiver> {
        Receiver::attach(self.create_named(name)?, self.spin)
    }

    fn open_named(&self, name: impl AsRef<OsStr>) -> Result<Mapped> {
        let name = Name::new(name)?;
        let shm = Shm::open(&name).map_err(|e| e.relabel("open channel", &name))?;
        Mapped::open(Backing::Named(shm), name.to_string(), self.open_timeout)
    }

    /// Opens an existing channel as its sender.
    ///
    /// # Errors
    ///
    /// [`Cause::InUse`] if it has a live sender; [`Cause::Closed`] if its
    /// sender already closed; [`Cause::Corrupted`] if the object is not a
    /// valid channel (bad magic or version, impossible capacity, too short).
    pub fn open_sender(&self, name: impl AsRef<OsStr>) -> Result<Sender> {
        Sender::attach(self.open_named(name)?, self.spin)
    }

    /// Opens an existing channel as its receiver. Errors as
    /// [`open_sender`](Self::open_sender).
    pub fn open_receiver(&self, name: impl AsRef<OsStr>) -> Result<Receiver> {
        Receiver::attach(self.open_named(name)?, self.spin)
    }

    /// Creates a channel in `fd`, an empty shared file such as a memfd (it
    /// is sized here), and attaches as its sender. Hand the same file to
    /// the receiving process (inherited, or over a Unix socket) and open it
    /// there with [`open_receiver_in`](Self::open_receiver_in).
    pub fn create_sender_in(&self, fd: OwnedFd) -> Result<Sender> {
        Sender::attach(self.create_in(fd)?, self.spin)
    }

    /// Creates a channel in `fd` and attaches as its receiver.
    pub fn create_receiver_in(&self, fd: OwnedFd) -> Result<Receiver> {
        Receiver::attach(self.create_in(fd)?, self.spin)
    }

    /// Opens the channel held in `fd` as its sender.
    pub fn open_sender_in(&self, fd: OwnedFd) -> Result<Sender> {
        Sender::attach(
            Mapped::open(
                Backing::Anonymous(own_description(fd)?),
                "channel in a file".into(),
                self.open_timeout,
            )?,
            self.spin,
        )
    }

    /// Opens the channel held in `fd` as its receiver.
    pub fn open_receiver_in(&self, fd: OwnedFd) -> Result<Receiver> {
        Receiver::attach(
            Mapped::open(
                Backing::Anonymous(own_description(fd)?),
                "channel in a file".into(),
                self.open_timeout,
            )?,
            self.spin,
        )
    }

    fn create_in(&self, fd: OwnedFd) -> Result<Mapped> {
        const WHAT: &str = "channel in a file";
        let cap = self.ring_capacity(&WHAT)?;
        let fd = own_description(fd)?;
        let size = sys::retry(|| rustix::fs::fstat(&fd)).context("create", WHAT)?.st_size;
        if size != 0 {
            return Err(Error::new(
                "create",
                WHAT,
                Cause::Corrupted(format!("the file is not empty ({size} bytes)")),
            ));
        }
        sys::retry(|| rustix::fs::ftruncate(&fd, HEADER_SIZE + cap)).context("size", WHAT)?;
        Mapped::initialise(Backing::Anonymous(fd), cap, WHAT.to_owned())
    }

    /// Creates a channel in a new memfd, sealed against shrinking and
    /// growing, and attaches as its sender. Hand the returned descriptor to
    /// the receiving process (over a Unix socket with
    /// [`send_with_fds`](crate::unix_socket::send_with_fds)); it opens it
    /// with [`open_sealed_receiver`](Self::open_sealed_receiver). Nothing
    /// appears in `/dev/shm`, and no process can truncate the ring.
    pub fn create_sealed_sender(&self) -> Result<(Sender, OwnedFd)> {
        use crate::memfd::{Memfd, SealFlags};
        let memfd = Memfd::create("ipcraft-channel", 0)?;
        let mine = memfd.as_fd().try_clone_to_owned().context("duplicate", "memfd")?;
        let tx = self.create_sender_in(mine)?;
        memfd.seal(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Ok((tx, memfd.into()))
    }

    /// Opens the channel in a memfd received from its creator, after
    /// checking that it is sealed against shrinking and growing and is
    /// large enough for a channel header (an unsealed or short file is
    /// refused with [`Cause::BadSeals`] before anything is mapped).
    pub fn open_sealed_receiver(&self, fd: OwnedFd) -> Result<Receiver> {
        use crate::memfd::{Memfd, SealFlags};
        let memfd = Memfd::from_received(fd, HEADER_SIZE + MIN_CAPACITY, SealFlags::SHRINK | SealFlags::GROW)?;
        self.open_receiver_in(memfd.into())
    }

    /// An anonymous channel on a memfd, for a parent and the child it forks:
    /// create the pair, `fork`, and let each process drop the end it does
    /// not use. Nothing appears in `/dev/shm`.
    ///
    /// Each end attaches (and becomes that process's) on first use, so the
    /// copy a process drops unused does not close the channel.
    pub fn pair(&self) -> Result<(Sender, Receiver)> {
        const WHAT: &str = "anonymous channel";
        let cap = self.ring_capacity(&WHAT)?;
        let fd = sys::retry(|| rustix::fs::memfd_create("ipcraft-channel", rustix::fs::MemfdFlags::CLOEXEC))
            .context("create", WHAT)?;
        sys::retry(|| rustix::fs::ftruncate(&fd, HEADER_SIZE + cap)).context("size", WHAT)?;
        // A second open file description, so each end's liveness lock is its own.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let fd2 = sys::retry(|| {
            rustix::fs::open(
                path.as_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
        })
        .context("reopen", WHAT)?;
        let tx = Mapped::initialise(Backing::Anonymous(fd), cap, WHAT.to_owned())?;
        let rx = Mapped::open(Backing::Anonymous(fd2), WHAT.to_owned(), self.open_timeout)?;
        Ok((Sender::unattached(tx, self.spin), Receiver::unattached(rx, self.spin)))
    }
}

/// A new open file description of the same file (through `/proc/self/fd`),
/// so that this end's liveness lock is its own even when `fd` was inherited
/// from, or passed by, the other side.
fn reopen(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    Ok(sys::retry(|| {
        rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    })?)
}

/// [`reopen`], keeping `fd` itself where `/proc` is not available.
fn own_description(fd: OwnedFd) -> Result<OwnedFd> {
    Ok(reopen(&fd).unwrap_or(fd))
}

/// Creates the named channel object without attaching a side (what
/// `ipcraft chan create` does). It stays until [`remove`]d.
pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<()> {
    ChannelOptions::new().capacity(capacity).create(name)
}

/// An anonymous channel for a parent and its forked child; see
/// [`ChannelOptions::pair`].
pub fn pair(capacity: u64) -> Result<(Sender, Receiver)> {
    ChannelOptions::new().capacity(capacity).pair()
}

/// Removes the named channel, after checking it is one (so `chan rm` never
/// deletes an unrelated shared memory object).
pub fn remove(name: impl AsRef<OsStr>) -> Result<()> {
    let name = Name::new(name)?;
    let shm = Shm::open_read_only(&name).map_err(|e| e.relabel("remove channel", &name))?;
    check_identity_only(&shm, &name)?;
    drop(shm);
    crate::shm::remove(&name).map_err(|e| e.relabel("remove channel", &name))
}

fn check_identity_only(shm: &Shm, name: &Name) -> Result<()> {
    let size = shm.size()?;
    if size < HEADER_SIZE {
        return Err(Error::new(
            "open channel",
            name,
            Cause::Corrupted(format!("the object is {size} bytes, smaller than a channel header")),
        ));
    }
    let magic: u64 = shm.map()?.read(0)?;
    if magic != MAGIC {
        return Err(Error::new(
            "open channel",
            name,
            Cause::Corrupted(format!("bad magic {magic:#018x}")),
        ));
    }
    Ok(())
}

/// What `ipcraft chan stat` reports about one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideState {
    /// Never attached.
    Absent,
    /// Attached, and its process is alive.
    Alive(u32),
    /// Closed its end.
    Closed,
    /// Attached, but its process died without closing.
    Dead(u32),
}

impl fmt::Display for SideState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SideState::Absent => f.write_str("absent"),
            SideState::Alive(pid) => write!(f, "alive:{pid}"),
            SideState::Closed => f.write_str("closed"),
            SideState::Dead(pid) => write!(f, "dead:{pid}"),
        }
    }
}

/// A channel's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelStat {
    /// Ring size in bytes.
    pub capacity: u64,
    /// Bytes of frames published and not yet consumed.
    pub in_flight: u64,
    /// The sender.
    pub sender: SideState,
    /// The receiver.
    pub receiver: SideState,
}

impl fmt::Display for ChannelStat {
    /// `capacity=N in_flight=N sender=STATE receiver=STATE`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity={} in_flight={} sender={} receiver={}",
            self.capacity, self.in_flight, self.sender, self.receiver
        )
    }
}

/// Capacity, bytes in flight, and whether each side is attached and alive.
pub fn stat(name: impl AsRef<OsStr>) -> Result<ChannelStat> {
    let name = Name::new(name)?;
    let shm = Shm::open(&name).map_err(|e| e.relabel("open channel", &name))?;
    let mapped = Mapped::open(Backing::Named(shm), name.to_string(), Duration::ZERO)?;
    let h = mapped.header();
    let tail = h.tail.0.load(Ordering::Acquire);
    let head = h.head.0.load(Ordering::Acquire);
    Ok(ChannelStat {
        capacity: mapped.ring.capacity(),
        in_flight: tail.saturating_sub(head).min(mapped.ring.capacity()),
        sender: mapped.side_state(&h.sender.0, SENDER_LOCK_BYTE)?,
        receiver: mapped.side_state(&h.receiver.0, RECEIVER_LOCK_BYTE)?,
    })
}

/// The memory behind a channel.
enum Backing {
    Named(Shm),
    Anonymous(OwnedFd),
}

impl Backing {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Backing::Named(shm) => shm.as_fd(),
            Backing::Anonymous(fd) => fd.as_fd(),
        }
    }
}

/// A mapped, validated channel object.
struct Mapped {
    backing: Backing,
    /// Keeps the mapping alive; `header` and `ring` point into it.
    _map: Mmap,
    header: NonNull<Header>,
    ring: Ring,
    label: String,
}

// SAFETY: the mapping is shared memory accessed only through atomics and the
// ring's copy routines; moving the handle to another thread is fine.
unsafe impl Send for Mapped {}

impl Mapped {
    fn header(&self) -> &Header {
        // SAFETY: the header lies at offset 0 of a mapping at least
        // HEADER_SIZE bytes long that lives as long as `self`; all its
        // fields are atomics, so concurrent writes by other processes are fine.
        unsafe { self.header.as_ref() }
    }

    fn map(backing: &Backing, len: u64, label: &str) -> Result<(Mmap, NonNull<Header>)> {
        let len = usize::try_from(len).map_err(|_| {
            Error::new(
                "open channel",
                label,
                Cause::Corrupted(format!("object of {len} bytes cannot be mapped")),
            )
        })?;
        let map = MmapOptions::new()
            .len(len)
            .map_shared(backing.fd())
            .map_err(|e| e.relabel("map channel", label))?;
        let header = NonNull::new(map.as_mut_ptr().cast::<Header>())
            .ok_or_else(|| Error::new("map channel", label, Cause::Corrupted("null mapping".into())))?;
        Ok((map, header))
    }

    /// Writes the identity of a freshly sized object, magic last.
    fn initialise(backing: Backing, capacity: u64, label: String) -> Result<Self> {
        let (map, header) = Self::map(&backing, HEADER_SIZE + capacity, &label)?;
        // SAFETY: the ring is the `capacity` bytes after the header page of
        // a mapping of HEADER_SIZE + capacity bytes; page aligned.
        let ring = unsafe {
            Ring::new(
                NonNull::new_unchecked(map.as_mut_ptr().add(HEADER_SIZE as usize)),
                capacity,
            )
        };
        let mapped = Self {
            backing,
            _map: map,
            header,
            ring,
            label,
        };
        let id = &mapped.header().identity.0;
        id.version.store(VERSION, Ordering::Relaxed);
        id.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
        id.capacity.store(capacity, Ordering::Relaxed);
        // Published last: an opener that sees the magic sees everything above.
        id.magic.store(MAGIC, Ordering::Release);
        Ok(mapped)
    }

    /// Maps an existing object and checks its identity, waiting up to
    /// `timeout` for a creator that has not finished.
    fn open(backing: Backing, label: String, timeout: Duration) -> Result<Self> {
        const OP: &str = "open channel";
        let corrupted = |why: String| Error::new(OP, &label, Cause::Corrupted(why));
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        let mut wait_or = |why: String| -> Result<()> {
            if Instant::now() >= deadline {
                return Err(corrupted(why));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
            Ok(())
        };
        let size = loop {
            let stat = sys::retry(|| rustix::fs::fstat(backing.fd())).context(OP, &label)?;
            let size = stat.st_size as u64;
            match size {
                // The creator has not sized it yet.
                0 => wait_or(format!("the object is still empty after {timeout:?}"))?,
                s if s < HEADER_SIZE => {
                    return Err(corrupted(format!(
                        "the object is {s} bytes, smaller than a channel header"
                    )))
                }
                s => break s,
            }
        };
        let (map, header) = Self::map(&backing, HEADER_SIZE, &label)?;
        // SAFETY: the header page is mapped and the fields are atomics.
        let id = unsafe { &header.as_ref().identity.0 };
        loop {
            match id.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 => wait_or(format!("the creator did not finish setting it up within {timeout:?}"))?,
                other => return Err(corrupted(format!("bad magic {other:#018x}"))),
            }
        }
        let version = id.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(corrupted(format!(
                "layout version {version}; this ipcraft reads version {VERSION}"
            )));
        }
        let header_size = id.header_size.load(Ordering::Relaxed);
        if u64::from(header_size) != HEADER_SIZE {
            return Err(corrupted(format!("header size {header_size}, expected {HEADER_SIZE}")));
        }
        // Read once into private memory; never read from the object again.
        let capacity = id.capacity.load(Ordering::Relaxed);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(corrupted(format!("impossible capacity {capacity}")));
        }
        if HEADER_SIZE + capacity > size {
            return Err(corrupted(format!(
                "capacity {capacity} does not fit in the object ({size} bytes)"
            )));
        }
        drop(map);
        let (map, header) = Self::map(&backing, HEADER_SIZE + capacity, &label)?;
        // SAFETY: as in `initialise`: the mapping covers header and ring.
        let ring = unsafe {
            Ring::new(
                NonNull::new_unchecked(map.as_mut_ptr().add(HEADER_SIZE as usize)),
                capacity,
            )
        };
        Ok(Self {
            backing,
            _map: map,
            header,
            ring,
            label,
        })
    }

    fn side_state(&self, side: &Side, lock_byte: i64) -> Result<SideState> {
        let pid = side.pid.load(Ordering::Relaxed);
        Ok(match side.state.load(Ordering::Acquire) {
            ABSENT => SideState::Absent,
            CLOSED => SideState::Closed,
            _ => {
                let alive =
                    sys::ofd_locked_by_other(self.backing.fd(), lock_byte).context("stat channel", &self.label)?;
                if alive {
                    SideState::Alive(pid)
                } else {
                    SideState::Dead(pid)
                }
            }
        })
    }

    /// Takes this side's lock, says whether it uses the light fence, and
    /// marks it attached (in that order: a peer that sees it attached sees
    /// its fence kind).
    fn attach(&self, side: &Side, lock_byte: i64, name: &'static str, light: bool) -> Result<u32> {
        const OP: &str = "attach to channel";
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        if let Err(e) = sys::ofd_lock(self.backing.fd(), lock_byte) {
            if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
                let holder = side.pid.load(Ordering::Relaxed);
                return Err(Error::new(
                    OP,
                    &self.label,
                    Cause::InUse {
                        side: name,
                        pid: holder,
                    },
                ));
            }
            return Err(Error::new(OP, &self.label, e));
        }
        if side.state.load(Ordering::Acquire) == ABSENT {
            side.light.store(u32::from(light), Ordering::Release);
        }
        match side
            .state
            .compare_exchange(ABSENT, ATTACHED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                side.pid.store(pid, Ordering::Release);
                Ok(pid)
            }
            Err(CLOSED) => Err(Error::new(OP, &self.label, Cause::Closed { side: name })),
            Err(_) => {
                let old = side.pid.load(Ordering::Relaxed);
                Err(Error::new(OP, &self.label, Cause::PeerDied { side: name, pid: old }))
            }
        }
    }

    /// Fails with [`Cause::PeerDied`] if `side` is attached but its lock is free.
    fn check_alive(&self, side: &Side, lock_byte: i64, name: &'static str, op: &'static str) -> Result<()> {
        if let SideState::Dead(pid) = self.side_state(side, lock_byte)? {
            return Err(Error::new(op, &self.label, Cause::PeerDied { side: name, pid }));
        }
        Ok(())
    }

    fn keep(&mut self) {
        if let Backing::Named(shm) = &mut self.backing {
            shm.keep();
        }
    }
}

/// Which end of a channel a handle is.
#[derive(Clone, Copy, Debug)]
enum End {
    Sender,
    Receiver,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Sender => "sender",
            End::Receiver => "receiver",
        }
    }

    fn lock_byte(self) -> i64 {
        match self {
            End::Sender => SENDER_LOCK_BYTE,
            End::Receiver => RECEIVER_LOCK_BYTE,
        }
    }

    fn side(self, h: &Header) -> &Side {
        match self {
            End::Sender => &h.sender.0,
            End::Receiver => &h.receiver.0,
        }
    }
}

/// An end's attachment to its channel, made on first use, so the copy of
/// an end that a forked process drops unused never counts as that end.
#[derive(Debug)]
struct Attachment {
    end: End,
    /// How long this end spins before sleeping.
    spin: Duration,
    /// The process that attached, or 0 before first use.
    pid: u32,
    /// Whether this process may use the light barrier (see `wait`).
    light: bool,
}

impl Attachment {
    fn new(end: End, spin: Duration) -> Self {
        Self {
            end,
            spin,
            pid: 0,
            light: false,
        }
    }

    /// Whether this end has attached (in some process).
    fn is_attached(&self) -> bool {
        self.pid != 0
    }

    /// Attaches this end: takes its liveness lock and marks it attached.
    fn attach(&mut self, mapped: &Mapped) -> Result<()> {
        self.light = wait::register_fast_path(self.spin);
        let side = self.end.side(mapped.header());
        self.pid = mapped.attach(side, self.end.lock_byte(), self.end.name(), self.light)?;
        Ok(())
    }

    /// Whether this end is attached and this process is the one that did.
    fn is_mine(&self) -> bool {
        self.pid != 0 && rustix::process::getpid().as_raw_nonzero().get() as u32 == self.pid
    }
}

/// An error from a send, with the message that was not sent.
pub struct SendError<T> {
    message: T,
    error: Error,
}

impl<T> SendError<T> {
    /// The message, unsent.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Why it went wrong (`Full`, `TimedOut`, `Closed`, `PeerDied`,
    /// `TooLarge`, `Corrupted`, ...).
    pub fn cause(&self) -> &Cause {
        self.error.cause()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Self {
        e.error
    }
}

/// How long an operation may wait.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    fn timeout(timeout: Duration) -> Self {
        sys::deadline(Some(timeout)).map_or(Wait::Forever, Wait::Until)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// The sending end.
pub struct Sender {
    mapped: Mapped,
    /// Private write position (the shared one is only published).
    tail: u64,
    /// Last consumer position accepted (validated, monotonic).
    head: u64,
    att: Attachment,
    closed: bool,
}

const SEND_OP: &str = "send to channel";
const RECV_OP: &str = "receive from channel";

impl Sender {
    /// Creates the named channel (exclusive, mode 0600, `capacity` bytes
    /// rounded up to a power of two) and attaches as its sender.
    pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<Self> {
        ChannelOptions::new().capacity(capacity).create_sender(name)
    }

    /// Opens an existing named channel as its sender.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ChannelOptions::new().open_sender(name)
    }

    /// A sender that attaches on first use; its positions are read (and
    /// checked) then.
    fn unattached(mapped: Mapped, spin: Duration) -> Self {
        Self {
            mapped,
            tail: 0,
            head: 0,
            att: Attachment::new(End::Sender, spin),
            closed: false,
        }
    }

    fn attach(mapped: Mapped, spin: Duration) -> Result<Self> {
        let mut tx = Self::unattached(mapped, spin);
        tx.ensure_attached()?;
        Ok(tx)
    }

    fn ensure_attached(&mut self) -> Result<()> {
        if self.att.is_attached() {
            return Ok(());
        }
        // Start from wherever the shared positions are (0 for a new
        // channel), checked before attaching: a handle that failed to attach
        // never writes at a position it did not check.
        let h = self.mapped.header();
        let tail = h.tail.0.load(Ordering::Acquire);
        let head = h.head.0.load(Ordering::Acquire);
        if tail % ring::FRAME_ALIGN != 0 {
            return Err(self.err(Cause::Corrupted(format!("write position {tail} is not aligned"))));
        }
        self.mapped
            .ring
            .check_head(head, head, tail)
            .map_err(|c| self.err(Cause::Corrupted(c.0)))?;
        self.att.attach(&self.mapped)?;
        (self.tail, self.head) = (tail, head);
        Ok(())
    }

    /// Leaves a channel this sender created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.mapped.keep();
    }

    /// The largest message this channel carries.
    pub fn max_message_len(&self) -> usize {
        self.mapped.ring.max_len() as usize
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.mapped.ring.capacity()
    }

    fn err(&self, cause: impl Into<Cause>) -> Error {
        Error::new(SEND_OP, &self.mapped.label, cause)
    }

    /// Makes room for a frame of `len` bytes at `self.tail`.
    fn make_room(&mut self, len: usize, wait: Wait) -> Result<()> {
        if len as u64 > self.mapped.ring.max_len() {
            return Err(self.err(Cause::TooLarge {
                len,
                limit: self.max_message_len(),
                limit_name: "the channel's largest message",
            }));
        }
        if self.closed {
            return Err(self.err(Cause::Closed { side: "sender" }));
        }
        self.ensure_attached()?;
        let ring = self.mapped.ring;
        let mut waiter = Waiter::new(self.att.spin, wait.deadline());
        loop {
            let h = self.mapped.header();
            if h.receiver.0.state.load(Ordering::Relaxed) == CLOSED {
                return Err(self.err(Cause::Closed { side: "receiver" }));
            }
            match ring.room(self.tail, self.head, len as u64) {
                Room::Fits => return Ok(()),
                Room::Pad(size) => {
                    let at = self.tail;
                    self.tail = ring.publish_pad(self.tail, size);
                    h.tail.0.store(self.tail, Ordering::Release);
                    wait::light_fence(self.att.light);
                    if h.receiver.0.sleeping.load(Ordering::Relaxed) != 0 {
                        wait::wake(ring.stamp_word(at));
                    }
                    continue;
                }
                Room::Full => {}
            }
            // Out of room by our cached view: load the consumer's position.
            let head = h.head.0.load(Ordering::Acquire);
            ring.check_head(head, self.head, self.tail)
                .map_err(|c| self.err(Cause::Corrupted(c.0)))?;
            if head != self.head {
                self.head = head;
                continue;
            }
            if let Wait::No = wait {
                return Err(self.err(Cause::Full));
            }
            let seen = head as u32;
            let word = low_half(&h.head.0);
            let ready =
                || h.head.0.load(Ordering::SeqCst) != head || h.receiver.0.state.load(Ordering::SeqCst) == CLOSED;
            let liveness = || {
                self.mapped
                    .check_alive(&h.receiver.0, RECEIVER_LOCK_BYTE, "receiver", SEND_OP)
            };
            let peer_light = peer_is_light(&h.receiver.0);
            match waiter.pause(&h.sender.0.sleeping, peer_light, word, seen, ready, liveness) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
    }

    /// Publishes the frame of `len` bytes written at the current position.
    fn publish(&mut self, len: usize) {
        let ring = self.mapped.ring;
        let at = self.tail;
        self.tail = ring.publish(at, len as u64);
        let h = self.mapped.header();
        h.tail.0.store(self.tail, Ordering::Release);
        wait::light_fence(self.att.light);
        if h.receiver.0.sleeping.load(Ordering::Relaxed) != 0 {
            wait::wake(ring.stamp_word(at));
        }
    }

    fn send_with<'m>(&mut self, msg: &'m [u8], wait: Wait) -> std::result::Result<(), SendError<&'m [u8]>> {
        if let Err(error) = self.make_room(msg.len(), wait) {
            return Err(SendError { message: msg, error });
        }
        let ring = self.mapped.ring;
        // SAFETY: make_room guaranteed `msg.len()` bytes of free ring at the
        // payload index of the current position.
        unsafe { ring::copy_to_shared(ring.at(ring.payload_index(self.tail)), msg) };
        self.publish(msg.len());
        Ok(())
    }

    /// Sends `msg`, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`] (nothing sent), [`Cause::Closed`] when the
    /// receiver has closed, [`Cause::PeerDied`], [`Cause::Corrupted`]; the
    /// message comes back in the [`SendError`].
    pub fn send<'m>(&mut self, msg: &'m [u8]) -> std::result::Result<(), SendError<&'m [u8]>> {
        self.send_with(msg, Wait::Forever)
    }

    /// Sends `msg` if there is room now; [`Cause::Full`] otherwise.
    pub fn try_send<'m>(&mut self, msg: &'m [u8]) -> std::result::Result<(), SendError<&'m [u8]>> {
        self.send_with(msg, Wait::No)
    }

    /// Sends `msg`, waiting at most `timeout` for room ([`Cause::TimedOut`]).
    pub fn send_timeout<'m>(
        &mut self,
        msg: &'m [u8],
        timeout: Duration,
    ) -> std::result::Result<(), SendError<&'m [u8]>> {
        self.send_with(msg, Wait::timeout(timeout))
    }

    /// Sends a plain-old-data value as one message of `size_of::<T>()` bytes.
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: T) -> std::result::Result<(), SendError<T>> {
        match self.send_with(bytemuck::bytes_of(&value), Wait::Forever) {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                message: value,
                error: e.error,
            }),
        }
    }

    /// Reserves `len` bytes in the ring (waiting for room) to be filled in
    /// place and [committed](SendSlot::commit). Dropping the slot sends
    /// nothing.
    pub fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::Forever)?;
        Ok(SendSlot { tx: self, len })
    }

    /// Reserves `len` bytes if there is room now; [`Cause::Full`] otherwise.
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::No)?;
        Ok(SendSlot { tx: self, len })
    }

    /// Reserves `len` bytes, waiting at most `timeout`.
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendSlot<'_>> {
        self.make_room(len, Wait::timeout(timeout))?;
        Ok(SendSlot { tx: self, len })
    }

    /// Ends the stream: the receiver gets what was sent, then `Ok(None)`.
    /// Dropping the sender does the same.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        let was_closed = std::mem::replace(&mut self.closed, true);
        // After fork, only the process that attached may close.
        if was_closed || !self.att.is_mine() {
            return Ok(());
        }
        let h = self.mapped.header();
        h.sender.0.state.store(CLOSED, Ordering::SeqCst);
        // The receiver polls the header word at our position: mark it too,
        // so a receiver about to sleep there sees the end at once.
        self.mapped.ring.publish_close(self.tail);
        wait::wake(self.mapped.ring.stamp_word(self.tail));
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `close` reports them.
        let _ = self.close_inner();
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.mapped.label)
            .field("capacity", &self.capacity())
            .field("position", &self.tail)
            .finish()
    }
}

/// Space reserved in the ring by [`Sender::reserve`]: fill it, then
/// [`commit`](Self::commit). Dropped without commit, nothing is sent.
pub struct SendSlot<'a> {
    tx: &'a mut Sender,
    len: usize,
}

impl SendSlot<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the reserved bytes in shared memory. Writing through it
    /// is `unsafe`; [`write_at`](Self::write_at) is the safe way.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        let ring = self.tx.mapped.ring;
        ring.at(ring.payload_index(self.tx.tail))
    }

    /// Copies `data` into the slot at `offset`.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if it does not fit in the slot.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        match offset.checked_add(data.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: offset + len is within the reserved slot, which is
                // free ring space owned by this sender until commit.
                unsafe { ring::copy_to_shared(self.as_mut_ptr().add(offset), data) };
                Ok(())
            }
            _ => Err(self.tx.err(Cause::OverLimit {
                requested: (offset as u64).saturating_add(data.len() as u64),
                limit: self.len as u64,
                limit_name: "the reserved slot",
            })),
        }
    }

    /// Stores a plain-old-data value in the slot at `offset`.
    pub fn write_pod<T: bytemuck::Pod>(&mut self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// The slot as a mutable slice.
    ///
    /// # Safety
    ///
    /// The receiving process must not write into the ring (an honest
    /// receiver never does): the slice is exclusive only in this process.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the slot is free ring space reserved by this sender; the
        // caller vouches for the other process.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Reads up to `len` bytes from `fd` straight into the slot (one
    /// `read(2)`); returns the count, 0 at end of file.
    pub fn read_from(&mut self, fd: impl AsFd) -> Result<usize> {
        let (ptr, len) = (self.as_mut_ptr(), self.len);
        // SAFETY: the slot's `len` bytes are writable ring space owned by
        // this sender; the kernel writes them.
        unsafe { sys::read_raw(fd.as_fd(), ptr, len) }.context("read into", "channel slot")
    }

    /// Sends the whole slot.
    pub fn commit(self) {
        self.tx.publish(self.len);
    }

    /// Sends the first `len` bytes of the slot.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if `len` is more than was reserved (nothing is sent).
    pub fn commit_len(self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(self.tx.err(Cause::OverLimit {
                requested: len as u64,
                limit: self.len as u64,
                limit_name: "the reserved slot",
            }));
        }
        self.tx.publish(len);
        Ok(())
    }
}

/// The receiving end.
pub struct Receiver {
    mapped: Mapped,
    /// Private read position (the shared one is only published).
    head: u64,
    att: Attachment,
}

impl Receiver {
    /// Creates the named channel and attaches as its receiver.
    pub fn create(name: impl AsRef<OsStr>, capacity: u64) -> Result<Self> {
        ChannelOptions::new().capacity(capacity).create_receiver(name)
    }

    /// Opens an existing named channel as its receiver.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ChannelOptions::new().open_receiver(name)
    }

    /// A receiver that attaches on first use; its position is read (and
    /// checked) then.
    fn unattached(mapped: Mapped, spin: Duration) -> Self {
        Self {
            mapped,
            head: 0,
            att: Attachment::new(End::Receiver, spin),
        }
    }

    fn attach(mapped: Mapped, spin: Duration) -> Result<Self> {
        let mut rx = Self::unattached(mapped, spin);
        rx.ensure_attached()?;
        Ok(rx)
    }

    fn ensure_attached(&mut self) -> Result<()> {
        if self.att.is_attached() {
            return Ok(());
        }
        let head = self.mapped.header().head.0.load(Ordering::Acquire);
        if head % ring::FRAME_ALIGN != 0 {
            return Err(self.err(Cause::Corrupted(format!("read position {head} is not aligned"))));
        }
        self.att.attach(&self.mapped)?;
        self.head = head;
        Ok(())
    }

    /// Leaves a channel this receiver created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.mapped.keep();
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.mapped.ring.capacity()
    }

    fn err(&self, cause: impl Into<Cause>) -> Error {
        Error::new(RECV_OP, &self.mapped.label, cause)
    }

    /// Finds the next frame: `Some((ring index, len))`, or `None` at end of
    /// stream.
    fn next_frame(&mut self, wait: Wait) -> Result<Option<(u64, u64)>> {
        self.ensure_attached()?;
        let ring = self.mapped.ring;
        let mut waiter = Waiter::new(self.att.spin, wait.deadline());
        loop {
            ring.prefetch_after(self.head);
            match ring.peek(self.head).map_err(|c| self.err(Cause::Corrupted(c.0)))? {
                Peek::Frame { at, len } => return Ok(Some((at, len))),
                Peek::Pad(skip) => {
                    self.advance(skip);
                    continue;
                }
                Peek::Closed => return Ok(None),
                Peek::Empty => {}
            }
            if let Wait::No = wait {
                return Err(self.err(Cause::Empty));
            }
            let h = self.mapped.header();
            let word = ring.stamp_word(self.head);
            let ready = || word.load(Ordering::SeqCst) != 0;
            let liveness = || {
                self.mapped
                    .check_alive(&h.sender.0, SENDER_LOCK_BYTE, "sender", RECV_OP)
            };
            let peer_light = peer_is_light(&h.sender.0);
            match waiter.pause(&h.receiver.0.sleeping, peer_light, word, 0, ready, liveness) {
                Ok(()) => {}
                Err(Stop::TimedOut) => return Err(self.err(Cause::TimedOut)),
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
    }

    /// Moves past `bytes` and tells a sender waiting for room.
    fn advance(&mut self, bytes: u64) {
        self.head = self.head.wrapping_add(bytes);
        let h = self.mapped.header();
        h.head.0.store(self.head, Ordering::Release);
        wait::light_fence(self.att.light);
        if h.sender.0.sleeping.load(Ordering::Relaxed) != 0 {
            wait::wake(low_half(&h.head.0));
        }
    }

    fn recv_with(&mut self, buf: &mut [u8], wait: Wait) -> Result<Option<usize>> {
        let Some((at, len)) = self.next_frame(wait)? else {
            return Ok(None);
        };
        let len = len as usize;
        if buf.len() < len {
            return Err(self.err(Cause::BufferTooSmall {
                len: buf.len(),
                need: len,
                limit_name: "the message",
            }));
        }
        // SAFETY: peek checked that `len` bytes at ring index `at` lie in the ring.
        unsafe { ring::copy_from_shared(&mut buf[..len], self.mapped.ring.at(at)) };
        self.advance(ring::frame_size(len as u64));
        Ok(Some(len))
    }

    /// Receives the next message into `buf`, waiting while the ring is
    /// empty. Returns its length, or `None` once the sender has closed and
    /// everything it sent has been received.
    ///
    /// # Errors
    ///
    /// [`Cause::BufferTooSmall`] (the message stays for the next call),
    /// [`Cause::PeerDied`], [`Cause::Corrupted`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::Forever)
    }

    /// Receives a message if one is waiting; [`Cause::Empty`] otherwise.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::No)
    }

    /// Receives a message, waiting at most `timeout` ([`Cause::TimedOut`]).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        self.recv_with(buf, Wait::timeout(timeout))
    }

    /// Receives a plain-old-data value sent with [`Sender::send_pod`].
    ///
    /// # Errors
    ///
    /// [`Cause::Corrupted`] naming both sizes if the message is not exactly
    /// `size_of::<T>()` bytes (it is consumed).
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<Option<T>> {
        let Some(view) = self.recv_view()? else { return Ok(None) };
        view.read_pod::<T>().map(Some)
    }

    /// Lends the next message in place (zero-copy); the space is released
    /// when the view drops. `None` at end of stream.
    pub fn recv_view(&mut self) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::Forever)
    }

    /// [`recv_view`](Self::recv_view) without waiting ([`Cause::Empty`]).
    pub fn try_recv_view(&mut self) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::No)
    }

    /// [`recv_view`](Self::recv_view) waiting at most `timeout`.
    pub fn recv_view_timeout(&mut self, timeout: Duration) -> Result<Option<RecvView<'_>>> {
        self.view_with(Wait::timeout(timeout))
    }

    fn view_with(&mut self, wait: Wait) -> Result<Option<RecvView<'_>>> {
        Ok(self.next_frame(wait)?.map(|(at, len)| RecvView {
            rx: self,
            at,
            len: len as usize,
        }))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.att.is_mine() {
            let h = self.mapped.header();
            h.receiver.0.state.store(CLOSED, Ordering::SeqCst);
            wait::wake(low_half(&h.head.0));
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.mapped.label)
            .field("capacity", &self.capacity())
            .field("position", &self.head)
            .finish()
    }
}

/// A received message lent in place by [`Receiver::recv_view`]; its space
/// goes back to the sender when the view drops.
pub struct RecvView<'a> {
    rx: &'a mut Receiver,
    at: u64,
    len: usize,
}

impl RecvView<'_> {
    /// Message length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self) -> *const u8 {
        self.rx.mapped.ring.at(self.at)
    }

    /// Copies `dst.len()` bytes of the message starting at `offset`.
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        match offset.checked_add(dst.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the range is within the frame, which peek checked
                // lies in the ring.
                unsafe { ring::copy_from_shared(dst, self.ptr().add(offset)) };
                Ok(())
            }
            _ => Err(self.rx.err(Cause::OverLimit {
                requested: (offset as u64).saturating_add(dst.len() as u64),
                limit: self.len as u64,
                limit_name: "the message",
            })),
        }
    }

    /// The message as a plain-old-data value; it must be exactly
    /// `size_of::<T>()` bytes.
    pub fn read_pod<T: bytemuck::Pod>(&self) -> Result<T> {
        let want = std::mem::size_of::<T>();
        if self.len != want {
            return Err(self.rx.err(Cause::Corrupted(format!(
                "message is {} bytes; a {} is {want}",
                self.len,
                std::any::type_name::<T>()
            ))));
        }
        let mut value = T::zeroed();
        self.copy_to(0, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Copies the message into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        // SAFETY: as in copy_to, for the whole frame.
        unsafe { ring::copy_from_shared(&mut v, self.ptr()) };
        v
    }

    /// Writes the message to `out` straight from shared memory with
    /// `write(2)` (no copy in this process), retrying short writes.
    pub fn write_to(&self, out: impl AsFd) -> Result<()> {
        // SAFETY: the frame lies in the ring (checked by peek); the kernel reads it.
        unsafe { sys::write_all_raw(out.as_fd(), self.ptr(), self.len) }.context("write out", "channel message")
    }

    /// The message as a slice, without copying.
    ///
    /// # Safety
    ///
    /// The sending process must not write into this frame while the slice
    /// lives. An honest sender never does (it does not reuse the space
    /// until the view drops); a hostile one could change the bytes under
    /// you, which is a data race.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the frame lies in the ring (checked by peek); the caller
        // vouches for the other process.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl Drop for RecvView<'_> {
    fn drop(&mut self) {
        self.rx.advance(ring::frame_size(self.len as u64));
    }
}

/// Whether the peer's fast path needs this side's membarrier before it
/// sleeps. A peer that has not attached yet may still attach as light.
fn peer_is_light(peer: &Side) -> bool {
    peer.state.load(Ordering::Acquire) != ATTACHED || peer.light.load(Ordering::Acquire) != 0
}

/// The low 32 bits of a little-endian `AtomicU64` in shared memory, as the
/// futex word a waiter sleeps on.
fn low_half(word: &std::sync::atomic::AtomicU64) -> &AtomicU32 {
    // SAFETY: an AtomicU64 is 8-aligned, so its first 4 bytes are a valid,
    // aligned AtomicU32 (the low half on little-endian Linux targets); the
    // futex system call only needs its address and reads it atomically.
    unsafe { &*(word as *const std::sync::atomic::AtomicU64 as *const AtomicU32) }
}

#[cfg(not(target_endian = "little"))]
compile_error!("the channel's futex words assume a little-endian target");
