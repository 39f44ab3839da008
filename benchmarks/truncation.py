"""Accuracy of the total-photon-number truncation against the per-mode one (issue 14).

For a generator's circuit (the default generator's initial weights at 2, 3 and 4 modes, 2
layers; and trained default generators restored from run directories with the project's own
code, `qgan.sampling.load_generator`), on a fixed batch of training latents: the error of <x>
(every mode's), of the generator's outputs (features through its trained readout) and of the
trace, each the maximum over the batch, against a converged reference (CompiledBackend in
complex128 at a large per-mode cutoff; its own error is printed: the change from a cutoff 2
lower). Every simulation runs in complex128, so the figures are the truncations' errors, not
rounding. For each per-mode cutoff c it prints the smallest total cutoff whose <x> error is at
most c's, and the basis states of each (c^M and C(T - 1 + M, M)).

Usage: python benchmarks/truncation.py [--runs RUN_DIR ...] [--batch 128]
Prints markdown tables; writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qgan.circuits.compiled import CompiledBackend  # noqa: E402
from qgan.circuits.total import TotalBackend, basis_size  # noqa: E402
from qgan.config import load_config  # noqa: E402
from qgan.models import build_models, latent_uniform  # noqa: E402

# per-mode cutoffs compared, and the reference's per-mode cutoff, by number of modes
PER_MODE = {2: [4, 6, 8, 10, 12], 3: [4, 6, 8, 10], 4: [4, 5, 6, 7, 8]}
REFERENCE = {2: 30, 3: 18, 4: 13}


@dataclasses.dataclass
class Problem:
    label: str
    model: object  # a QuantumModel: spec, circuit weights, input scale, readout
    latents: np.ndarray


def _features(model, spec, latents, truncation: str, cutoff: int):
    """(features, outputs, trace) in complex128 at `cutoff` with `truncation`."""
    spec = dataclasses.replace(spec, cutoff=cutoff, truncation=truncation)
    backend = (TotalBackend if truncation == "total" else CompiledBackend)(spec, tf.complex128)
    w = {k: tf.cast(v, tf.float64) for k, v in model.circuit.items()}
    out = backend(w, tf.constant(latents * model.input_scale, tf.float64))
    q = out.quads.numpy()
    readout = model.readout.numpy().astype(np.float64)
    y = q * readout if spec.readout == "x" else q @ readout
    if model.readout_bias is not None:
        y = y + model.readout_bias.numpy()
    return q[:, :spec.modes], y, out.trace.numpy()


def _errors(got, ref) -> tuple[float, float, float]:
    return tuple(float(np.abs(g - r).max()) for g, r in zip(got, ref))


def evaluate(p: Problem) -> list[str]:
    spec = p.model.spec
    m = spec.modes
    big = REFERENCE[m]
    ref = _features(p.model, spec, p.latents, "mode", big)
    ref_err = _errors(_features(p.model, spec, p.latents, "mode", big - 2), ref)
    lines = [f"{p.label} ({m} modes, {spec.layers} layers; reference: per-mode cutoff {big}, "
             f"its own <x> error {ref_err[0]:.0e}; min trace {ref[2].min():.4f})", ""]
    lines.append("| per-mode cutoff (states) | <x> error | output error | trace error "
                 "| same total cutoff (states): <x> error | matched total cutoff (states) "
                 "| its <x> / output / trace error |")
    lines.append("|---|---|---|---|---|---|---|")
    cache: dict[int, tuple[float, float, float]] = {}

    def total_err(t: int) -> tuple[float, float, float]:
        if t not in cache:
            cache[t] = _errors(_features(p.model, spec, p.latents, "total", t), ref)
        return cache[t]

    for c in PER_MODE[m]:
        e = _errors(_features(p.model, spec, p.latents, "mode", c), ref)
        same = total_err(c)
        t = c
        while total_err(t)[0] > e[0] and t < m * (c - 1) + 1:
            t += 1
        te = total_err(t)
        lines.append(f"| {c} ({c ** m:,}) | {e[0]:.1e} | {e[1]:.1e} | {e[2]:.1e} | "
                     f"{c} ({basis_size(m, c):,}): {same[0]:.1e} | {t} ({basis_size(m, t):,}) "
                     f"| {te[0]:.1e} / {te[1]:.1e} / {te[2]:.1e} |")
        print(lines[-1], flush=True)
    return lines + [""]


def initial_problem(modes: int, batch: int) -> Problem:
    """The default generator (`qgan config --default`) at `modes` modes, initial weights."""
    cfg = load_config(None, [f"generator.modes={modes}"])
    models = build_models(cfg, 2)
    return Problem("default generator, initial weights", models.sampling,
                   latent_uniform(cfg, batch, [cfg.run.seed, 7]))


def trained_problem(run_dir: Path, batch: int) -> Problem:
    """A run's generator as `qgan sample` restores it (the best checkpoint, EMA weights)."""
    from qgan.sampling import load_generator

    loaded = load_generator(run_dir, "best")
    cfg = loaded.cfg
    return Problem(f"trained: {run_dir.parent.name}/{run_dir.name} (step {loaded.step})",
                   loaded.models.sampling, latent_uniform(cfg, batch, [cfg.run.seed, 7]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[],
                        help="run directories of trained quantum generators")
    parser.add_argument("--modes", type=int, nargs="*", default=[2, 3, 4],
                        help="modes of the initial-weights problems")
    parser.add_argument("--batch", type=int, default=128, help="latents per problem")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    problems = [initial_problem(m, args.batch) for m in args.modes]
    problems += [trained_problem(r, args.batch) for r in args.runs]
    out = []
    for p in problems:
        print(f"== {p.label}, {p.model.spec.modes} modes", flush=True)
        out += evaluate(p)
    print(f"\nload average {os.getloadavg()[0]:.1f}\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
