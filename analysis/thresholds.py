"""Thresholds for one diagnosis: the defaults (`qgan/thresholds.py`, shared with the trainer
and `qgan status`), a run's own configured values, and the user's overrides.

Override any of them with a dict, or a TOML file whose top level (or `[thresholds]` table)
holds `name = value`; unknown names are refused so that a typo does not silently do nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

from qgan import saferead
from qgan.thresholds import CONFIG_KEYS, DEFAULTS, defaults


def read_overrides(overrides: Mapping[str, float] | str | Path | None) -> dict[str, float]:
    """The user's overrides (a mapping, or a TOML file path), validated by name and type."""
    if overrides is None:
        return {}
    if isinstance(overrides, (str, Path)):
        try:
            data = tomllib.loads(saferead.read_text(overrides, "thresholds", follow=True))
        except OSError as exc:
            raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"not valid TOML: {exc}") from None
        overrides = data.get("thresholds", data)
        if not isinstance(overrides, dict):
            raise ValueError("[thresholds] must be a table of name = number, got "
                             f"{type(overrides).__name__}")
    elif not isinstance(overrides, Mapping):
        raise ValueError(f"thresholds must be a mapping of name -> number, got "
                         f"{type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown threshold(s): {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(DEFAULTS))}")
    for k, v in overrides.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"threshold {k} must be a number, got {v!r}")
    return {k: float(v) for k, v in overrides.items()}


def resolve(overrides: Mapping[str, float] | str | Path | None = None,
            config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The thresholds for one diagnosis: the defaults, then the run's own configured values
    (`config`, dotted keys; e.g. monitor.collapse_var_ratio, so a run is judged by the limit
    its monitor used), then the user's `overrides`."""
    values = defaults()
    for key, name in CONFIG_KEYS.items():
        v = (config or {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values[name] = float(v)
    values.update(read_overrides(overrides))
    return values
