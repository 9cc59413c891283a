//! # ipcraft — inter-process communication for Linux
//!
//! One crate for every way two processes on one Linux machine exchange
//! bytes: [pipes](pipe) and [child processes joined by pipes](command),
//! [FIFOs](fifo), [POSIX message queues](mq), [memory mappings](mmap),
//! [POSIX shared memory](shm), [Unix domain sockets](unix_socket) with
//! descriptor passing, [sealed memfds](memfd), and the shared-memory
//! [channel], the fastest of them.
//!
//! ipcraft is a single-host toolkit. Processes on different machines need a
//! network transport instead.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let (mut reader, mut writer) = ipcraft::pipe::pipe()?;
//! writer.write_all(b"ping")?;
//! drop(writer);
//! let mut got = Vec::new();
//! reader.read_to_end(&mut got)?;
//! assert_eq!(got, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # One vocabulary
//!
//! Learn one facility and the next reads the same way:
//!
//! | idea | word | where |
//! |---|---|---|
//! | make a new named object (exclusive, mode 0600 exactly) | `create` | [`Fifo::create`](fifo::Fifo::create), [`MessageQueue::create`](mq::MessageQueue::create), [`Shm::create`](shm::Shm::create), [`Sender::create`](channel::Sender::create), [`Listener::bind`](unix_socket::Listener::bind) (a socket file is made by `bind`) |
//! | use an existing one | `open` | [`fifo::open_read`], [`MessageQueue::open`](mq::MessageQueue::open), [`Shm::open`](shm::Shm::open), [`Receiver::open`](channel::Receiver::open) |
//! | everything else about opening | `<module>Options`, `&mut self` setters, then `open` | [`FifoOptions`](fifo::FifoOptions), [`MqOptions`](mq::MqOptions), [`ShmOptions`](shm::ShmOptions), [`MmapOptions`](mmap::MmapOptions), [`ChannelOptions`](channel::ChannelOptions) |
//! | accept an object another user owns | `allow_foreign(true)` | every `Options` type above that opens by name |
//! | remove a name | `remove` | [`fifo::remove`], [`mq::remove`], [`shm::remove`], [`channel::remove`], and `remove(self)` on a handle |
//! | leave a created object in place | `keep(&mut self)` | every handle that can create one |
//! | receive | `recv`, `try_recv`, `recv_timeout` | [`mq`], [`channel`], [`unix_socket::recv_with_fds`] |
//! | send | `send`, `try_send`, `send_timeout` | [`mq`], [`channel`], [`unix_socket::send_with_fds`] |
//! | a plain-old-data value | `send_pod`/`recv_pod`, `read`/`write` | [`channel`], [`mmap::Mmap`] |
//!
//! **One lifetime rule for named objects** (FIFOs, queues, shared memory
//! objects, channels, socket files): an object a handle *created* is
//! removed when that handle drops, unless [`keep`](shm::Shm::keep) was
//! called; an object a handle *opened* is never removed by dropping it.
//! Removal only ever removes the file the handle made (a path that now
//! names something else is left alone).
//!
//! **One set of traits on every handle:** `Debug`; and where it owns a
//! descriptor, [`AsFd`](std::os::fd::AsFd), [`AsRawFd`](std::os::fd::AsRawFd)
//! and `Into<`[`OwnedFd`](std::os::fd::OwnedFd)`>` ([`pipe::PipeReader`],
//! [`pipe::PipeWriter`], [`mq::MessageQueue`], [`shm::Shm`],
//! [`memfd::Memfd`], [`unix_socket::Listener`]). Every descriptor is
//! close-on-exec.
//!
//! **Errors** are one [`Error`] type naming the operation, the object and
//! why: `open fifo /tmp/x: No such file or directory`. Its `Debug` is the
//! same line, so `fn main() -> Result<(), ipcraft::Error>` reports it
//! cleanly; [`Error::cause`] gives the reason as a [`Cause`] to match on.
//! Nothing panics on bad input or on a misbehaving peer, and a broken pipe
//! is an error, never a death by `SIGPIPE`.
//!
//! **Names** of POSIX objects are checked as a [`Name`] before any system
//! call: `/name` or `name`, one component of 1 to 255 bytes of UTF-8.
//!
//! **Never fooled by another process.** A path another user can write
//! (`/dev/shm`, `/tmp`) may hold a planted link or object: named objects
//! are opened with `O_NOFOLLOW`, and the descriptor actually opened is
//! checked (`fstat`: kind and owner). Memory another process can write is
//! never trusted: every value read from it is checked before use.
//!
//! # Typed messages
//!
//! Plain-old-data values travel as their bytes ([`Sender::send_pod`],
//! [`Mmap::write`](mmap::Mmap::write)). A type qualifies when it implements
//! [`Pod`] from [bytemuck](https://docs.rs/bytemuck), which ipcraft
//! re-exports; the `derive` feature re-exports its derives too
//! (`ipcraft = { features = ["derive"] }`), with
//! `#[bytemuck(crate = "ipcraft::bytemuck")]` so that ipcraft is the only
//! dependency. A `#[repr(C)]` struct must have no hidden padding:
//! `{ id: u32, value: f64 }` has four padding bytes after `id`, and the
//! derive refuses it; make the padding a field of its own.
//!
//! [`Sender::send_pod`]: channel::Sender::send_pod
//!
//! ```
//! # #[cfg(feature = "derive")] {
//! use ipcraft::{Pod, Zeroable};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[bytemuck(crate = "ipcraft::bytemuck")]
//! #[repr(C)]
//! struct Reading {
//!     id: u32,
//!     _pad: u32, // explicit: f64 must start at an 8-byte boundary
//!     value: f64,
//! }
//!
//! fn exchange() -> Result<(), Box<dyn std::error::Error>> {
//!     let (mut tx, mut rx) = ipcraft::channel::pair(4096)?;
//!     let r = Reading { id: 7, _pad: 0, value: 21.5 };
//!     tx.send_pod(r)?; // a failed send gives the value back in its SendError
//!     tx.send(b"and bytes")?;
//!     assert_eq!(rx.recv_pod::<Reading>()?, Some(r));
//!     Ok(())
//! }
//! exchange().unwrap();
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, clippy::undocumented_unsafe_blocks)]

pub mod channel;
pub mod command;
pub mod error;
pub mod fifo;
pub mod memfd;
pub mod mmap;
pub mod mq;
pub mod name;
mod object;
pub mod pipe;
pub mod process;
pub mod service;
pub mod shm;
mod sys;
pub mod topic;
pub mod unix_socket;

#[cfg(feature = "tokio")]
pub mod tokio;

/// The plain-old-data traits and derives that typed messages and shared
/// values use, re-exported so that depending on ipcraft is enough.
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use error::{Cause, Error, Result};
pub use name::Name;

/// The README's Rust examples compile and run as doc tests (from the
/// workspace root, where the bench turns the `tokio` feature on).
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
