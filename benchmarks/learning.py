"""Learning quality on the GAN literature's 2-D mixtures, measured the papers' way.

Trains the quantum and the classical generators on bimodal, ring8 and grid25, at the project's
defaults (std 0.15, scale 1) and at the papers' settings (PacGAN/VEEGAN: ring radius 1, std
0.01; grid spacing 2, std 0.05), over seeds, each in a real `qgan train` process (two at a
time, `nice`), and prints one Markdown table (median over seeds, min-max in brackets) of
modes captured, high-quality (HQ) %, reverse KL and W1, from 2,500 generated samples of the
best checkpoint (lowest W1, the early-stopping metric) and of the last one. The protocol is the
papers' (qgan.evals.paper_mode_metrics): HQ = within 3 std of the nearest centre; a mode is
captured with >= 1 HQ sample; reverse KL of the HQ histogram against uniform.

    python benchmarks/learning.py [--quick] [--targets ring8 grid25] [--settings papers]
        [--generators quantum classical] [--seeds 1 2 3] [--steps 3000]
        [--set KEY=VALUE ...] [--classical-set KEY=VALUE ...] [--runs-root DIR]

The 2,500 samples are drawn by `qgan sample RUN --checkpoint best|latest -n 2500` (a real
process each) from the run's best checkpoint (checkpoint.best_metric = w1_mean: the eval with
the lowest W1) and from its last one: the generator a user would take away (the moving average
with train.g_ema > 0). The spread of the last five evals comes from the evals' own
`paper_hq_frac` (eval.n_samples = 2500).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402 - benchmarks/ is the script's folder

N_SAMPLES = 2500  # what VEEGAN and PacGAN draw per evaluation

# (target, setting) -> data overrides. The papers have no bimodal target.
DATA = {
    ("bimodal", "defaults"): [],
    ("ring8", "defaults"): ["data.target=ring8"],
    ("grid25", "defaults"): ["data.target=grid25"],
    ("ring8", "papers"): ["data.target=ring8", "data.scale=1.0", "data.std=0.01"],
    ("grid25", "papers"): ["data.target=grid25", "data.scale=4.0", "data.std=0.05"],
}
# The papers' GAN rows (PacGAN, Lin et al. 2018, Table 2, after VEEGAN): modes captured, HQ %,
# reverse KL; ring8 of 8 modes, grid25 of 25.
ANCHORS = {"ring8": "GAN 6.3 modes, 98.2 % HQ, rev-KL 0.45; PacGAN4 7.8, 95.9 %, 0.07",
           "grid25": "GAN 17.3 modes, 94.8 % HQ, rev-KL 0.70; PacGAN4 24.8, 93.6 %, 0.04"}
# The classical baseline: PacGAN's 2-D setup as far as this harness has it (generator 4 x 400,
# discriminator 3 x 200 (PacGAN: maxout; here LeakyReLU), non-saturating GAN loss, one D step
# per G step, batch 100), with Adam at 5e-4 and an EMA of the generator (measured in
# BENCHMARKS.md: at 1e-4 nothing was learnt in 3,000 steps; without EMA HQ oscillated 30-80 %;
# a decay of 0.999 still lagged far behind after 2,500 steps, 0.99 did not).
CLASSICAL = ["generator.kind=classical", "generator.hidden=[400,400,400,400]",
             "discriminator.hidden=[200,200,200]", "train.batch_size=100", "loss.kind=bce",
             "loss.n_critic=1", "train.g_lr=0.0005", "train.d_lr=0.0005",
             "generator.latent_scale=1.0", "train.g_ema=0.99"]
STEPS = {"bimodal": 3000, "ring8": 3000, "grid25": 3000}


@dataclass
class Job:
    target: str
    setting: str
    generator: str
    seed: int
    steps: int
    sets: list[str]
    run: Path
    seconds: float = float("nan")
    code: int | None = None


def _train(job: Job, config: Path) -> Job:
    job.code, job.seconds = harness.train(job.run, config, job.sets)
    return job


def run_samples(run_dir: Path, which: str) -> tuple[np.ndarray, int] | None:
    return harness.sample(run_dir, which, N_SAMPLES)


def _floor(run, real: np.ndarray) -> float:
    """W1 of a fresh real sample of N_SAMPLES against the held-out set: the best W1 can be."""
    from qgan.config import config_from_dict
    from qgan.data import load_dataset

    cfg = config_from_dict({"data": {k.split(".", 1)[1]: v for k, v in run.config.items()
                                     if k.startswith("data.")}})
    fresh = load_dataset(cfg.data, 10_000 + int(run.config["run.seed"])).train[:N_SAMPLES]
    return max(wasserstein_distance(fresh[:, i], real[:, i]) for i in range(real.shape[1]))


def measure(path: Path) -> dict | None:
    """The papers' figures of one run at its best and last evals (None if it has no evals)."""
    from analysis.rundata import load_run, real_samples
    from qgan.data import mixture_centers
    from qgan.evals import paper_mode_metrics

    run = load_run(path)
    ev = run.evals.dropna(subset=["w1_mean"])
    real = real_samples(run)
    if ev.empty or real is None:
        return None
    centers = mixture_centers(run.config["data.target"], float(run.config["data.scale"]))
    std = float(run.config["data.std"])
    out: dict = {"floor": _floor(run, real), "last_step": int(ev["step"].iloc[-1])}
    hq_all = ev["paper_hq_frac"].to_numpy() * 100
    out["last5_spread"] = float(np.ptp(hq_all[-5:])) if len(hq_all) >= 5 else float("nan")
    for which, checkpoint in (("best", "best"), ("last", "latest")):
        drawn = run_samples(path, checkpoint)
        if drawn is None or not np.isfinite(drawn[0]).all():
            continue
        x, step = drawn
        hq, captured, rkl = paper_mode_metrics(x, centers, std)
        w1 = max(wasserstein_distance(x[:, i], real[:, i]) for i in range(x.shape[1]))
        d = np.sqrt(((x[:, None, :] - centers[None]) ** 2).sum(-1)).argmin(1)
        out[which] = {"step": step, "captured": captured, "hq": 100 * hq, "rkl": rkl, "w1": w1,
                      "balance": float(np.mean(d == 0)), "n": len(x)}
    return out


def _med(values: list[float], fmt: str) -> str:
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "-"
    if len(v) == 1 or np.ptp(v) == 0:
        return format(np.median(v), fmt)
    return f"{format(np.median(v), fmt)} ({format(v.min(), fmt)}-{format(v.max(), fmt)})"


def table(jobs: list[Job], results: dict[Path, dict | None]) -> str:
    head = ("| target | setting | generator | seeds | steps | modes best / last | HQ % best / last"
            " | rev-KL best / last | W1 max-axis best / last (floor) | mode-0 share (last) "
            "| HQ spread of last 5 evals | wall s (contended) |")
    lines = [head, "|" + "---|" * 12]
    groups: dict[tuple, list[Job]] = {}
    for j in jobs:
        groups.setdefault((j.target, j.setting, j.generator), []).append(j)
    for (target, setting, gen), js in groups.items():
        rs = [results.get(j.run) for j in js]
        ok = [r for r in rs if r and "last" in r]
        failed = len(js) - len(ok)
        n_modes = {"bimodal": 2, "ring8": 8, "grid25": 25}[target]

        def pair(key: str, fmt: str, rows=ok) -> str:
            return (_med([r["best"][key] for r in rows if "best" in r], fmt) + " / "
                    + _med([r["last"][key] for r in rows], fmt))

        seeds = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
        lines.append(
            f"| {target} | {setting} | {gen} | {seeds} | "
            f"{_med([r['last_step'] for r in ok], '.0f')} | "
            f"{pair('captured', '.0f')} of {n_modes} | {pair('hq', '.1f')} | "
            f"{pair('rkl', '.2f')} | {pair('w1', '.3f')} ({_med([r['floor'] for r in ok], '.3f')})"
            f" | {_med([r['last']['balance'] for r in ok], '.2f') if n_modes == 2 else '-'} | "
            f"{_med([r['last5_spread'] for r in ok], '.1f')} | "
            f"{_med([j.seconds for j in js], '.0f')} |")
    return "\n".join(lines)


def plan(args: argparse.Namespace, root: Path) -> list[Job]:
    jobs = []
    for target in args.targets:
        for setting in args.settings:
            if (target, setting) not in DATA:
                continue
            for gen in args.generators:
                for seed in args.seeds:
                    steps = args.steps or STEPS[target]
                    every = max(steps // 20, 1)
                    sets = (DATA[(target, setting)]
                            + (CLASSICAL + args.classical_set if gen == "classical"
                               else args.set)
                            + [f"run.seed={seed}", f"train.steps={steps}",
                               f"eval.every_steps={every}", f"eval.n_samples={N_SAMPLES}",
                               f"checkpoint.every_steps={max(steps // 4, 1)}"])
                    name = f"{target}-{setting}-{gen}-s{seed}"
                    jobs.append(Job(target, setting, gen, seed, steps, sets, root / name))
    return jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", nargs="+", default=["bimodal", "ring8", "grid25"],
                    choices=["bimodal", "ring8", "grid25"])
    ap.add_argument("--settings", nargs="+", default=["defaults", "papers"],
                    choices=["defaults", "papers"])
    ap.add_argument("--generators", nargs="+", default=["quantum", "classical"],
                    choices=["quantum", "classical"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=0, help="steps of every run (default: per "
                    f"target, {STEPS})")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for the quantum runs (repeatable)")
    ap.add_argument("--classical-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for the classical runs (repeatable)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: bimodal, 1 seed, 100 steps, both generators")
    ap.add_argument("--runs-root", type=Path, default=None,
                    help="keep the run directories here (default: a temporary folder)")
    ap.add_argument("--jobs", type=int, default=2, help="training processes at a time")
    args = ap.parse_args()
    if args.quick:
        args.targets, args.settings, args.seeds = ["bimodal"], ["defaults"], [1]
        args.steps = args.steps or 100

    with tempfile.TemporaryDirectory() as tmp:
        root = args.runs_root or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        config = root / "learning.toml"
        config.write_text('[run]\nname = "learning"\n')
        jobs = plan(args, root)
        todo = [j for j in jobs if not (j.run / "checkpoints").is_dir()]
        print(f"{len(jobs)} runs ({len(jobs) - len(todo)} already in {root})", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for j in pool.map(lambda j: _train(j, config), todo):
                print(f"{j.run.name}: exit {j.code} in {j.seconds:.0f} s", file=sys.stderr)
        results = {j.run: measure(j.run) for j in jobs}
        print(table(jobs, results))
        print("\nquantum overrides: " + (" ".join(args.set) or "(defaults)")
              + "; classical: " + " ".join(CLASSICAL + args.classical_set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
