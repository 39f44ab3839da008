"""Run every diagnosis over a run or an experiment; the entry point for the CLI and reports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from analysis import thresholds as _thresholds
from analysis.advice import advise
from analysis.balance import balance_phases, diagnose_balance
from analysis.best import best_checkpoint
from analysis.diagnosis import ExperimentDiagnosis, RunDiagnosis
from analysis.collapse import diagnose_collapse
from analysis.findings import EXPERIMENT, Finding
from analysis.gradients import diagnose_gradients
from analysis.headline import HEADLINES, key_numbers
from analysis.history import attempt_timeline, diagnose_history
from analysis.integrity import diagnose_checkpoints
from analysis.keep import choose_keep, versus
from analysis.leakage import diagnose_leakage
from analysis.load import Experiment, RunData, assemble, experiment_plan, is_run_dir, load
from analysis.nonfinite import diagnose_nonfinite
from analysis.offmode import diagnose_between_modes
from analysis.panels import PANELS
from analysis.pruned import diagnose_pruned
from analysis.quality import diagnose_quality
from analysis.structure import diagnose_structure
from analysis.sweep import (hyperparameters, mark_significance, rank, seed_spread, separation,
                            settings, sweep_findings)
from analysis.verdict import LEGEND, verdict
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
                        timeline, v.flags, v.reasons, best, advise(findings))


def diagnose_experiment(exp: Experiment,
                        th: Mapping[str, float] | str | Path | None = None,
                        *, cache: bool = True) -> ExperimentDiagnosis:
    """Every run's diagnosis (from its cache when nothing it read has changed:
    analysis/cache.py), then the experiment's: ranking, sweep, the run to keep."""
    given = _thresholds.read_overrides(th)
    if cache:
        from analysis.cache import diagnose_cached
        runs = [diagnose_cached(r, _thresholds.resolve(given, r.config))[0] for r in exp.runs]
    else:
        runs = [diagnose_run(r, _thresholds.resolve(given, r.config)) for r in exp.runs]
    return _experiment(exp, runs, given)


def _experiment(exp: Experiment, runs: list[RunDiagnosis], given: dict[str, float]
                ) -> ExperimentDiagnosis:
    th = _thresholds.resolve(given)
    outcomes = {r.run.name: r.numbers["final_w1"] for r in runs}
    hp = hyperparameters(exp.runs) if len(exp.runs) > 1 else {}
    sep = mark_significance(separation(hp, outcomes), th) if hp else []
    seeds = seed_spread(hp, outcomes) if hp else None
    keep, keep_reason, keep_findings = choose_keep(runs)
    findings = list(exp.problems) + sweep_findings(sep, th, seeds) + keep_findings
    for f in findings:
        f.run = f.run or EXPERIMENT
    return ExperimentDiagnosis(exp, runs, findings, rank(outcomes), hp, sep, th, keep,
                               keep_reason, settings(hp, outcomes) if hp else [])


def diagnose_path(path: str | Path,
                  th: Mapping[str, float] | str | Path | None = None,
                  *, cache: bool = True, workers: int | None = None) -> ExperimentDiagnosis:
    """Load a run or an experiment and diagnose it (raises load.NotARunError), each run from
    its cache when it has not changed. `workers` > 1 loads and diagnoses the runs in that many
    processes; off by default: shipping the loaded runs back to this process cost more than
    it saved (BENCHMARKS.md, issue 24)."""
    path = Path(path)
    if not cache or not workers or workers <= 1 or not path.is_dir() or is_run_dir(path):
        return diagnose_experiment(load(path), th, cache=cache)
    from analysis.cache import load_and_diagnose
    given = _thresholds.read_overrides(th)
    root, info, problems, run_dirs, overrides = experiment_plan(path)
    pairs = load_and_diagnose(run_dirs, overrides, given, workers)
    exp = assemble(root, info, problems, [run for run, _ in pairs])
    return _experiment(exp, [rd for _, rd in pairs], given)


def to_json(d: ExperimentDiagnosis) -> dict[str, Any]:
    """A plain, JSON-serialisable summary for scripts (`qgan diagnose --json`)."""
    kept = next((r for r in d.runs if r.run.name == d.keep), None)
    return {
        "experiment": d.experiment.name,
        "path": str(d.experiment.path),
        "keep": d.keep, "keep_reason": d.keep_reason,
        "runs": [{"name": r.run.name, "path": str(r.run.path), "verdict": r.verdict.value,
                  "flags": [f.value for f in r.flags], "reason": r.verdict_reason,
                  "reasons": r.reasons, "numbers": r.numbers,
                  "best": r.best.to_dict() if r.best is not None else None,
                  "advice": [a.to_dict() for a in r.advice],
                  "attempts": [{k: t[k] for k in ("attempt", "job", "cause", "start_step", "end_step",
                                                  "lost_steps")} for t in r.timeline],
                  "rank": d.ranking.index(r.run.name) + 1,
                  "versus_keep": versus(r, kept) if kept is not None and r is not kept else None}
                 for r in d.runs],
        "findings": [f.to_dict() for f in d.all_findings()],
        "separation": d.separation,
        "settings": d.settings,
        "headlines": [{"name": h.name, "label": h.label, "definition": h.definition}
                      for h in HEADLINES],
        "verdicts": [{"verdict": v, "meaning": m} for v, m in LEGEND],
        "panels": PANELS,
    }
