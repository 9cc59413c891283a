//! How a channel is created or opened: [`ChannelOptions`], for named
//! channels, channels in a file handed over by descriptor, sealed memfds,
//! and anonymous pairs for a parent and its child.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::lanes::{Group, Kind};
use super::layout::{HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY};
use super::object::{own_description, Backing, Endpoint, Mapped};
use super::{MultiReceiver, Receiver, Sender, DEFAULT_CAPACITY, DEFAULT_OPEN_TIMEOUT, DEFAULT_SPIN};
use crate::error::{Cause, Context, Error, Result};
use crate::name::Name;
use crate::shm::ShmOptions;
use crate::sys;

/// How to create or open a channel.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    capacity: u64,
    mode: u32,
    spin: Duration,
    open_timeout: Duration,
    allow_foreign: bool,
    collect_stale: bool,
    senders: u32,
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
            allow_foreign: false,
            collect_stale: false,
            senders: 1,
        }
    }

    /// How many senders a new named channel takes at once (default 1).
    /// With more than one, each sender gets a ring of its own of
    /// [`capacity`](Self::capacity) bytes, and the channel is received
    /// with a [`MultiReceiver`](super::MultiReceiver).
    pub fn senders(&mut self, n: u32) -> &mut Self {
        self.senders = n;
        self
    }

    /// Ring size in bytes for a new channel, rounded up to a power of two
    /// between [`MIN_CAPACITY`] and [`MAX_CAPACITY`].
    ///
    /// Streams of large messages may move faster through a ring larger
    /// than the two cores' L2 caches together (on one Intel host, 64 KiB
    /// messages: 17 GB/s through 1 MiB, 22 through 8 MiB).
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

    /// Accept a named channel another user owns (refused by default with
    /// [`Cause::ForeignOwner`]: anyone can create objects in `/dev/shm`).
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    pub(super) fn allow_foreign_owner(&self) -> bool {
        self.allow_foreign
    }

    /// When the name is taken by a [stale](super::ChannelStat::is_stale)
    /// channel (its users died), remove it and create anew instead of
    /// failing with `EEXIST`. A channel in use, or any other object, still
    /// makes creation fail.
    pub fn collect_stale(&mut self, collect: bool) -> &mut Self {
        self.collect_stale = collect;
        self
    }

    /// How long opening waits for a creator that is still setting up.
    pub fn open_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.open_timeout = timeout;
        self
    }

    pub(crate) fn ring_capacity(&self, name: &dyn fmt::Display) -> Result<u64> {
        if self.capacity == 0 {
            return Err(Error::new(
                "create channel",
                name,
                Cause::Invalid("the capacity must be at least 1 byte"),
            ));
        }
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
    /// either side. The object stays until [`remove`](super::remove)d.
    pub fn create(&self, name: impl AsRef<OsStr>) -> Result<()> {
        if self.senders != 1 {
            self.create_group(name)?.keep();
            return Ok(());
        }
        let mut mapped = self.create_named(name)?;
        if let Backing::Named(shm) = &mut mapped.backing {
            shm.keep();
        }
        Ok(())
    }

    fn create_group(&self, name: impl AsRef<OsStr>) -> Result<Group> {
        let name = Name::new(name)?;
        let cap = self.ring_capacity(&name)?;
        Group::create(&name, Kind::Senders, self.senders, cap, self.mode)
    }

    /// Creates a channel for [several senders](Self::senders) and attaches
    /// as its receiver (removed on drop unless [`MultiReceiver::keep`] is
    /// called).
    pub fn create_multi_receiver(&self, name: impl AsRef<OsStr>) -> Result<MultiReceiver> {
        MultiReceiver::attach(self.create_group(name)?, self.spin)
    }

    /// Opens a channel made for several senders as its receiver.
    ///
    /// # Errors
    ///
    /// [`Cause::Invalid`] if it is a one-to-one channel;
    /// [`Cause::InUse`] if it has a live receiver.
    pub fn open_multi_receiver(&self, name: impl AsRef<OsStr>) -> Result<MultiReceiver> {
        let name = Name::new(name)?;
        match Group::open(&name, false, self.allow_foreign, self.open_timeout)? {
            Some(group) if group.kind == Kind::Senders => MultiReceiver::attach(group, self.spin),
            _ => Err(Error::new(
                "open channel",
                &name,
                Cause::Invalid("not a channel for several senders"),
            )),
        }
    }

    fn create_named(&self, name: impl AsRef<OsStr>) -> Result<Mapped> {
        let name = Name::new(name)?;
        let cap = self.ring_capacity(&name)?;
        let create = || {
            ShmOptions::new()
                .create_new(true)
                .mode(self.mode)
                .size(HEADER_SIZE + cap)
                .open(&name)
                .map_err(|e| e.relabel("create channel", &name))
        };
        let shm = match create() {
            Err(e) if self.collect_stale && e.raw_os_error() == Some(libc::EEXIST) => {
                if !super::remove_if_stale(&name).unwrap_or(false) {
                    return Err(e);
                }
                create()?
            }
            other => other?,
        };
        Mapped::initialise(Backing::Named(shm), cap, name.to_string())
    }

    /// Creates the named channel and attaches as its sender. The object is
    /// removed when the sender drops unless [`Sender::keep`] is called (the
    /// receiver must have opened it by then).
    pub fn create_sender(&self, name: impl AsRef<OsStr>) -> Result<Sender> {
        Endpoint::attached(self.create_named(name)?, self.spin)
    }

    /// Creates the named channel and attaches as its receiver (removed on
    /// drop unless [`Receiver::keep`] is called).
    pub fn create_receiver(&self, name: impl AsRef<OsStr>) -> Result<Receiver> {
        Endpoint::attached(self.create_named(name)?, self.spin)
    }

    fn open_named(&self, name: impl AsRef<OsStr>) -> Result<Mapped> {
        let name = Name::new(name)?;
        let shm = ShmOptions::new()
            .allow_foreign(self.allow_foreign)
            .open(&name)
            .map_err(|e| e.relabel("open channel", &name))?;
        Mapped::open(Backing::Named(shm), name.to_string(), self.open_timeout)
    }

    /// Opens an existing channel as its sender.
    ///
    /// # Errors
    ///
    /// [`Cause::InUse`] if it has a live sender; [`Cause::Closed`] if its
    /// sender already closed; [`Cause::Corrupted`] if the object is not a
    /// valid channel (bad magic or version, impossible capacity, too short).
    ///
    /// On a channel made for [several senders](Self::senders), this
    /// sender takes the first lane no live sender holds
    /// ([`Cause::LimitReached`] when every one is taken).
    pub fn open_sender(&self, name: impl AsRef<OsStr>) -> Result<Sender> {
        let name = Name::new(name)?;
        if let Some(group) = Group::open(&name, false, self.allow_foreign, self.open_timeout)? {
            if group.kind != Kind::Senders {
                return Err(Error::new(
                    "open channel",
                    &name,
                    Cause::Invalid("it is a service, not a channel"),
                ));
            }
            return Ok(group.attach_sender(0, 1, self.spin)?.1);
        }
        Endpoint::attached(self.open_named(name)?, self.spin)
    }

    /// Opens an existing channel as its receiver. Errors as
    /// [`open_sender`](Self::open_sender).
    pub fn open_receiver(&self, name: impl AsRef<OsStr>) -> Result<Receiver> {
        let name = Name::new(name)?;
        if Group::open(&name, true, self.allow_foreign, self.open_timeout)?.is_some() {
            return Err(Error::new(
                "open channel",
                &name,
                Cause::Invalid("it takes several senders: receive with a MultiReceiver"),
            ));
        }
        Endpoint::attached(self.open_named(name)?, self.spin)
    }

    /// Creates a channel in `fd`, an empty shared file such as a memfd (it
    /// is sized here), and attaches as its sender. Hand the same file to
    /// the receiving process (inherited, or over a Unix socket) and open it
    /// there with [`open_receiver_in`](Self::open_receiver_in).
    pub fn create_sender_in(&self, fd: OwnedFd) -> Result<Sender> {
        Endpoint::attached(self.create_in(fd)?, self.spin)
    }

    /// Creates a channel in `fd` and attaches as its receiver.
    pub fn create_receiver_in(&self, fd: OwnedFd) -> Result<Receiver> {
        Endpoint::attached(self.create_in(fd)?, self.spin)
    }

    /// Opens the channel held in `fd` as its sender.
    pub fn open_sender_in(&self, fd: OwnedFd) -> Result<Sender> {
        Endpoint::attached(self.open_in(fd)?, self.spin)
    }

    /// Opens the channel held in `fd` as its receiver.
    pub fn open_receiver_in(&self, fd: OwnedFd) -> Result<Receiver> {
        Endpoint::attached(self.open_in(fd)?, self.spin)
    }

    fn open_in(&self, fd: OwnedFd) -> Result<Mapped> {
        Mapped::open(
            Backing::Anonymous(own_description(fd)?),
            "channel in a file".into(),
            self.open_timeout,
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
        Ok((Endpoint::unattached(tx, self.spin), Endpoint::unattached(rx, self.spin)))
    }
}
