"""Is a trained quantum generator's quality physical, or an artefact of the Fock truncation?

Restores a run's checkpoint (the generator `qgan sample` uses), re-simulates the same weights at
the run's cutoff and at a larger one, and prints the papers' HQ fraction, modes captured and
the Fock trace for the same 2,500 latents. The circuit weights do not depend on the cutoff, so
the larger cutoff is the same circuit with (almost) nothing truncated: if HQ holds there, the
samples are not simulation artefacts.

    python benchmarks/cutoff_check.py RUN [RUN ...] [--cutoff 12] [--checkpoint latest]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_SAMPLES = 2500


def check(run: Path, cutoff: int, which: str) -> list[str]:
    from qgan.data import mixture_centers
    from qgan.evals import paper_mode_metrics
    from qgan.models import Generators, generate, latent_uniform
    from qgan.sampling import data_dim, load_generator

    loaded = load_generator(run, which)
    cfg = loaded.cfg
    z = latent_uniform(cfg, N_SAMPLES, 0)
    centers = mixture_centers(cfg.data.target, cfg.data.scale)
    lines = []
    for c in (cfg.generator.cutoff, cutoff):
        wider = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, cutoff=c))
        gens = Generators(wider, data_dim(cfg, run))
        for dst, src in zip(gens.sampling.weights, loaded.models.sampling.weights):
            dst.assign(src)
        x, trace = generate(gens.sampling, z)
        hq, captured, _ = paper_mode_metrics(x, centers, cfg.data.std)
        lines.append(f"| {run.name} | {loaded.step} | {c} | {100 * hq:.1f} | {captured} | "
                     f"{trace.mean():.4f} | {trace.min():.4f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    ap.add_argument("--cutoff", type=int, default=12, help="the larger cutoff (default 12)")
    ap.add_argument("--checkpoint", default="latest", help="best | latest (default latest)")
    args = ap.parse_args()
    print("| run | step | cutoff | HQ % | modes | trace mean | trace min |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        for line in check(run, args.cutoff, args.checkpoint):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
