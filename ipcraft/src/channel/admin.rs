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
use crate::shm::Shm;

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
    // Read-only: stat must work on a channel it may not write, and never
    // writes to one.
    let shm = Shm::open_read_only(&name).map_err(|e| e.relabel("open channel", &name))?;
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
