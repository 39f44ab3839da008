"""Time and peak memory of loading a user data file (qgan.data), e.g. a 10^7-row CSV.

    python benchmarks/data_load.py --make FILE --rows N     # writes a CSV: a, b (normal), label
    python benchmarks/data_load.py FILE [--columns a,b]    # writes nothing; prints one line
    python benchmarks/data_load.py FILE --module OLD.py    # the loader of another version, e.g.
        git show b7a37a7^:qgan/data.py > /tmp/data_old.py   # (pandas, before issue 12)

The figure in RELIABILITY.md ("Hostile inputs") comes from these commands.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def make(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    pacsv.write_csv(pa.table({"a": rng.normal(size=rows), "b": rng.normal(size=rows),
                              "label": np.array(["x", "y"])[rng.integers(0, 2, rows)]}), path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file", type=Path)
    p.add_argument("--columns", default="")
    p.add_argument("--make", action="store_true")
    p.add_argument("--rows", type=int, default=10**7)
    p.add_argument("--module", type=Path, help="load_dataset from this file instead")
    args = p.parse_args()
    if args.make:
        make(args.file, args.rows)
        return
    from qgan.config import DataConfig
    from qgan.data import load_dataset

    if args.module:
        import importlib.util

        spec = importlib.util.spec_from_file_location("data_under_test", args.module)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        load_dataset = module.load_dataset  # noqa: F811 - the version measured

    cfg = DataConfig(target="file", path=str(args.file),
                     columns=[c for c in args.columns.split(",") if c],
                     max_file_mb=1 << 20)
    started = time.perf_counter()
    data = load_dataset(cfg, seed=1)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.file.name}: {args.file.stat().st_size / 2**20:.0f} MiB, "
          f"{len(data.train) + len(data.holdout)} rows x {data.dim} -> {seconds:.1f} s, "
          f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
