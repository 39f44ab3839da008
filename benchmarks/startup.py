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
        [--compare KEY=A,B]

Prints medians; writes nothing. --set is passed to every `qgan train` (e.g. train.xla=true).
--compare KEY=A,B measures two settings side by side: the resumes alternate between
`--set KEY=A` and `--set KEY=B` (the order rotated every round), each gets its breakdown, and
one child process times the training step under both (two step objects sharing the models,
called alternately, medians of 300 calls each after warm-up), so that a setting that starts
faster is also seen not to train slower.
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
    # cwd: `python -m` puts the working directory first on sys.path, before PYTHONPATH
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"qgan train failed ({done.returncode}):\n{done.stderr[-3000:]}")


def resume_times(run_dir: Path, steps: int, extra: list[str]
                 ) -> tuple[float, float, float, float]:
    """(to attempt_start, to the first trained step, whole process, CPU seconds of the whole
    process) in seconds. The CPU time is what a loaded machine distorts least."""
    import resource

    import pandas as pd

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    c0, t0 = cpu(), time.time()
    _qgan(run_dir, steps, extra)
    total, cpu_s = time.time() - t0, cpu() - c0
    rows = pd.read_parquet(run_dir / "metrics" / "steps")
    first = float(rows.loc[rows["step"] == steps, "wall_time"].max())
    events = pd.read_parquet(run_dir / "metrics" / "events")
    start = float(events.loc[events["kind"] == "attempt_start", "wall_time"].max())
    return start - t0, first - t0, total, cpu_s


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
    from qgan.tflib import tf  # as the trainer does: without Keras' optional imports
    mark("import tensorflow")
    from qgan.data import load_dataset
    from qgan.tflib import configure_tensorflow
    from qgan.trainer import Trainer

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


def _step_child(run_dir: str, extra: list[str], key: str, values: list[str]) -> None:
    """Median step time (ms) under each value of `key`, alternating in this process (JSON)."""
    sys.path.insert(0, str(ROOT))
    from qgan.config import load_config
    from qgan.data import load_dataset
    from qgan.step import AdversarialStep
    from qgan.tflib import configure_tensorflow
    from qgan.trainer import Trainer

    configure_tensorflow()
    cfg = load_config(Path("/dev/null"), ["train.steps=1000000", *extra])
    trainer = Trainer(cfg, Path(run_dir), load_dataset(cfg.data, cfg.run.seed))
    trainer.ckpt.restore_latest()
    base = trainer.step_fn
    steps = {}
    for value in values:
        vcfg = load_config(Path("/dev/null"), ["train.steps=1000000", *extra, f"{key}={value}"])
        steps[value] = AdversarialStep(vcfg, base.gen, base.disc, base.g_opt, base.d_opt,
                                       trainer.data, True, base.generators)
    times: dict[str, list[float]] = {v: [] for v in values}
    for k in range(350):
        for value in values[k % 2:] + values[:k % 2]:
            t0 = time.perf_counter()
            steps[value](10_000 + k, 0)
            if k >= 50:
                times[value].append(time.perf_counter() - t0)
    print(json.dumps({v: 1000 * statistics.median(t) for v, t in times.items()}))


def _run_child(args: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
               STARTUP_T0=repr(time.time()))
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return done.stdout.strip().splitlines()[-1]


def _sets(extra: list[str]) -> list[str]:
    return sum((["--set", kv] for kv in extra), [])


def breakdown(run_dir: Path, extra: list[str]) -> dict[str, list[float]]:
    return json.loads(_run_child(["--child", str(run_dir), *_sets(extra)]))


def _print_breakdown(title: str, phases: dict[str, list[float]]) -> None:
    print(f"breakdown{title} (one resume, in a child process): wall / CPU seconds")
    for name, (wall, cpu) in phases.items():
        print(f"  {name:48s} {wall:6.2f} / {cpu:5.2f}")
    print(f"  {'total':48s} {sum(p[0] for p in phases.values()):6.2f} / "
          f"{sum(p[1] for p in phases.values()):5.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--compare", metavar="KEY=A,B", help="two values of one config key")
    ap.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    ap.add_argument("--step-child", nargs=2, metavar=("RUN_DIR", "KEY=A,B"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.extra)
        return 0
    if args.step_child:
        key, values = args.step_child[1].split("=", 1)
        _step_child(args.step_child[0], args.extra, key, values.split(","))
        return 0
    variants = {"": args.extra}
    if args.compare:
        key, values = args.compare.split("=", 1)
        variants = {f"{key}={v}": [*args.extra, f"{key}={v}"] for v in values.split(",")}
    names = list(variants)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        _qgan(run_dir, 2, args.extra)
        results: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
        for i in range(args.repeats):
            for name in names[i % len(names):] + names[:i % len(names)]:
                steps = 3 + sum(len(r) for r in results.values())
                r = resume_times(run_dir, steps, variants[name])
                results[name].append(r)
                print(f"resume {i + 1} {name}: attempt_start {r[0]:.2f} s, first trained step "
                      f"{r[1]:.2f} s, process {r[2]:.2f} s ({r[3]:.2f} CPU s)", flush=True)
        for name in names:
            med = [statistics.median(r[k] for r in results[name]) for k in range(4)]
            print(f"median of {args.repeats} {name}: attempt_start {med[0]:.2f} s, first "
                  f"trained step {med[1]:.2f} s, whole process {med[2]:.2f} s ({med[3]:.2f} "
                  f"CPU s) (load average {os.getloadavg()[0]:.1f})")
        for name in names:
            _print_breakdown(f" {name}" if name else "", breakdown(run_dir, variants[name]))
        if args.compare:
            ms = json.loads(_run_child(["--step-child", str(run_dir), args.compare,
                                        *_sets(args.extra)]))
            print("step time, one process, alternating, median of 300: " + ", ".join(
                f"{key}={v} {t:.2f} ms" for v, t in ms.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
