"""`qgan status` on an experiment of N finished runs, without a cluster: the first refresh
decodes every run's Parquet (and fills each `<run>/.status-cache.json`), later refreshes
decode only runs whose metrics parts changed (none here).

    .venv/bin/python benchmarks/status_finished.py [--runs 1000] [--repeats 5]
    .venv/bin/python benchmarks/status_finished.py --against /tmp/old   # side by side

`--against DIR` runs another checkout's `qgan status` (e.g. `git worktree add /tmp/old
3621e0e`, the code before live verdicts) on its own copy of the same experiment, alternating
with this tree's refresh by refresh: the only fair before/after on a machine whose load
changes. Each figure is wall and CPU seconds (user + system of the process and its workers).

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
    ap.add_argument("--against", type=Path, metavar="DIR",
                    help="also time this checkout's status, refresh by refresh")
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
        trees = {"this tree": ROOT}
        if args.against is not None:
            trees = {f"before ({args.against})": args.against.resolve(), **trees}
            for name in trees:
                if name != "this tree":
                    shutil.copytree(root, work / "before", symlinks=True)
        roots = {n: (work / "before" if n != "this tree" else root) for n in trees}
        results = {n: {"wall_s": [], "cpu_s": []} for n in trees}
        rows: list = []
        for _ in range(args.repeats):
            for name, code in trees.items():
                before = os.times()
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "jobs.cli", "status",
                                       str(roots[name]), "--json"], cwd=code,
                                      capture_output=True, text=True,
                                      env=dict(os.environ, PYTHONPATH=str(code)))
                wall = time.perf_counter() - t0
                after = os.times()
                cpu = (after.children_user - before.children_user
                       + after.children_system - before.children_system)
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-2000:])
                rows = json.loads(proc.stdout)
                results[name]["wall_s"].append(round(wall, 2))
                results[name]["cpu_s"].append(round(cpu, 2))
        print(json.dumps({"runs": len(rows), "states": sorted({r["state"] for r in rows}),
                          "verdicts": sorted({str(r.get("verdict")) for r in rows}),
                          **results}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
