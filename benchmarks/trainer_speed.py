"""Whole training steps, side by side in one process, and what checkpoints and metrics cost.

For the default config (2 modes, 2 layers, cutoff 6, batch 32, n_critic 5, WGAN-GP, MLP
critic) it times one full training step (5 critic updates with gradient penalty + 1 generator
update, health metrics, guarded optimizer updates) with:
  (a) Strawberry Fields' batched TF backend, eager;
  (b) the compiled backend under tf.function;
  (c) the compiled backend under tf.function(jit_compile=True);
then one checkpoint save and one metrics flush (log_every rows of steps) as a fraction of a
step. Medians over --repeats after warm-up.

    python benchmarks/trainer_speed.py [--repeats 7] [--sf-repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--sf-repeats", type=int, default=5)
    args = ap.parse_args()


    from qgan.config import Config, config_from_dict
    from qgan.data import load_dataset
    from qgan.tflib import configure_tensorflow
    from qgan.trainer import Trainer

    configure_tensorflow()
    results = {}
    for label, backend, jit in (("sf (eager)", "sf", False), ("compiled, tf.function", "compiled", False),
                                ("compiled, XLA", "compiled", True)):
        cfg = config_from_dict({"generator": {"backend": backend}, "train": {"xla": jit}})
        data = load_dataset(cfg.data, cfg.run.seed)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, Path(tmp), data)
            step = trainer.step_fn
            t0 = time.perf_counter()
            step(1, 0)
            first = time.perf_counter() - t0
            n = args.sf_repeats if backend == "sf" else args.repeats
            counter = iter(range(2, 10_000))
            median = _median_time(lambda: step(next(counter), 0), n)
            results[label] = (median, first)
            print(f"{label:24s} step {median * 1e3:9.2f} ms   first call (trace/compile) "
                  f"{first:6.2f} s", flush=True)
            if label == "compiled, tf.function":
                from qgan.metrics import MetricsWriter
                from qgan.rundir import prepare

                prepare(Path(tmp), cfg)
                trainer.metrics = MetricsWriter(Path(tmp), 1, 1e9)
                row = {k: 0.0 for k in ("g_loss", "d_loss")}
                rows = cfg.train.log_every

                def flush() -> None:
                    for i in range(rows):
                        trainer.metrics.add("steps", {**row, "step": i, "revision": 0,
                                                      "wall_time": 0.0})
                    trainer.metrics.flush()

                ckpt = _median_time(lambda: trainer.ckpt.save(1, trainer._extra()), 7)
                fl = _median_time(flush, 7)
                results["checkpoint"] = ckpt
                results["flush"] = fl
    step_ms = results["compiled, tf.function"][0]
    sf = results["sf (eager)"][0]
    print()
    print("| step | median | first call | vs SF |")
    print("|---|---|---|---|")
    for label in ("sf (eager)", "compiled, tf.function", "compiled, XLA"):
        m, f = results[label]
        print(f"| {label} | {m * 1e3:.1f} ms | {f:.1f} s | {sf / m:.0f}x |")
    every = Config().checkpoint.every_steps
    print(f"\ncheckpoint save {results['checkpoint'] * 1e3:.1f} ms = "
          f"{results['checkpoint'] / step_ms:.1f} compiled steps; every {every} steps that is "
          f"{results['checkpoint'] / (every * step_ms):.1%} of step time")
    print(f"metrics flush of {Config().train.log_every} rows {results['flush'] * 1e3:.1f} ms = "
          f"{results['flush'] / step_ms:.1f} compiled steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
