//! `ipcraft mmap`: the classic memory-mapped file exercise.

use std::io;
use std::path::PathBuf;

use ipcraft::mmap::MmapOptions;
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
    /// printed is an error, not a crash.
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
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| Error::new("open", &shown, e))?;
    let map = MmapOptions::new().map(&file).map_err(|e| e.relabel("map", &shown))?;
    match map.write_to(io::stdout(), 0, map.len()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed),
        Err(e) => Err(e.relabel("print", &shown).into()),
    }
}
