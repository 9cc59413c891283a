//! # ipcraft — inter-process communication for Linux
//!
//! One crate for every way two processes on one Linux machine exchange
//! bytes: [pipes](pipe), [FIFOs](fifo), and (in progress) POSIX message
//! queues, memory mappings, POSIX shared memory, Unix domain sockets and a
//! shared-memory channel.
//!
//! Conventions throughout:
//!
//! - Descriptors are [`OwnedFd`](std::os::fd::OwnedFd) or newtypes over it
//!   that implement [`AsFd`](std::os::fd::AsFd), and are close-on-exec.
//! - Errors are one [`Error`] type that names the operation, the object and
//!   the OS error: `open fifo /tmp/x: No such file or directory`.
//! - POSIX IPC names are validated as a [`Name`] before any system call.
//! - Nothing panics on bad input or on a misbehaving peer, and a broken pipe
//!   is an error, never a death by `SIGPIPE`.
//! - Objects you create are removed by a guard on drop unless you keep them.
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

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod channel;
pub mod error;
pub mod fifo;
pub mod memfd;
pub mod mmap;
pub mod mq;
pub mod name;
mod object;
pub mod pipe;
pub mod process;
pub mod shm;
mod sys;
pub mod unix_socket;

/// The plain-old-data traits and derives that typed messages and shared
/// values use, re-exported so that depending on ipcraft is enough.
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use error::{Cause, Error, Result};
pub use name::Name;

/// The README's Rust examples compile and run as doc tests (from the workspace).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
