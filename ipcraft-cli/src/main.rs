//! `ipcraft`: inspect, create, send into, read from and benchmark Linux IPC
//! objects from the shell.

mod chan;
mod doctor;
mod fifo;
mod gc;
mod host;
mod ls;
mod mmap;
mod mq;
mod pipe;
mod service;
mod shm;
mod topic;
mod uds;

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Linux inter-process communication from the shell: pipes, FIFOs and more.
///
/// Every subcommand moves real bytes between real processes through the
/// facility it names. Errors print one line, `ipcraft: <what>: <why>`, and
/// exit 1; usage errors exit 2.
#[derive(Parser)]
#[command(name = "ipcraft", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Anonymous pipes: a one-way byte stream between related processes.
    Pipe(pipe::Args),
    /// FIFOs (named pipes): a pipe with a path, for unrelated processes.
    Fifo(fifo::Args),
    /// POSIX message queues: prioritised messages under a `/name`.
    Mq(mq::Args),
    /// Memory mappings: files read through the address space.
    Mmap(mmap::Args),
    /// POSIX shared memory: named memory any process can map.
    Shm(shm::Args),
    /// The shared-memory channel: ipcraft's fastest transport.
    Chan(chan::Args),
    /// Topics: one publisher to many subscribers over shared memory.
    Topic(topic::Args),
    /// Services: request–response between a server and many clients.
    Service(service::Args),
    /// Unix domain sockets: an echo server and a client.
    Uds(uds::Args),
    /// Every IPC object on this host: kind, name, owner, mode, size, age,
    /// holders, and whether they are alive.
    Ls(ls::Args),
    /// Removes your ipcraft channels, topics and services whose users all died.
    Gc(gc::Args),
    /// Host limits and settings that decide what works, and how to raise them.
    Doctor(doctor::Args),
    /// Measures every transport between two processes on this machine.
    Bench(ipcraft_bench::Args),
}

/// Why a command did not succeed.
pub enum Failure {
    /// Standard output was closed by its reader (`| head`): end quietly.
    StdoutClosed,
    /// A runtime failure, printed as `ipcraft: <error>`.
    Error(ipcraft::Error),
    /// Bad input that clap could not check (exit 2).
    Usage(String),
    /// Failures already reported one by one (exit 1).
    Reported,
}

impl From<ipcraft::Error> for Failure {
    fn from(e: ipcraft::Error) -> Self {
        Failure::Error(e)
    }
}

/// Result of a subcommand.
pub type CmdResult = Result<(), Failure>;

/// Writes `bytes` to standard output; a closed stdout ends the command
/// quietly.
pub fn write_stdout(bytes: &[u8]) -> CmdResult {
    let mut out = io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(stdout_failure)
}

/// Classifies an error writing standard output.
pub fn stdout_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Error(ipcraft::Error::new("write to", "stdout", e))
    }
}

/// Calls `each` with every line of stdin (its newline kept), cut into
/// pieces of at most `max` bytes. A line longer than `max` comes in
/// several pieces; only the last has the newline.
pub fn for_each_line(
    max: usize,
    mut each: impl FnMut(&[u8]) -> Result<(), ipcraft::Error>,
) -> Result<(), ipcraft::Error> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| ipcraft::Error::new("read", "stdin", e))?;
        if n == 0 {
            return Ok(());
        }
        for piece in line.chunks(max.max(1)) {
            each(piece)?;
        }
    }
}

/// Parses `--timeout SECS`: a non-negative number of seconds.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

/// Bytes in binary units: `512 B`, `4.0 KiB`, `1.5 MiB`, `2.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An age in the largest whole unit: `42s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Parses a POSIX IPC object name (`/name` or `name`); a bad one is a usage
/// error, reported before anything is opened.
pub fn parse_name(s: &str) -> Result<ipcraft::Name, String> {
    ipcraft::Name::new(s).map_err(|e| e.cause().to_string())
}

/// Parses `--mode 600`: octal permission bits.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal mode such as 600")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Pipe(args) => pipe::run(args),
        Command::Fifo(args) => fifo::run(args),
        Command::Mq(args) => mq::run(args),
        Command::Mmap(args) => mmap::run(args),
        Command::Shm(args) => shm::run(args),
        Command::Chan(args) => chan::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Service(args) => service::run(args),
        Command::Uds(args) => uds::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(args) => match ipcraft_bench::run(args) {
            Ok(out) => write_stdout(out.text.as_bytes()).and_then(|()| match out.failed {
                0 => Ok(()),
                n => {
                    eprintln!("ipcraft: bench: {n} measurement(s) failed (listed under skipped)");
                    Err(Failure::Reported)
                }
            }),
            Err(ipcraft_bench::BenchError::Usage(line)) => Err(Failure::Usage(line)),
            Err(ipcraft_bench::BenchError::Failed(e)) => Err(Failure::Error(e)),
        },
    };
    match result {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Error(e)) => {
            report(&e);
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Usage(line)) => usage(&line),
    }
}

/// Prints `ipcraft: <error>` on stderr.
pub fn report(e: &ipcraft::Error) {
    // If stderr is gone too there is no one left to tell.
    let _ = writeln!(io::stderr(), "ipcraft: {e}");
}

/// Prints a usage error as one line and returns status 2.
fn usage(line: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "ipcraft: usage: {line} (see 'ipcraft --help')");
    ExitCode::from(2)
}

/// Help and version go to stdout with status 0; a usage error is one line
/// on stderr with status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        kind => {
            let line = if kind == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                "a subcommand is required".to_owned()
            } else {
                // clap's first paragraph, on one line: "error: ..." plus any
                // indented continuation such as the missing argument.
                let text = e.render().to_string();
                let first = text.split("\n\n").next().unwrap_or("invalid arguments");
                let line = first.split_whitespace().collect::<Vec<_>>().join(" ");
                line.strip_prefix("error: ").unwrap_or(&line).to_owned()
            };
            usage(&line)
        }
    }
}
