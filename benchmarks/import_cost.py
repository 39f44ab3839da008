"""`import tensorflow` with and without matplotlib held back (qgan/tflib.py), issue 22.

Keras, which `import tensorflow` loads, imports matplotlib.pyplot whenever matplotlib is
installed. This runs fresh interpreters alternately, --repeats each:
  plain:  `import tensorflow` (what any process that imports TF pays);
  qgan:   `from qgan.tflib import tf` (what the trainer and `qgan sample` do);
and prints the medians of the import's wall and CPU seconds and of the seconds Python's import
timer (-X importtime) books on matplotlib.pyplot. On a shared, loaded machine the totals vary
by more than pyplot costs; the import timer's share is measured inside each process.

    nice python benchmarks/import_cost.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
t, c = time.perf_counter(), time.process_time()
if sys.argv[1] == "plain":
    import tensorflow
else:
    import qgan.tflib  # noqa: F401
print(json.dumps([time.perf_counter() - t, time.process_time() - c, 0]))
"""


def _pyplot_share(importtime: str) -> float:
    """Seconds Python's own import timer (-X importtime) books on matplotlib.pyplot and what
    it imported (matplotlib included): the part of the import that is pyplot's, measured
    inside the process rather than as a difference of two noisy totals."""
    for line in importtime.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "matplotlib.pyplot":
            return int(parts[1]) / 1e6
    return 0.0


def _once(kind: str) -> tuple[float, float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD, kind], env=env,
                          cwd=ROOT, capture_output=True, text=True, check=True)
    wall, cpu, _ = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, cpu, _pyplot_share(done.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed here: nothing to compare")
        return 1
    kinds = ("plain", "qgan")
    res: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
    _once("plain")  # warm the file cache
    for i in range(args.repeats):
        for kind in kinds[i % 2:] + kinds[:i % 2]:
            res[kind].append(_once(kind))
    for kind in kinds:
        wall, cpu, pyplot = (statistics.median(r[k] for r in res[kind]) for k in range(3))
        print(f"{kind:6s} import: {wall:.2f} s wall, {cpu:.2f} s CPU, of which "
              f"matplotlib.pyplot {pyplot:.2f} s (medians of {args.repeats})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
