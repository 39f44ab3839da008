"""What the structure metrics of issue 20 cost: per eval, and once per run.

Times, side by side on the same generated samples, the eval row without them (the per-axis W1,
pairwise distances and mode metrics: `qgan.evals.eval_metrics`) and with them (the trainer's
`Evaluator`: + precision/recall/density/coverage, sliced W1, mode weights, spread), at the
default eval size (512) and the papers' (2,500), in 1, 2, 8 and 16 dimensions (a 4-mode
mixture); the data profile built once at a run's first attempt (the mixture fit by BIC and
the mode grouping, on 4,000 rows); and the added cost as a share of a default run's time, from
the CPU seconds per step of real default `qgan train` runs (one eval every 25 steps). CPU
seconds throughout: on a loaded machine they move least; on an idle one they are the wall
time (the work is single-threaded).

    python benchmarks/eval_cost.py [--repeats 5] [--steps 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402 - benchmarks/ is the script's folder


def mixture(d: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.zeros((4, d))
    if d == 1:
        c[:, 0] = [-3, -1, 1, 3]
    else:
        c[0, 0], c[1, 0], c[2, 1], c[3, 1] = 2.0, -2.0, 2.0, -2.0
    return c[rng.integers(0, 4, n)] + rng.normal(0, 0.2, (n, d))


def best_of(fn, repeats: int) -> float:
    """Median CPU seconds of `fn` (this process, all threads): what a loaded machine distorts
    least; the wall time equals it on an idle machine (the work is single-threaded numpy)."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def _run_cpu(tmp: Path, data: Path, steps: int) -> float:
    """CPU seconds (user + system) of one real default `qgan train` of `steps` steps."""
    import resource

    config = tmp / "c.toml"
    config.write_text("")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, _ = harness.train(tmp / f"run-{steps}", config, [
        "data.target=file", f"data.path={data}", f"train.steps={steps}"])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"the default run failed ({code}): see {tmp}/run-{steps}.log")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def step_cpu(steps: int) -> float:
    """CPU seconds per step of a default run on a 2-D data file, evals (every 25 steps, with
    the structure metrics) included: the difference of a long and a 50-step run, so the
    start-up and the data profile cancel out."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mix.npy"
        np.save(data, mixture(2, 10_000, 1).astype(np.float32))
        short = _run_cpu(Path(tmp), data, 50)
        long = _run_cpu(Path(tmp), data, 50 + steps)
    return (long - short) / steps


def main() -> int:
    from qgan.dataprofile import build, load_or_create
    from qgan.evals import Evaluator, eval_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    print("| d | eval size | eval row before (CPU s) | with the structure metrics (CPU s) | "
          "added (CPU s) | profile, once per run (CPU s) |")
    print("|---|---|---|---|---|---|")
    added_default = {}
    for d in (1, 2, 8, 16):
        train, holdout = mixture(d, 4000, 1), mixture(d, 1024, 2)
        t_profile = best_of(lambda: build(train, holdout, None, 0.0, seed=1, eval_size=512,
                                          max_modes=12), 1)
        for n in (512, 2500):
            with tempfile.TemporaryDirectory() as tmp:
                profile = load_or_create(Path(tmp), train, holdout, None, 0.0, seed=1,
                                         eval_size=n, max_modes=12)
            ev = Evaluator(holdout, None, 0.0, profile, n)
            x = mixture(d, n, 3)
            before = best_of(lambda: eval_metrics(x, holdout, None, 0.0), args.repeats)
            after = best_of(lambda: ev(x), args.repeats)
            if n == 512:
                added_default[d] = after - before
            print(f"| {d} | {n} | {before:.3f} | {after:.3f} | {after - before:.3f} | "
                  f"{t_profile:.2f} |")
    per_step = step_cpu(args.steps)
    interval = 25 * per_step
    print(f"\ndefault run: {per_step * 1000:.1f} ms of CPU per step (a {args.steps + 50}-step "
          "minus a 50-step `qgan train` on a 2-D file, evals included), one eval of 512 "
          f"samples every 25 steps = {interval:.2f} CPU s per eval interval")
    for d, extra in added_default.items():
        print(f"- d = {d}: the structure metrics add {extra:.3f} CPU s per eval, "
              f"{extra / interval:.1%} of the run's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
