//! `ipcraft bench`: every transport runs between two processes and reports
//! the SPEC §2 fields; the table, JSON and plot agree.

mod common;

use std::time::Instant;

use common::{assert_fails, assert_ok, ipcraft, run, TempDir};

const ALL: [&str; 10] = [
    "pipe",
    "fifo",
    "uds",
    "mq",
    "shm-futex",
    "chan",
    "chan-memfd",
    "chan-sleep",
    "chan-async",
    "tcp",
];

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
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    // Text elements hold their text on a line of its own.
    for t in ALL {
        assert!(svg.lines().any(|l| l.trim() == t), "legend lacks {t}");
    }
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
        "outside 16 to 1M",
    );
    assert_fails(
        &run(ipcraft().args(["bench", "--sizes", "2M"]), b""),
        2,
        "outside 16 to 1M",
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
        "tcp (over loopback, as a reference)",
    ] {
        assert!(help.contains(phrase), "--help lacks {phrase:?}");
        assert!(readme.contains(phrase), "README lacks {phrase:?}");
    }
}
