"""Issue 24's pruning goal: a 16-run local sweep, half its runs planted to fail early (a
cutoff-3 generator without trace penalty: leaks from step 1), run with and without
`--prune`; total core-seconds (the trainers' CPU, summed from each run's step times is not
enough: the job episodes' wall time x 1 CPU per run), the run to keep, and which runs were
pruned.

    .venv/bin/python benchmarks/prune_sweep.py [--runs 16] [--steps 300] [--parallel 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CONFIG = """
[run]
seed = 7
[data]
target = "bimodal"
n_train = 256
n_holdout = 128
[generator]
cutoff = 10
[loss]
trace_penalty = 50.0
[train]
steps = {steps}
log_every = 50
batch_size = 16
[eval]
every_steps = 20
n_samples = 512
save_samples = 0
[checkpoint]
every_steps = 20
[metrics]
flush_seconds = 1
[sweep]
"run.seed" = {seeds}
sets = [{{"generator.cutoff" = 10}}, {{"generator.cutoff" = 3, "loss.trace_penalty" = 0.0}}]
"""


def sweep(work: Path, runs: int, steps: int, parallel: int, prune: bool) -> dict:
    from jobs import ledger

    cfg = work / "bench.toml"
    cfg.write_text(CONFIG.format(steps=steps, seeds=list(range(1, runs // 2 + 1))))
    root = work / ("prune" if prune else "plain")
    t0 = time.time()
    cmd = [sys.executable, "-m", "jobs.cli", "submit", str(cfg), "--executor", "local",
           "--parallel", str(parallel), "--runs-root", str(root), "--no-report", "--wait"]
    subprocess.run(cmd + (["--prune"] if prune else []), check=False, capture_output=True,
                   cwd=ROOT, timeout=7200)
    wall = time.time() - t0
    exp = root / "bench"
    core_s, pruned, healthy_pruned = 0.0, [], []
    exp_doc = ledger.read_experiment(exp)
    sets = {t["run"]: t["overrides"] for t in exp_doc["tasks"]}
    for run in sorted(p for p in exp.iterdir() if p.is_dir()):
        doc = ledger.read_jobs(run)
        core_s += sum(e["end_time"] - e["start_time"] for e in doc["episodes"]
                      if isinstance(e.get("end_time"), (int, float))
                      and isinstance(e.get("start_time"), (int, float)))
        unended = [e for e in doc["episodes"] if e.get("end_time") is None]
        if unended:
            print(f"{run.name}: {len(unended)} episode(s) without an end", file=sys.stderr)
        if doc["outcome"] == "pruned":
            pruned.append(run.name)
            if sets[run.name].get("generator.cutoff", 10) != 3:
                healthy_pruned.append(run.name)
    d = json.loads(subprocess.run([sys.executable, "-m", "jobs.cli", "diagnose", str(exp),
                                   "--json"], capture_output=True, text=True, cwd=ROOT).stdout)
    return {"wall_s": wall, "core_s": core_s, "keep": d["keep"], "pruned": pruned,
            "healthy_pruned": healthy_pruned}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = sweep(Path(tmp), args.runs, args.steps, args.parallel, False)
        pruned = sweep(Path(tmp), args.runs, args.steps, args.parallel, True)
    out = {"without": plain, "with_prune": pruned,
           "core_s_saved_frac": 1 - pruned["core_s"] / plain["core_s"],
           "same_keep": plain["keep"] == pruned["keep"]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
