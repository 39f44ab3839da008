"""What the TensorBoard mirror (metrics.tensorboard = true) costs the trainer (issue 22).

A step adds one row to the metrics writer; every flush (each checkpoint and the flush timer)
writes the buffered rows as Parquet parts and, with the mirror, as TensorBoard events. This
times, with and without the mirror, alternating, medians over --repeats:
  - MetricsWriter.add of one steps row (what every step pays);
  - one flush of --rows steps rows and their evals rows (one per 25 steps), what a
    checkpoint at the default checkpoint.every_steps = 250 pays;
and prints the flush's extra cost per step, to compare with a step's time (BENCHMARKS.md).

    nice python benchmarks/tensorboard_cost.py [--rows 250] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qgan import schema  # noqa: E402
from qgan.metrics import MetricsWriter  # noqa: E402
from qgan.tbevents import LiveMirror  # noqa: E402


def _row(table: str, step: int, rng: np.random.Generator) -> dict:
    import pyarrow as pa

    row: dict = {"step": step, "revision": 0, "wall_time": time.time()}
    for f in schema.SCHEMAS[table]:
        if f.name in row:
            continue
        if pa.types.is_boolean(f.type):
            row[f.name] = bool(rng.integers(2))
        elif pa.types.is_integer(f.type):
            row[f.name] = int(rng.integers(10))
        elif pa.types.is_floating(f.type):
            row[f.name] = float(rng.standard_normal())
        elif pa.types.is_list(f.type):
            row[f.name] = [float(v) for v in rng.standard_normal(2)]
    return row


def _one(folder: Path, rows: int, mirror: bool, attempt: int) -> tuple[float, float]:
    """(seconds per add, seconds per flush) for one writer."""
    rng = np.random.default_rng(attempt)
    steps = [_row("steps", s, rng) for s in range(1, rows + 1)]
    evals = [_row("evals", s, rng) for s in range(25, rows + 1, 25)]
    tb = LiveMirror(folder, attempt, 1) if mirror else None
    writer = MetricsWriter(folder, attempt, 1e9, mirror=tb)
    t0 = time.perf_counter()
    for row in steps:
        writer.add("steps", row)
    add = (time.perf_counter() - t0) / rows
    for row in evals:
        writer.add("evals", row)
    t0 = time.perf_counter()
    writer.flush()
    flush = time.perf_counter() - t0
    if tb is not None:
        tb.close()
    return add, flush


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        attempt = 0
        for k in range(args.repeats + 2):
            for mirror in ((False, True) if k % 2 else (True, False)):
                attempt += 1
                r = _one(Path(tmp), args.rows, mirror, attempt)
                if k >= 2:  # warm-up
                    times[mirror].append(r)
    med = {m: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
           for m, v in times.items()}
    for m, (add, flush) in med.items():
        print(f"{'with' if m else 'without'} the mirror: add {add * 1e6:.1f} us per row, "
              f"flush of {args.rows} steps rows + {args.rows // 25} evals rows "
              f"{flush * 1e3:.1f} ms")
    extra = (med[True][1] - med[False][1]) / args.rows + med[True][0] - med[False][0]
    print(f"the mirror's extra cost per step: {extra * 1e6:.0f} us (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
