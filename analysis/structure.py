"""Structure on any data, from the evals table and the run's data profile (issue 20): a data
mode the generator drops, mode weights it skews, mass it puts off the data's support, support
it misses, and samples spread too narrow or too wide around the data's centre.

These need no known centres: the modes are the data profile's (qgan/dataprofile.py, fitted
once per run for a data file, the known centres of a built-in target), support is judged by
the k-NN manifold metrics against the value a second real sample set gets (`references` in
the profile: in 16-D even real data has precision ~0.8), and spread by the generated/real
quantiles of the distance from the data's centre.

Each condition is judged per eval and must hold `structure_min_evals` evals in a row. Only
two episodes are reported: the one that lasts to the last eval (what training ended with)
and the one holding the best eval (the kept checkpoint's state), each with its step range,
evidence and advice. Severity: a dropped mode at the kept checkpoint is an error (the
`collapsed` verdict); one lasting to the end only is a warning that still keeps the run from
`converged` (its kept checkpoint has the mode: `regressed` says to keep it); support lost at
the end and weights skewed at the end are errors (`degraded`); the rest are warnings. A run too young to judge (fewer than
`stagnation_min_evals` evals) or whose measure is still climbing (the last `off_mode_evals`
evals' median more than `off_mode_climb` above the evals' before) gets warnings only: the
`improving` verdict already says to train longer. Pure functions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analysis.findings import Finding
from analysis.headline import best_index
from analysis.rundata import RunData
from analysis.series import col, episodes
from qgan.dataprofile import RADIUS_COLUMNS
from qgan.generator_kinds import info_of_config
from qgan.vocabulary import METRIC_MODE, FindingKind, Severity

DEFAULT_METRIC = "w1_mean"


def _weights(run: RunData) -> np.ndarray | None:
    """[n_evals, K] generated share of samples per data mode (NaN rows where unknown); None
    for a built-in target, whose known modes the collapse findings judge (analysis.collapse:
    mode_collapse, partial_collapse), so one event is never reported twice."""
    p = run.profile
    if p is None or p.modes is None or p.source != "fitted" or "mode_weights" not in run.evals:
        return None
    k = p.modes.n_modes
    rows = []
    for v in run.evals["mode_weights"].tolist():
        a = np.asarray(v if v is not None else [], dtype=float) if not isinstance(v, float) \
            else np.asarray([])
        rows.append(a if a.shape == (k,) else np.full(k, np.nan))
    return np.vstack(rows) if rows else None


def _best_eval(run: RunData) -> int | None:
    """Index of the eval the kept checkpoint holds (checkpoint.best_metric, its direction)."""
    metric = run.config.get("checkpoint.best_metric", DEFAULT_METRIC)
    metric = metric if metric in METRIC_MODE else DEFAULT_METRIC
    return best_index(col(run.evals, metric), METRIC_MODE[metric])


def settled(values: np.ndarray, th: dict[str, float], higher_better: bool = True) -> bool:
    """Enough evals to judge, and the measure no longer climbing towards the data."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    k = int(th["off_mode_evals"])
    if len(v) < max(th["stagnation_min_evals"], k + 1):
        return False
    gain = np.median(v[-k:]) - np.median(v[-2 * k:-k])
    return bool((gain if higher_better else -gain) <= th["off_mode_climb"])


def _report(run: RunData, mask: np.ndarray, th: dict[str, float],
            make: Callable[[int, int, bool, bool], Finding]) -> list[Finding]:
    """The episodes of `mask` (evals in a row) that last to the end or hold the best eval."""
    n = len(mask)
    best = _best_eval(run)
    out = []
    for a, b, _ in episodes(np.arange(n), mask, min_len=int(th["structure_min_evals"])):
        persists, at_best = b == n - 1, best is not None and a <= best <= b
        if persists or at_best:
            out.append(make(a, b, persists, at_best))
    return out


def _where(steps: np.ndarray, a: int, b: int, persists: bool, at_best: bool) -> str:
    span = f"from step {steps[a]}" + (" to the end" if persists else f" to step {steps[b]}")
    return span + (", at the best eval" if at_best else "")


def _fmt_centre(c: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in c[:4]) + (", ...)" if len(c) > 4 else ")")


_DROPPED_ADVICE = ("The generator lost a mode of the data: lower train.g_lr, raise "
                   "train.batch_size so the mode appears in every batch, or add "
                   "loss.diversity_weight; keep a checkpoint from before the drop if one had it.")


def likelihood_term(config: dict) -> str:
    """'on' / 'off' for a generator whose samples have an exact density (the measured ones),
    by loss.likelihood_weight; 'none' for the others (or a config that names no kind)."""
    kind = info_of_config(config)
    if kind is None or not kind.density:
        return "none"
    w = config.get("loss.likelihood_weight", 0.0)
    on = isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0
    return "on" if on else "off"


def _dropped_advice(term: str) -> str:
    if term != "off":
        return _DROPPED_ADVICE
    return ("The generator lost a mode of the data. Its samples have an exact density: set "
            "loss.likelihood_weight = 1, whose maximum-likelihood term covers every mode (a "
            "Born machine with it kept a 10 % mode that it dropped without: BENCHMARKS.md, "
            "'The likelihood term'); or lower train.g_lr, and keep a checkpoint from before "
            "the drop if one had it.")


def _dropped(run: RunData, th: dict[str, float], steps: np.ndarray,
             gen: np.ndarray) -> list[Finding]:
    term = likelihood_term(run.config)
    modes = run.profile.modes
    w = modes.weights
    heavy = w >= th["mode_drop_weight"]
    dropped = heavy[None, :] & (gen < th["mode_drop_frac"] * w[None, :])  # [n, K]
    out = []
    for k in np.flatnonzero(heavy):
        centre = (modes.means[modes.mode_of == k] * modes.comp_weights[modes.mode_of == k, None]
                  ).sum(axis=0) / modes.comp_weights[modes.mode_of == k].sum()

        def make(a, b, persists, at_best, k=k, centre=centre):
            sel = gen[a:b + 1, k]
            # the kept checkpoint misses the mode: what the researcher takes away is wrong
            severe = at_best and len(gen) >= th["stagnation_min_evals"]
            return Finding(
                FindingKind.DROPPED_MODE, Severity.ERROR if severe else Severity.WARNING,
                run.name,
                f"data mode {k} at {_fmt_centre(centre)} ({w[k]:.0%} of the data) gets "
                f"{np.nanmax(sel):.1%} of the samples or less, {_where(steps, a, b, persists, at_best)}",
                _dropped_advice(term), steps[a], steps[b],
                {"mode": int(k), "centre": [float(v) for v in centre],
                 "data_weight": float(w[k]), "generated_weight_max": float(np.nanmax(sel)),
                 "generated_weights_end": [float(v) for v in gen[b]],
                 "data_weights": [float(v) for v in w], "evals": int(b - a + 1),
                 "persists": persists, "at_best": at_best, "likelihood_term": term})
        out += _report(run, dropped[:, k], th, make)
    return out


def _skewed(run: RunData, th: dict[str, float], steps: np.ndarray,
            gen: np.ndarray) -> list[Finding]:
    w = run.profile.modes.weights
    heavy = w >= th["mode_drop_weight"]
    dropped = (heavy[None, :] & (gen < th["mode_drop_frac"] * w[None, :])).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = gen / gen.sum(axis=1, keepdims=True)
        tv = 0.5 * np.abs(p - (w / w.sum())[None, :]).sum(axis=1)
    mask = (tv > th["mode_skew_tv"]) & ~dropped  # a dropped mode is said by its own finding

    def make(a, b, persists, at_best):
        i = a + int(np.nanargmax(tv[a:b + 1]))
        return Finding(
            FindingKind.SKEWED_WEIGHTS,
            Severity.ERROR if persists and settled(tv, th, higher_better=False)
            else Severity.WARNING,
            run.name,
            f"mode weights skewed (total variation {np.nanmedian(tv[a:b + 1]):.2f} from the "
            f"data's), {_where(steps, a, b, persists, at_best)}",
            "Every mode is there but in the wrong proportions: the discriminator does not "
            "see the weights well. Raise train.batch_size, lower train.g_lr, or use "
            "loss.kind = 'wgan-gp' (its critic measures mass, not only support).",
            steps[a], steps[b],
            {"tv_median": float(np.nanmedian(tv[a:b + 1])), "tv_max": float(tv[i]),
             "generated_weights": [float(v) for v in p[i]],
             "data_weights": [float(v) for v in w / w.sum()], "persists": persists,
             "at_best": at_best})
    return _report(run, mask, th, make)


def _reference(run: RunData) -> dict[str, float]:
    """The real-vs-real values for this run's eval size (empty when unknown)."""
    p = run.profile
    if p is None or not p.references:
        return {}
    size = run.config.get("eval.n_samples")
    ref = p.references.get(size) if isinstance(size, int) else None
    return ref if isinstance(ref, dict) else next(iter(p.references.values()))


def _support(run: RunData, th: dict[str, float], steps: np.ndarray) -> list[Finding]:
    ref = _reference(run)
    rel = th["support_rel_min"]
    out = []
    ev = run.evals
    checks = ((FindingKind.OFF_SUPPORT, ("precision",),
               "of the samples lie off the data's support",
               "Mass off the data: samples land where no data is (between or around the "
               "modes). Lower train.g_lr, train longer with early stopping, or give the "
               "generator more capacity (generator.cutoff / generator.hidden)."),
              (FindingKind.MISSED_SUPPORT, ("recall", "coverage"),
               "of the data's support is reached by the samples",
               "Parts of the data are never generated (tails, a mode, the ends of a curve). "
               "Raise generator capacity or the latent dimension, lower train.d_lr if the "
               "critic dominates, and check the readout's output range."))
    for kind, names, what, advice in checks:
        values = {n: col(ev, n) for n in names}
        refs = {n: float(ref[n]) for n in names if isinstance(ref.get(n), (int, float))}
        if not refs:
            continue
        low = np.zeros(len(ev), bool)
        for n in refs:
            low |= values[n] < rel * refs[n]

        def make(a, b, persists, at_best, names=names, values=values, refs=refs, kind=kind,
                 what=what, advice=advice):
            med = {n: float(np.nanmedian(values[n][a:b + 1])) for n in refs}
            if kind == FindingKind.OFF_SUPPORT:
                head = f"{1 - med['precision']:.0%} {what}"
            else:
                head = f"only {min(med.values()):.0%} {what}"
            worst = np.nanmin(np.vstack([values[n] / refs[n] for n in refs]), axis=0)
            return Finding(
                kind, Severity.ERROR if persists and settled(worst, th) else Severity.WARNING,
                run.name,
                f"{head} ({', '.join(f'{n} {med[n]:.2f} vs {refs[n]:.2f} for real data' for n in refs)}), "
                f"{_where(steps, a, b, persists, at_best)}",
                advice, steps[a], steps[b],
                {**{n: med[n] for n in refs}, **{f"real_{n}": refs[n] for n in refs},
                 "rel_min": rel, "persists": persists, "at_best": at_best})
        out += _report(run, low, th, make)
    return out


def _spread(run: RunData, th: dict[str, float], steps: np.ndarray) -> list[Finding]:
    q = {c: col(run.evals, c) for c in RADIUS_COLUMNS}
    q50, q90, q99 = q["radius_q50_ratio"], q["radius_q90_ratio"], q["radius_q99_ratio"]
    r = th["spread_ratio"]
    narrow = (q50 < 1 / r) & (q90 < 1 / r)
    tails = (q99 < th["tail_ratio_min"]) & ~narrow & ~(q50 < 1 / r)
    out = []
    for kind, mask, word, advice in (
            (FindingKind.TOO_NARROW, narrow, "closer to",
             "The samples huddle near the data's centre: the outer parts are missing. Raise "
             "the generator's output range (generator.readout_init = 'data', a larger "
             "generator.encode_amplitude with the cutoff) or train longer."),
            (FindingKind.TOO_NARROW, tails, "tails",
             "The bulk of the data is matched but its tails are not: a bounded generator "
             "(the circuit's expectation values, a tanh output) cannot reach far outliers. "
             "Give it a wider output range or transform the data (e.g. log or arcsinh of "
             "heavy-tailed columns) before training."),
            (FindingKind.TOO_WIDE, (q50 > r) & (q90 > r), "farther from",
             "The samples spread wider than the data: lower train.g_lr, or check the "
             "readout's scale (generator.readout_init = 'data').")):

        def make(a, b, persists, at_best, kind=kind, word=word, advice=advice):
            med = {c: float(np.nanmedian(v[a:b + 1])) for c, v in q.items()}
            where = _where(steps, a, b, persists, at_best)
            if word == "tails":
                summary = (f"the tails are missing: 99th percentile of the distance from the "
                           f"data's centre {med['radius_q99_ratio']:.2f}x the data's (median "
                           f"{med['radius_q50_ratio']:.2f}x), {where}")
            else:
                summary = (f"samples {word} the data's centre than the data: median distance "
                           f"{med['radius_q50_ratio']:.2f}x, 90th percentile "
                           f"{med['radius_q90_ratio']:.2f}x the data's, {where}")
            return Finding(kind, Severity.WARNING, run.name, summary, advice, steps[a], steps[b],
                           {**med, "tails": word == "tails", "limit": r,
                            "tail_limit": th["tail_ratio_min"], "persists": persists,
                            "at_best": at_best})
        out += _report(run, mask, th, make)
    return out


def diagnose_structure(run: RunData, th: dict[str, float]) -> list[Finding]:
    ev = run.evals
    if ev.empty:
        return []
    steps = ev["step"].to_numpy()
    out = []
    gen = _weights(run)
    if gen is not None:
        out += _dropped(run, th, steps, gen) + _skewed(run, th, steps, gen)
    return out + _support(run, th, steps) + _spread(run, th, steps)
