//! `ipcraft bench`: every transport runs between two processes and reports
//! the SPEC §2 fields; the table, JSON and plot agree.

mod common;

use std::time::Instant;

use common::{assert_fails, assert_ok, ipcraft, run, TempDir, TIMEOUT};

const ALL: [&str; 15] = [
    "pipe",
    "fifo",
    "uds",
    "mq",
    "shm-futex",
    "chan",
    "chan-zc",
    "chan-memfd",
    "chan-sleep",
    "chan-async",
    "topic",
    "topic-2sub",
    "chan-2send",
    "service",
    "tcp",
];

/// Whether transport `t` has `pattern`: a many-sender channel only
/// streams, a service only has round trips.
fn has(t: &str, pattern: &str) -> bool {
    !matches!((t, pattern), ("chan-2send", "pingpong") | ("service", "stream"))
}

#[test]
fn smoke() {
    let out = run(
        ipcraft().args(["bench", "--quick", "--transports", "pipe,chan", "--sizes", "64"]),
        b"",
    );
    assert_ok(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("pingpong") && table.contains("stream"), "{table}");
    for t in ["pipe", "chan"] {
        assert_eq!(
            table.lines().filter(|l| l.starts_with(t) && l.contains(" 64 ")).count(),
            2,
            "{table}"
        );
    }
}

#[test]
fn quick_json_has_every_transport_and_pattern_and_draws_a_plot() {
    let dir = TempDir::new();
    let svg = dir.join("bench.svg");
    let start = Instant::now();
    let out = run(ipcraft().args(["bench", "--quick", "--json", "--plot"]).arg(&svg), b"");
    assert_ok(&out);
    eprintln!("ipcraft bench --quick took {:?}", start.elapsed());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let machine = &doc["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert!(!machine["cpu"].as_str().unwrap().is_empty());
    assert!(!machine["kernel"].as_str().unwrap().is_empty());
    assert!(machine["pinned"].is_boolean());
    let results = doc["results"].as_array().unwrap();
    for t in ALL {
        for (pattern, size) in [("pingpong", 64), ("stream", 64), ("pingpong", 65536), ("stream", 65536)] {
            if !has(t, pattern) {
                assert!(
                    !results.iter().any(|r| r["transport"] == t && r["pattern"] == pattern),
                    "{t} has no {pattern}"
                );
                continue;
            }
            let row = results
                .iter()
                .find(|r| r["transport"] == t && r["pattern"] == pattern && r["size"] == size);
            let Some(row) = row else {
                // Only a transport the machine cannot carry at that size may be missing, with a reason.
                let skipped = doc["skipped"].as_array().unwrap();
                let why = skipped
                    .iter()
                    .find(|s| s["transport"] == t && s["pattern"] == pattern && s["size"] == size);
                assert!(
                    why.is_some() && size > 64,
                    "{t} {pattern} {size} missing without a reason"
                );
                continue;
            };
            if pattern == "pingpong" {
                let median = row["median_ns"].as_u64().unwrap();
                let p99 = row["p99_ns"].as_u64().unwrap();
                let p999 = row["p999_ns"].as_u64().unwrap();
                assert!(median > 0 && median <= p99 && p99 <= p999, "{row}");
                assert!(row["samples"].as_u64().unwrap() > 0);
            } else {
                assert!(row["bytes_per_sec"].as_f64().unwrap() > 0.0, "{row}");
            }
        }
    }
    // The schema beyond the rows: the method, the floor, a ratio on every
    // row, verdicts.
    let method = &doc["method"];
    for key in [
        "processes",
        "cpus",
        "payload",
        "pingpong",
        "stream",
        "floor",
        "ratio_to_floor",
    ] {
        assert!(
            method[key].as_str().is_some_and(|s| !s.is_empty()),
            "method.{key} missing: {method}"
        );
    }
    assert!(method["pingpong"].as_str().unwrap().contains("round trip"));
    assert!(method["processes"].as_str().unwrap().contains("processes"));
    let floor = &doc["floor"];
    let rtt = floor["cacheline_rtt_ns"].as_u64().expect("floor.cacheline_rtt_ns");
    assert!(rtt > 0, "{floor}");
    for size in ["64", "65536"] {
        let copy = &floor["memcpy_bytes_per_sec"][size];
        assert!(copy["cache_resident"].as_f64().unwrap() > 0.0, "{floor}");
        assert!(copy["memory"].as_f64().unwrap() > 0.0, "{floor}");
        assert!(
            floor["bare_ring_bytes_per_sec"][size].as_f64().unwrap() > 0.0,
            "{floor}"
        );
    }
    for row in results {
        let ratio = row["ratio_to_floor"]
            .as_f64()
            .unwrap_or_else(|| panic!("no ratio_to_floor: {row}"));
        assert!(ratio > 0.0, "{row}");
        if row["pattern"] == "stream" {
            // A stream is rated against the bare ring of its size.
            let size = row["size"].as_u64().unwrap().to_string();
            let ring = floor["bare_ring_bytes_per_sec"][&size].as_f64().unwrap();
            let expect = ring / row["bytes_per_sec"].as_f64().unwrap();
            assert!((ratio - expect).abs() <= 1e-9 * expect, "{row} against {ring}");
        }
        if row["pattern"] == "pingpong" {
            assert_eq!(
                row["one_way_ns"].as_u64().unwrap(),
                row["median_ns"].as_u64().unwrap() / 2
            );
        }
    }
    assert_eq!(doc["verdicts"].as_array().unwrap().len(), 2, "{}", doc["verdicts"]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    // Text elements hold their text on a line of its own.
    for t in ALL {
        assert!(svg.lines().any(|l| l.trim() == t), "legend lacks {t}");
    }
    for label in ["64 B", "64 KiB", "floor: one cache line", "floor: a bare ring"] {
        assert!(svg.contains(label), "the plot lacks {label:?}");
    }
}

/// Without a terminal, every finished measurement is one progress line on
/// stderr, and the table says what was measured how.
#[test]
fn progress_lines_without_a_terminal_and_a_readable_table() {
    let out = run(
        ipcraft().args(["bench", "--quick", "--transports", "pipe,chan-zc", "--sizes", "64"]),
        b"",
    );
    assert_ok(&out);
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    // The floor, 2 transports × 2 patterns × 1 size, the floor again.
    assert_eq!(lines.len(), 6, "{err}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("ipcraft bench: [{}/6] ", i + 1)), "{line}");
    }
    assert!(lines[1].contains("pipe pingpong 64 B: median round trip "), "{err}");
    let table = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "method: two processes",
        "round trip (one-way = half)",
        "×floor",
        "verdict:",
        "floor (this run)",
    ] {
        assert!(table.contains(needle), "table lacks {needle:?}:\n{table}");
    }
    // Human units, never a raw count of nanoseconds.
    let row = table
        .lines()
        .find(|l| l.starts_with("pipe") && l.contains("64 B"))
        .unwrap();
    assert!(row.contains(" µs") || row.contains(" ns"), "{row}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    assert_fails(
        &run(ipcraft().args(["bench", "--transports", "carrier-pigeon"]), b""),
        2,
        "unknown transport",
    );
    assert_fails(
        &run(ipcraft().args(["bench", "--sizes", "8"]), b""),
        2,
        "outside 16 to 4M",
    );
    assert_fails(
        &run(ipcraft().args(["bench", "--sizes", "5M"]), b""),
        2,
        "outside 16 to 4M",
    );
    assert_fails(&run(ipcraft().args(["bench", "--sizes", "many"]), b""), 2, "size");
}

/// `bench --help` and the README describe every transport in the same words.
#[test]
fn help_and_readme_describe_transports_alike() {
    let out = run(ipcraft().args(["bench", "--help"]), b"");
    assert_ok(&out);
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let help = flat(&String::from_utf8_lossy(&out.stdout));
    let readme = flat(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap());
    for phrase in [
        "chan (a named channel)",
        "chan-memfd (a channel in a memfd)",
        "chan-sleep (the memfd channel with spinning off: both sides sleep on a futex)",
        "chan-async (the memfd channel with each side in a current-thread tokio runtime)",
        "chan-zc (the named channel, zero-copy: each message written in place and checked in place, every byte)",
        "topic (publish-subscribe, one subscriber)",
        "topic-2sub (one publisher, two subscriber processes)",
        "chan-2send (a many-sender channel, two sender processes; stream only)",
        "service (request-response; round trips only)",
        "tcp (over loopback, as a reference)",
        "iceoryx2-2sub (two subscriber processes)",
    ] {
        assert!(help.contains(phrase), "--help lacks {phrase:?}");
        assert!(readme.contains(phrase), "README lacks {phrase:?}");
    }
}

/// A measurement that fails (here: its child process is killed) is listed
/// under skipped with its reason, the run goes on, and the exit status is 1.
#[test]
fn a_failed_measurement_is_reported_and_the_run_goes_on() {
    let mut bench = ipcraft()
        .args([
            "bench",
            "--quick",
            "--transports",
            "pipe,chan",
            "--sizes",
            "64",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = bench.id();
    let mut stdout = bench.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    // Kill the first child the bench forks (the floor's or a measurement's).
    let start = Instant::now();
    let child = loop {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children.split_whitespace().next() {
            break c.parse::<i32>().unwrap();
        }
        assert!(start.elapsed() < TIMEOUT, "the bench never forked");
        std::thread::yield_now();
    };
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let (status, err) = ipcraft_testkit::wait_with_stderr(bench);
    let out = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("ipcraft: bench: 1 measurement(s) failed"),
        "{err}"
    );
    assert!(err.contains("FAILED"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("the report is still printed");
    let failed: Vec<_> = doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["failed"] == true)
        .collect();
    assert_eq!(failed.len(), 1, "{}", doc["skipped"]);
    assert!(!failed[0]["reason"].as_str().unwrap().is_empty());
    // Everything else was measured.
    assert!(doc["results"].as_array().unwrap().len() >= 3, "{}", doc["results"]);
}

/// A reader of the progress lines that goes away does not end the run: the
/// bench finishes, prints its table and leaves nothing in its temporary
/// directory.
#[test]
fn a_closed_stderr_neither_stops_the_run_nor_leaves_files() {
    let tmp = TempDir::new();
    let mut bench = ipcraft()
        .args(["bench", "--quick", "--transports", "pipe", "--sizes", "64"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(bench.stderr.take());
    let mut stdout = bench.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut v).unwrap();
        v
    });
    let status = common::wait(&mut bench);
    let table = reader.join().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        table.lines().any(|l| l.starts_with("pipe") && l.contains(" 64 B")),
        "{table}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
