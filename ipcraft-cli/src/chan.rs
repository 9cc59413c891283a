//! `ipcraft chan`: the shared-memory channel.

use std::io;

use ipcraft::channel::{self, Receiver, Sender};
use ipcraft::{Error, Name};

use crate::{parse_name, write_stdout, CmdResult, Failure};
use ipcraft_bench::parse_size;

/// The channel is ipcraft's fastest transport: a ring of messages in shared
/// memory between one sender and one receiver. It never drops data (a full
/// ring makes the sender wait), ends like a pipe when the sender closes,
/// and notices within a fraction of a second if the other side dies.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Creates a channel (mode 0600, fails if NAME exists).
    Create {
        /// Channel name, `/name` or `name`.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Ring size: bytes, or with a K, M or G suffix (KiB, MiB, GiB);
        /// rounded up to a power of two from 4K to 1G.
        #[arg(long, default_value = "1M", value_parser = parse_capacity)]
        capacity: u64,
    },
    /// Streams stdin into the channel; end of input closes the stream.
    Send {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Copies the channel to stdout until the sender closes the stream.
    Recv {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Shows capacity, bytes in flight, and each side's state
    /// (absent, alive:PID, closed, dead:PID).
    Stat {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Removes a channel (refuses objects that are not channels).
    Rm {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

/// Bytes read from stdin per message.
const CHUNK: usize = 64 * 1024;

/// A ring size: [`parse_size`], and not zero.
fn parse_capacity(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("the capacity must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Create { name, capacity } => Ok(channel::create(&name, capacity)?),
        Command::Send { name } => {
            let mut tx = Sender::open(&name)?;
            let chunk = CHUNK.min(tx.max_message_len());
            let stdin = io::stdin();
            loop {
                // Read stdin straight into the reserved space in the ring.
                let mut slot = tx.reserve(chunk)?;
                let n = slot.read_from(&stdin).map_err(|e| e.relabel("read", "stdin"))?;
                if n == 0 {
                    return Ok(tx.close()?);
                }
                slot.commit_len(n)?;
            }
        }
        Command::Recv { name } => {
            let mut rx = Receiver::open(&name)?;
            let stdout = io::stdout();
            while let Some(view) = rx.recv_view()? {
                // Straight from shared memory to stdout.
                if let Err(e) = view.write_to(&stdout) {
                    return Err(match e.kind() {
                        io::ErrorKind::BrokenPipe => Failure::StdoutClosed,
                        _ => Failure::Error(Error::new("write to", "stdout", io::Error::from(e))),
                    });
                }
            }
            Ok(())
        }
        Command::Stat { name } => write_stdout(format!("{}\n", channel::stat(&name)?).as_bytes()),
        Command::Rm { name } => Ok(channel::remove(&name)?),
    }
}
