"""What a diagnosis is: the findings, verdicts and numbers of one run, and of an experiment.

Plain records, apart from the rules that fill them (analysis/diagnose.py), so that the rules
that read a diagnosis (analysis/keep.py, reports/) import its type without importing the
rules: one direction, no circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.advice import Advice
from analysis.best import BestCheckpoint
from analysis.findings import Finding, severity_rank
from qgan.vocabulary import Verdict

if TYPE_CHECKING:  # the loader (pandas) only for type checkers: a cached diagnosis needs none
    from analysis.rundata import Experiment, RunData


@dataclass
class RunDiagnosis:
    run: RunData
    findings: list[Finding]
    verdict: Verdict  # the primary verdict (analysis/verdict.py RULES: first that applies)
    verdict_reason: str
    numbers: dict[str, Any]  # analysis/headline.py HEADLINES, by name
    phases: list[tuple[str, int, int]]
    timeline: list[dict]
    flags: list[Verdict] = field(default_factory=list)  # other verdicts that also apply
    reasons: dict[str, str] = field(default_factory=dict)  # every verdict that applies -> why
    best: BestCheckpoint | None = None
    advice: list[Advice] = field(default_factory=list)
    # (eval step, value of the best checkpoint's metric) at every eval, NaN where missing:
    # what comparing runs reads (analysis/keep.py), so a cached diagnosis needs no run data
    curve: list[tuple[int, float]] = field(default_factory=list)
    # what upper layers derived from the run's data and cached beside its diagnosis, by name
    # (analysis/cache.py `Extra`; e.g. the report's per-run payload)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentDiagnosis:
    experiment: Experiment
    runs: list[RunDiagnosis]
    findings: list[Finding]  # about the experiment as a whole
    ranking: list[str]  # run names, best first
    hyperparameters: dict[str, dict[str, Any]]
    separation: list[dict[str, Any]]
    thresholds: dict[str, float] = field(default_factory=dict)
    keep: str | None = None  # the run to keep (analysis/keep.py)
    keep_reason: str = ""
    settings: list[dict[str, Any]] = field(default_factory=list)  # per swept setting

    def all_findings(self) -> list[Finding]:
        fs = self.findings + [f for r in self.runs for f in r.findings]
        return sorted(fs, key=lambda f: (-severity_rank(f.severity), f.run,
                                         f.start_step if f.start_step is not None else -1))
