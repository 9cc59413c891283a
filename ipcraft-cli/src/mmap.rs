//! `ipcraft mmap`: the classic memory-mapped file exercise.

use std::io;
use std::path::PathBuf;

use ipcraft::mmap;
use ipcraft::Error;

use crate::{CmdResult, Failure};

/// A memory mapping makes a file (or anonymous memory) part of the address
/// space: reading memory reads the file. Shared mappings are how processes
/// share memory.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Prints each FILE by mapping it and writing the mapping to stdout.
    ///
    /// An empty file prints nothing. A file that shrinks while it is being
    /// printed is an error, not a crash. A file that cannot be mapped but
    /// reads in order (a /proc or /sys file, a pipe such as /dev/stdin) is
    /// read with read(2), as cat does; a named FIFO, a device, a socket or
    /// a directory is refused with an error. A bad FILE is reported and
    /// the rest are still printed; the exit status is then 1.
    Cat {
        /// Files to print, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: Args) -> CmdResult {
    let Command::Cat { files } = args.command;
    // Like cat(1): report a bad file and go on with the rest, failing at the end.
    let mut failed = None;
    for path in &files {
        match cat_one(path) {
            Ok(()) => {}
            Err(Failure::Error(e)) => {
                crate::report(&e);
                failed = Some(e);
            }
            Err(other) => return Err(other),
        }
    }
    match failed {
        Some(_) => Err(Failure::Reported),
        None => Ok(()),
    }
}

fn cat_one(path: &PathBuf) -> CmdResult {
    use rustix::fs::{Mode, OFlags};
    let shown = path.display();
    // O_NONBLOCK: opening a FIFO must not wait for a writer (copy_file
    // refuses a named FIFO and reads a pipe blocking).
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let file = rustix::io::retry_on_intr(|| rustix::fs::open(path, flags, Mode::empty()))
        .map_err(|e| Error::new("open", &shown, e))?;
    match mmap::copy_file(&file, io::stdout()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed),
        Err(e) => Err(e.relabel("print", &shown).into()),
    }
}
