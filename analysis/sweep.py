"""Sweeps: rank runs by final quality and find the hyperparameters that separate good from bad.

Sweeps are small (a handful of runs), so an effect is claimed only when a permutation test says
it is unlikely to be chance; `run.seed` is a replicate, not a hyperparameter: runs that differ
only in their seed measure the noise instead.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np

from analysis.findings import EXPERIMENT, Finding
from analysis.rundata import RunData
from qgan.vocabulary import FindingKind

_IGNORED = {"run.name"}
SEED_KEY = "run.seed"
EXACT_PERMUTATIONS_UP_TO = 8  # runs; above, a fixed random sample of permutations
SAMPLED_PERMUTATIONS = 4000
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


def _rho(x: np.ndarray, yr: np.ndarray) -> float:
    return float(np.corrcoef(x, yr)[0, 1]) if x.std() and yr.std() else 0.0


def _eta2(codes: np.ndarray, yr: np.ndarray) -> float:
    """The share of yr's variance between the groups `codes` (np.unique's inverse)."""
    total = ((yr - yr.mean()) ** 2).sum()
    if not total:
        return 0.0
    counts = np.bincount(codes)
    means = np.bincount(codes, weights=yr) / counts
    return float((counts * (means - yr.mean()) ** 2).sum() / total)


def permutation_p(stat: Callable[[np.ndarray], float], yr: np.ndarray) -> float:
    """P(|stat| of a random relabelling >= the observed |stat|): exact for small sweeps,
    sampled (fixed seed, so reproducible) for larger ones."""
    observed = abs(stat(yr)) - 1e-12
    n = len(yr)
    if n <= EXACT_PERMUTATIONS_UP_TO:
        perms = (yr[list(p)] for p in itertools.permutations(range(n)))
        total = math.factorial(n)
    else:
        rng = np.random.default_rng(0)
        perms = (rng.permutation(yr) for _ in range(SAMPLED_PERMUTATIONS))
        total = SAMPLED_PERMUTATIONS
    return sum(abs(stat(p)) >= observed for p in perms) / total


def separation(hparams: dict[str, dict[str, Any]],
               outcomes: dict[str, float | None]) -> list[dict[str, Any]]:
    """Per hyperparameter: how strongly it goes with the outcome, and the permutation p-value.
    Numeric values: Spearman rho against final w1_mean (negative = larger is better). Others:
    eta^2 of the outcome ranks across values, and the best value. The seed is left out."""
    names = [n for n in hparams if outcomes.get(n) is not None and math.isfinite(outcomes[n])]
    if len(names) < 3:
        return []
    y = np.array([outcomes[n] for n in names])
    yr = _ranks(y)
    out = []
    for key in next(iter(hparams.values())):
        if key == SEED_KEY:
            continue
        vals = [hparams[n].get(key) for n in names]
        if len({repr(v) for v in vals}) < 2:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if numeric:
            x = _ranks(np.array(vals, float))
            rho = _rho(x, yr)
            out.append({"key": key, "kind": "numeric", "effect": abs(rho), "rho": rho,
                        "better": "smaller" if rho > 0 else "larger",
                        "p": permutation_p(lambda p, x=x: _rho(x, p), yr)})
        else:
            labels = [str(v) for v in vals]
            groups = {g: yr[[lab == g for lab in labels]] for g in set(labels)}
            best = min(sorted(groups), key=lambda g: groups[g].mean())
            codes = np.unique(labels, return_inverse=True)[1]
            out.append({"key": key, "kind": "categorical", "effect": _eta2(codes, yr),
                        "better": best,
                        "p": permutation_p(lambda p, codes=codes: _eta2(codes, p), yr)})
    return sorted(out, key=lambda d: (d["p"], -d["effect"]))


def mark_significance(sep: list[dict[str, Any]], th: dict[str, float]) -> list[dict[str, Any]]:
    """Each effect with `significant` (p <= sweep_max_p and effect >= sweep_min_effect) and the
    thresholds used, so no reader takes p = 0.33 for a finding."""
    return [s | {"significant": bool(s["p"] <= th["sweep_max_p"]
                                     and s["effect"] >= th["sweep_min_effect"]),
                 "max_p": th["sweep_max_p"], "min_effect": th["sweep_min_effect"]}
            for s in sep]


def _setting_key(hp: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in hp.items() if k != SEED_KEY))


def settings(hparams: dict[str, dict[str, Any]], outcomes: dict[str, float | None],
             metric: str = "final_w1") -> list[dict[str, Any]]:
    """Per swept setting (the swept values but the seed): its runs, how many seeds, and the
    mean and spread (sample std, n >= 2; max - min as `range`) of the headline metric over
    them. Sorted best mean first; settings without a value last."""
    groups: dict[str, list[str]] = {}
    for name, hp in hparams.items():
        groups.setdefault(_setting_key(hp), []).append(name)
    out = []
    for names in groups.values():
        values = {k: v for k, v in hparams[names[0]].items() if k != SEED_KEY}
        y = np.array([outcomes[n] for n in names if outcomes.get(n) is not None
                      and math.isfinite(outcomes[n])], float)
        out.append({"values": values, "runs": sorted(names), "n_seeds": len(names),
                    "n_valid": int(y.size), "metric": metric,
                    "mean": float(y.mean()) if y.size else None,
                    "spread": float(y.std(ddof=1)) if y.size >= 2 else None,
                    "range": float(y.max() - y.min()) if y.size >= 2 else None,
                    "min": float(y.min()) if y.size else None,
                    "max": float(y.max()) if y.size else None})
    return sorted(out, key=lambda d: (d["mean"] is None, d["mean"] or 0.0, repr(d["values"])))


def seed_spread(hparams: dict[str, dict[str, Any]],
                outcomes: dict[str, float | None]) -> dict[str, Any] | None:
    """How much final w1_mean moves between runs that differ only in their seed: the noise
    floor against which a hyperparameter's effect must be read, with the setting where it is
    largest named (`setting`). None without such runs."""
    if not any(SEED_KEY in hp for hp in hparams.values()):
        return None
    replicated = [s for s in settings(hparams, outcomes) if s["n_valid"] >= 2]
    if not replicated:
        return None
    worst = max(replicated, key=lambda s: s["range"])
    return {"settings": len(replicated), "runs": sum(s["n_valid"] for s in replicated),
            "max_spread": worst["range"], "low": worst["min"], "high": worst["max"],
            "setting": worst["values"], "setting_runs": worst["runs"]}


def describe(values: dict[str, Any]) -> str:
    """A setting in words: 'train.g_lr = 0.01, loss.kind = bce' ('the one setting' if none)."""
    return ", ".join(f"{k} = {v}" for k, v in values.items()) or "the one setting"


def sweep_findings(sep: list[dict[str, Any]], th: dict[str, float],
                   seeds: dict[str, Any] | None = None) -> list[Finding]:
    out = []
    if seeds:
        out.append(Finding(
            FindingKind.SEED_SPREAD, "info", EXPERIMENT,
            f"final W1 varies by up to {seeds['max_spread']:.3g} between seeds of one setting "
            f"({describe(seeds['setting'])}: {seeds['low']:.3g} to {seeds['high']:.3g}; "
            f"{seeds['settings']} replicated setting(s), {seeds['runs']} runs)",
            "Read differences between settings against this spread: a smaller one is noise. "
            "More seeds per setting narrow it.", evidence=dict(seeds)))
    for s in mark_significance(sep, th):
        if not s["significant"]:
            continue
        if s["kind"] == "numeric":
            text = (f"{s['key']}: {s['better']} values give better final w1 (rho {s['rho']:+.2f},"
                    f" p {s['p']:.2g})")
        else:
            text = (f"{s['key']}: runs with {s['better']} do best (eta^2 {s['effect']:.2f}, "
                    f"p {s['p']:.2g})")
        out.append(Finding(FindingKind.HYPERPARAMETER_EFFECT, "info", EXPERIMENT, text,
                           f"Narrow the next sweep around the better {s['key']}.",
                           evidence={k: v for k, v in s.items() if k != "key"}
                           | {"key": s["key"]}))
    return out
