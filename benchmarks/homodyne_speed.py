"""Training-step time of the homodyne generator beside today's default (issue 21).

    python benchmarks/homodyne_speed.py [--steps 20] [--cutoffs 16 26]

Builds the trainer's models and AdversarialStep in-process (bimodal, defaults otherwise),
runs 3 warm-up steps (tracing), then times `--steps` steps; prints the median seconds per
step (wall) and the mean CPU seconds per step (this process, all threads: on a shared
machine the steadier figure) of the default ('expectation', cutoff 10), of 'expectation' at
each cutoff, and of 'homodyne' at each cutoff (per-mode and total truncation, and the
latent-free Born machine, generator.latent_dim = 0, whose one state is simulated once per
call), with 4 layers, and with the likelihood term (loss.likelihood_weight); and the
one-mode heterodyne ring (BENCHMARKS.md "Heterodyne").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def step_seconds(overrides: dict, steps: int) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds) per training step; `overrides`: generator
    keys, plus optional "loss" and "train" tables."""
    overrides = dict(overrides)
    from qgan.config import config_from_dict
    from qgan.data import load_dataset
    from qgan.models import build_models
    from qgan.step import AdversarialStep

    cfg = config_from_dict({"generator": overrides, "loss": overrides.pop("loss", {}),
                            "train": overrides.pop("train", {})})
    data = load_dataset(cfg.data, cfg.run.seed)
    m = build_models(cfg, data.dim)
    step = AdversarialStep(cfg, m.generator, m.discriminator, m.g_opt, m.d_opt, data, True,
                           m.generators)
    for i in range(3):
        step(i, 0)
    times = []
    cpu0 = time.process_time()
    for i in range(steps):
        t0 = time.perf_counter()
        step(3 + i, 0)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), (time.process_time() - cpu0) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[16, 26])
    args = ap.parse_args()
    rows = [("expectation (default, cutoff 10)", {})]
    for c in args.cutoffs:
        hom = {"output": "homodyne", "cutoff": c}
        rows.append((f"expectation, cutoff {c}", {"cutoff": c}))
        rows.append((f"homodyne, cutoff {c}", hom))
        rows.append((f"homodyne, cutoff {c}, total truncation", dict(hom, truncation="total")))
        rows.append((f"homodyne, cutoff {c}, latent-free", dict(hom, latent_dim=0)))
        rows.append((f"homodyne, cutoff {c}, latent-free, 4 layers", dict(
            hom, latent_dim=0, layers=4)))
        rows.append((f"homodyne, cutoff {c}, latent-free, 4 layers, likelihood term", dict(
            hom, latent_dim=0, layers=4, loss={"likelihood_weight": 1.0})))
        rows.append((f"homodyne, cutoff {c}, likelihood term (a latent: 64 states)", dict(
            hom, loss={"likelihood_weight": 1.0})))
    rows.append(("heterodyne, 1 mode, cutoff 40, latent-free, 4 layers, ring start, "
                 "likelihood term", {"output": "heterodyne", "modes": 1, "cutoff": 40,
                                     "latent_dim": 0, "layers": 4, "circuit_init": "ring",
                                     "encode_amplitude": 4.7, "init_std": 0.0,
                                     "loss": {"likelihood_weight": 1.0}}))
    base = None
    print("| generator | wall s / step (median) | x default | CPU s / step | x default |\n"
          "|---|---|---|---|---|")
    for name, over in rows:
        wall, cpu = step_seconds(over, args.steps)
        base = base or (wall, cpu)
        print(f"| {name} | {wall:.4f} | {wall / base[0]:.1f} | {cpu:.4f} | {cpu / base[1]:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
