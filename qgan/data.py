"""Real data: the seeds' synthetic targets and user files (CSV, Parquet, NPY).

Synthetic targets are Gaussian mixtures whose centres are returned with the data, so evals can
count covered modes. User files are read without pickle; a problem with one raises DataError
with the file, the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def _read_file(path: Path, columns: list[str]) -> np.ndarray:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: no such file; give a .csv, .parquet or .npy file")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if columns:
                raise DataError(f"data.columns is set but {path} is a .npy array without column "
                                "names; remove data.columns")
        elif suffix in (".csv", ".parquet", ".pq"):
            import pandas as pd

            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
            if columns:
                missing = [c for c in columns if c not in frame.columns]
                if missing:
                    raise DataError(f"{path}: columns {missing} not found; the file has "
                                    f"{list(frame.columns)}")
                frame = frame[columns]
            else:
                frame = frame.select_dtypes(include="number")
            array = frame.to_numpy()
        else:
            raise DataError(f"data.path {str(path)!r}: unsupported file type {suffix!r}; use "
                            ".csv, .parquet or .npy")
    except DataError:
        raise
    except ValueError as exc:  # e.g. an object array in .npy (would need pickle)
        raise DataError(f"{path}: cannot read as numeric data ({exc}); save a plain numeric "
                        "array or table") from None
    except Exception as exc:  # malformed CSV/Parquet
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{path}: expected a 2-D table of samples x features, got shape "
                        f"{array.shape}")
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: the selected columns are not all numeric; choose numeric "
                        "columns with data.columns") from None
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(f"{path}: {int(bad.sum())} row(s) contain NaN or Inf (first: row "
                        f"{first}); clean the file")
    return array.astype(np.float32)


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Draw (synthetic) or read (file) the training and held-out data, deterministically."""
    rng = np.random.default_rng([seed, 0xDA7A])
    if cfg.target != "file":
        centers = mixture_centers(cfg.target, cfg.scale)
        return Dataset(_sample_mixture(centers, cfg.std, cfg.n_train, rng),
                       _sample_mixture(centers, cfg.std, cfg.n_holdout, rng), centers, cfg.std)
    array = _read_file(Path(cfg.path), list(cfg.columns))
    if len(array) < 32:
        raise DataError(f"{cfg.path}: only {len(array)} rows; need at least 32 (some are held "
                        "out for evals)")
    order = rng.permutation(len(array))
    n_hold = max(16, min(cfg.n_holdout, len(array) // 5))
    return Dataset(array[order[n_hold:]], array[order[:n_hold]], None, 0.0)
