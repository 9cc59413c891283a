//! The shared header at the start of a channel object: identity (written
//! once by the creator, magic last), then one cache-line pair per side so
//! the sender's hot position, the receiver's hot position and each side's
//! rarely-written state never share a line.
//!
//! Everything here lives in memory another process can write, so every
//! field is an atomic and every value is checked where it is read.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// `b"IPCKCHAN"` as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"IPCKCHAN");
/// Layout version; a channel of another version is refused. Version 2:
/// 16-byte frame headers with keyed stamps, in-band end markers, streams.
pub(crate) const VERSION: u32 = 2;
/// Bytes before the ring: one page, so the ring is page aligned.
pub(crate) const HEADER_SIZE: u64 = 4096;
/// Smallest ring.
pub const MIN_CAPACITY: u64 = 4096;
/// Largest ring.
pub const MAX_CAPACITY: u64 = 1 << 30;

/// A side has not attached yet.
pub(crate) const ABSENT: u32 = 0;
/// A side is attached (and alive while its lock byte is locked).
pub(crate) const ATTACHED: u32 = 1;
/// A side closed its end (a sender: after its stream's end marker).
pub(crate) const CLOSED: u32 = 2;

/// File offset of the byte the sender keeps OFD-locked while alive.
pub(crate) const SENDER_LOCK_BYTE: i64 = 0;
/// File offset of the byte the receiver keeps OFD-locked while alive.
pub(crate) const RECEIVER_LOCK_BYTE: i64 = 1;

/// One 128-byte line (two cache lines, so adjacent-line prefetch does not
/// make the sides share).
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub T);

/// Written once by the creator; `magic` is stored last with release order.
#[repr(C)]
pub(crate) struct Identity {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_size: AtomicU32,
    pub capacity: AtomicU64,
    /// Mixed into every frame stamp (see `ring`): random per channel.
    pub key: AtomicU64,
}

/// One side's rarely-written state.
#[repr(C)]
pub(crate) struct Side {
    /// ABSENT, ATTACHED or CLOSED.
    pub state: AtomicU32,
    /// The attached process.
    pub pid: AtomicU32,
    /// Non-zero while this side is (about to be) asleep on a futex.
    pub sleeping: AtomicU32,
    /// Non-zero if this side's fast path uses only a compiler fence, so a
    /// peer going to sleep must issue a membarrier (see `wait`).
    pub light: AtomicU32,
    /// How many times a process has attached as this side.
    pub attaches: AtomicU32,
    /// The nonce of this side's doorbell while an async end holds it (0:
    /// none). Rung instead of the futex while `sleeping` is `bell::BELL`.
    pub bell: AtomicU64,
    /// Non-zero from the moment the attached process starts to drop its
    /// end until its lock is gone (reset by the next attach): an async peer
    /// that finds the lock still held then checks again shortly instead of
    /// waiting for a ring or the process's exit.
    pub leaving: AtomicU32,
    /// How many times a sender took over a stream whose sender had died
    /// mid-stream (sender side only).
    pub takeovers: AtomicU32,
    /// The pid of the sender that died, as the latest takeover found it.
    pub died: AtomicU32,
}

/// The header, at offset 0 of the object.
#[repr(C)]
pub(crate) struct Header {
    pub identity: Line<Identity>,
    /// Sender's position: bytes ever published (for `stat`).
    pub tail: Line<AtomicU64>,
    pub sender: Line<Side>,
    /// Receiver's position: bytes ever consumed. Its low 32 bits are the
    /// futex word a sender waiting for room sleeps on.
    pub head: Line<AtomicU64>,
    pub receiver: Line<Side>,
    /// The stream the channel is on: 1 for the first sender's, one more for
    /// each sender that starts after a stream ended (for `stat`).
    pub stream: Line<AtomicU64>,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);
