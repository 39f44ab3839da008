"""Postmortem at scale: load + diagnose + render time and peak memory for a synthetic sweep.

    .venv/bin/python benchmarks/report_scale.py [--runs 64] [--steps 10000] [--workers N]

Each measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to it alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _child(root: str, out: str, workers: int | None) -> None:
    from analysis import diagnose_experiment, load
    from reports import write_report

    t0, c0 = time.perf_counter(), time.process_time()
    exp = load(root)
    t1, c1 = time.perf_counter(), time.process_time()
    d = diagnose_experiment(exp)
    t2, c2 = time.perf_counter(), time.process_time()
    write_report(d, out, workers)
    t3, c3 = time.perf_counter(), time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"load_cpu_s": c1 - c0, "diagnose_cpu_s": c2 - c1,
           "render_cpu_s": c3 - c2 + kids.ru_utime + kids.ru_stime}
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"load_s": t1 - t0, "diagnose_s": t2 - t1, "render_s": t3 - t2,
                      "total_s": t3 - t0, **cpu, "peak_rss_mb": self_rss,
                      "peak_worker_rss_mb": kids_rss, "findings": len(d.all_findings()),
                      "report_mb": Path(out).stat().st_size / 1e6}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child, args.workers)
        return
    from synthetic import sweep_plans, write_experiment

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        t = time.perf_counter()
        write_experiment(root, sweep_plans(args.runs, args.steps))
        print(f"wrote {args.runs} x {args.steps} synthetic sweep in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        cmd = [sys.executable, __file__, "--child", str(root), str(root / "report.html")]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout)
    res |= {"runs": args.runs, "steps": args.steps}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
