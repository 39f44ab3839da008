"""Issue 24's pruning goal: a 16-run local sweep, half its runs planted to fail early, run
without and with pruning, back to back; total core-seconds, the run to keep, which runs were
pruned.

The planted runs (the other half are healthy: bimodal, cutoff 10, trace penalty 50):
- leak: generator.init_std = 0.5 without trace penalty: Fock trace ~0.16 from the first eval,
  sinking (the samples are simulation artefacts); the pruner stops it after the grace;
- divergence: NaN losses injected at steps 41-43 with guard.max_rollbacks = 0: the trainer's
  guard stops it by itself (exit 3) in both arms (no pruner is needed for it);
- never fit: train.g_lr = 1e-7: W1 never moves; stopped only with --prune-never-fit, after a
  quarter of the steps, and only while another run already fits better (jobs/prune.py).

Core-seconds are CPU seconds from the kernel (rusage), recorded by each job in its episode of
`<run>/jobs.json` (`cpu.trainer_s`: the trainer subprocess, RUSAGE_CHILDREN around it;
`cpu.job_s`: the job's own process, RUSAGE_SELF, the pruner's thread included): what the runs
cost whatever else loads the machine. submitit's per-job controller and the local queue
process (both asleep nearly all the time) are not counted in either arm. Wall time is shown
beside them.

    .venv/bin/python benchmarks/prune_sweep.py [--runs 16] [--steps 3000] [--parallel 2]
        [--rules all|leak] [--arm both|without|with]
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
sets = [{sets}]
"""

PLANTS = {
    "leak": '"generator.init_std" = 0.5, "loss.trace_penalty" = 0.0',
    "divergence": '"faults.nan_at_steps" = [41, 42, 43], "guard.max_rollbacks" = 0',
    "never_fit": '"train.g_lr" = 1e-7',
}


def kinds(runs: int) -> list[str]:
    """Half healthy, half planted (leak, never fit, divergence in turn), interleaved so that
    the queue meets planted runs all along."""
    planted = [("leak", "never_fit", "divergence")[i % 3] for i in range(runs // 2)]
    planted.sort(key=("leak", "never_fit", "divergence").index)
    out = []
    for i in range(runs):
        out.append("healthy" if i % 2 == 0 or not planted else planted.pop(0))
    return out


def config_text(runs: int, steps: int) -> str:
    sets = []
    for i, kind in enumerate(kinds(runs)):
        extra = f", {PLANTS[kind]}" if kind in PLANTS else ""
        sets.append(f'{{"run.seed" = {i + 1}{extra}}}')
    return CONFIG.format(steps=steps, sets=", ".join(sets))


def sweep(work: Path, runs: int, steps: int, parallel: int, prune: str | None) -> dict:
    from jobs import ledger

    cfg = work / "bench.toml"
    cfg.write_text(config_text(runs, steps))
    root = work / (prune or "plain")
    cmd = [sys.executable, "-m", "jobs.cli", "submit", str(cfg), "--executor", "local",
           "--parallel", str(parallel), "--runs-root", str(root), "--no-report", "--wait"]
    if prune:
        cmd.append("--prune-never-fit" if prune == "all" else "--prune")
    t0 = time.time()
    subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT, timeout=7200)
    wall = time.time() - t0
    exp = root / "bench"
    kind = dict(zip([f"task-{i:03d}" for i in range(runs)], kinds(runs)))
    out: dict = {"wall_s": round(wall, 1), "trainer_cpu_s": 0.0, "job_cpu_s": 0.0,
                 "episode_wall_s": 0.0, "judgements": 0, "pruned": {}, "outcomes": {},
                 "healthy_pruned": [], "missing_cpu": []}
    for run in (exp / name for name in kind):
        doc = ledger.read_jobs(run)
        for e in doc["episodes"]:
            cpu = e.get("cpu") or {}
            if "trainer_s" not in cpu or "job_s" not in cpu:
                out["missing_cpu"].append(f"{run.name}#{e.get('n')}")
            out["trainer_cpu_s"] += cpu.get("trainer_s", 0.0)
            out["job_cpu_s"] += cpu.get("job_s", 0.0)
            out["judgements"] += cpu.get("judgements", 0)
            if isinstance(e.get("end_time"), (int, float)):
                out["episode_wall_s"] += e["end_time"] - e["start_time"]
        out["outcomes"][run.name] = f"{kind[run.name]}: {doc['outcome']}"
        if doc["outcome"] == "pruned":
            d = doc["episodes"][-1].get("pruned") or {}
            out["pruned"][run.name] = f"{kind[run.name]} at step {d.get('step')} ({d.get('verdict')})"
            if kind[run.name] == "healthy":
                out["healthy_pruned"].append(run.name)
    out["core_s"] = round(out["trainer_cpu_s"] + out["job_cpu_s"], 1)
    for k in ("trainer_cpu_s", "job_cpu_s", "episode_wall_s"):
        out[k] = round(out[k], 1)
    d = json.loads(subprocess.run([sys.executable, "-m", "jobs.cli", "diagnose", str(exp),
                                   "--json"], capture_output=True, text=True, cwd=ROOT).stdout)
    out["keep"] = d["keep"]
    out["verdicts"] = {r["name"]: r["verdict"] for r in d["runs"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--rules", choices=("all", "leak"), default="all",
                    help="all: --prune-never-fit; leak: --prune (leak and divergence rules)")
    ap.add_argument("--arm", choices=("both", "without", "with"), default="both")
    ap.add_argument("--keep", type=Path, help="keep the sweeps in this folder")
    args = ap.parse_args()
    t0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = {}
        if args.arm in ("both", "without"):
            out["without"] = sweep(work, args.runs, args.steps, args.parallel, None)
        if args.arm in ("both", "with"):
            out["with_prune"] = sweep(work, args.runs, args.steps, args.parallel, args.rules)
    if len(out) == 2:
        out["core_s_saved_frac"] = round(1 - out["with_prune"]["core_s"]
                                         / out["without"]["core_s"], 3)
        out["same_keep"] = out["without"]["keep"] == out["with_prune"]["keep"]
    t1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["benchmark_children_cpu_s"] = round(t1.ru_utime + t1.ru_stime - t0.ru_utime
                                            - t0.ru_stime, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
