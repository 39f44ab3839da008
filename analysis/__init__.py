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

from analysis.advice import Advice
from analysis.best import BestCheckpoint
from analysis.diagnose import (diagnose_experiment, diagnose_path, diagnose_run, summarise_path,
                               to_json)
from analysis.diagnosis import ExperimentDiagnosis, RunDiagnosis
from analysis.findings import Finding, severity_rank
from analysis.headline import HEADLINE, HEADLINES
from analysis.panels import PANELS
from analysis.load import Experiment, NotARunError, RunData, load, load_experiment, load_run
from analysis.thresholds import DEFAULTS as THRESHOLDS, resolve as resolve_thresholds
from analysis.verdict import LEGEND as VERDICT_LEGEND, VERDICTS

__all__ = ["Advice", "BestCheckpoint", "HEADLINE", "HEADLINES", "PANELS",
           "ExperimentDiagnosis", "RunDiagnosis", "diagnose_experiment", "diagnose_path", "summarise_path",
           "diagnose_run", "to_json", "Finding", "severity_rank", "Experiment", "NotARunError",
           "RunData", "load", "load_experiment", "load_run", "THRESHOLDS",
           "resolve_thresholds", "VERDICTS", "VERDICT_LEGEND"]
