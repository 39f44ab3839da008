"""`qgan status` on an experiment of N finished runs, without a cluster: the first refresh
decodes every run's Parquet (and fills each `<run>/.status-cache.json`), later refreshes
decode only runs whose metrics parts changed (none here).

    .venv/bin/python benchmarks/status_finished.py [--runs 1000] [--repeats 5]

The runs are copies of one synthetic finished run (tests/synthetic.py: 1,000 steps of real
Parquet metrics, attempts, checkpoints manifest and job ledger) in a local-executor
experiment; each figure is the wall time of the `qgan status --json` process (interpreter
start included). `benchmarks/status_scale.py` measures the same on the dev SLURM cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from synthetic import Plan, write_experiment

    work = Path(tempfile.mkdtemp(prefix="qgan-status-finished-"))
    try:
        root = write_experiment(work / "exp", [Plan(name="r", steps=1000, samples=False)])
        exp = json.loads((root / "experiment.json").read_text())
        for i in range(1, args.runs):
            shutil.copytree(root / "task-000", root / f"task-{i:03d}", symlinks=True)
        exp["tasks"] = [{"index": i, "run": f"task-{i:03d}", "overrides": {}}
                        for i in range(args.runs)]
        (root / "experiment.json").write_text(json.dumps(exp))
        times, rows = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "jobs.cli", "status", str(root),
                                   "--json"], cwd=ROOT, capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(proc.stderr[-2000:])
            rows = json.loads(proc.stdout)
        print(json.dumps({"runs": len(rows), "states": sorted({r["state"] for r in rows}),
                          "first_s": round(times[0], 2),
                          "later_s": [round(t, 2) for t in times[1:]]}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
