"""The run to keep: the best by the watched metric among runs whose best checkpoint is on
disk and whose result is trustworthy (not failed, diverged or leaking); failing that, the best
trustworthy run whose checkpoint is gone, then the best kept one, then the best at all, each
time with a warning that says what is missing (so the top of the report never points at a
checkpoint that is gone, or at a simulation artefact, without saying so)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from analysis.findings import EXPERIMENT, Finding
from qgan.vocabulary import FindingKind, METRIC_MODE, Verdict

if TYPE_CHECKING:
    from analysis.diagnose import RunDiagnosis

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
