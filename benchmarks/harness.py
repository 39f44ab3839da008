"""What the learning benchmarks share: a real `qgan train` process per run (niced, its output
in RUN.log) and samples drawn by a real `qgan sample` process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def train(run: Path, config: Path, sets: list[str]) -> tuple[int, float]:
    """(exit status, seconds) of `qgan train CONFIG --run-dir RUN --set ...`."""
    cmd = ["nice", "-n", "5", sys.executable, "-m", "jobs.cli", "train", str(config),
           "--run-dir", str(run)]
    for s in sets:
        cmd += ["--set", s]
    started = time.monotonic()
    with open(run.with_suffix(".log"), "w") as out:
        code = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    return code, time.monotonic() - started


def sample(run: Path, which: str, n: int) -> tuple[np.ndarray, int] | None:
    """n samples and their step from the run's `which` checkpoint (best | latest), drawn by
    `qgan sample` in its own process; None (and the reason on stderr) if that fails."""
    import pyarrow.parquet as pq

    from analysis.rundata import read_samples

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{which}.parquet"
        done = subprocess.run([sys.executable, "-m", "jobs.cli", "sample", str(run),
                               "--checkpoint", which, "-n", str(n), "-o", str(out)],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{run.name}: qgan sample --checkpoint {which} failed: "
                  f"{done.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        x = read_samples(out)
        step = int(pq.read_table(out, columns=["step"])["step"][0].as_py())
    return (x, step) if x is not None else None
