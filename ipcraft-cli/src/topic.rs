//! `ipcraft topic`: publish–subscribe over shared memory.

use std::io::{self, Write};
use std::time::Duration;

use ipcraft::topic::{self, Policy, TopicOptions};
use ipcraft::{Cause, Name};

use crate::{for_each_line, parse_name, parse_secs, stdout_failure, write_stdout, CmdResult, Failure};

/// A topic carries each message from one publisher to every subscriber:
/// written once into shared memory, read in place by each. Subscribers
/// join and leave at any time. With the default policy the publisher waits
/// for the slowest live subscriber, so nothing is lost; with `--overwrite`
/// it never waits, and a subscriber that fell behind is told how many
/// messages it missed.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Creates a topic (mode 0600, fails if NAME exists).
    Create {
        /// Topic name, `/name` or `name`.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// How many subscribers may be attached at once (1 to 256).
        #[arg(long, default_value_t = topic::DEFAULT_SUBSCRIBERS, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(topic::MAX_SUBSCRIBERS)))]
        subscribers: u32,
        /// Ring size: bytes, or with a K, M or G suffix; rounded up to a
        /// power of two from 4K to 1G.
        #[arg(long, default_value = "1M", value_parser = crate::chan::parse_capacity)]
        capacity: u64,
        /// Never make the publisher wait: overwrite the oldest messages and
        /// tell a subscriber that fell behind how many it missed.
        #[arg(long)]
        overwrite: bool,
    },
    /// Publishes stdin, one message per line (without its newline; a line
    /// longer than the largest message is split). End of input ends the
    /// stream.
    Pub {
        /// Topic name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Give up after waiting this long for room (a subscriber that
        /// does not read).
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// Prints each message and a newline until the publisher ends the
    /// stream. Starts with the oldest message of the current stream the
    /// topic still holds (`--from-now`: with the next one published). A lag
    /// (overwrite policy) is reported on stderr as
    /// `ipcraft: NAME: missed N messages`, and printing goes on.
    Sub {
        /// Topic name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Start with the next message published, not the oldest held.
        #[arg(long)]
        from_now: bool,
        /// Give up after waiting this long for a message.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// Shows capacity, policy, the publisher's state and each subscriber's
    /// (alive:PID, dead:PID) with how much it has yet to read.
    Stat {
        /// Topic name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Removes a topic (refuses objects that are not topics).
    Rm {
        /// Topic name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Create {
            name,
            subscribers,
            capacity,
            overwrite,
        } => Ok(TopicOptions::new()
            .capacity(capacity)
            .subscribers(subscribers)
            .policy(if overwrite { Policy::Overwrite } else { Policy::Block })
            .create(&name)?),
        Command::Pub { name, timeout } => {
            let mut publisher = TopicOptions::new().open_publisher(&name)?;
            let wait = timeout.unwrap_or(Duration::MAX);
            let max = publisher.max_message_len();
            // One message per line, without its newline.
            let result = for_each_line(usize::MAX, |line| {
                let msg = line.strip_suffix(b"\n").unwrap_or(line);
                if msg.is_empty() {
                    return publisher.send_timeout(b"", wait);
                }
                msg.chunks(max.max(1))
                    .try_for_each(|part| publisher.send_timeout(part, wait))
            });
            match result {
                Ok(()) => Ok(publisher.close_timeout(wait)?),
                Err(e) => {
                    let _ = publisher.abort();
                    Err(e.into())
                }
            }
        }
        Command::Sub {
            name,
            from_now,
            timeout,
        } => {
            let mut sub = TopicOptions::new().history(!from_now).open_subscriber(&name)?;
            let wait = timeout.unwrap_or(Duration::MAX);
            let stdout = io::stdout();
            let mut buf = vec![0u8; sub.max_message_len() + 1];
            loop {
                match sub.recv_timeout(&mut buf, wait) {
                    Ok(Some(n)) => {
                        buf[n] = b'\n';
                        let mut out = stdout.lock();
                        out.write_all(&buf[..=n])
                            .and_then(|()| out.flush())
                            .map_err(stdout_failure)?;
                    }
                    Ok(None) => return Ok(()),
                    Err(e) if matches!(e.cause(), Cause::Lagged { .. }) => {
                        eprintln!("ipcraft: {name}: {}", e.cause());
                    }
                    Err(e) => return Err(Failure::Error(e)),
                }
            }
        }
        Command::Stat { name } => write_stdout(format!("{}\n", topic::stat(&name)?).as_bytes()),
        Command::Rm { name } => Ok(topic::remove(&name)?),
    }
}
