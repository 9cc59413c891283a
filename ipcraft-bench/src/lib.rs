//! `ipcraft bench`: every transport, two real processes, content checked,
//! one table.

#[cfg(feature = "iceoryx2")]
mod iox;
pub mod measure;
mod plot;
pub mod transports;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ipcraft::process::{self, Fork};
use serde::Serialize;

use measure::{Clock, Failed, MIN_SIZE};

/// Measures every transport between two processes on this machine: round
/// trip latency (pingpong) and throughput (stream), for each message size.
///
/// The parent forks a child per measurement; the processes are pinned to
/// different CPUs when there are two or more. Every message carries a
/// sequence number and a checksum (and a stamp every 4 KiB) written by the
/// sender and checked by the receiver, with a byte-for-byte comparison on
/// every 64th message; warm-up is excluded. Compare the figures with the C
/// programs in bench-baseline/ run on the same machine in the same session.
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
    /// runtime), tcp (over loopback, as a reference), and iceoryx2 when built
    /// with the `iceoryx2` feature.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    transports: Option<Vec<String>>,
    /// Comma-separated message sizes (bytes, or with K/M suffixes), 16 B to 1M.
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = parse_size)]
    sizes: Option<Vec<u64>>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw latency and throughput by transport and size to an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

/// The machine the figures come from.
#[derive(Serialize)]
pub struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    pinned: bool,
}

/// One measurement.
#[derive(Serialize, Clone)]
pub struct Row {
    pub transport: String,
    pub pattern: &'static str,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_sec: Option<f64>,
}

/// A measurement that could not run here, and why.
#[derive(Serialize)]
struct Skipped {
    transport: String,
    pattern: &'static str,
    size: u64,
    reason: String,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    content_check: &'static str,
    results: Vec<Row>,
    skipped: Vec<Skipped>,
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

/// Runs the measurements `args` ask for and returns the report as text:
/// a table, or JSON with `--json`.
pub fn run(args: Args) -> Result<String, BenchError> {
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
        if !(MIN_SIZE as u64..=1 << 20).contains(&s) {
            return Err(usage(format!("message size {s} is outside 16 to 1M bytes")));
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
            for &s in &sizes {
                cases.push((t.clone(), p, s));
            }
        }
    }
    // Drawn between measurements only (no ticker thread): the bench forks,
    // and forking a single-threaded process lets the child run normal code.
    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut failure = None;
    for (n, (transport, pattern, size)) in cases.iter().enumerate() {
        bar.set_message(format!("{transport} {} {size} B", pattern.name()));
        bar.set_position(n as u64);
        let tag = format!("{}-{n}", std::process::id());
        match run_case(transport, *pattern, *size as usize, budget, &clock, &tmp, &tag, pinned) {
            Ok(row) => results.push(row),
            Err(CaseError::Skipped(reason)) => skipped.push(Skipped {
                transport: transport.clone(),
                pattern: pattern.name(),
                size: *size,
                reason,
            }),
            Err(CaseError::Failed(why)) => {
                failure = Some(format!("{transport} {} {size} B: {why}", pattern.name()));
                break;
            }
        }
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(why) = failure {
        return Err(BenchError::Failed(ipcraft::Error::bare(
            "bench",
            std::io::Error::other(why),
        )));
    }
    let report = Report {
        machine,
        content_check: "every message: sequence number, checksum, stamp every 4 KiB; every 64th: all bytes",
        results,
        skipped,
    };
    if let Some(path) = &args.plot {
        plot::draw(path, &report.results, &report.machine).map_err(|e| {
            BenchError::Failed(ipcraft::Error::new(
                "draw",
                path.display(),
                std::io::Error::other(e.to_string()),
            ))
        })?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        Ok(format!("{text}\n"))
    } else {
        Ok(table(&report))
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
    // SAFETY: the bench is single-threaded when it forks (the progress bar
    // has no ticker thread), so the child may run ordinary code; it ends
    // with exit_child and never returns into the parent's code.
    let pid = match unsafe { process::fork() }.map_err(|e| CaseError::Failed(e.to_string()))? {
        Fork::Child => {
            if pinned {
                pin(1);
            }
            let outcome = prepared
                .into_link(false)
                .map_err(Failed::Io)
                .and_then(|mut link| match pattern {
                    Pattern::PingPong => measure::pingpong_child(&mut link, size),
                    Pattern::Stream => measure::stream_sender(&mut link, size, budget),
                });
            process::exit_child(match outcome {
                Ok(()) => 0,
                Err(Failed::Content(_)) => measure::EXIT_BAD_CONTENT,
                Err(Failed::Io(_)) => measure::EXIT_IO,
            });
        }
        Fork::Parent(pid) => pid,
    };
    let measured = prepared
        .into_link(true)
        .map_err(Failed::Io)
        .and_then(|mut link| match pattern {
            Pattern::PingPong => measure::pingpong_parent(&mut link, size, budget, 1_000_000, clock).map(Ok),
            Pattern::Stream => measure::stream_receiver(&mut link, size).map(Err),
        });
    // The parent's ends are closed by now, so a child stuck on them sees EOF.
    let status = match process::wait_pid_timeout(pid, Duration::from_secs(30)) {
        Ok(Some(status)) => status,
        _ => {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            let _ = process::wait_pid_timeout(pid, Duration::from_secs(5));
            return Err(CaseError::Failed("the child process did not finish".into()));
        }
    };
    let measured = match measured {
        Ok(m) => m,
        Err(Failed::Content(seq)) => {
            return Err(CaseError::Failed(format!("message {seq} arrived with wrong content")))
        }
        Err(Failed::Io(e)) => return Err(CaseError::Failed(e.to_string())),
    };
    match status.code() {
        Some(0) => {}
        Some(measure::EXIT_BAD_CONTENT) => return Err(CaseError::Failed("the child received wrong content".into())),
        _ => return Err(CaseError::Failed(format!("the child process failed: {status}"))),
    }
    let mut row = Row {
        transport: transport.to_owned(),
        pattern: pattern.name(),
        size: size as u64,
        samples: None,
        median_ns: None,
        p99_ns: None,
        p999_ns: None,
        min_ns: None,
        mean_ns: None,
        messages: None,
        bytes_per_sec: None,
        messages_per_sec: None,
    };
    match measured {
        Ok(p) => {
            row.samples = Some(p.samples);
            row.median_ns = Some(p.median_ns);
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

/// Pins this process to `cpu`; false if that is not allowed.
fn pin(cpu: usize) -> bool {
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

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

fn table(report: &Report) -> String {
    let m = &report.machine;
    let mut out = String::new();
    out.push_str(&format!(
        "ipcraft bench: {} ({} cores), Linux {}, processes {}\n",
        m.cpu,
        m.cores,
        m.kernel,
        if m.pinned {
            "pinned to CPUs 0 and 1"
        } else {
            "not pinned"
        }
    ));
    out.push_str(&format!("content check: {}\n\n", report.content_check));
    out.push_str("pingpong: round trip, ns\n");
    out.push_str(&format!(
        "{:<11} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "transport", "size", "median", "p99", "p99.9", "min", "samples"
    ));
    for r in report.results.iter().filter(|r| r.pattern == "pingpong") {
        out.push_str(&format!(
            "{:<11} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            r.transport,
            human_size(r.size),
            r.median_ns.unwrap_or(0),
            r.p99_ns.unwrap_or(0),
            r.p999_ns.unwrap_or(0),
            r.min_ns.unwrap_or(0),
            r.samples.unwrap_or(0)
        ));
    }
    out.push_str("\nstream: throughput\n");
    out.push_str(&format!(
        "{:<11} {:>6} {:>12} {:>12}\n",
        "transport", "size", "MB/s", "msgs/s"
    ));
    for r in report.results.iter().filter(|r| r.pattern == "stream") {
        out.push_str(&format!(
            "{:<11} {:>6} {:>12.1} {:>12.0}\n",
            r.transport,
            human_size(r.size),
            r.bytes_per_sec.unwrap_or(0.0) / 1e6,
            r.messages_per_sec.unwrap_or(0.0)
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str("\nskipped:\n");
        for s in &report.skipped {
            out.push_str(&format!(
                "  {} {} {}: {}\n",
                s.transport,
                s.pattern,
                human_size(s.size),
                s.reason
            ));
        }
    }
    out
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
