"""The postmortem on the researcher's own data (issue 20): what it says against the truth.

Builds its own data files (a weighted 2-D mixture with a 10 % mode, two curves: a half circle
and a sine wave, a heavy-tailed blob, and an 8-D mixture with a 10 % mode), trains the default
quantum generator and the classical baseline on each with `data.target = "file"` in real
`qgan train` processes (two at a time, `nice`), then for each run:

- what the postmortem says: `qgan diagnose RUN --json` (verdict, structure findings) and the
  run's data profile (the modes it found in the data file);
- the truth, measured independently from 5,000 samples drawn by `qgan sample` from the kept
  checkpoint, with the generating process known: each sample's true mode (within 3 std of its
  centre), the weights per mode, the share off the support (mixtures: off every mode; curves:
  farther than 3 noise std from the curve), the spread of a blob (quantiles of the distance
  from the centre against the true ones), and the sliced W1 to a fresh true sample minus its
  floor (the same distance between two fresh true samples): "distance-to-floor".

Prints one Markdown table. Every figure in BENCHMARKS.md under "Any data" comes from

    python benchmarks/any_data.py [--steps 3000] [--datasets ...] [--generators ...]
        [--seed 1] [--runs-root DIR] [--jobs 2] [--last] [--set KEY=VALUE ...]

(`--generators homodyne | homodyne-cat | born | born-nll | homodyne-nll`: issue 21's
homodyne output, BENCHMARKS.md, "Homodyne generator"; `-nll`: loss.likelihood_weight = 1;
`--last`: also the truth at the last checkpoint, one more row per run.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402 - benchmarks/ is the script's folder

N_ROWS = 10_000  # rows of each data file
N_SAMPLES = 5000  # drawn by `qgan sample` for the truth
MIX_W = (0.6, 0.3, 0.1)
MIX_C = np.array([[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0]])
MIX_STD = 0.3
MIX8_W = (0.4, 0.3, 0.2, 0.1)
MIX8_STD = 0.3
CURVE_NOISE = {"arc": 0.03, "wave": 0.05}
BLOB_DF, BLOB_SCALE = 3, 0.5
STRUCTURE = ("dropped_mode", "skewed_weights", "off_support", "missed_support", "too_narrow",
             "too_wide", "between_modes", "mode_collapse", "partial_collapse")
# The classical baseline of benchmarks/learning.py (PacGAN's 2-D setup)
CLASSICAL = ["generator.kind=classical", "generator.hidden=[400,400,400,400]",
             "discriminator.hidden=[200,200,200]", "train.batch_size=100", "loss.kind=bce",
             "loss.n_critic=1", "train.g_lr=0.0005", "train.d_lr=0.0005",
             "generator.latent_scale=1.0", "train.g_ema=0.99"]
# Issue 21's homodyne generator at the settings that worked on ring8 / grid25 (BENCHMARKS.md,
# "Homodyne generator"), and its latent-free cat start (bimodal's)
HOMODYNE = {"homodyne": ["generator.output=homodyne", "generator.cutoff=26", "train.g_lr=0.003"],
            "homodyne-cat": ["generator.output=homodyne", "generator.cutoff=26",
                             "generator.latent_dim=0", "generator.circuit_init=cat",
                             "generator.encode_amplitude=3.34"]}
# A latent-free Born machine of 4 layers (random start), and both with the exact
# likelihood of each real batch in the generator loss (loss.likelihood_weight)
HOMODYNE["born"] = ["generator.output=homodyne", "generator.cutoff=26", "generator.latent_dim=0",
                    "generator.layers=4", "train.g_lr=0.003"]
HOMODYNE["born-nll"] = HOMODYNE["born"] + ["loss.likelihood_weight=1"]
HOMODYNE["homodyne-nll"] = HOMODYNE["homodyne"] + ["loss.likelihood_weight=1"]


def _mix8_centres() -> np.ndarray:
    return np.random.default_rng(88).normal(0.0, 1.0, (4, 8)) * 2.0


def _wave_polyline(n: int = 20_001) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.c_[t, np.sin(2 * t)]


def _arc_polyline(n: int = 20_001) -> np.ndarray:
    t = np.linspace(0, np.pi, n)
    return np.c_[np.cos(t), np.sin(t)]


def _on_polyline(poly: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points uniform in arc length along a polyline."""
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))]
    u = rng.uniform(0, seg[-1], n)
    return np.c_[np.interp(u, seg, poly[:, 0]), np.interp(u, seg, poly[:, 1])]


def draw(name: str, n: int, seed: int) -> np.ndarray:
    """n samples of a dataset's true distribution."""
    rng = np.random.default_rng(seed)
    if name == "mixture":
        k = rng.choice(3, n, p=MIX_W)
        return MIX_C[k] + rng.normal(0, MIX_STD, (n, 2))
    if name == "mix8":
        k = rng.choice(4, n, p=MIX8_W)
        return _mix8_centres()[k] + rng.normal(0, MIX8_STD, (n, 8))
    if name in CURVE_NOISE:
        poly = _arc_polyline() if name == "arc" else _wave_polyline()
        return _on_polyline(poly, n, rng) + rng.normal(0, CURVE_NOISE[name], (n, 2))
    if name == "blob":
        return rng.standard_t(BLOB_DF, (n, 2)) * BLOB_SCALE
    raise ValueError(name)


DATASETS = ("mixture", "arc", "wave", "blob", "mix8")
TRUE_MODES = {"mixture": 3, "arc": 0, "wave": 0, "blob": 0, "mix8": 4}


def truth(name: str, x: np.ndarray) -> dict:
    """Independent figures of samples `x` against the known generating process."""
    from qgan.sliced import directions, sliced_w1

    out: dict = {}
    if name in ("mixture", "mix8"):
        c, w, std = (MIX_C, MIX_W, MIX_STD) if name == "mixture" else \
            (_mix8_centres(), MIX8_W, MIX8_STD)
        d = np.linalg.norm(x[:, None, :] - c[None], axis=2)
        near = d.argmin(axis=1)
        # "within 3 std" in d dimensions: the chi-square radius holding 99.73 %
        from scipy.stats import chi2
        hq = d[np.arange(len(x)), near] <= std * np.sqrt(chi2.ppf(0.9973, x.shape[1]))
        share = np.bincount(near[hq], minlength=len(c)) / len(x)
        out["weights"] = share.round(3).tolist()
        # the spread inside each mode: the std of its HQ samples over the true std (the
        # k-NN recall and coverage see a mode drawn too tightly; the weights do not)
        spread = [float(np.sqrt(((x[hq & (near == k)] - c[k]) ** 2).mean(axis=0).mean()) / std)
                  for k in range(len(c)) if (hq & (near == k)).sum() >= 10]
        out["spread"] = round(float(np.mean(spread)), 2) if spread else float("nan")
        out["dropped"] = [k for k in range(len(c)) if share[k] < 0.25 * w[k]]
        out["off_support"] = float(1 - hq.mean())
    elif name in CURVE_NOISE:
        from scipy.spatial import cKDTree
        poly = _arc_polyline() if name == "arc" else _wave_polyline()
        dist, idx = cKDTree(poly).query(x)
        on = dist <= 3 * CURVE_NOISE[name]
        out["off_support"] = float(1 - on.mean())
        # along the curve (20 pieces of equal length): the share of pieces that get at least
        # a quarter of their fair share, and the total variation from uniform
        seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))]
        piece = np.minimum((seg[idx[on]] / seg[-1] * 20).astype(int), 19)
        share = np.bincount(piece, minlength=20) / max(on.sum(), 1)
        out["curve_covered"] = float((share >= 0.25 / 20).mean())
        out["along_tv"] = float(0.5 * np.abs(share - 1 / 20).sum())
        # across it: the RMS distance of the on-curve samples over the noise's (1 = as thick)
        out["thickness"] = float(np.sqrt((dist[on] ** 2).mean()) / CURVE_NOISE[name])
    else:
        fresh = draw(name, 200_000, 7)
        q = (0.5, 0.9, 0.99)
        out["radius_ratio"] = (np.quantile(np.linalg.norm(x, axis=1), q)
                               / np.quantile(np.linalg.norm(fresh, axis=1), q)).round(2).tolist()
        out["off_support"] = float("nan")
    rng = np.random.default_rng(11)
    dirs = directions(x.shape[1], rng)
    a, b = draw(name, len(x), 101), draw(name, len(x), 102)
    floor = sliced_w1(a, b, dirs)
    out["sw"] = sliced_w1(x, a, dirs)
    out["sw_floor"] = floor
    out["sw_excess"] = out["sw"] - floor
    return out


@dataclass
class Job:
    dataset: str
    generator: str
    run: Path
    sets: list[str] = field(default_factory=list)
    seconds: float = float("nan")
    code: int | None = None


def _train(job: Job, config: Path) -> Job:
    job.code, job.seconds = harness.train(job.run, config, job.sets)
    return job


def postmortem(run: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "diagnose", str(run), "--json"],
                          cwd=ROOT, capture_output=True, text=True)
    d = json.loads(done.stdout)
    r = d["runs"][0]
    found = [f for f in d["findings"] if f["kind"] in STRUCTURE and f["run"] == r["name"]]
    prof = json.loads((run / "data_profile.json").read_text())
    m = prof["modes"]
    return {"verdict": r["verdict"], "flags": r["flags"],
            "findings": [(f["kind"], f["severity"]) for f in found],
            "found_modes": (max(m["mode_of"]) + 1) if m["distinct"] else 0,
            "data_weights": [round(v, 3) for v in m["weights"]] if m["distinct"] else [],
            "best": r["best"], "compute_s": (r["numbers"].get("compute_hours") or 0) * 3600}


def plan(args, root: Path) -> list[Job]:
    jobs = []
    for name in args.datasets:
        for gen in args.generators:
            sets = [f"train.steps={args.steps}", f"run.seed={args.seed}",
                    f"data.path={root / (name + '.npy')}", "data.target=file",
                    "eval.every_steps=50", f"run.name={name}-{gen}"]
            if gen == "classical":
                sets += CLASSICAL
            elif gen in HOMODYNE:
                sets += HOMODYNE[gen] + args.set
            elif name == "mix8":
                sets += ["generator.modes=3"]  # 3 x 3 = 9 features (<x>, <p>, <n>) >= 8
            jobs.append(Job(name, gen, root / f"{name}-{gen}", sets))
    return jobs


def row(job: Job, pm: dict, tr: dict) -> str:
    kinds = ", ".join(f"{k}{'!' if s == 'error' else ''}" for k, s in pm["findings"]) or "-"
    if job.dataset in ("mixture", "mix8"):
        t = (f"weights {tr['weights']}; dropped {tr['dropped'] or 'none'}; off "
             f"{tr['off_support']:.0%}; std in a mode x{tr['spread']}")
    elif job.dataset in CURVE_NOISE:
        t = (f"off curve {tr['off_support']:.0%}; curve covered {tr['curve_covered']:.0%} "
             f"(TV from uniform {tr['along_tv']:.2f}); thickness x{tr['thickness']:.2f}")
    else:
        t = f"radius q50/q90/q99 x{tr['radius_ratio']}"
    modes = f"{pm['found_modes']} ({TRUE_MODES[job.dataset]})"
    best = pm["best"] or {}
    return (f"| {job.dataset} | {job.generator} | {modes} | {pm['verdict']}"
            f"{' +' + ','.join(pm['flags']) if pm['flags'] else ''} | {kinds} | "
            f"{best.get('step')} | {t} | {tr['sw']:.3f} / {tr['sw_floor']:.3f} | "
            f"{tr['sw_excess']:.3f} | {pm['compute_s']:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--generators", nargs="+", default=["quantum", "classical"],
                    choices=["quantum", "classical", *HOMODYNE])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs-root", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more config override of every homodyne run")
    ap.add_argument("--last", action="store_true",
                    help="also the truth at the last checkpoint (a row marked 'last')")
    args = ap.parse_args()
    root = args.runs_root or Path(tempfile.mkdtemp(prefix="any-data-"))
    root.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        np.save(root / f"{name}.npy", draw(name, N_ROWS, 1).astype(np.float32))
    config = root / "base.toml"
    config.write_text("")  # every setting is a --set: the defaults otherwise
    jobs = plan(args, root)
    todo = [j for j in jobs if not (j.run / "checkpoints").is_dir()]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda j: _train(j, config), todo))
    print(f"runs in {root}; {args.steps} steps; sliced W1 to a fresh true sample of "
          f"{N_SAMPLES} / its floor; `!` = error finding\n")
    print("| data | generator | modes found (true) | verdict | structure findings | kept step "
          "| truth at the kept checkpoint (5,000 samples) | sliced W1 / floor | excess | "
          "step time (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for job in jobs:
        drawn = harness.sample(job.run, "best", N_SAMPLES)
        x = drawn[0] if drawn is not None else None
        if x is None:
            print(f"| {job.dataset} | {job.generator} | run failed ({job.code}) |")
            continue
        pm = postmortem(job.run)
        print(row(job, pm, truth(job.dataset, x)))
        drawn = harness.sample(job.run, "latest", N_SAMPLES) if args.last else None
        if drawn is not None:
            last = Job(job.dataset, f"{job.generator} (last)", job.run)
            print(row(last, {**pm, "best": {"step": drawn[1]}}, truth(job.dataset, drawn[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
