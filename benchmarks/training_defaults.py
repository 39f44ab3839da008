"""Learning quality of training settings, over seeds: what BENCHMARKS.md's defaults table says.

Trains the default config (2 modes, 2 layers, cutoff 6, bimodal target, WGAN-GP) for --steps
steps with each setting x each seed, in real `qgan train` processes (two at a time), then reads
the evals back and prints one Markdown row per run: W1 over the second half of the run
(median, min-max), the worst Fock trace, and the postmortem verdict.

    python benchmarks/training_defaults.py [--steps 600] [--seeds 1 2 3] \
        [--setting "train.g_lr=0.005" --setting "train.g_lr=0.001" ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# session-1 defaults, then each change of session 2 on top (the last one is today's default)
SETTINGS = [["train.g_lr=0.005", "generator.latent_scale=1.0", "loss.trace_penalty=0"],
            ["train.g_lr=0.001", "loss.trace_penalty=0"],
            ["loss.trace_penalty=10"]]


def _train(run_dir: Path, config: Path, sets: list[str]) -> int:
    cmd = [sys.executable, "-m", "jobs.cli", "train", str(config), "--run-dir", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--setting", action="append", default=None,
                    help="space-separated KEY=VALUE overrides for one setting; repeatable")
    args = ap.parse_args()
    settings = [s.split() for s in args.setting] if args.setting else SETTINGS

    from analysis.diagnose import diagnose_path

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text('[run]\nname = "bench"\n')
        jobs = []
        for i, sets in enumerate(settings):
            for seed in args.seeds:
                run = Path(tmp) / f"s{i}-seed{seed}"
                jobs.append((sets, seed, run, sets + [f"run.seed={seed}",
                                                     f"train.steps={args.steps}"]))
        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = list(pool.map(lambda j: _train(j[2], config, j[3]), jobs))
        print("| setting | seed | W1, second half: median (min-max) | min Fock trace | verdict |")
        print("|---|---|---|---|---|")
        for (sets, seed, run, _), code in zip(jobs, codes):
            if code != 0:
                print(f"| {' '.join(sets)} | {seed} | trainer exit {code} | | |")
                continue
            rd = diagnose_path(run).runs[0]
            ev = rd.run.evals
            half = ev[ev["step"] > args.steps // 2]["w1_mean"]
            verdict = rd.verdict
            print(f"| {' '.join(sets)} | {seed} | {half.median():.3f} ({half.min():.3f}-"
                  f"{half.max():.3f}) | {ev['fock_trace_min'].min():.3f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
