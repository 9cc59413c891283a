//! `ipcraft pipe`: the classic pipe exercise.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::{write_stdout, CmdResult};

/// Anonymous pipes carry a one-way byte stream through a kernel buffer
/// between a parent and its children. Closing every write end is the
/// reader's end-of-file signal.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Sends STRING to a forked child over one pipe; the child sends it back
    /// over a second pipe and the parent prints it with a newline.
    ///
    /// Parent and child write and read at the same time, so a STRING larger
    /// than the pipe buffers (up to the OS's 128 KiB argument limit) cannot
    /// deadlock.
    Echo {
        /// Any bytes the OS accepts as one argument.
        string: OsString,
    },
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Echo { string } => {
            let mut back = ipcraft::command::echo(string.as_bytes())?;
            back.push(b'\n');
            write_stdout(&back)
        }
    }
}
