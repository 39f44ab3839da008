"""What the structure metrics of issue 20 cost: per eval, and once per run.

Times, side by side on the same generated samples, the eval row without them (the per-axis W1,
pairwise distances and mode metrics: `qgan.evals.eval_metrics`) and with them (the trainer's
`Evaluator`: + precision/recall/density/coverage, sliced W1, mode weights, spread), at the
default eval size (512) and the papers' (2,500), in 1, 2, 8 and 16 dimensions (a 4-mode
mixture); the data profile built once at a run's first attempt (the mixture fit by BIC and
the mode grouping, on 4,000 rows); and the added cost as a share of a default run's wall time,
from the seconds per step of a real default `qgan train` (one eval every 25 steps).

    python benchmarks/eval_cost.py [--repeats 5] [--steps 300]
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
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def step_seconds(steps: int) -> float:
    """Median seconds per step of a real default run (2-D mixture file, default config)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mix.npy"
        np.save(data, mixture(2, 10_000, 1).astype(np.float32))
        config = Path(tmp) / "c.toml"
        config.write_text("")
        run = Path(tmp) / "run"
        code, _ = harness.train(run, config, ["data.target=file", f"data.path={data}",
                                              f"train.steps={steps}"])
        if code != 0:
            raise SystemExit(f"the default run failed ({code}): see {run}.log")
        steps_df = pd.read_parquet(run / "metrics" / "steps")
        return float(steps_df["step_seconds"].iloc[10:].median())


def main() -> int:
    from qgan.dataprofile import build, load_or_create
    from qgan.evals import Evaluator, eval_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    print("| d | eval size | eval row before (s) | with the structure metrics (s) | added (s) "
          "| profile, once per run (s) |")
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
    per_step = step_seconds(args.steps)
    interval = 25 * per_step
    print(f"\ndefault run: {per_step * 1000:.1f} ms per step (median of a {args.steps}-step "
          f"`qgan train` on a 2-D file), one eval of 512 samples every 25 steps = "
          f"{interval:.2f} s of training")
    for d, extra in added_default.items():
        print(f"- d = {d}: the structure metrics add {extra:.3f} s per eval, "
              f"{extra / (interval + extra):.1%} of the run's wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
