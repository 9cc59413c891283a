//! What a run reports: the rows, the floor, the method, and the text a
//! person reads — human units, a verdict per pattern, and a note where a
//! distribution is wide.

use serde::Serialize;

use super::floor::Floor;

/// The machine the figures come from.
#[derive(Serialize, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub pinned: bool,
}

/// How the figures were taken (also the header of the table).
#[derive(Serialize)]
pub struct Method {
    pub processes: &'static str,
    pub cpus: String,
    pub payload: &'static str,
    pub pingpong: &'static str,
    pub stream: &'static str,
    pub floor: &'static str,
    pub ratio_to_floor: &'static str,
}

impl Method {
    pub fn new(pinned: bool) -> Self {
        Self {
            processes: "two processes (the bench and a forked child), never threads of one process; \
                        three for topic-2sub and iceoryx2-2sub (the bench publishes, two children \
                        subscribe and each answers on its own way back) and for chan-2send (two \
                        children send, the bench receives)",
            cpus: if pinned {
                "pinned: the bench to CPU 0, the children to CPU 1 (shared when there are two)".into()
            } else {
                "not pinned (fewer than two CPUs, or pinning refused)".into()
            },
            payload: "written by the sender and checked by the receiver: sequence number, checksum and a stamp \
                      every 4 KiB on every message, every byte of every 64th (chan-zc: every byte of every \
                      message, read in place)",
            pingpong: "round trip: send, wait for the echo (from every subscriber with two), check it; \
                       one-way is half the round trip",
            stream: "one way: the child sends for the time budget, the parent receives and checks; \
                     throughput over everything after the warm-up (with two subscribers the bench \
                     publishes and the time runs until both have checked everything; with two senders \
                     it counts the messages of both)",
            floor: "measured in the same run: one cache line's round trip between the two CPUs (both \
                    processes spinning), one core copying messages of each size (cache-resident and \
                    from memory), and a bare ring: two processes on the two CPUs streaming messages of \
                    each size through shared memory, one copying each in, the other copying it out, \
                    nothing else",
            ratio_to_floor: "how many times the floor (1 = the hardware floor, lower is better): round-trip \
                             median / (cache-line round trip + the message copied twice at one core's \
                             cache-resident bandwidth); stream: the bare ring's throughput / throughput",
        }
    }
}

/// One measurement.
#[derive(Serialize, Clone, Default)]
pub struct Row {
    pub transport: String,
    pub pattern: &'static str,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way_ns: Option<u64>,
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
    /// See [`Method::ratio_to_floor`]; absent when the floor could not be
    /// measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_floor: Option<f64>,
}

impl Row {
    /// Sets `ratio_to_floor` from the floor.
    pub fn rate(&mut self, floor: &Floor) {
        self.ratio_to_floor = match (self.median_ns, self.bytes_per_sec) {
            (Some(m), _) => floor.round_trip_ns(self.size).map(|f| m as f64 / f),
            (_, Some(b)) if b > 0.0 => floor.bare_ring(self.size).map(|r| r / b),
            _ => None,
        };
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        match (self.median_ns, self.bytes_per_sec) {
            (Some(m), _) => format!("median round trip {}", ns(m as f64)),
            (_, Some(b)) => rate(b),
            _ => String::new(),
        }
    }
}

/// A measurement that did not produce a row, and why.
#[derive(Serialize)]
pub struct Skipped {
    pub transport: String,
    pub pattern: &'static str,
    pub size: u64,
    pub reason: String,
    /// True when it ran and failed (a wrong message, a dead child); false
    /// when it could not run here (a limit, a missing feature).
    pub failed: bool,
}

/// Everything a run reports.
#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub method: Method,
    pub floor: Option<Floor>,
    pub results: Vec<Row>,
    pub skipped: Vec<Skipped>,
    pub verdicts: Vec<String>,
    pub notes: Vec<String>,
}

/// `850 ns`, `6.5 µs`, `70 µs`, `1.2 ms`.
pub fn ns(v: f64) -> String {
    let (x, unit) = if v >= 1e6 {
        (v / 1e6, "ms")
    } else if v >= 1e3 {
        (v / 1e3, "µs")
    } else {
        (v, "ns")
    };
    if x >= 100.0 || unit == "ns" {
        format!("{x:.0} {unit}")
    } else {
        format!("{x:.1} {unit}")
    }
}

/// `850 MB/s`, `28.7 GB/s` (decimal units, as network and memory figures).
pub fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= 1e9 {
        format!("{:.1} GB/s", bytes_per_sec / 1e9)
    } else if bytes_per_sec >= 1e6 {
        format!("{:.0} MB/s", bytes_per_sec / 1e6)
    } else {
        format!("{:.0} kB/s", bytes_per_sec / 1e3)
    }
}

/// `12.3 M/s`, `850 k/s`.
fn per_sec(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} M/s", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0} k/s", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{v:.0} /s")
    }
}

/// `64 B`, `1 KiB`, `4 MiB`: a message size as given.
pub fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// The transports whose data goes through the kernel on every message.
const KERNEL: [&str; 5] = ["pipe", "fifo", "uds", "mq", "tcp"];

fn times(a: f64, b: f64) -> String {
    let x = a / b;
    if x >= 10.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.1}×")
    }
}

/// Whether `row` is between two processes: the verdicts compare those
/// only (two subscribers or two senders are a different workload).
fn one_to_one(row: &Row) -> bool {
    super::transports::children(&row.transport) == 1
}

/// A verdict per pattern: who is fastest, and by how much (between two
/// processes).
pub fn verdicts(rows: &[Row], floor: Option<&Floor>) -> Vec<String> {
    let mut out = Vec::new();
    let pick = |pattern: &str, smallest: bool| -> Option<u64> {
        let sizes = rows.iter().filter(|r| r.pattern == pattern).map(|r| r.size);
        if smallest {
            sizes.min()
        } else {
            sizes.max()
        }
    };
    if let Some(s) = pick("pingpong", true) {
        let mut v: Vec<&Row> = rows
            .iter()
            .filter(|r| r.pattern == "pingpong" && r.size == s && one_to_one(r))
            .collect();
        v.sort_by_key(|r| r.median_ns.unwrap_or(u64::MAX));
        if let Some(best) = v.first() {
            let b = best.median_ns.unwrap_or(0) as f64;
            let mut line = format!(
                "small messages ({} round trip): {} is fastest, {} median",
                size(s),
                best.transport,
                ns(b)
            );
            if let Some(next) = v.get(1) {
                let n = next.median_ns.unwrap_or(0) as f64;
                line += &format!("; {} ahead of {} ({})", times(n, b), next.transport, ns(n));
            }
            if let Some(k) = v.iter().skip(2).find(|r| KERNEL.contains(&r.transport.as_str())) {
                let n = k.median_ns.unwrap_or(0) as f64;
                line += &format!(
                    "; {} ahead of the fastest kernel transport, {} ({})",
                    times(n, b),
                    k.transport,
                    ns(n)
                );
            }
            if let Some(f) = floor.and_then(|f| f.round_trip_ns(s)) {
                line += &format!("; {} the hardware floor ({})", times(b, f), ns(f));
            }
            out.push(line + ".");
        }
    }
    if let Some(s) = pick("stream", false) {
        let mut v: Vec<&Row> = rows
            .iter()
            .filter(|r| r.pattern == "stream" && r.size == s && one_to_one(r))
            .collect();
        v.sort_by(|a, b| {
            b.bytes_per_sec
                .unwrap_or(0.0)
                .total_cmp(&a.bytes_per_sec.unwrap_or(0.0))
        });
        if let Some(best) = v.first() {
            let b = best.bytes_per_sec.unwrap_or(0.0);
            let mut line = format!(
                "streams ({} messages): {} moves the most, {}",
                size(s),
                best.transport,
                rate(b)
            );
            if let Some(next) = v.get(1) {
                let n = next.bytes_per_sec.unwrap_or(0.0);
                line += &format!("; {} the next, {} ({})", times(b, n), next.transport, rate(n));
            }
            if let Some(k) = v.iter().skip(2).find(|r| KERNEL.contains(&r.transport.as_str())) {
                let n = k.bytes_per_sec.unwrap_or(0.0);
                line += &format!(
                    "; {} the fastest kernel transport, {} ({})",
                    times(b, n),
                    k.transport,
                    rate(n)
                );
            }
            if let Some(f) = floor {
                if let Some(r) = f.bare_ring(s) {
                    line += &format!("; {} a bare ring between the two CPUs ({})", times(b, r), rate(r));
                }
                if let Some(c) = f.copy(s) {
                    line += &format!("; one core copies {} from cache", rate(c.cache_resident));
                }
            }
            out.push(line + ".");
        }
    }
    out
}

/// Notes on wide distributions, so a median far from its tail or its
/// minimum is not a mystery.
pub fn notes(rows: &[Row]) -> Vec<String> {
    let mut wide = Vec::new();
    let mut far_from_min = Vec::new();
    for r in rows.iter().filter(|r| r.pattern == "pingpong") {
        let (Some(m), Some(p99), Some(min)) = (r.median_ns, r.p99_ns, r.min_ns) else {
            continue;
        };
        if p99 >= 5 * m.max(1) {
            wide.push(format!(
                "{} {} (p99 {} vs median {})",
                r.transport,
                size(r.size),
                ns(p99 as f64),
                ns(m as f64)
            ));
        }
        if m >= 5 * min.max(1) {
            far_from_min.push(format!(
                "{} {} (median {} vs min {})",
                r.transport,
                size(r.size),
                ns(m as f64),
                ns(min as f64)
            ));
        }
    }
    let mut out = Vec::new();
    if !wide.is_empty() {
        out.push(format!(
            "wide distributions (p99 at least 5× the median): {}. The slow round trips are those in which a side \
             had gone to sleep and the kernel had to wake it on the other CPU; a cross-CPU wake-up costs tens of \
             µs on a virtual machine, far more than the message.",
            wide.join(", ")
        ));
    }
    if !far_from_min.is_empty() {
        out.push(format!(
            "median far above the minimum: {}. Most round trips of these transports include a sleep and a \
             wake-up of the peer; the minimum is a round trip in which the peer was still running.",
            far_from_min.join(", ")
        ));
    }
    out
}

/// The report as a table for people.
pub fn table(report: &Report) -> String {
    let m = &report.machine;
    let mut out = String::new();
    out.push_str(&format!(
        "ipcraft bench: {} ({} cores), Linux {}\n",
        m.cpu, m.cores, m.kernel
    ));
    let method = &report.method;
    out.push_str(&format!("method: {}, {}.\n", method.processes, method.cpus));
    out.push_str(&format!("payload: {}.\n", method.payload));
    match &report.floor {
        Some(f) => out.push_str(&format!(
            "floor (this run): cache-line round trip {}; ×floor = {}.\n",
            ns(f.cacheline_rtt_ns as f64),
            method.ratio_to_floor
        )),
        None => out.push_str("floor: not measured (see skipped).\n"),
    }
    out.push_str("\npingpong: round trip (one-way = half), lower is better\n");
    out.push_str(&format!(
        "{:<13} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
        "transport", "size", "median", "one-way", "p99", "p99.9", "min", "×floor"
    ));
    for r in report.results.iter().filter(|r| r.pattern == "pingpong") {
        out.push_str(&format!(
            "{:<13} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
            r.transport,
            size(r.size),
            ns(r.median_ns.unwrap_or(0) as f64),
            ns(r.one_way_ns.unwrap_or(0) as f64),
            ns(r.p99_ns.unwrap_or(0) as f64),
            ns(r.p999_ns.unwrap_or(0) as f64),
            ns(r.min_ns.unwrap_or(0) as f64),
            r.ratio_to_floor.map_or("-".into(), |x| format!("{x:.1}"))
        ));
    }
    out.push_str("\nstream: one way, higher is better\n");
    out.push_str(&format!(
        "{:<13} {:>7} {:>11} {:>11} {:>8}\n",
        "transport", "size", "throughput", "messages", "×floor"
    ));
    for r in report.results.iter().filter(|r| r.pattern == "stream") {
        out.push_str(&format!(
            "{:<13} {:>7} {:>11} {:>11} {:>8}\n",
            r.transport,
            size(r.size),
            rate(r.bytes_per_sec.unwrap_or(0.0)),
            per_sec(r.messages_per_sec.unwrap_or(0.0)),
            r.ratio_to_floor.map_or("-".into(), |x| format!("{x:.1}"))
        ));
    }
    if !report.verdicts.is_empty() {
        out.push_str("\nverdict:\n");
        for v in &report.verdicts {
            out.push_str(&format!("  {v}\n"));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("\nnote: {n}\n"));
    }
    if !report.skipped.is_empty() {
        out.push_str("\nskipped:\n");
        for s in &report.skipped {
            out.push_str(&format!(
                "  {} {} {}: {}{}\n",
                s.transport,
                s.pattern,
                size(s.size),
                if s.failed { "FAILED: " } else { "" },
                s.reason
            ));
        }
    }
    out
}
