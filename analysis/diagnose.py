"""Run every diagnosis over a run or an experiment; the entry point for the CLI and reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from analysis import thresholds as _thresholds
from analysis.balance import balance_phases, diagnose_balance
from analysis.collapse import diagnose_collapse
from analysis.findings import EXPERIMENT, Finding, severity_rank
from analysis.gradients import diagnose_gradients
from analysis.history import attempt_timeline, diagnose_history
from analysis.integrity import diagnose_checkpoints
from analysis.leakage import diagnose_leakage
from analysis.load import Experiment, RunData, load
from analysis.nonfinite import diagnose_nonfinite
from analysis.sweep import hyperparameters, rank, seed_spread, separation, sweep_findings
from analysis.verdict import key_numbers, verdict

log = logging.getLogger(__name__)

DIAGNOSES: tuple[Callable[[RunData, dict], list[Finding]], ...] = (
    diagnose_collapse, diagnose_nonfinite, diagnose_gradients, diagnose_balance,
    diagnose_leakage, diagnose_history, diagnose_checkpoints)


@dataclass
class RunDiagnosis:
    run: RunData
    findings: list[Finding]
    verdict: str
    verdict_reason: str
    numbers: dict[str, Any]
    phases: list[tuple[str, int, int]]
    timeline: list[dict]


@dataclass
class ExperimentDiagnosis:
    experiment: Experiment
    runs: list[RunDiagnosis]
    findings: list[Finding]  # about the experiment as a whole
    ranking: list[str]  # run names, best first
    hyperparameters: dict[str, dict[str, Any]]
    separation: list[dict[str, Any]]
    thresholds: dict[str, float] = field(default_factory=dict)

    def all_findings(self) -> list[Finding]:
        fs = self.findings + [f for r in self.runs for f in r.findings]
        return sorted(fs, key=lambda f: (-severity_rank(f.severity), f.run,
                                         f.start_step if f.start_step is not None else -1))


def diagnose_run(run: RunData, th: dict[str, float] | None = None) -> RunDiagnosis:
    th = th or _thresholds.resolve(None, run.config)
    findings = list(run.problems)
    for fn in DIAGNOSES:
        try:
            findings += fn(run, th)
        except Exception as exc:  # noqa: BLE001 - damaged data must not stop the postmortem
            log.exception("%s failed on %s", fn.__name__, run.name)
            findings.append(Finding("analysis_error", "warning", run.name,
                                    f"{fn.__name__} failed: {type(exc).__name__}: {exc}",
                                    "The data is damaged in an unexpected way; please report "
                                    "this with the run directory."))
    timeline = attempt_timeline(run)
    v, why = verdict(run, findings, timeline)
    try:
        phases = balance_phases(run, th)
    except Exception:  # noqa: BLE001
        phases = []
    return RunDiagnosis(run, findings, v, why, key_numbers(run, timeline), phases, timeline)


def diagnose_experiment(exp: Experiment,
                        th: Mapping[str, float] | str | Path | None = None
                        ) -> ExperimentDiagnosis:
    given = _thresholds.read_overrides(th)
    th = _thresholds.resolve(given)
    runs = [diagnose_run(r, _thresholds.resolve(given, r.config)) for r in exp.runs]
    outcomes = {r.run.name: r.numbers["final_w1"] for r in runs}
    hp = hyperparameters(exp.runs) if len(exp.runs) > 1 else {}
    sep = separation(hp, outcomes) if hp else []
    seeds = seed_spread(hp, outcomes) if hp else None
    findings = list(exp.problems) + sweep_findings(sep, th, seeds)
    for f in findings:
        f.run = f.run or EXPERIMENT
    return ExperimentDiagnosis(exp, runs, findings, rank(outcomes), hp, sep, th)


def diagnose_path(path: str | Path,
                  th: Mapping[str, float] | str | Path | None = None) -> ExperimentDiagnosis:
    """Load a run or an experiment and diagnose it (raises load.NotARunError)."""
    return diagnose_experiment(load(path), th)


def to_json(d: ExperimentDiagnosis) -> dict[str, Any]:
    """A plain, JSON-serialisable summary for scripts (`qgan diagnose --json`)."""
    return {
        "experiment": d.experiment.name,
        "path": str(d.experiment.path),
        "runs": [{"name": r.run.name, "path": str(r.run.path), "verdict": r.verdict,
                  "reason": r.verdict_reason, "numbers": r.numbers,
                  "attempts": [{k: t[k] for k in ("attempt", "cause", "start_step", "end_step",
                                                  "lost_steps")} for t in r.timeline],
                  "rank": d.ranking.index(r.run.name) + 1}
                 for r in d.runs],
        "findings": [f.to_dict() for f in d.all_findings()],
        "separation": d.separation,
    }
