//! `ipcraft mq`: POSIX message queues.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use ipcraft::mq::{self, MqOptions};

use crate::{parse_mode, parse_name, parse_secs, stdout_failure, write_stdout, CmdResult};
use ipcraft::Name;

/// A message queue holds discrete messages, each with a priority: receivers
/// get the highest priority first, oldest first among equals. Queues are
/// named `/name` and live until removed.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Creates a queue (fails if it exists) with exactly MODE.
    Create {
        /// Queue name, `/name` or `name`.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Most messages the queue holds (default: the system's msg_default).
        #[arg(long, value_name = "N", value_parser = parse_at_least_1)]
        max_msgs: Option<usize>,
        /// Largest message in bytes (default: the system's msgsize_default).
        #[arg(long, value_name = "BYTES", value_parser = parse_at_least_1)]
        msg_size: Option<usize>,
        /// Permission bits in octal.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
    },
    /// Sends MESSAGE with a priority; waits while the queue is full.
    Send {
        /// Queue name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// The message bytes.
        message: OsString,
        /// 0 (lowest) to 32767.
        #[arg(long, short, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..i64::from(mq::PRIO_MAX)))]
        priority: u32,
        /// Create the queue (mode 0600, system default sizes) if it is missing.
        #[arg(long)]
        create: bool,
        /// Give up if the queue stays full for SECS seconds.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
        /// Fail at once if the queue is full.
        #[arg(long, conflicts_with = "timeout")]
        nonblock: bool,
    },
    /// Receives COUNT messages, printing each with a newline (highest
    /// priority first, oldest first among equals).
    Recv {
        /// Queue name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// How many messages to receive.
        #[arg(short = 'n', long = "count", default_value_t = 1, value_name = "COUNT")]
        count: usize,
        /// Print each message as PRIORITY<TAB>MESSAGE.
        #[arg(long)]
        with_priority: bool,
        /// Give up if the messages have not all arrived within SECS seconds.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
        /// Fail at once if the queue is empty.
        #[arg(long, conflicts_with = "timeout")]
        nonblock: bool,
    },
    /// Prints the queue's attributes: maxmsg=M msgsize=S curmsgs=C.
    Attr {
        /// Queue name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Lists the queues on this machine (needs the mqueue file system at /dev/mqueue).
    Ls,
    /// Removes a queue.
    Rm {
        /// Queue name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

/// A count or size that must be at least 1.
fn parse_at_least_1(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Create {
            name,
            max_msgs,
            msg_size,
            mode,
        } => {
            let mut opts = MqOptions::new();
            opts.create_new(true).mode(mode);
            if let Some(n) = max_msgs {
                opts.max_msgs(n);
            }
            if let Some(s) = msg_size {
                opts.msg_size(s);
            }
            // The queue outlives this command: it is removed with `mq rm`.
            opts.open(&name)?.keep();
            Ok(())
        }
        Command::Send {
            name,
            message,
            priority,
            create,
            timeout,
            nonblock,
        } => {
            let mut q = MqOptions::new().read(false).write(true).create(create).open(&name)?;
            q.keep();
            let msg = message.as_bytes();
            match (timeout, nonblock) {
                (Some(t), _) => q.send_timeout(msg, priority, t)?,
                (None, true) => q.try_send(msg, priority)?,
                (None, false) => q.send(msg, priority)?,
            }
            Ok(())
        }
        Command::Recv {
            name,
            count,
            with_priority,
            timeout,
            nonblock,
        } => {
            let q = MqOptions::new().read(true).write(false).open(&name)?;
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut buf = q.buffer();
            let mut out = io::stdout().lock();
            for _ in 0..count {
                let (n, prio) = match (deadline, nonblock) {
                    (Some(d), _) => q.recv_timeout(&mut buf, d.saturating_duration_since(Instant::now()))?,
                    (None, true) => q.try_recv(&mut buf)?,
                    (None, false) => q.recv(&mut buf)?,
                };
                if with_priority {
                    write!(out, "{prio}\t").map_err(stdout_failure)?;
                }
                out.write_all(&buf[..n]).map_err(stdout_failure)?;
                out.write_all(b"\n")
                    .and_then(|()| out.flush())
                    .map_err(stdout_failure)?;
            }
            Ok(())
        }
        Command::Attr { name } => {
            let q = MqOptions::new().read(true).write(false).open(&name)?;
            let a = q.attributes()?;
            write_stdout(format!("maxmsg={} msgsize={} curmsgs={}\n", a.max_msgs, a.msg_size, a.cur_msgs).as_bytes())
        }
        Command::Ls => {
            let listing: String = mq::list()?.iter().map(|n| format!("{n}\n")).collect();
            write_stdout(listing.as_bytes())
        }
        Command::Rm { name } => Ok(mq::remove(&name)?),
    }
}
