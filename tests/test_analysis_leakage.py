"""The Fock-leakage rule (analysis/leakage.py): an episode is an error (the run "leaking")
only when the evals at its end still leak past leak_trace_error, on hand-made tables in the
shape analysis.rundata produces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.leakage import diagnose_leakage
from analysis.rundata import RunData
from qgan.thresholds import defaults

TH = defaults()


def _run(step_trace: np.ndarray, eval_trace: list[float] | None) -> RunData:
    steps = pd.DataFrame({"step": np.arange(1, len(step_trace) + 1, dtype=np.int64),
                          "fock_trace_min": step_trace, "fock_trace_mean": step_trace + 0.01})
    evals = pd.DataFrame() if eval_trace is None else pd.DataFrame({
        "step": np.arange(1, len(eval_trace) + 1, dtype=np.int64) * 100,
        "fock_trace_min": np.asarray(eval_trace, float)})
    empty = pd.DataFrame()
    return RunData(Path("r"), "r", {}, {"generator.cutoff": 10}, {}, steps, empty, evals,
                   empty, empty, [])


# 600 steps: a batch at 0.80 in the first 100 steps, then 0.95 to the end (below 0.99 throughout)
TRAIN = np.r_[np.full(100, 0.80), np.full(500, 0.95)]


def test_a_generator_that_leaked_on_its_way_but_samples_inside_at_the_end_is_a_warning():
    (f,) = diagnose_leakage(_run(TRAIN, [0.85, 0.93, 0.95, 0.96, 0.95, 0.95]), TH)
    assert (f.severity, f.start_step, f.end_step) == ("warning", 1, 600)
    assert f.summary == "Fock trace below 0.99 from step 1 (min 0.800; 0.950 in the evals at its end)"
    assert (f.evidence["min_trace"], f.evidence["end_eval_trace"]) == (0.8, 0.95)


def test_evals_still_leaking_at_the_end_make_it_an_error():
    (f,) = diagnose_leakage(_run(TRAIN, [0.95, 0.95, 0.95, 0.89, 0.88, 0.95]), TH)
    assert f.severity == "error" and f.evidence["end_eval_trace"] == 0.89  # median of the last 3


def test_without_evals_the_training_batches_decide():
    (f,) = diagnose_leakage(_run(TRAIN, None), TH)
    assert f.severity == "error" and f.evidence["end_eval_trace"] is None
    assert f.summary == "Fock trace below 0.99 from step 1 (min 0.800)"
