//! `ipcraft bench`: every transport, two real processes, content checked,
//! one table.

pub mod floor;
#[cfg(feature = "iceoryx2")]
mod iox;
pub mod measure;
mod plot;
pub mod report;
pub mod transports;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ipcraft::process::{self, Fork};

use measure::{Clock, Failed, MIN_SIZE};
use report::{Machine, Method, Report, Row, Skipped};

/// Measures every transport between two processes on this machine: round
/// trip latency (pingpong) and throughput (stream), for each message size.
///
/// The parent forks a child per measurement (processes, never threads;
/// two children for the patterns with two subscribers or two senders);
/// the parent is pinned to CPU 0 and the children to CPU 1 when there are
/// two or more CPUs. Every
/// message carries a sequence number and a checksum (and a stamp every 4
/// KiB) written by the sender and checked by the receiver, with a
/// byte-for-byte comparison on every 64th message; warm-up is excluded.
/// Ping-pong reports the round trip (one-way is half); stream, one-way
/// throughput. The hardware floor is measured in the same run (one cache
/// line's round trip between the two CPUs, one core's copy bandwidth, a
/// bare ring's stream between them) and
/// every result shows how many times the floor it is. A transport that
/// fails is listed under skipped with its reason, the run goes on, and the
/// exit status is 1. Without a terminal, progress goes to stderr as one line
/// per finished measurement.
#[derive(clap::Args)]
pub struct Args {
    /// Short runs (about 0.25 s per measurement, sizes 64 and 64K unless
    /// --sizes is given): the whole bench in under 15 s.
    #[arg(long)]
    quick: bool,
    /// Comma-separated transports: pipe, fifo, uds, mq, shm-futex, chan (a
    /// named channel), chan-memfd (a channel in a memfd), chan-sleep (the
    /// memfd channel with spinning off: both sides sleep on a futex),
    /// chan-async (the memfd channel with each side in a current-thread tokio
    /// runtime), chan-zc (the named channel, zero-copy: each message written
    /// in place and checked in place, every byte), topic (publish-subscribe,
    /// one subscriber), topic-2sub (one publisher, two subscriber processes),
    /// chan-2send (a many-sender channel, two sender processes; stream only),
    /// service (request-response; round trips only), tcp (over loopback, as
    /// a reference), and the comparators iceoryx2 (publish-subscribe, one
    /// subscriber), iceoryx2-2sub (two subscriber processes) and ipc-channel
    /// when built with their cargo features.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    transports: Option<Vec<String>>,
    /// Comma-separated message sizes (bytes, or with K/M suffixes), 16 B to 4M.
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = parse_size)]
    sizes: Option<Vec<u64>>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw latency and throughput by transport and size to an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

/// Largest message size measured.
pub const MAX_SIZE: u64 = 4 << 20;

/// What a run produced: the report text, and whether any measurement
/// failed (the CLI exits 1 then, after printing everything else).
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub failed: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Pattern {
    PingPong,
    Stream,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::PingPong => "pingpong",
            Pattern::Stream => "stream",
        }
    }
}

/// Why a bench run did not produce a report.
#[derive(Debug)]
pub enum BenchError {
    /// Arguments that clap could not check (exit status 2).
    Usage(String),
    /// A measurement or the set-up failed.
    Failed(ipcraft::Error),
}

impl From<ipcraft::Error> for BenchError {
    fn from(e: ipcraft::Error) -> Self {
        BenchError::Failed(e)
    }
}

fn usage(msg: String) -> BenchError {
    BenchError::Usage(msg)
}

/// Runs the measurements `args` ask for and returns the report as text
/// (a table, or JSON with `--json`) with the count of failed measurements.
pub fn run(args: Args) -> Result<Outcome, BenchError> {
    let all = transports::all();
    let transports: Vec<String> = match args.transports {
        Some(list) => {
            for t in &list {
                if !all.contains(&t.as_str()) {
                    return Err(usage(format!(
                        "unknown transport {t:?} (choose from {})",
                        all.join(", ")
                    )));
                }
            }
            list
        }
        None => all.iter().map(|s| s.to_string()).collect(),
    };
    let sizes = match args.sizes {
        Some(list) => list,
        None if args.quick => vec![64, 65536],
        None => vec![64, 1024, 65536, 1 << 20],
    };
    for &s in &sizes {
        if !(MIN_SIZE as u64..=MAX_SIZE).contains(&s) {
            return Err(usage(format!("message size {s} is outside 16 to 4M bytes")));
        }
    }
    let budget = if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_millis(700)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cores >= 2 && pin(0);
    let machine = Machine {
        cpu: cpu_model(),
        cores,
        kernel: rustix::system::uname().release().to_string_lossy().into_owned(),
        pinned,
    };
    let clock = Clock::calibrate();
    let tmp = std::env::temp_dir().join(format!("ipcraft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| ipcraft::Error::new("create", tmp.display(), e))?;
    let mut cases: Vec<(String, Pattern, u64)> = Vec::new();
    for t in &transports {
        for p in [Pattern::PingPong, Pattern::Stream] {
            let has = match p {
                Pattern::PingPong => transports::pingpongs(t),
                Pattern::Stream => transports::streams(t),
            };
            if !has {
                continue;
            }
            for &s in &sizes {
                cases.push((t.clone(), p, s));
            }
        }
    }
    let progress = Progress::new(cases.len() + 2);
    let mut skipped = Vec::new();
    progress.start("floor: cache-line round trip and copy bandwidth");
    let floor = match floor::measure(&sizes, budget, &clock, pinned) {
        Ok(f) => {
            progress.done(&format!(
                "floor: cache-line round trip {}",
                report::ns(f.cacheline_rtt_ns as f64)
            ));
            Some(f)
        }
        Err(e) => {
            progress.done(&format!("floor: FAILED: {e}"));
            skipped.push(Skipped {
                transport: "floor".into(),
                pattern: "pingpong",
                size: 64,
                reason: e.to_string(),
                failed: true,
            });
            None
        }
    };
    let mut results = Vec::new();
    for (n, (transport, pattern, size)) in cases.iter().enumerate() {
        let what = format!("{transport} {} {}", pattern.name(), report::size(*size));
        progress.start(&what);
        let tag = format!("{}-{n}", std::process::id());
        match run_case(transport, *pattern, *size as usize, budget, &clock, &tmp, &tag, pinned) {
            Ok(row) => {
                progress.done(&format!("{what}: {}", row.summary()));
                results.push(row);
            }
            Err(e) => {
                let (reason, failed) = match e {
                    CaseError::Skipped(r) => (r, false),
                    CaseError::Failed(r) => (r, true),
                };
                progress.done(&format!(
                    "{what}: {}{reason}",
                    if failed { "FAILED: " } else { "skipped: " }
                ));
                skipped.push(Skipped {
                    transport: transport.clone(),
                    pattern: pattern.name(),
                    size: *size,
                    reason,
                    failed,
                });
            }
        }
    }
    // The host's speed drifts over a run (virtual CPUs move between
    // physical ones): the cache-line round trip is measured again at the
    // end, and the floor is the faster of the two.
    progress.start("floor again");
    let floor = match (floor, floor::measure(&sizes, budget, &clock, pinned)) {
        (Some(a), Ok(b)) => {
            progress.done(&format!(
                "floor again: cache-line round trip {}",
                report::ns(b.cacheline_rtt_ns as f64)
            ));
            Some(a.min(b))
        }
        (a, b) => {
            progress.done("floor again: not measured");
            a.or(b.ok())
        }
    };
    if let Some(f) = &floor {
        for row in &mut results {
            row.rate(f);
        }
    }
    progress.finish();
    let _ = std::fs::remove_dir_all(&tmp);
    transports::clean_up();
    let failed = skipped.iter().filter(|s| s.failed).count();
    let report = Report {
        verdicts: report::verdicts(&results, floor.as_ref()),
        notes: report::notes(&results),
        method: Method::new(pinned),
        machine,
        floor,
        results,
        skipped,
    };
    if let Some(path) = &args.plot {
        plot::draw(path, &report).map_err(|e| {
            BenchError::Failed(ipcraft::Error::new(
                "draw",
                path.display(),
                std::io::Error::other(e.to_string()),
            ))
        })?;
    }
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default())
    } else {
        report::table(&report)
    };
    Ok(Outcome { text, failed })
}

/// Progress on stderr: a bar on a terminal, otherwise one line per
/// finished measurement (for logs and CI).
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: std::cell::Cell<usize>,
}

impl Progress {
    fn new(total: usize) -> Self {
        // Drawn between measurements only (no ticker thread): the bench
        // forks, and forking a single-threaded process lets the child run
        // normal code.
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            total,
            done: std::cell::Cell::new(0),
        }
    }

    fn start(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_owned());
            bar.set_position(self.done.get() as u64);
        }
    }

    fn done(&self, line: &str) {
        self.done.set(self.done.get() + 1);
        if self.bar.is_none() {
            // A reader of stderr that went away must not end the run (it
            // would leave its temporary files behind): errors are ignored.
            let _ = writeln!(
                std::io::stderr().lock(),
                "ipcraft bench: [{}/{}] {line}",
                self.done.get(),
                self.total
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

enum CaseError {
    Skipped(String),
    Failed(String),
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    transport: &str,
    pattern: Pattern,
    size: usize,
    budget: Duration,
    clock: &Clock,
    tmp: &std::path::Path,
    tag: &str,
    pinned: bool,
) -> Result<Row, CaseError> {
    let prepared = transports::prepare(transport, size, tmp, tag).map_err(CaseError::Skipped)?;
    let children = transports::children(transport);
    let fans_out = transports::fans_out(transport);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pids = Vec::with_capacity(children);
    for i in 0..children {
        // SAFETY: the bench is single-threaded when it forks (the progress
        // bar has no ticker thread), so the child may run ordinary code; it
        // ends with exit_child and never returns into the parent's code.
        let forked = unsafe { process::fork() };
        match forked {
            Ok(Fork::Child) => {
                if pinned {
                    // The parent has CPU 0; the children share the others.
                    pin(1 + i % (cpus - 1).max(1));
                }
                let outcome = prepared
                    .into_link(transports::Side::Child(i))
                    .map_err(Failed::Io)
                    .and_then(|mut link| {
                        transports::with_link!(&mut link, |link| match pattern {
                            Pattern::PingPong => measure::pingpong_child(link, size),
                            Pattern::Stream if fans_out => measure::stream_subscriber(link, size),
                            Pattern::Stream => measure::stream_sender(link, size, budget),
                        })
                    });
                process::exit_child(match outcome {
                    Ok(()) => 0,
                    Err(Failed::Content(_)) => measure::EXIT_BAD_CONTENT,
                    Err(Failed::Io(_)) => measure::EXIT_IO,
                });
            }
            Ok(Fork::Parent(pid)) => pids.push(pid),
            Err(e) => {
                // The children forked so far wait for a parent that is not
                // coming: end them.
                for pid in pids {
                    end_child(pid);
                }
                return Err(CaseError::Failed(e.to_string()));
            }
        }
    }
    let measured = prepared
        .into_link(transports::Side::Parent)
        .map_err(Failed::Io)
        .and_then(|mut link| {
            transports::with_link!(&mut link, |link| match pattern {
                Pattern::PingPong => measure::pingpong_parent(link, size, budget, 1_000_000, clock).map(Ok),
                Pattern::Stream if fans_out => measure::stream_publisher(link, size, budget).map(Err),
                Pattern::Stream if children > 1 => measure::stream_collector(link, size, children).map(Err),
                Pattern::Stream => measure::stream_receiver(link, size).map(Err),
            })
        });
    // The parent's ends are closed by now, so a child stuck on them sees EOF.
    let mut status = Vec::with_capacity(children);
    let mut stuck = false;
    for &pid in &pids {
        match process::wait_pid_timeout(pid, Duration::from_secs(30)) {
            Ok(Some(s)) => status.push(s),
            _ => {
                end_child(pid);
                stuck = true;
            }
        }
    }
    if stuck {
        return Err(CaseError::Failed("a child process did not finish".into()));
    }
    let measured = match measured {
        Ok(m) => m,
        Err(Failed::Content(seq)) => {
            return Err(CaseError::Failed(format!("message {seq} arrived with wrong content")))
        }
        Err(Failed::Io(e)) => return Err(CaseError::Failed(e.to_string())),
    };
    for status in status {
        match status.code() {
            Some(0) => {}
            Some(measure::EXIT_BAD_CONTENT) => return Err(CaseError::Failed("a child received wrong content".into())),
            _ => return Err(CaseError::Failed(format!("a child process failed: {status}"))),
        }
    }
    let mut row = Row {
        transport: transport.to_owned(),
        pattern: pattern.name(),
        size: size as u64,
        ..Row::default()
    };
    match measured {
        Ok(p) => {
            row.samples = Some(p.samples);
            row.median_ns = Some(p.median_ns);
            row.one_way_ns = Some(p.median_ns / 2);
            row.p99_ns = Some(p.p99_ns);
            row.p999_ns = Some(p.p999_ns);
            row.min_ns = Some(p.min_ns);
            row.mean_ns = Some(p.mean_ns);
        }
        Err(s) => {
            row.messages = Some(s.messages);
            row.bytes_per_sec = Some(s.bytes_per_sec);
            row.messages_per_sec = Some(s.messages_per_sec);
        }
    }
    Ok(row)
}

/// Kills a child that did not finish and reaps it.
fn end_child(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    let _ = process::wait_pid_timeout(pid, Duration::from_secs(5));
}

/// Pins this process to `cpu`; false if that is not allowed.
pub(crate) fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Parses a size: bytes, or a number with a K, M or G suffix (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size such as 65536, 64K or 1M");
    let (digits, shift) = match s.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}
