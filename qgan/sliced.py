"""Sliced Wasserstein-1 distance: the mean, over fixed random directions, of the exact 1-D W1
between the projections of two sample sets (Rabin et al. 2011; Bonneel et al. 2015).

It sees the joint shape: two sets with the same marginals but different joints differ along
some diagonal direction. It is zero only for equal distributions (with enough directions),
in the data's units like the per-axis W1, and exact for samples of unequal size. Its
finite-sample floor, the same distance between two real sets of the eval's size, is what a
perfect generator would score (qgan/datamodes.py records it once per run).
"""

from __future__ import annotations

import numpy as np

N_DIRECTIONS = 128  # projections; the directions' own spread is ~1/sqrt(128) ~ 9 % of a value


def directions(dim: int, rng: np.random.Generator, n: int = N_DIRECTIONS) -> np.ndarray:
    """[n, dim] unit vectors, uniform on the sphere; in 1-D the single axis (exact W1)."""
    if dim == 1:
        return np.ones((1, 1))
    v = rng.normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _quantile_rows(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted samples of sizes n and m: the widths of the intervals between the
    breakpoints {i/n} and {j/m} of [0, 1], and the rows of each set's quantile function on
    each interval."""
    cuts = np.unique(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
    widths = np.diff(np.concatenate([[0.0], cuts]))
    mid = cuts - widths / 2
    rows_a = np.minimum(np.ceil(mid * n).astype(int) - 1, n - 1)
    rows_b = np.minimum(np.ceil(mid * m).astype(int) - 1, m - 1)
    return widths, rows_a, rows_b


def sliced_w1(a: np.ndarray, b: np.ndarray, dirs: np.ndarray) -> float:
    """Mean over `dirs` of W1(a . dir, b . dir), exactly: the integral of the distance between
    the two quantile functions."""
    pa = np.sort(np.asarray(a, np.float64) @ dirs.T, axis=0)  # [n, L]
    pb = np.sort(np.asarray(b, np.float64) @ dirs.T, axis=0)  # [m, L]
    widths, ra, rb = _quantile_rows(len(pa), len(pb))
    return float((widths[:, None] * np.abs(pa[ra] - pb[rb])).sum(axis=0).mean())
