"""Diagnose a run or an experiment (each run by analysis/rundiagnose.py, from its cache when
unchanged), then rank, compare and choose the run to keep; the entry point for the CLI and
reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from analysis import thresholds as _thresholds
from analysis.cache import Extra, diagnose_cached, entries, from_doc
from analysis.diagnosis import ExperimentDiagnosis, RunDiagnosis
from analysis.findings import EXPERIMENT
from analysis.headline import HEADLINES
from analysis.keep import choose_keep, versus
from analysis.rundata import Experiment, assemble, experiment_plan, load, run_header
from analysis.rundirs import NotARunError, is_run_dir, run_names
from analysis.panels import PANELS
from analysis.rundiagnose import diagnose_run
from analysis.sweep import (hyperparameters, mark_significance, rank, seed_spread, separation,
                            settings, sweep_findings)
from analysis.verdict import LEGEND

__all__ = ["diagnose_experiment", "diagnose_path", "diagnose_run", "summarise_path", "to_json"]


def diagnose_experiment(exp: Experiment,
                        th: Mapping[str, float] | str | Path | None = None,
                        *, cache: bool = True) -> ExperimentDiagnosis:
    """Every run's diagnosis (from its cache when nothing it read has changed:
    analysis/cache.py), then the experiment's: ranking, sweep, the run to keep."""
    given = _thresholds.read_overrides(th)
    if cache:
        runs = [diagnose_cached(r, given)[0] for r in exp.runs]
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
                  *, cache: bool = True) -> ExperimentDiagnosis:
    """Load a run or an experiment and diagnose it (raises load.NotARunError), each run from
    its cache when it has not changed. Every run's data is loaded (figures and exports draw
    it); `summarise_path` is the same diagnosis without loading unchanged runs."""
    return diagnose_experiment(load(path), th, cache=cache)


def summarise_path(path: str | Path,
                   th: Mapping[str, float] | str | Path | None = None,
                   extras: tuple[Extra, ...] = (), *, workers: int | None = None
                   ) -> ExperimentDiagnosis:
    """The diagnosis of a run or an experiment as `diagnose_path` gives it, but each run's
    data stays on disk: a run whose cache holds its diagnosis and `extras` (what the caller
    draws from the data, e.g. the report's per-run payload) is not loaded at all, and the
    others are loaded, diagnosed and cached in parallel processes that send back only JSON.
    Each run comes back as a header (`RunData.loaded` false: config and names, no tables)
    with `RunDiagnosis.extras` filled in."""
    path = Path(path)
    given = _thresholds.read_overrides(th)
    if not path.is_dir():
        raise NotARunError(f"{path} is not a directory")
    if is_run_dir(path):
        root, info, problems, run_dirs, overrides = path, {}, [], [path], {}
    else:
        root, info, problems, run_dirs, overrides = experiment_plan(path)
    names = run_names(run_dirs)
    got = entries(run_dirs, names, overrides, given, workers, extras)
    headers = [run_header(d, n, overrides.get(d.name, {})) for d, n in zip(run_dirs, names)]
    runs = []
    for run in headers:
        e = got[run.path]
        rd = from_doc(e.doc, run)
        rd.extras = e.extras
        runs.append(rd)
    exp = assemble(root, info, problems, headers) if len(headers) > 1 else Experiment(
        path=root, name=headers[0].name, info={}, runs=headers)
    return _experiment(exp, runs, given)


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
