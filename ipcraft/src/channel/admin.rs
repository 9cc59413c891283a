//! Administration of named channels: create without attaching, remove,
//! and `stat` (what `ipcraft chan create/rm/stat` do).

use std::ffi::OsStr;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{HEADER_SIZE, MAGIC, RECEIVER_LOCK_BYTE, SENDER_LOCK_BYTE};
use super::object::{Backing, Mapped};
use super::{ChannelOptions, Receiver, Sender};
use crate::error::{Cause, Error, Result};
use crate::name::Name;
use crate::shm::{Shm, ShmOptions};
use crate::sys;

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
    if magic != MAGIC && magic != super::lanes::GROUP_MAGIC {
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
    /// Which stream the channel is on: 0 before any sender attached, then
    /// one more for each sender that started a new stream (a sender that
    /// replaces a dead one continues its stream).
    pub stream: u64,
    /// The sender.
    pub sender: SideState,
    /// The receiver.
    pub receiver: SideState,
}

impl fmt::Display for ChannelStat {
    /// `capacity=N in_flight=N stream=N sender=STATE receiver=STATE`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity={} in_flight={} stream={} sender={} receiver={}",
            self.capacity, self.in_flight, self.stream, self.sender, self.receiver
        )
    }
}

/// Capacity, bytes in flight, and whether each side is attached and alive.
pub fn stat(name: impl AsRef<OsStr>) -> Result<ChannelStat> {
    ChannelOptions::new().stat(name)
}

/// [`stat`] of every sender's lane of a channel made for
/// [several senders](ChannelOptions::senders); of the one ring of a
/// one-to-one channel.
pub fn stat_lanes(name: impl AsRef<OsStr>) -> Result<Vec<ChannelStat>> {
    ChannelOptions::new().stat_lanes(name)
}

impl ChannelStat {
    /// Whether this channel is what a crash leaves behind: a side attached
    /// and its process died without closing, and no side is alive. A
    /// channel nobody has used yet, or whose stream ended cleanly, is not
    /// stale: named channels outlive their users on purpose.
    pub fn is_stale(&self) -> bool {
        let sides = [self.sender, self.receiver];
        sides.iter().any(|s| matches!(s, SideState::Dead(_))) && !sides.iter().any(|s| matches!(s, SideState::Alive(_)))
    }
}

/// Removes the named channel if it is [stale](ChannelStat::is_stale), and
/// says whether it did. It takes both sides' liveness locks first, so a
/// process attaching meanwhile either finds the channel gone or makes this
/// call leave it alone; another user's channel is never removed.
///
/// # Errors
///
/// [`Cause::Corrupted`] if the object is not a channel (it is left alone),
/// [`Cause::ForeignOwner`], and the errors of opening it.
pub fn remove_if_stale(name: impl AsRef<OsStr>) -> Result<bool> {
    const OP: &str = "remove stale channel";
    let name = Name::new(name)?;
    if let Some(group) = super::lanes::Group::open(&name, false, false, Duration::ZERO)? {
        if group.kind != super::lanes::Kind::Senders {
            return Err(Error::new(OP, &name, Cause::Invalid("it is a service, not a channel")));
        }
        return group.remove_if_stale(&name, OP);
    }
    let shm = Shm::open(&name).map_err(|e| e.relabel(OP, &name))?;
    let mapped = Mapped::open(Backing::Named(shm), name.to_string(), Duration::ZERO)?;
    if !mapped.stat()?.is_stale() {
        return Ok(false);
    }
    remove_under_locks(mapped.backing.fd(), [SENDER_LOCK_BYTE, RECEIVER_LOCK_BYTE], &name, OP)
}

/// Takes every liveness lock in `bytes` on `fd` (each side's of an object
/// judged stale), then removes `name`. `Ok(false)`, leaving it, when one
/// is held: a process attached since the judgement.
pub(crate) fn remove_under_locks(
    fd: std::os::fd::BorrowedFd<'_>,
    bytes: impl IntoIterator<Item = i64>,
    name: &Name,
    op: &'static str,
) -> Result<bool> {
    let mut taken = Vec::new();
    let release = |taken: Vec<sys::HeldLock>| taken.into_iter().for_each(|held| held.release(fd));
    for byte in bytes {
        match sys::ofd_lock(fd, byte) {
            Ok(held) => taken.push(held),
            Err(e) => {
                // The object stays: the locks taken so far must not make a
                // side look alive to the next process that looks.
                release(taken);
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
                    _ => Err(Error::new(op, name, e)),
                };
            }
        }
    }
    let removed = crate::shm::remove(name).map_err(|e| e.relabel(op, name));
    release(taken);
    removed.map(|()| true)
}

/// Removes every stale channel of this user in `/dev/shm` (see
/// [`remove_if_stale`]) and returns their names: what `ipcraft gc` does,
/// except that the command also leaves alone a channel that any process
/// still maps. Objects that are not channels are never touched.
pub fn collect_stale() -> Result<Vec<Name>> {
    let me = crate::object::my_uid();
    let mut removed = Vec::new();
    for info in crate::shm::list()? {
        if info.uid != me || info.size < HEADER_SIZE {
            continue;
        }
        // Not a channel, vanished, or in use: not ours to collect.
        if let Ok(true) = remove_if_stale(&info.name) {
            removed.push(info.name);
        }
    }
    Ok(removed)
}

impl ChannelOptions {
    /// [`stat`] of the named channel, opened read-only (with
    /// [`allow_foreign`](Self::allow_foreign), another user's too).
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Result<ChannelStat> {
        let name = Name::new(name)?;
        // Read-only: stat must work on a channel it may not write, and
        // never writes to one.
        let shm = ShmOptions::new()
            .read_only(true)
            .allow_foreign(self.allow_foreign_owner())
            .open(&name)
            .map_err(|e| e.relabel("open channel", &name))?;
        Mapped::open(Backing::Named(shm), name.to_string(), Duration::ZERO)?.stat()
    }

    /// [`stat_lanes`] of the named channel, opened read-only (with
    /// [`allow_foreign`](Self::allow_foreign), another user's too).
    pub fn stat_lanes(&self, name: impl AsRef<OsStr>) -> Result<Vec<ChannelStat>> {
        let name = Name::new(name)?;
        match super::lanes::Group::open(&name, true, self.allow_foreign_owner(), Duration::ZERO)? {
            Some(group) if group.kind == super::lanes::Kind::Senders => group.stats(),
            Some(_) => Err(Error::new(
                "open channel",
                &name,
                Cause::Invalid("it is a service, not a channel"),
            )),
            None => Ok(vec![self.stat(&name)?]),
        }
    }
}

impl Mapped {
    /// Capacity, bytes in flight and both sides' states.
    pub(super) fn stat(&self) -> Result<ChannelStat> {
        let mapped = self;
        let h = mapped.header();
        let published = h.tail.0.load(Ordering::Acquire);
        let head = h.head.0.load(Ordering::Acquire);
        // The sender publishes its position only now and then: the frames
        // committed past it are counted by walking them. (A ring whose
        // frames do not check out shows the published position.)
        let ring = &mapped.ring;
        let tail = match ring.scan_from(published, head) {
            from if from % super::ring::FRAME_ALIGN == 0 => {
                ring.committed_end(from, head).map_or(published, |(end, _)| end)
            }
            _ => published,
        };
        Ok(ChannelStat {
            capacity: mapped.ring.capacity(),
            in_flight: tail.wrapping_sub(head).min(mapped.ring.capacity()),
            stream: h.stream.0.load(Ordering::Acquire),
            sender: mapped.side_state(&h.sender.0, SENDER_LOCK_BYTE)?,
            receiver: mapped.side_state(&h.receiver.0, RECEIVER_LOCK_BYTE)?,
        })
    }
}
