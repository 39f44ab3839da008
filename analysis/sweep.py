"""Sweeps: rank runs by final quality and find the hyperparameters that separate good from bad."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.findings import EXPERIMENT, Finding
from analysis.load import RunData

_IGNORED = {"run.name"}
# fault-injection rehearsals differ between runs by design; they are not hyperparameters
_IGNORED_PREFIXES = ("faults.",)


def _ignored(key: str) -> bool:
    return key in _IGNORED or key.startswith(_IGNORED_PREFIXES)


def hyperparameters(runs: list[RunData]) -> dict[str, dict[str, Any]]:
    """run name -> {key: value} for the keys that differ between runs: the sweep's task
    overrides when experiment.json lists them, else config keys with more than one value."""
    keys = sorted(k for k in {k for r in runs for k in r.overrides} if not _ignored(k))
    if not keys:
        seen: dict[str, set] = {}
        for r in runs:
            for k, v in r.config.items():
                seen.setdefault(k, set()).add(repr(v))
        keys = sorted(k for k, v in seen.items() if len(v) > 1 and not _ignored(k))
    return {r.name: {k: r.overrides.get(k, r.config.get(k)) for k in keys} for r in runs}


def rank(outcomes: dict[str, float | None]) -> list[str]:
    """Run names, best (smallest final w1_mean) first; runs without a value last."""
    return sorted(outcomes, key=lambda n: (outcomes[n] is None or not math.isfinite(
        outcomes[n]), outcomes[n] if outcomes[n] is not None else 0.0, n))


def _ranks(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for v in np.unique(x):  # average ties
        m = x == v
        r[m] = r[m].mean()
    return r


def separation(hparams: dict[str, dict[str, Any]],
               outcomes: dict[str, float | None]) -> list[dict[str, Any]]:
    """Per hyperparameter: how strongly it goes with the outcome. Numeric values: Spearman rho
    against final w1_mean (negative = larger is better). Others: eta^2 of the outcome ranks
    across values, and the best value."""
    names = [n for n in hparams if outcomes.get(n) is not None and math.isfinite(outcomes[n])]
    if len(names) < 3:
        return []
    y = np.array([outcomes[n] for n in names])
    yr = _ranks(y)
    out = []
    for key in next(iter(hparams.values())):
        vals = [hparams[n].get(key) for n in names]
        if len({repr(v) for v in vals}) < 2:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if numeric:
            x = _ranks(np.array(vals, float))
            rho = float(np.corrcoef(x, yr)[0, 1]) if x.std() and yr.std() else 0.0
            out.append({"key": key, "kind": "numeric", "effect": abs(rho), "rho": rho,
                        "better": "smaller" if rho > 0 else "larger"})
        else:
            groups: dict[str, list[float]] = {}
            for v, r in zip(vals, yr):
                groups.setdefault(str(v), []).append(r)
            total = ((yr - yr.mean()) ** 2).sum()
            between = sum(len(g) * (np.mean(g) - yr.mean()) ** 2 for g in groups.values())
            best = min(groups, key=lambda g: np.mean(groups[g]))
            out.append({"key": key, "kind": "categorical",
                        "effect": float(between / total) if total else 0.0,
                        "better": best})
    return sorted(out, key=lambda d: -d["effect"])


def sweep_findings(sep: list[dict[str, Any]], th: dict[str, float]) -> list[Finding]:
    out = []
    for s in sep:
        if s["effect"] < th["sweep_min_effect"]:
            continue
        if s["kind"] == "numeric":
            text = f"{s['key']}: {s['better']} values give better final w1 (rho {s['rho']:+.2f})"
        else:
            text = f"{s['key']}: runs with {s['better']} do best (eta^2 {s['effect']:.2f})"
        out.append(Finding("hyperparameter_effect", "info", EXPERIMENT, text,
                           f"Narrow the next sweep around the better {s['key']}.",
                           evidence={k: v for k, v in s.items() if k != "key"}
                           | {"key": s["key"]}))
    return out
