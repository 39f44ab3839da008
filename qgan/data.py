"""Real data: the seeds' synthetic targets and user files (CSV, Parquet, NPY).

Synthetic targets are Gaussian mixtures whose centres are returned with the data, so evals can
count covered modes. User files are read without pickle; a problem with one raises DataError
with the file, the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pathlib import Path

import numpy as np

from qgan.config import DataConfig


class DataError(ValueError):
    """The data cannot be used; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class Dataset:
    train: np.ndarray  # [N, d] float32
    holdout: np.ndarray  # [M, d] float32
    centers: np.ndarray | None  # [K, d] mixture centres, None for user data
    std: float  # std of each mixture component (0 for user data)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def mixture_centers(target: str, scale: float) -> np.ndarray:
    if target == "bimodal":
        c = scale / np.sqrt(2.0)
        return np.array([[-c, -c], [c, c]])
    if target == "ring8":
        angles = 2 * np.pi * np.arange(8) / 8
        return scale * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if target == "grid25":
        ticks = np.linspace(-scale, scale, 5)
        return np.array([[x, y] for x in ticks for y in ticks])
    if target == "mixture1d":
        return np.array([[-scale], [scale]])
    raise ValueError(f"not a synthetic target: {target!r}")


def _sample_mixture(centers: np.ndarray, std: float, n: int, rng: np.random.Generator) -> np.ndarray:
    which = rng.integers(0, len(centers), size=n)
    return (centers[which] + rng.normal(0.0, std, size=(n, centers.shape[1]))).astype(np.float32)


def _batches(path: Path, suffix: str, columns: list[str]):
    """(column names, record batches) of a CSV/Parquet file: only `columns` (all numeric ones
    if empty) are parsed, streamed batch by batch by pyarrow, never held as a whole table."""
    if suffix == ".csv":
        schema = pacsv.open_csv(path).schema  # header and types from the first block
    else:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DataError(f"{path}: columns {missing} not found; the file has {schema.names}")
    names = columns or [f.name for f in schema
                        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    if suffix == ".csv":  # 16 MiB blocks: parsed in parallel, a few hundred thousand rows each
        return names, pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=16 << 20),
                                     convert_options=pacsv.ConvertOptions(include_columns=names))
    return names, parquet.iter_batches(columns=names)


def _as_float32(array: np.ndarray, names: list[str], path: Path, first_row: int) -> np.ndarray:
    """The training precision; checked *after* the cast, so 1e39 (finite in float64, inf in
    float32) is refused like NaN, with the first bad row and column named."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = array[row, col]
        what = (f"{value:g} is beyond float32 (|x| <= 3.4e38), the precision training uses"
                if np.isfinite(value) else f"{value}")
        raise DataError(f"{path}: NaN, Inf or a value beyond float32 at row {first_row + row} "
                        f"(counting from 0 without the header), column {names[col]!r}: "
                        f"{what}; clean the file")
    return out


def _numeric(values: np.ndarray, path: Path) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: the selected columns are not all numeric; choose numeric "
                        "columns with data.columns") from None


def _read_file(path: Path, columns: list[str], max_mb: int) -> np.ndarray:
    """The float32 samples x features array of a user data file; DataError for anything
    wrong (including a file over `max_mb`, refused before it is read)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: no such file; give a .csv, .parquet or .npy file")
    size = path.stat().st_size
    if size > max_mb * 2**20:
        raise DataError(f"{path} is {size / 2**20:.0f} MiB, over the limit data.max_file_mb = "
                        f"{max_mb} MiB (the data is held in memory whole); use a sample of the "
                        "rows, or raise data.max_file_mb if the machine has the memory")
    if suffix not in (".npy", ".csv", ".parquet", ".pq"):
        raise DataError(f"data.path {str(path)!r}: unsupported file type {suffix!r}; use "
                        ".csv, .parquet or .npy")
    if suffix == ".npy" and columns:
        raise DataError(f"data.columns is set but {path} is a .npy array without column "
                        "names; remove data.columns")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            array = array[:, None] if array.ndim == 1 else array
            if array.ndim != 2 or array.shape[1] == 0:
                raise DataError(f"{path}: expected a 2-D table of samples x features, got "
                                f"shape {array.shape}")
            names = [f"column {i}" for i in range(array.shape[1])]
            return _as_float32(_numeric(array, path), names, path, 0)
        names, batches = _batches(path, suffix, columns)
        if not names:
            raise DataError(f"{path}: no numeric columns; choose columns with data.columns")
        parts, rows = [], 0
        for batch in batches:
            values = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False)
                                      for n in names])
            parts.append(_as_float32(_numeric(values, path), names, path, rows))
            rows += batch.num_rows
        return np.concatenate(parts) if parts else np.empty((0, len(names)), np.float32)
    except DataError:
        raise
    except ValueError as exc:  # e.g. an object array in .npy (would need pickle)
        raise DataError(f"{path}: cannot read as numeric data ({exc}); save a plain numeric "
                        "array or table") from None
    except Exception as exc:  # malformed CSV/Parquet
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Draw (synthetic) or read (file) the training and held-out data, deterministically."""
    rng = np.random.default_rng([seed, 0xDA7A])
    if cfg.target != "file":
        centers = mixture_centers(cfg.target, cfg.scale)
        return Dataset(_sample_mixture(centers, cfg.std, cfg.n_train, rng),
                       _sample_mixture(centers, cfg.std, cfg.n_holdout, rng), centers, cfg.std)
    array = _read_file(Path(cfg.path), list(cfg.columns), cfg.max_file_mb)
    if len(array) < 32:
        raise DataError(f"{cfg.path}: only {len(array)} rows; need at least 32 (some are held "
                        "out for evals)")
    order = rng.permutation(len(array))
    n_hold = max(16, min(cfg.n_holdout, len(array) // 5))
    return Dataset(array[order[n_hold:]], array[order[:n_hold]], None, 0.0)
