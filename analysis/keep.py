"""The run to keep: the best by the watched metric among runs whose best checkpoint is on
disk and whose result is trustworthy (not failed, diverged or leaking); failing that, the best
trustworthy run whose checkpoint is gone, then the best kept one, then the best at all, each
time with a warning that says what is missing (so the top of the report never points at a
checkpoint that is gone, or at a simulation artefact, without saying so)."""

from __future__ import annotations

import math

import numpy as np

from analysis.diagnosis import RunDiagnosis
from analysis.findings import EXPERIMENT, Finding
from qgan.vocabulary import FindingKind, METRIC_MODE, Verdict

# a best value from these runs is not a result: the run crashed/blew up or the simulator lied
UNTRUSTED = (Verdict.FAILED, Verdict.DIVERGED, Verdict.LEAKING)


def _trusted(rd: RunDiagnosis) -> bool:
    return rd.verdict not in UNTRUSTED and not any(f in UNTRUSTED for f in rd.flags)


def choose_keep(runs: list[RunDiagnosis]) -> tuple[str | None, str, list[Finding]]:
    """(run name or None, why in plain words, findings about the choice)."""
    scored = [rd for rd in runs if rd.best is not None and math.isfinite(rd.best.value)]
    if not scored:
        return None, "no run has a finite value of its watched metric", []
    # a trustworthy result whose checkpoint is gone (rerun it) beats an artefact on disk
    tiers = [("", [rd for rd in scored if rd.best.kept and _trusted(rd)]),
             ("its best checkpoint is gone", [rd for rd in scored if _trusted(rd)]),
             ("its verdict is not trustworthy", [rd for rd in scored if rd.best.kept]),
             ("its best checkpoint is gone and its verdict is not trustworthy", scored)]
    caveat, pool = next((c, p) for c, p in tiers if p)

    def key(rd: RunDiagnosis) -> tuple:
        sign = 1.0 if METRIC_MODE.get(rd.best.metric, "min") == "min" else -1.0
        return (sign * rd.best.value, rd.best.step, rd.run.name)
    rd = min(pool, key=key)
    b = rd.best
    where = (f"checkpoint {b.checkpoint}" if b.kept else f"no checkpoint ({b.note})")
    why = (f"best {b.metric} {b.value:.4g} at step {b.step} ({rd.verdict.value}); {where}")
    findings = []
    if caveat:
        why += f"; warning: {caveat}"
        findings.append(Finding(
            FindingKind.KEEP, "warning", EXPERIMENT,
            f"the run to keep, {rd.run.name}, is only the best available: {caveat}",
            "Rerun the best setting with checkpoint.keep_best = true (the default) and a "
            "Fock cutoff high enough that no run leaks, then compare again.",
            b.step, b.step, {"run": rd.run.name, "kept": b.kept,
                             "verdict": rd.verdict.value}))
    return rd.run.name, why, findings


# a run that stopped before this fraction of the kept run's last eval is compared at equal
# steps too: a longer run is not a better setting just because it trained longer
EQUAL_BUDGET_FRAC = 0.8
# a shorter run ahead at equal steps is worth more steps only if it was still learning
STILL_LEARNING = (Verdict.IMPROVING, Verdict.UNFINISHED, Verdict.CONVERGED)


LABELS = {"w1_mean": "W1", "sliced_w1": "sliced W1"}


def metric_label(metric: str) -> str:
    """How a watched metric is named in sentences and on the page."""
    return LABELS.get(metric, metric)


def best_until(rd: RunDiagnosis, metric: str, mode: str, step: int) -> float | None:
    """The run's best value of `metric` (its watched one: `rd.curve`) over its evals up to
    `step`, or None."""
    if rd.best is None or rd.best.metric != metric:
        return None
    v = np.array([x for s, x in rd.curve if s <= step], dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    return float(v.min() if mode == "min" else v.max())


def _last_eval_step(rd: RunDiagnosis) -> int | None:
    return max(s for s, _ in rd.curve) if rd.curve else None


def versus(rd: RunDiagnosis, kept: RunDiagnosis | None) -> str:
    """How a run compares with the run to keep, by the watched metric: when it is better, why
    it is not the one to keep; when it stopped much earlier, how the two compared at equal
    steps (a setting that learns faster but was given fewer steps is worth a longer run; not
    said of an untrusted run, whose values are artefacts, nor of one that had stopped
    learning)."""
    b = rd.best
    if b is None:
        return "no eval gave a finite value"
    label = metric_label(b.metric)
    text = f"best {label} {b.value:.4g} at step {b.step}"
    k = kept.best if kept is not None else None
    if k is None or k.metric != b.metric or not k.value:
        return text
    worse = b.value > k.value if b.mode == "min" else b.value < k.value
    rel = abs(b.value - k.value) / abs(k.value)
    text += (f", {rel:.0%} " if rel >= 0.1 else f", {rel:.1%} ") + \
        f"{'worse' if worse else 'better'} than the kept {k.value:.4g}"
    if worse:
        return text + ("" if not _trusted(rd) else _equal_budget(rd, kept))
    if b.value == k.value:
        return text
    untrusted = [str(v) for v in [rd.verdict, *rd.flags] if v in UNTRUSTED]
    why = f"{', '.join(untrusted)}: not trustworthy" if untrusted else (
        "its best checkpoint is gone" if not b.kept else "")
    return text + (f", but {why}" if why else "")


def _equal_budget(rd: RunDiagnosis, kept: RunDiagnosis) -> str:
    b, k = rd.best, kept.best
    last, kept_last = _last_eval_step(rd), _last_eval_step(kept)
    if last is None or kept_last is None or last >= EQUAL_BUDGET_FRAC * kept_last:
        return ""
    then = best_until(kept, k.metric, k.mode, last)
    if then is None:
        return ""
    label = metric_label(b.metric)
    ahead = b.value < then if b.mode == "min" else b.value > then
    if ahead and rd.verdict in STILL_LEARNING and Verdict.NEVER_FIT not in rd.flags:
        return (f"; but at equal steps (up to {last}) the kept run's best {label} was "
                f"{then:.4g}: this setting learned faster and only stopped at step {last}: "
                f"give it the kept run's {kept_last} steps before ruling it out")
    return f"; at equal steps (up to {last}) the kept run's best {label} was {then:.4g}"
