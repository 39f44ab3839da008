"""Postmortem at scale: load + diagnose + render time and peak memory for a synthetic sweep.

    .venv/bin/python benchmarks/report_scale.py [--runs 64] [--steps 10000] [--workers N]
    .venv/bin/python benchmarks/report_scale.py --against /tmp/old   # side by side

Each measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to it alone.
`--against DIR` measures the `analysis`/`reports` code of another checkout (e.g.
`mkdir /tmp/old && git archive HEAD analysis reports qgan | tar -x -C /tmp/old`) on the very
same sweep, right before this tree's code, and prints both side by side: the only fair
before/after on a machine whose load changes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_ENV = "REPORT_SCALE_CODE"  # --against: the other checkout, first on sys.path
# Module level on purpose: a spawned figure worker re-runs this module as __mp_main__, and
# must import the same checkout's packages as its parent.
sys.path[:0] = [p for p in (os.environ.get(CODE_ENV), str(ROOT), str(ROOT / "tests")) if p]


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


def _measure(root: Path, out: Path, workers: int | None, code: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(root), str(out)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if k != CODE_ENV}
    if code is not None:
        env[CODE_ENV] = str(code)
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                     env=env).stdout)


def _table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in next(iter(results.values())):
        vals = [results[n][key] for n in names]
        lines.append(f"| {key} | " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                               for v in vals) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--against", type=Path, metavar="DIR",
                    help="also measure the analysis/reports code of this checkout")
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
        results = {}
        if args.against is not None:
            results[f"before ({args.against})"] = _measure(root, Path(tmp) / "before.html",
                                                          args.workers, args.against.resolve())
        results["this tree"] = _measure(root, Path(tmp) / "report.html", args.workers, None)
    for r in results.values():
        r |= {"runs": args.runs, "steps": args.steps}
    if len(results) == 1:
        print(json.dumps(results["this tree"], indent=2))
    else:
        print(json.dumps(results, indent=2))
        print(_table(results))


if __name__ == "__main__":
    main()
