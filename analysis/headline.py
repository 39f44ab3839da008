"""One definition of each headline number: `HEADLINES` maps a name to its label, the sentence
that defines it, and the function that computes it. The CLI, `qgan diagnose --json`, the
verdict rules and the report all use these (the report takes its labels and tooltips from
here), so "final W1" cannot mean two things on one page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from analysis.series import col, flag

if TYPE_CHECKING:  # the loader (pandas) only for type checkers: status imports the rules
    from analysis.rundata import RunData

FINAL_EVALS = 3  # "final W1" is the median of this many last evals


def final_of(values: np.ndarray) -> float | None:
    """The final value of an eval series: the median of its last FINAL_EVALS finite values (one
    noisy eval must not decide a ranking or a verdict)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.median(v[-FINAL_EVALS:])) if v.size else None


def best_index(values: np.ndarray, mode: str = "min") -> int | None:
    """Index of the best finite value (earliest on ties), or None."""
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    return int(np.nanargmin(np.where(ok, v, np.inf)) if mode == "min"
               else np.nanargmax(np.where(ok, v, -np.inf)))


# The distance the quality rules (never fit, regressed, stalled, converged) judge a run by:
# the per-axis W1, or, for a run that watches the sliced W1 (data files: its best checkpoint is
# chosen by it), the sliced W1 above its floor, which sees the joint shape the marginals miss.
QUALITY_LABEL = {"w1_mean": "W1", "sliced_w1": "sliced W1 above its floor"}


def quality_series(run: RunData) -> tuple[str, np.ndarray]:
    """(metric, per-eval distance) the quality rules read: `w1_mean`, or `sliced_w1` minus
    `sliced_w1_floor` when the run's checkpoint.best_metric is `sliced_w1` and it has them."""
    if run.config.get("checkpoint.best_metric") == "sliced_w1":
        excess = col(run.evals, "sliced_w1") - col(run.evals, "sliced_w1_floor")
        if np.isfinite(excess).any():
            return "sliced_w1", excess
    return "w1_mean", col(run.evals, "w1_mean")


def _last(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x[-1]) if x.size else None


def _best_w1(run: RunData, timeline: list[dict]) -> float | None:
    i = best_index(col(run.evals, "w1_mean"))
    return None if i is None else float(col(run.evals, "w1_mean")[i])


def _best_step(run: RunData, timeline: list[dict]) -> int | None:
    i = best_index(col(run.evals, "w1_mean"))
    return None if i is None else int(run.evals["step"].iloc[i])


def _lost(run: RunData) -> Any:
    return run.steps_superseded


HeadlineFn = Callable[["RunData", list[dict]], Any]


@dataclass(frozen=True)
class Headline:
    name: str
    label: str  # column header / axis label
    definition: str  # one sentence: what the number is (tooltips, the CLI, docs)
    fn: HeadlineFn


HEADLINES: tuple[Headline, ...] = (
    Headline("best_w1", "best W1",
             "the lowest w1_mean (mean over axes of the 1-D Wasserstein-1 distance to held-out "
             "real data) over all evals of the run", _best_w1),
    Headline("best_step", "best step", "the step of the eval with the best W1 (earliest on "
             "ties)", _best_step),
    Headline("final_w1", "final W1",
             f"the median w1_mean of the last {FINAL_EVALS} evals",
             lambda r, t: final_of(col(r.evals, "w1_mean"))),
    Headline("modes_covered", "modes covered",
             "modes holding at least 1/(4 n_modes) of the samples, at the last eval",
             lambda r, t: _last(col(r.evals, "modes_covered"))),
    Headline("n_modes", "modes", "modes of the target mixture (0 = not a mixture)",
             lambda r, t: _last(col(r.evals, "n_modes"))),
    Headline("hq_frac", "HQ fraction",
             "fraction of samples within 3 sigma of a mode, at the last eval",
             lambda r, t: _last(col(r.evals, "high_quality_frac"))),
    Headline("final_var_ratio", "variance ratio",
             "generated/real total variance at the last eval (1 = same spread)",
             lambda r, t: _last(col(r.evals, "sample_var_ratio"))),
    Headline("last_step", "last step", "the last step computed",
             lambda r, t: int(r.steps["step"].max()) if len(r.steps) else None),
    Headline("total_steps", "train.steps", "the steps the run was configured for",
             lambda r, t: r.total_steps),
    Headline("attempts", "attempts", "trainer starts (the first run plus every resume)",
             lambda r, t: len(t)),
    Headline("lost_steps", "lost steps",
             "steps computed and then thrown away (redone after a kill or a rollback)",
             lambda r, t: int(len(_lost(r)))),
    Headline("nonfinite_steps", "non-finite steps",
             "steps with a NaN/Inf loss or gradient, including thrown-away ones",
             lambda r, t: int(flag(r.steps, "nonfinite").sum()
                              + flag(_lost(r), "nonfinite").sum())),
    Headline("compute_hours", "compute h",
             "wall time of every computed step, thrown-away ones included, in hours",
             lambda r, t: float(np.nansum(col(r.steps, "step_seconds"))
                                + np.nansum(col(_lost(r), "step_seconds"))) / 3600),
)
HEADLINE = {h.name: h for h in HEADLINES}


def key_numbers(run: RunData, timeline: list[dict]) -> dict[str, Any]:
    """Every headline number of a run, by name."""
    return {h.name: h.fn(run, timeline) for h in HEADLINES}
