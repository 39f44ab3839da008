"""Every diagnosis over one run: its findings, verdict, key numbers and advice.

Kept apart from analysis/diagnose.py (experiments: caching, ranking, the run to keep) so the
diagnosis cache (analysis/cache.py) can run it without an import circle.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from analysis import thresholds as _thresholds
from analysis.advice import advise
from analysis.balance import balance_phases, diagnose_balance
from analysis.best import BestCheckpoint, best_checkpoint, watched_metric
from analysis.collapse import diagnose_collapse
from analysis.diagnosis import RunDiagnosis
from analysis.findings import Finding
from analysis.gradients import diagnose_gradients
from analysis.headline import key_numbers
from analysis.history import attempt_timeline, diagnose_history
from analysis.integrity import diagnose_checkpoints
from analysis.leakage import diagnose_leakage
from analysis.rundata import RunData
from analysis.nonfinite import diagnose_nonfinite
from analysis.offmode import diagnose_between_modes
from analysis.pruned import diagnose_pruned
from analysis.series import col
from analysis.quality import diagnose_quality
from analysis.structure import diagnose_structure
from analysis.verdict import verdict
from qgan.vocabulary import FindingKind

log = logging.getLogger(__name__)

DIAGNOSES: tuple[Callable[[RunData, dict], list[Finding]], ...] = (
    diagnose_collapse, diagnose_between_modes, diagnose_nonfinite, diagnose_gradients, diagnose_balance,
    diagnose_leakage, diagnose_history, diagnose_checkpoints, diagnose_quality,
    diagnose_structure, diagnose_pruned)


def _guarded(fn: Callable, run: RunData, findings: list[Finding], default: Any, *args: Any
             ) -> Any:
    """fn(run, *args), or `default` plus an analysis_error finding: damaged data in an
    unexpected shape must not stop the rest of the postmortem."""
    try:
        return fn(run, *args)
    except Exception as exc:  # noqa: BLE001
        log.exception("%s failed on %s", fn.__name__, run.name)
        findings.append(Finding(FindingKind.ANALYSIS_ERROR, "warning", run.name,
                                f"{fn.__name__} failed: {type(exc).__name__}: {exc}",
                                "The data is damaged in an unexpected way; please report "
                                "this with the run directory."))
        return default


def diagnose_run(run: RunData, th: dict[str, float] | None = None) -> RunDiagnosis:
    th = th or _thresholds.resolve(None, run.config)
    findings = list(run.problems)
    for fn in DIAGNOSES:
        findings += _guarded(fn, run, findings, [], th)
    timeline = attempt_timeline(run)
    v = verdict(run, findings, timeline, th)
    try:
        phases = balance_phases(run, th)
    except Exception:  # noqa: BLE001
        phases = []
    best = _guarded(best_checkpoint, run, findings, None)
    return RunDiagnosis(run, findings, v.verdict, v.reason, key_numbers(run, timeline), phases,
                        timeline, v.flags, v.reasons, best, advise(findings),
                        watched_curve(run, best))


def watched_curve(run: RunData, best: BestCheckpoint | None) -> list[tuple[int, float]]:
    """(step, value) of the best checkpoint's metric (else the configured one) at every eval."""
    metric = best.metric if best is not None else watched_metric(run)[0]
    if run.evals.empty:
        return []
    steps = run.evals["step"].to_numpy(dtype=int)
    return [(int(s), float(v)) for s, v in zip(steps, col(run.evals, metric))]
