"""Small numeric helpers shared by the diagnoses: episodes of a condition, column access."""

from __future__ import annotations

import json

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas itself only where a column is converted: status imports this
    import pandas as pd


def as_int(v: object) -> int | None:
    """A JSON number as an int; None for anything else (null, strings, and bools, which
    Python counts as ints)."""
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def col(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column `name` as float64 (NaN where missing), or all-NaN if absent."""
    if name not in df:
        return np.full(len(df), np.nan)
    import pandas as pd  # lazy: `qgan status` imports the rules without loading pandas

    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def flag(df: pd.DataFrame, name: str) -> np.ndarray:
    """Boolean column as a numpy bool array (missing -> False)."""
    if name not in df:
        return np.zeros(len(df), bool)
    return df[name].fillna(False).to_numpy(dtype=bool)


def episodes(pos: np.ndarray, mask: np.ndarray, *, min_len: int = 1,
             max_gap: int = 0) -> list[tuple[int, int, int]]:
    """Runs of True in `mask` as (start, end, count) in units of `pos` (sorted steps or eval
    indices). True positions at most `max_gap` apart are merged; runs with fewer than `min_len`
    True positions are dropped: a condition must persist to be a finding."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    p = np.asarray(pos)[idx]
    breaks = np.flatnonzero(np.diff(p) > max_gap + 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, idx.size - 1]
    return [(int(p[s]), int(p[e]), int(e - s + 1)) for s, e in zip(starts, ends)
            if e - s + 1 >= min_len]


def finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def nanmedian(x: np.ndarray) -> float:
    x = finite(np.asarray(x, float))
    return float(np.median(x)) if x.size else float("nan")


def data_scale(evals: pd.DataFrame) -> float:
    """Per-axis std of the real data, from the evals table; 1.0 when unknown. Used to make
    distances (critic gap, W1) comparable across targets."""
    real_var = nanmedian(col(evals, "real_var"))
    dim = 1
    if "w1_per_axis" in evals and len(evals):
        first = evals["w1_per_axis"].iloc[-1]
        if first is not None and hasattr(first, "__len__") and len(first):
            dim = len(first)
    if not np.isfinite(real_var) or real_var <= 0:
        return 1.0
    return float(np.sqrt(real_var / dim))


def events_of(events: pd.DataFrame, kind: str) -> list[tuple[int, int, dict]]:
    """(step, attempt, data) of every event of `kind`; data is the parsed JSON object."""
    if events.empty:
        return []
    rows = events[events["kind"] == kind]
    return [(int(s), int(a), _json(d)) for s, a, d in
            zip(rows["step"], rows["attempt"], rows["data"])]


def _json(text: str) -> dict:
    try:
        d = json.loads(text)
        return d if isinstance(d, dict) else {}
    except (TypeError, ValueError):
        return {}
