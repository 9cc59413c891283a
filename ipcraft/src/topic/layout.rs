//! The shared header of a topic object. Everything here lives in memory
//! another process can write, so every field is an atomic and every value
//! is checked where it is read.

use std::sync::atomic::{AtomicU32, AtomicU64};

pub(crate) use crate::channel::layout::{Line, Side, ABSENT, ATTACHED, CLOSED};

/// `b"IPCKTOPC"` as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"IPCKTOPC");
/// Layout version. Version 2: a subscriber slot names its doorbell.
/// Version 3: a message's sequence number rides in its frame's tag (low 32
/// bits), the header's `count` gives the rest.
pub(crate) const VERSION: u32 = 3;
/// The most subscriber slots (the sleeping bits fill four words).
pub(crate) const MAX_SLOTS: u32 = 256;
/// Policy values in the identity.
pub(crate) const BLOCK: u32 = 0;
pub(crate) const OVERWRITE: u32 = 1;
/// File offset of the byte the publisher keeps OFD-locked while alive;
/// subscriber slot `i` uses byte `1 + i`.
pub(crate) const PUBLISHER_LOCK_BYTE: i64 = 0;

/// Written once by the creator; `magic` is stored last with release order.
#[repr(C)]
pub(crate) struct Identity {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_size: AtomicU32,
    pub capacity: AtomicU64,
    pub key: AtomicU64,
    pub slots: AtomicU32,
    pub policy: AtomicU32,
}

/// One subscriber slot.
#[repr(C)]
pub(crate) struct Slot {
    /// The next position this subscriber reads (written after every message).
    pub head: AtomicU64,
    /// ABSENT or ATTACHED.
    pub state: AtomicU32,
    pub pid: AtomicU32,
    /// How many times a process has taken this slot.
    pub attaches: AtomicU32,
    /// Whether the subscriber's fast path uses only a compiler fence.
    pub light: AtomicU32,
    /// The nonce of the doorbell of an async subscriber (0: a blocking
    /// one). The publisher rings it instead of the futex when the slot's
    /// sleeping bit is set, and clears the bit as it does: one ring per
    /// sleep.
    pub bell: AtomicU64,
}

/// The header, at offset 0; the slots follow it, one line each.
#[repr(C)]
pub(crate) struct Header {
    pub identity: Line<Identity>,
    /// Bytes ever published; its low half is the futex word sleeping
    /// subscribers wait on.
    pub tail: Line<AtomicU64>,
    /// Position of the oldest frame still intact. The publisher moves it
    /// forward before it writes over the frames below it.
    pub oldest: Line<AtomicU64>,
    pub publisher: Line<Side>,
    /// One bit per subscriber slot, set while that subscriber is (about to
    /// be) asleep: the publisher looks at these words after each message.
    pub sleepers: Line<[AtomicU64; 4]>,
    /// Bumped by a subscriber that frees room while the publisher sleeps;
    /// the publisher's futex word.
    pub progress: Line<AtomicU32>,
    /// Which stream the topic is on.
    pub stream: Line<AtomicU64>,
    /// The sequence number of the next message, stored after each
    /// message's frame is published: with a frame's tag (the low 32 bits of
    /// its sequence number) it gives the whole number ([`seq_near`]).
    pub count: Line<AtomicU64>,
}

/// The sequence number whose low 32 bits are `tag` nearest to `near`.
///
/// A frame's tag holds the low half of its sequence number. Any value
/// within 2^31 of the true number gives it back: the subscriber's
/// expected number when it is not behind, else the header's `count`,
/// which a frame still held is at most the ring's frames (2^24) behind.
pub(crate) fn seq_near(tag: u32, near: u64) -> u64 {
    let delta = tag.wrapping_sub(near as u32) as i32;
    near.wrapping_add_signed(i64::from(delta))
}

/// Bytes before the ring for a topic with `slots` slots: whole pages, so
/// the ring is page aligned.
pub(crate) fn header_size(slots: u32) -> u64 {
    let bytes = std::mem::size_of::<Header>() as u64 + u64::from(slots) * std::mem::size_of::<Line<Slot>>() as u64;
    bytes.div_ceil(4096) * 4096
}

const _: () = assert!(std::mem::size_of::<Line<Slot>>() == 128);
const _: () = assert!(std::mem::size_of::<Header>() % 128 == 0);

#[cfg(test)]
mod tests {
    use super::seq_near;

    #[test]
    fn a_tag_and_a_near_number_give_the_sequence_number() {
        for seq in [
            0u64,
            1,
            7,
            u64::from(u32::MAX),
            1 << 32,
            (1 << 32) + 5,
            0xdead_beef_0000_0001,
            u64::MAX,
        ] {
            let tag = seq as u32;
            for off in [0i64, 1, -1, 1 << 24, -(1 << 24), 1 << 31, 1 - (1 << 31)] {
                let near = seq.wrapping_add_signed(off);
                assert_eq!(seq_near(tag, near), seq, "seq {seq:#x} near {near:#x}");
            }
        }
        // Further than 2^31 off, the answer is a different number.
        assert_ne!(seq_near(5, 5 + (1 << 31) + 1), 5);
    }
}
