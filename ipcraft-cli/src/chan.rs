//! `ipcraft chan`: the shared-memory channel.

use std::io;
use std::time::Duration;

use ipcraft::channel::{self, ChannelOptions, MultiReceiver, Receiver, Sender};
use ipcraft::{Cause, Error, Name};

use crate::{for_each_line, parse_name, parse_secs, write_stdout, CmdResult, Failure};
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
        /// How many `chan send` processes may feed it at once (each gets a
        /// ring of CAPACITY bytes; 1 to 512). With more than one, `chan
        /// send` cuts its input into messages at line ends, so lines from
        /// different senders never interleave.
        #[arg(long, default_value_t = 1, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=512))]
        senders: u32,
    },
    /// Streams stdin into the channel; end of input ends the stream. Exits 0
    /// only once a receiver has taken every byte and the end; a failure
    /// (reading stdin, a receiver that died) aborts the stream, so the
    /// receiver reports it instead of a clean end.
    Send {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Give up after waiting this long for a receiver, or for room, or
        /// for the receiver to take the rest (what was sent stays in the
        /// channel for the next receiver).
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// Copies the channel to stdout until the sender ends the stream. Exits
    /// 1 if the sender died or aborted the stream (after printing all it
    /// sent). A named channel is used again by the next sender and receiver.
    /// On a channel for several senders: prints messages (whole lines) as
    /// they arrive, until every sender that attached has closed; a sender's
    /// death is reported and the others go on (exit 1 at the end).
    Recv {
        /// Channel name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Give up after waiting this long for a sender or for data.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
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

/// Copies stdin into the channel as messages of up to [`CHUNK`] bytes:
/// straight into the ring when it has room, through a private buffer when
/// it is full (so the end of input is seen without waiting for room).
fn stream_stdin(tx: &mut Sender, wait: Duration) -> Result<(), Error> {
    let chunk = CHUNK.min(tx.max_message_len());
    let stdin = io::stdin();
    let mut spare = Vec::new();
    loop {
        match tx.try_reserve(chunk) {
            Ok(mut slot) => {
                let n = slot.read_from(&stdin).map_err(|e| match e.cause() {
                    Cause::Truncated => e,
                    _ => e.relabel("read", "stdin"),
                })?;
                if n == 0 {
                    return Ok(());
                }
                slot.commit_len(n)?;
            }
            Err(e) if matches!(e.cause(), Cause::Full) => {
                spare.resize(chunk, 0);
                let n = read_some(&mut spare)?;
                if n == 0 {
                    return Ok(());
                }
                tx.send_timeout(&spare[..n], wait)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One read(2) of stdin, retried on EINTR. Raw, like `SendSlot::read_from`:
/// std's `Stdin` keeps a buffer of its own, and bytes it read ahead would
/// come out after those read straight into the ring.
fn read_some(buf: &mut [u8]) -> Result<usize, Error> {
    rustix::io::retry_on_intr(|| rustix::io::read(rustix::stdio::stdin(), &mut *buf))
        .map_err(|e| Error::new("read", "stdin", e))
}

/// A ring size: [`parse_size`], and not zero.
pub fn parse_capacity(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("the capacity must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Create {
            name,
            capacity,
            senders,
        } => Ok(ChannelOptions::new()
            .capacity(capacity)
            .senders(senders)
            .create(&name)?),
        Command::Send { name, timeout } => {
            let several = channel::stat_lanes(&name)?.len() > 1;
            let mut tx = Sender::open(&name)?;
            let wait = timeout.unwrap_or(Duration::MAX);
            let sent = if several {
                // Whole lines (split only when longer than a message), so
                // lines of different senders never interleave.
                let max = tx.max_message_len().min(CHUNK);
                for_each_line(max, |piece| tx.send_timeout(piece, wait))
            } else {
                stream_stdin(&mut tx, wait)
            };
            match sent {
                Ok(()) => Ok(tx.close_timeout(wait)?),
                Err(e) => {
                    // The receiver gets what was sent, then "aborted", never
                    // a clean end of a stream that was cut.
                    let _ = tx.abort();
                    Err(e.into())
                }
            }
        }
        Command::Recv { name, timeout } if channel::stat_lanes(&name)?.len() > 1 => {
            let mut rx = MultiReceiver::open(&name)?;
            let wait = timeout.unwrap_or(Duration::MAX);
            let mut buf = vec![0u8; CHUNK.max(1 << 20)];
            let mut failed = false;
            loop {
                match rx.recv_from_timeout(&mut buf, wait) {
                    Ok(Some((_, n))) => write_stdout(&buf[..n])?,
                    Ok(None) => break,
                    // One sender's failure is reported; the others go on.
                    Err(e) if matches!(e.cause(), Cause::PeerDied { .. } | Cause::Aborted) => {
                        eprintln!("ipcraft: {e}");
                        failed = true;
                    }
                    Err(e) if matches!(e.cause(), Cause::BufferTooSmall { .. }) => {
                        let need = match e.cause() {
                            Cause::BufferTooSmall { need, .. } => *need,
                            _ => unreachable!(),
                        };
                        buf.resize(need, 0);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if failed {
                Err(Failure::Reported)
            } else {
                Ok(())
            }
        }
        Command::Recv { name, timeout } => {
            let mut rx = Receiver::open(&name)?;
            let stdout = io::stdout();
            let wait = timeout.unwrap_or(Duration::MAX);
            while let Some(view) = rx.recv_view_timeout(wait)? {
                // Straight from shared memory to stdout.
                if let Err(e) = view.write_to(&stdout) {
                    return Err(match e.cause() {
                        _ if e.kind() == io::ErrorKind::BrokenPipe => Failure::StdoutClosed,
                        Cause::Truncated => Failure::Error(e),
                        _ => Failure::Error(Error::new("write to", "stdout", io::Error::from(e))),
                    });
                }
            }
            Ok(())
        }
        Command::Stat { name } => {
            let lanes = channel::stat_lanes(&name)?;
            let text = match lanes.as_slice() {
                [one] => format!("{one}\n"),
                many => {
                    let mut text = format!("senders={}\n", many.len());
                    for (k, lane) in many.iter().enumerate() {
                        text += &format!("sender {k}: {lane}\n");
                    }
                    text
                }
            };
            write_stdout(text.as_bytes())
        }
        Command::Rm { name } => Ok(channel::remove(&name)?),
    }
}
