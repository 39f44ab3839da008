"""analysis: read run directories (Parquet) and turn them into findings with evidence.

Imports nothing from qgan but `qgan.schema` (no TensorFlow). Typical use:

    from analysis import diagnose_path
    d = diagnose_path("runs/my-sweep")          # ExperimentDiagnosis
    for f in d.all_findings(): print(f.severity, f.run, f.steps, f.summary)

Verdict rules (healthy, degraded, collapsed, ...): analysis/verdict.py, RULES.
"""

from analysis.diagnose import (ExperimentDiagnosis, RunDiagnosis, diagnose_experiment,
                               diagnose_path, diagnose_run, to_json)
from analysis.findings import Finding, severity_rank
from analysis.load import Experiment, NotARunError, RunData, load, load_experiment, load_run
from analysis.thresholds import DEFAULTS as THRESHOLDS, resolve as resolve_thresholds
from analysis.verdict import LEGEND as VERDICT_LEGEND, VERDICTS

__all__ = ["ExperimentDiagnosis", "RunDiagnosis", "diagnose_experiment", "diagnose_path",
           "diagnose_run", "to_json", "Finding", "severity_rank", "Experiment", "NotARunError",
           "RunData", "load", "load_experiment", "load_run", "THRESHOLDS",
           "resolve_thresholds", "VERDICTS", "VERDICT_LEGEND"]
