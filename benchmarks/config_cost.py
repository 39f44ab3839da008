"""What a config change costs per training step: real `qgan train` processes, side by side.

Trains the same run (bimodal, the defaults) once per variant per repetition, alternating the
variants so that a change in machine load hits them alike, and reads the time per step from
the run's own metrics (the median gap between consecutive steps' wall_time from step 100 on:
start-up, tracing, evals and checkpoints excluded as far as they fall between rows).

    python benchmarks/config_cost.py [--steps 600] [--repeats 3] \
        --variant "generator.cutoff=6 loss.trace_penalty=10" --variant "(defaults)"

Prints a Markdown table; writes only into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def step_ms(run_dir: Path, steps: int, sets: list[str]) -> float:
    import pandas as pd

    cmd = [sys.executable, "-m", "jobs.cli", "train", "/dev/null", "--run-dir", str(run_dir),
           "--set", f"train.steps={steps}", "--set", "eval.every_steps=100000",
           "--set", "checkpoint.every_steps=100000"]
    for kv in sets:
        cmd += ["--set", kv]
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"qgan train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = pd.read_parquet(run_dir / "metrics" / "steps").sort_values("step")
    wall = rows.loc[rows["step"] >= 100, "wall_time"].to_numpy()
    return 1000 * float(np.median(np.diff(wall)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", action="append", required=True,
                    help='space-separated KEY=VALUE overrides, or "(defaults)"')
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    variants = [[] if v.strip() == "(defaults)" else v.split() for v in args.variant]
    times: list[list[float]] = [[] for _ in variants]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, sets in enumerate(variants):
                times[i].append(step_ms(Path(tmp) / f"v{i}-r{r}", args.steps, sets))
    print(f"| variant | ms per step (median of {args.repeats}; each a median over steps "
          f"100-{args.steps}) | min-max |")
    print("|---|---|---|")
    for v, t in zip(args.variant, times):
        print(f"| {v} | {statistics.median(t):.2f} | {min(t):.2f}-{max(t):.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
