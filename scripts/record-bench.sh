#!/usr/bin/env bash
# Regenerates the recorded bench run under docs/bench/ (what the README's
# figures and plot come from): bench.json, bench.svg and README.md (the
# machine, the method, the verdicts, the figures).
#
#   scripts/record-bench.sh                 # every transport, sizes 64 B to 4 MiB
#   COMPARATORS=1 scripts/record-bench.sh   # with iceoryx2 and ipc-channel too
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [[ "${COMPARATORS:-0}" == 1 ]]; then
    features=(--features iceoryx2,ipc-channel)
fi
cargo build --release "${features[@]}"
out=docs/bench
mkdir -p "$out"
status=0
target/release/ipcraft bench --sizes 64,1K,64K,1M,4M --json --plot "$out/bench.svg" > "$out/bench.json.new" || status=$?
mv "$out/bench.json.new" "$out/bench.json"
python3 - "$out/bench.json" > "$out/README.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["machine"]
def ns(v):
    return f"{v/1e6:.1f} ms" if v >= 1e6 else f"{v/1e3:.1f} µs" if v >= 1e3 else f"{v:.0f} ns"
def rate(v):
    return f"{v/1e9:.1f} GB/s" if v >= 1e9 else f"{v/1e6:.0f} MB/s"
def size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} B"
print("# Recorded bench run\n")
print("Regenerate with `scripts/record-bench.sh` (`COMPARATORS=1` adds iceoryx2 and ipc-channel).\n")
print(f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; {d['method']['cpus']}.\n")
for k in ("processes", "payload", "pingpong", "stream", "floor", "ratio_to_floor"):
    print(f"- **{k.replace('_', ' ')}**: {d['method'][k]}")
f = d.get("floor")
if f:
    ring = f.get("bare_ring_bytes_per_sec", {})
    streams = ", ".join(f"{size(int(k))} {rate(v)}" for k, v in sorted(ring.items(), key=lambda kv: int(kv[0])))
    print(f"\nFloor in this run: one cache line's round trip {ns(f['cacheline_rtt_ns'])}"
          + (f"; a bare ring's stream between the two CPUs: {streams}" if streams else "") + ".\n")
print("## Verdicts\n")
for v in d["verdicts"]:
    print(f"- {v}")
print("\n## Round trip (median; one-way is half)\n")
sizes = sorted({r["size"] for r in d["results"]})
ts = list(dict.fromkeys(r["transport"] for r in d["results"]))
def cell(t, p, s, key, fmt):
    r = next((r for r in d["results"] if r["transport"] == t and r["pattern"] == p and r["size"] == s), None)
    return fmt(r[key]) + f" ({r['ratio_to_floor']:.1f}×)" if r and key in r and "ratio_to_floor" in r else (fmt(r[key]) if r and key in r else "—")
print("| transport | " + " | ".join(size(s) for s in sizes) + " |")
print("|---|" + "---|" * len(sizes))
for t in ts:
    print(f"| {t} | " + " | ".join(cell(t, "pingpong", s, "median_ns", ns) for s in sizes) + " |")
print("\n## Stream throughput (one way)\n")
print("| transport | " + " | ".join(size(s) for s in sizes) + " |")
print("|---|" + "---|" * len(sizes))
for t in ts:
    print(f"| {t} | " + " | ".join(cell(t, "stream", s, "bytes_per_sec", rate) for s in sizes) + " |")
print("\n(×: times the hardware floor of the same run; 1 is the floor.)\n")
for n in d["notes"]:
    print(f"Note: {n}\n")
if d["skipped"]:
    print("## Skipped\n")
    for s in d["skipped"]:
        print(f"- {s['transport']} {s['pattern']} {size(s['size'])}: {'FAILED: ' if s['failed'] else ''}{s['reason']}")
print("\n![bench plot](bench.svg)")
PY
echo "recorded: $out/bench.json $out/bench.svg $out/README.md"
exit $status
