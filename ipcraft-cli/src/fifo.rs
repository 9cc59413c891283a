//! `ipcraft fifo`: create, write, read and remove named pipes.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use ipcraft::fifo::{self, FifoOptions};
use ipcraft::Error;

use crate::{parse_mode, parse_secs, stdout_failure, CmdResult, Failure};

/// A FIFO is a pipe with a path: unrelated processes open it by name, one
/// to read and one to write, and bytes flow as through a pipe. Opening
/// waits for the other side; the reader sees end of file when every writer
/// has closed.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Creates a FIFO at PATH with exactly MODE (not narrowed by the umask);
    /// fails if anything already exists there.
    Make {
        /// Where to create the FIFO.
        path: PathBuf,
        /// Permission bits in octal.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
    },
    /// Writes MESSAGE and a newline to the FIFO, or copies stdin when no
    /// MESSAGE is given. Waits for a reader.
    Send {
        /// An existing FIFO.
        path: PathBuf,
        /// Text to send; stdin is copied when absent.
        message: Option<String>,
        /// Give up if no reader opens the FIFO within SECS seconds.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// Copies the FIFO to stdout until every writer has closed. Waits for a
    /// writer.
    Recv {
        /// An existing FIFO.
        path: PathBuf,
        /// Give up if no writer sends anything within SECS seconds.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// Removes the FIFO at PATH; refuses anything that is not a FIFO.
    Rm {
        /// The FIFO to remove.
        path: PathBuf,
    },
}

fn options(timeout: Option<Duration>) -> FifoOptions {
    let mut opts = FifoOptions::new();
    if let Some(t) = timeout {
        opts.timeout(t);
    }
    opts
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Make { path, mode } => {
            fifo::create(&path, mode)?.keep();
            Ok(())
        }
        Command::Send { path, message, timeout } => {
            let mut writer = options(timeout).open_write(&path)?;
            let shown = path.display();
            let sent = match message {
                Some(text) => {
                    let mut line = text.into_bytes();
                    line.push(b'\n');
                    writer.write_all(&line)
                }
                None => io::copy(&mut io::stdin().lock(), &mut writer).map(drop),
            };
            sent.map_err(|e| Failure::Error(Error::new("write to fifo", shown, e)))
        }
        Command::Recv { path, timeout } => {
            let mut reader = options(timeout).open_read(&path)?;
            let mut out = io::stdout().lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| Failure::Error(Error::new("read from fifo", path.display(), e)))?;
                if n == 0 {
                    return out.flush().map_err(stdout_failure);
                }
                out.write_all(&buf[..n]).map_err(stdout_failure)?;
            }
        }
        Command::Rm { path } => Ok(fifo::remove(&path)?),
    }
}
