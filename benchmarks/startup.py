"""Attempt start-up: process start -> first trained step of a resumed run (issue 14).

A requeued job starts a new `qgan train` process on a run directory that has a checkpoint: it
imports TensorFlow, builds the models, restores the checkpoint, traces the training step and
runs it. This script measures that, at the default config:

1. `qgan train /dev/null --run-dir D --set train.steps=2` once (a checkpoint at step 2);
2. --repeats times: `qgan train /dev/null --run-dir D --set train.steps=K+1
   --allow-config-change` (resume from step K, train one step), timing from just before the
   process is launched to the wall_time of step K+1's row in metrics/steps (written when the
   step has run), and to the attempt_start event (everything before tracing: imports, TF,
   models, checkpoint restore);
3. once, a breakdown in a child process that does what `qgan train` does, phase by phase
   (interpreter start, imports, TF init, data, models, restore, tracing, first call = graph
   optimisation + run, a second step).

    nice -n 5 python benchmarks/startup.py [--repeats 5] [--set KEY=VALUE ...]

Prints medians; writes nothing. --set is passed to every `qgan train` (e.g. train.xla=true).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _qgan(run_dir: Path, steps: int, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "jobs.cli", "train", "/dev/null", "--run-dir", str(run_dir),
           "--set", f"train.steps={steps}", "--allow-config-change"]
    for kv in extra:
        cmd += ["--set", kv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"qgan train failed ({done.returncode}):\n{done.stderr[-3000:]}")


def resume_times(run_dir: Path, steps: int, extra: list[str]) -> tuple[float, float, float]:
    """(to attempt_start, to the first trained step, whole process) in seconds."""
    import pandas as pd

    t0 = time.time()
    _qgan(run_dir, steps, extra)
    total = time.time() - t0
    rows = pd.read_parquet(run_dir / "metrics" / "steps")
    first = float(rows.loc[rows["step"] == steps, "wall_time"].max())
    events = pd.read_parquet(run_dir / "metrics" / "events")
    start = float(events.loc[events["kind"] == "attempt_start", "wall_time"].max())
    return start - t0, first - t0, total


def _child(run_dir: str, extra: list[str]) -> None:
    """The phases of a resume, in this process (printed as JSON: phase -> [wall seconds, CPU
    seconds of this process])."""
    marks = [("launch", float(os.environ["STARTUP_T0"]), 0.0),
             ("interpreter", time.time(), time.process_time())]

    def mark(name: str) -> None:
        marks.append((name, time.time(), time.process_time()))

    sys.path.insert(0, str(ROOT))
    from qgan.config import load_config

    cfg = load_config(Path("/dev/null"), ["train.steps=1000000", *extra])
    mark("config")
    import tensorflow as tf

    mark("import tensorflow")
    from qgan.data import load_dataset
    from qgan.trainer import Trainer, configure_tensorflow

    mark("import qgan")
    configure_tensorflow()
    tf.constant(1.0).numpy()
    mark("TF init")
    data = load_dataset(cfg.data, cfg.run.seed)
    mark("data")
    trainer = Trainer(cfg, Path(run_dir), data)
    mark("models + step object")
    step = trainer.ckpt.restore_latest().extra["step"] + 1
    mark("checkpoint restore")
    fn = trainer.step_fn
    if fn.compiled:
        fn._fn.get_concrete_function(tf.constant(step, tf.int32), tf.constant(0, tf.int32),
                                     tf.constant(False))
        mark("tracing")
    fn(step, 0)
    mark("first call (graph optimisation/compile + run)")
    fn(step + 1, 0)
    mark("second step")
    print(json.dumps({name: [t - marks[i][1], cpu - marks[i][2]]
                      for i, (name, t, cpu) in enumerate(marks[1:])}))


def breakdown(run_dir: Path, extra: list[str]) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
               STARTUP_T0=repr(time.time()))
    done = subprocess.run([sys.executable, __file__, "--child", str(run_dir), *sum(
        (["--set", kv] for kv in extra), [])], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.extra)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        _qgan(run_dir, 2, args.extra)
        results = [resume_times(run_dir, 3 + i, args.extra) for i in range(args.repeats)]
        for i, (start, first, total) in enumerate(results):
            print(f"resume {i + 1}: attempt_start {start:.2f} s, first trained step "
                  f"{first:.2f} s, process {total:.2f} s", flush=True)
        med = [statistics.median(r[k] for r in results) for k in range(3)]
        print(f"median of {args.repeats}: attempt_start {med[0]:.2f} s, first trained step "
              f"{med[1]:.2f} s, whole process {med[2]:.2f} s (load average "
              f"{os.getloadavg()[0]:.1f})")
        phases = breakdown(run_dir, args.extra)
    print("breakdown (one resume, in a child process): wall / CPU seconds")
    for name, (wall, cpu) in phases.items():
        print(f"  {name:48s} {wall:6.2f} / {cpu:5.2f}")
    print(f"  {'total':48s} {sum(p[0] for p in phases.values()):6.2f} / "
          f"{sum(p[1] for p in phases.values()):5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
