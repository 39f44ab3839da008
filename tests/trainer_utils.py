"""Shared helpers for trainer tests: tiny configs and subprocess runs of `qgan train`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A circuit small enough for a test: 2 modes, 1 layer, cutoff 4, batch 8, 2 critic updates.
TINY = {
    "run": {"name": "tiny", "seed": 7},
    "data": {"n_train": 256, "n_holdout": 128},
    "generator": {"cutoff": 4, "layers": 1},
    "train": {"steps": 12, "batch_size": 8, "log_every": 4},
    "loss": {"n_critic": 2},
    "eval": {"every_steps": 6, "n_samples": 64, "save_samples": 16},
    "checkpoint": {"every_steps": 4, "every_seconds": 0.0, "keep": 3},
    "metrics": {"flush_seconds": 0.5},
}


def merge(base: dict, overrides: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `qgan ...` in a fresh interpreter (signals, exit codes, real process death)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
