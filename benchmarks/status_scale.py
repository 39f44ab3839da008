"""`qgan submit`, `status` and `cancel` at cluster scale (issue 13.4), on the development SLURM
cluster: a 1,000-task sweep split over a small MaxArraySize into several arrays, each
throttled to `%N`.

    eval "$(slurm/dev-cluster/up)"                        # as root
    .venv/bin/python benchmarks/status_scale.py [--tasks 1000] [--max-array 300] [--parallel 2]

Measured, each as the wall time of the `qgan` command a user runs (interpreter start
included): `--dry-run` (the split it shows), submit, `qgan status` with the 1,000 runs mostly
PENDING (median of `--repeats`), the squeue/sacct calls one refresh makes (counted by wrappers
put first on PATH), `qgan status` once every run directory holds a finished run (copies of a
real finished run of this sweep: attempts, checkpoints, Parquet metrics read for each row; the
first refresh decodes every run's Parquet, later ones only runs whose parts changed), and
`qgan cancel` of the whole sweep. MaxArraySize is restored at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
UP = ROOT / "slurm" / "dev-cluster" / "up"


def qgan(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    return time.perf_counter() - t0, proc


def counting_path(folder: Path, log: Path) -> dict:
    """An environment whose squeue and sacct append their command line to `log` first."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("squeue", "sacct"):
        real = shutil.which(name)
        wrapper = folder / name
        wrapper.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return dict(os.environ, PATH=f"{folder}:{os.environ['PATH']}")


def timed_status(exp_dir: Path, env: dict, log: Path, repeats: int) -> dict:
    times, calls, rows = [], [], []
    for _ in range(repeats):
        log.write_text("")
        seconds, proc = qgan("status", str(exp_dir), "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        times.append(seconds)
        calls.append(log.read_text().splitlines())
        rows = json.loads(proc.stdout)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    # the first refresh decodes every run's Parquet and fills each <run>/.status-cache.json;
    # the later ones decode only runs whose parts changed (none, once they have ended)
    return {"first_s": times[0], "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times),
            "runs": len(rows), "states": states,
            "calls_per_refresh": {c: sum(line.startswith(c) for line in calls[-1])
                                  for c in ("squeue", "sacct")},
            "command_chars": max((len(x) for x in calls[-1]), default=0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--max-array", type=int, default=300, help="MaxArraySize during the run")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("sbatch") or not os.environ.get("SLURM_CONF"):
        sys.exit("needs the development cluster: eval \"$(slurm/dev-cluster/up)\" (as root)")
    from conftest import SCENARIO_CONFIG, wait_for
    from jobs import ledger

    work = Path(tempfile.mkdtemp(prefix="qgan-status-scale-"))
    env_up = dict(os.environ, QGAN_SLURM_MAX_ARRAY_SIZE=str(args.max_array))
    subprocess.run([str(UP)], env=env_up, check=True, capture_output=True, timeout=180)
    out: dict = {"tasks": args.tasks, "max_array": args.max_array, "parallel": args.parallel}
    exp_dir = work / "runs" / "scale"
    try:
        cfg = work / "scale.toml"
        cfg.write_text(SCENARIO_CONFIG.format(steps=20, step_seconds=0).split("[sweep]")[0]
                       + f'[sweep]\n"run.seed" = {list(range(1, args.tasks + 1))}\n')
        submit = ("submit", str(cfg), "--executor", "slurm", "--profile", "dev", "--runs-root",
                  str(work / "runs"), "--parallel", str(args.parallel), "--no-report")
        seconds, proc = qgan(*submit, "--dry-run")
        assert proc.returncode == 0, proc.stderr
        out["dry_run_s"] = seconds
        out["split"] = next(x for x in proc.stdout.splitlines() if "submission(s) of" in x)
        seconds, proc = qgan(*submit)
        assert proc.returncode == 0, proc.stderr
        out["submit_s"] = seconds
        exp = ledger.read_experiment(exp_dir)
        out["arrays"] = exp["job_ids"]
        log = work / "calls.log"
        env = counting_path(work / "bin", log)
        out["status_pending"] = timed_status(exp_dir, env, log, args.repeats)
        first = wait_for(lambda: [r for r in ledger.run_names(exp, exp_dir)[:args.parallel * 2]
                                  if ledger.finished(exp_dir / r)], 600, "a finished run")[0]
        seconds, proc = qgan("cancel", str(exp_dir))
        assert proc.returncode == 0, proc.stderr[-2000:]
        out["cancel_s"] = seconds
        wait_for(lambda: not subprocess.run(["squeue", "-h", "-j", ",".join(out["arrays"])],
                                            capture_output=True, text=True).stdout.strip(),
                 300, "the cancelled jobs to leave the queue")
        for name in ledger.run_names(exp, exp_dir):  # every row now reads a real finished run
            if name != first:
                shutil.rmtree(exp_dir / name)
                shutil.copytree(exp_dir / first, exp_dir / name, symlinks=True)
        out["status_finished"] = timed_status(exp_dir, env, log, args.repeats)
    finally:
        subprocess.run([str(UP)], env={k: v for k, v in os.environ.items()
                                       if k != "QGAN_SLURM_MAX_ARRAY_SIZE"},
                       check=True, capture_output=True, timeout=180)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
