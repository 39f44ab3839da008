"""analysis: read run directories (Parquet) and turn them into findings with evidence.

Imports from qgan only modules that load no TensorFlow (the run-directory contract, its
vocabulary and readers); tests/test_layers.py checks it by running the analysis, the report
and the job layer's status and cancel with TensorFlow kept out. Typical use:

    from analysis import diagnose_path
    d = diagnose_path("runs/my-sweep")          # ExperimentDiagnosis
    for f in d.all_findings(): print(f.severity, f.run, f.steps, f.summary)

Verdict rules (converged, regressed, never_fit, leaking, ...): analysis/verdict.py, RULES.
Headline numbers (final W1, best W1, ...): analysis/headline.py, HEADLINES. The contract the
report builds on: docs/analysis-contract.md.
"""

import importlib
from typing import Any

# name -> the module that defines it; imported on first use (PEP 562), so that a light
# import such as `qgan status`'s `analysis.live` does not pay for pandas and the whole rule set
_EXPORTS = {
    "Advice": "analysis.advice", "BestCheckpoint": "analysis.best",
    "diagnose_experiment": "analysis.diagnose", "diagnose_path": "analysis.diagnose",
    "diagnose_run": "analysis.diagnose", "summarise_path": "analysis.diagnose",
    "to_json": "analysis.diagnose", "ExperimentDiagnosis": "analysis.diagnosis",
    "RunDiagnosis": "analysis.diagnosis", "Finding": "analysis.findings",
    "severity_rank": "analysis.findings", "HEADLINE": "analysis.headline",
    "HEADLINES": "analysis.headline", "PANELS": "analysis.panels",
    "Experiment": "analysis.rundata", "RunData": "analysis.rundata", "load": "analysis.rundata",
    "load_experiment": "analysis.rundata", "load_run": "analysis.rundata",
    "NotARunError": "analysis.rundirs", "THRESHOLDS": ("analysis.thresholds", "DEFAULTS"),
    "resolve_thresholds": ("analysis.thresholds", "resolve"),
    "VERDICTS": "analysis.verdict", "VERDICT_LEGEND": ("analysis.verdict", "LEGEND"),
}


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = ["Advice", "BestCheckpoint", "HEADLINE", "HEADLINES", "PANELS",
           "ExperimentDiagnosis", "RunDiagnosis", "diagnose_experiment", "diagnose_path", "summarise_path",
           "diagnose_run", "to_json", "Finding", "severity_rank", "Experiment", "NotARunError",
           "RunData", "load", "load_experiment", "load_run", "THRESHOLDS",
           "resolve_thresholds", "VERDICTS", "VERDICT_LEGEND"]
