"""Runs cleanroom-bench and openmined-psi at the same set sizes and prints both with the ratios.

CleanRoom: `cleanroom-bench --filter bound@Nt,e2e-processes`: every round as its own `cleanroom`
process through the message files (consumer, provider, coordinator, delivery and the provider's
open), per-process peak RSS from wait4; once one round after the other (`e2e-processes`) and once
as the two parties run them (`e2e-processes-concurrent`: rounds 1 ‖ 2, then 3 ‖ 4), which is the
CleanRoom figure compared (the sequential one is printed beside it). openmined-psi: Benchmarks/openmined_psi_run.py in a fresh
Python process (client and server in one process, which is how its benchmarks run too).
Throughput is elements per second with both sets counted (2 × size), for both.

On a machine shared with other work the two runs see different loads, so the script also prints
the load-independent figure: CPU seconds per element of each (user + system, every process and
thread, from rusage), and the throughput each would reach on this machine's idle cores (ours uses
every core, openmined-psi one), which is what the ratio target is about.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CORES = os.cpu_count() or 1

HERE = os.path.dirname(os.path.abspath(__file__))


def size_of(s: str) -> int:
    s = s.strip().lower()
    return int(s[:-1]) * 1000 if s.endswith("k") else int(s[:-1]) * 1_000_000 if s.endswith("m") else int(s)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100k")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--bench", default=".build/release/cleanroom-bench")
    a = ap.parse_args()
    rows = []
    for label in a.sizes.split(","):
        n = size_of(label)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            subprocess.run([a.bench, "--sizes", label, "--runs", str(a.runs), "--warmup", "0",
                            "--filter", "bound@Nt,e2e-processes", "--json", out, "--work-dir", os.path.join(tmp, "work")],
                           check=True, stdout=sys.stderr)
            with open(out) as f:
                ours = json.load(f)
        seq = next(r for r in ours["results"] if r["name"] == "e2e-processes")
        e2e = next((r for r in ours["results"] if r["name"] == "e2e-processes-concurrent"), seq)
        bound = next(r for r in ours["results"] if r["name"] == "bound@Nt")
        theirs = []
        for _ in range(a.runs):
            p = subprocess.run([sys.executable, os.path.join(HERE, "openmined_psi_run.py"), str(n)],
                               check=True, capture_output=True, text=True)
            theirs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        t_sec = median([t["seconds"] for t in theirs])
        t_rss = max(t["peakRSSKiB"] for t in theirs)
        t_cpu = median([t["cpuSeconds"] for t in theirs]) / (2 * n)
        assert all(t["intersection"] == n - n // 2 for t in theirs), "openmined-psi intersection size is wrong"
        rows.append({
            "size": n, "ours_rate": e2e["rate"], "ours_seq_rate": seq["rate"], "ours_rss": max(e2e["peakRSSKiB"], seq["peakRSSKiB"]), "ours_seconds": e2e["median"],
            "ours_cpu": e2e["cpuPerElement"], "theirs_cpu": t_cpu,
            "bound_rate": bound["rate"], "theirs_rate": 2 * n / t_sec, "theirs_seconds": t_sec, "theirs_rss": t_rss,
            "version": theirs[0]["version"],
        })
    print(f"\nCleanRoom vs openmined-psi {rows[0]['version']} (same emails, overlap size/2, {a.runs} run(s) each, median)")
    print(f"machine: {ours['machine']}")
    hdr = ("size", "CleanRoom el/s", "(sequential)", "openmined el/s", "throughput ×", "CleanRoom peak", "openmined peak", "memory ratio", "bound el/s")
    print("{:>10} {:>15} {:>13} {:>15} {:>13} {:>15} {:>15} {:>13} {:>12}".format(*hdr))
    for r in rows:
        print("{:>10,} {:>15,.0f} {:>13,.0f} {:>15,.0f} {:>12.2f}× {:>11.1f} MiB {:>11.1f} MiB {:>13.2f} {:>12,.0f}".format(
            r["size"], r["ours_rate"], r["ours_seq_rate"], r["theirs_rate"], r["ours_rate"] / r["theirs_rate"], r["ours_rss"] / 1024,
            r["theirs_rss"] / 1024, r["ours_rss"] / r["theirs_rss"], r["bound_rate"]))
    print("(CleanRoom el/s: rounds 1 ‖ 2 and 3 ‖ 4 concurrently, as the parties run them; sequential beside it;"
          " peak: the largest single CleanRoom process of either run)")
    print("\nload-independent: CPU per element, and the throughput it allows on this machine's idle cores")
    hdr2 = ("size", "CleanRoom µs", "openmined µs", "CleanRoom idle el/s", "openmined idle el/s", "throughput ×")
    print("{:>10} {:>13} {:>13} {:>20} {:>20} {:>13}".format(*hdr2))
    for r in rows:
        ours_idle, theirs_idle = CORES / r["ours_cpu"], 1 / r["theirs_cpu"]
        r["ours_idle_rate"], r["theirs_idle_rate"] = ours_idle, theirs_idle
        print("{:>10,} {:>13.1f} {:>13.1f} {:>20,.0f} {:>20,.0f} {:>12.2f}×".format(
            r["size"], r["ours_cpu"] * 1e6, r["theirs_cpu"] * 1e6, ours_idle, theirs_idle, ours_idle / theirs_idle))
    print(f"(idle throughput: {CORES} cores / CPU per element for CleanRoom, 1 core for openmined-psi, which is single-threaded)")
    print("targets (issue 6): throughput × ≥ 2.5; memory ratio (our largest process / theirs) ≤ 0.25")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
