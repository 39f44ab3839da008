"""Why the quantum generator leaves samples between two modes: its map is band-limited.

A phase-encoded generator's outputs are expectation values of a state whose Fock support is
bounded by the cutoff, so each output is a trigonometric polynomial in the latent angles. To
put two separated modes (bimodal: centres 2 apart, std 0.15, 13 std between their 3-std
edges) in its samples, the map has to cross the gap, and a polynomial of low degree cannot
cross steeply: the latent mass spent on the crossing is the band of non-high-quality samples.
Three measurements (issue 9, BENCHMARKS.md "Learning"):

    python benchmarks/band_limit.py ceiling [--degrees 3 5 7 10 16 30]
        The HQ fraction of the best (least-squares) degree-D approximation of the bimodal
        transport map along the modes' axis: what a map of that degree can reach.
    python benchmarks/band_limit.py spectrum RUN [RUN ...]
        Trained runs (latest checkpoint, the sampling generator): on a 256 x 256 grid of
        latents, the HQ fraction, the fraction of samples between the modes, and the degree
        holding 99 % / 99.9 % of the power of the output along the modes' axis.
    python benchmarks/band_limit.py fit [--cutoffs 6 10 12 16 20] [--steps 1500]
        The generator fitted to bimodal data directly, without a critic (sliced Wasserstein-2,
        64 random directions, batch 1,024, Adam 1e-2, trace penalty 1): what the circuit can
        represent at each cutoff, separated from GAN training. The classical 4 x 400 MLP
        (Adam 1e-3) is the control row.

Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STD = 0.15  # the project's default mode std (bimodal centres at +-(1/sqrt 2, 1/sqrt 2))


def _hq_1d(f: np.ndarray) -> float:
    """Fraction of points within 3 std of +-1 (the two modes, on the axis through them)."""
    return float(((np.abs(f - 1) <= 3 * STD) | (np.abs(f + 1) <= 3 * STD)).mean())


def ceiling(degrees: list[int]) -> str:
    """The bimodal quantile map laid out as an even periodic function of the angle, truncated
    to its first D harmonics (the least-squares best of degree D)."""
    from scipy.stats import norm

    n = 1 << 16
    theta = np.linspace(-np.pi, np.pi, n, endpoint=False)
    u = np.clip(np.abs(theta) / np.pi, 1e-9, 1 - 1e-9)
    z = np.clip(norm.ppf(np.where(u < 0.5, 2 * u, 2 * u - 1)), -2.9, 2.9)  # inside HQ
    target = np.where(u < 0.5, -1.0, 1.0) + STD * z
    coeffs = np.fft.rfft(target)
    rows = ["| degree D | HQ % of the best degree-D map |", "|---|---|"]
    for d in degrees:
        kept = coeffs.copy()
        kept[d + 1:] = 0
        rows.append(f"| {d} | {100 * _hq_1d(np.fft.irfft(kept, n)):.1f} |")
    return "\n".join(rows)


def spectrum(runs: list[Path]) -> str:
    import tensorflow as tf

    from qgan.data import load_dataset
    from qgan.evals import paper_mode_metrics
    from qgan.sampling import load_generator

    rows = ["| run | cutoff | phase_range | step | HQ % | between the modes % | degree (99 % / "
            "99.9 % of the power) |", "|---|---|---|---|---|---|---|"]
    n = 256
    for run in runs:
        loaded = load_generator(run, "latest")
        cfg, gen = loaded.cfg, loaded.models.sampling
        ls = cfg.generator.latent_scale

        def outputs(half_width: float) -> np.ndarray:
            t = np.linspace(-half_width, half_width, n, endpoint=False, dtype=np.float32)
            z = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
            return np.concatenate([gen(tf.constant(z[i:i + 4096]))[0].numpy()
                                   for i in range(0, len(z), 4096)])

        y = outputs(ls)  # the training range of the latent
        along = ((y[:, 0] + y[:, 1]) / np.sqrt(2)).reshape(n, n)  # the axis through the modes
        # The degree is a property of the map over the whole circle of angles: with
        # phase_range < 1 the training range is an arc, and a window would add a jump.
        full = outputs(ls / cfg.generator.phase_range)
        circle = ((full[:, 0] + full[:, 1]) / np.sqrt(2)).reshape(n, n)
        power = np.abs(np.fft.rfft2(circle - circle.mean())) ** 2
        k1 = np.minimum(np.arange(n), n - np.arange(n))[:, None]
        k2 = np.arange(power.shape[1])[None, :]
        degree = np.maximum(k1, k2).ravel()
        share = power.ravel() / power.sum()
        cum = np.array([share[degree <= k].sum() for k in range(n // 2)])
        data = load_dataset(cfg.data, cfg.run.seed)
        hq, _, _ = paper_mode_metrics(y, data.centers, data.std)
        between = float((np.abs(along) < 1 - 3 * data.std).mean())
        rows.append(f"| {run.name} | {cfg.generator.cutoff} | {cfg.generator.phase_range} | "
                    f"{loaded.step} | {100 * hq:.1f} | {100 * between:.1f} | "
                    f"{int(np.argmax(cum >= 0.99))} / {int(np.argmax(cum >= 0.999))} |")
    return "\n".join(rows)


def _fit_one(sets: list[str], steps: int, lr: float, batch: int) -> tuple[float, float, float]:
    """(HQ at the end, trace mean, seconds) of one direct fit."""
    import keras
    import tensorflow as tf

    from qgan.config import load_config
    from qgan.data import load_dataset
    from qgan.evals import paper_mode_metrics
    from qgan.models import Generators, generate, latent_uniform

    cfg = load_config(None, sets)
    data = load_dataset(cfg.data, cfg.run.seed)
    gens = Generators(cfg, data.dim)
    gens.init_readout(cfg, data.train)
    gen = gens.train
    quantum = cfg.generator.kind == "quantum"
    opt = keras.optimizers.Adam(lr)
    real = tf.constant(data.train)
    rng = np.random.default_rng(0)

    @tf.function
    def step(z, x, proj):
        with tf.GradientTape() as tape:
            y, trace = gen(z)
            a = tf.sort(tf.matmul(y, proj), axis=0)
            b = tf.sort(tf.matmul(x, proj), axis=0)
            loss = tf.reduce_mean((a - b) ** 2)
            if quantum:
                loss += tf.reduce_mean(1.0 - trace)
        grads = tape.gradient(loss, gen.weights)
        opt.apply_gradients(zip(grads, gen.weights))

    t0 = time.time()
    for s in range(steps):
        z = latent_uniform(cfg, batch, [s, 7])
        x = tf.gather(real, rng.integers(0, len(data.train), batch))
        p = rng.normal(size=(data.dim, 64))
        step(tf.constant(z), x, tf.constant(p / np.linalg.norm(p, axis=0), tf.float32))
    samples, traces = generate(gen, latent_uniform(cfg, 2500, 99))
    hq, _, _ = paper_mode_metrics(samples, data.centers, data.std)
    return hq, float(np.nanmean(traces)) if quantum else float("nan"), time.time() - t0


def fit(cutoffs: list[int], steps: int, batch: int) -> str:
    rows = ["| generator | cutoff | HQ % after the fit | trace mean | seconds |",
            "|---|---|---|---|---|"]
    for c in cutoffs:
        hq, trace, sec = _fit_one([f"generator.cutoff={c}"], steps, 1e-2, batch)
        rows.append(f"| quantum (defaults) | {c} | {100 * hq:.1f} | {trace:.3f} | {sec:.0f} |")
    hq, _, sec = _fit_one(["generator.kind=classical", "generator.hidden=[400,400,400,400]",
                           "generator.latent_scale=1.0"], steps, 1e-3, batch)
    rows.append(f"| classical 4 x 400 | - | {100 * hq:.1f} | - | {sec:.0f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("ceiling")
    c.add_argument("--degrees", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8, 10, 12, 16, 20,
                                                              30])
    s = sub.add_parser("spectrum")
    s.add_argument("runs", type=Path, nargs="+")
    f = sub.add_parser("fit")
    f.add_argument("--cutoffs", type=int, nargs="+", default=[6, 10, 12, 16, 20])
    f.add_argument("--steps", type=int, default=1500)
    f.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()
    if args.what == "ceiling":
        print(ceiling(args.degrees))
    elif args.what == "spectrum":
        print(spectrum(args.runs))
    else:
        print(fit(args.cutoffs, args.steps, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
