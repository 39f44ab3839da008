"""The project's words, defined once: verdicts, severities, attempt ends, run outcomes, stop
causes, finding kinds, watched-metric directions.

TF-free (schema layer): the trainer, analysis, reports and the CLI all import these, so a word
cannot be spelled two ways. StrEnum members compare equal to their strings ("error" ==
Severity.ERROR) and serialise to JSON as plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How much a finding or event matters; ordered: info < warning < error."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Verdict(StrEnum):
    """What happened to a run, in one word a researcher acts on. The rules that give them (and
    their precedence, worst first) live in analysis/verdict.py, RULES."""

    FAILED = "failed"
    DIVERGED = "diverged"
    LEAKING = "leaking"
    NEVER_FIT = "never_fit"
    COLLAPSED = "collapsed"
    REGRESSED = "regressed"
    STALLED = "stalled"
    DEGRADED = "degraded"
    UNFINISHED = "unfinished"
    CONVERGED = "converged"
    IMPROVING = "improving"


class StopCause(StrEnum):
    """Why one job episode stopped. Decided once, by the job layer (from the trainer's exit
    status, the signals it saw and the job's deadline, not from the signal's name alone), and
    recorded as `stop_cause` in `<run>/jobs.json`; `qgan status`, `qgan diagnose` and the report
    all read it from there."""

    FINISHED = "finished"
    PREEMPTION = "preemption"
    TIME_LIMIT = "time_limit"
    REQUESTED = "requested"  # a stop signal that was neither (e.g. scancel --signal=USR2)
    CANCELLED = "cancelled"  # scancel or `qgan cancel`: never requeued
    CRASH = "crash"
    BAD_INPUT = "bad_input"
    DIVERGED = "diverged"
    LOCKED = "locked"  # another trainer held the run directory (trainer exit 4)
    WRITE_FAILED = "write_failed"  # exit 75 without a signal: the run directory was unwritable
    UNVERIFIED = "unverified"  # checkpoints exist, none verifies (trainer exit 5): untouched
    PRUNED = "pruned"  # `qgan submit --prune`: its live verdict was terminal (jobs/prune.py)


class AttemptEnd(StrEnum):
    """How one trainer process ended its attempt: written by the trainer as `reason` in
    attempts/<n>.json and in the `attempt_end` event; the job layer and analysis read it."""

    FINISHED = "finished"  # train.steps reached
    EARLY_STOP = "early_stop"  # a monitor stopped the run (early stopping, lasting collapse)
    DIVERGED = "diverged"  # the guard gave up after repeated rollbacks
    CRASH = "crash"  # an unexpected error (traceback in the log)
    SIGNAL = "signal"  # stopped by a signal after checkpointing: resumable
    WRITE_FAILED = "write_failed"  # the final checkpoint could not be written: resumable


# the ends after which a run is over: a resume has nothing to do
RUN_OVER = (AttemptEnd.FINISHED, AttemptEnd.EARLY_STOP, AttemptEnd.DIVERGED)


class RunOutcome(StrEnum):
    """What the job layer concluded for a run (`outcome` in `<run>/jobs.json`; null while it
    may still run). Written by the job callable, read by `qgan status` and `qgan resubmit`."""

    FINISHED = "finished"
    GAVE_UP = "gave_up"  # a retry limit (max_requeues, max_failures) was reached
    BAD_INPUT = "bad_input"  # the trainer refused its config or data (exit 2)
    DIVERGED = "diverged"  # the guard gave up (trainer exit 3)
    CANCELLED = "cancelled"  # scancel or `qgan cancel`
    REQUEUE_FAILED = "requeue_failed"  # the scheduler refused to requeue the job
    INTERRUPTED = "interrupted"  # stopped with nobody to requeue it (a callable called directly)
    PRUNED = "pruned"  # stopped by the pruner on a terminal live verdict (never requeued)


# outcomes after which the job callable refuses to train the run again (resubmit resets them)
STOPPED_FOR_GOOD = (RunOutcome.GAVE_UP, RunOutcome.BAD_INPUT, RunOutcome.DIVERGED,
                    RunOutcome.PRUNED)


class FindingKind(StrEnum):
    """What one analysis finding is about. Every finding is constructed with a member (a
    misspelt kind is an error, not a new kind), and `analysis/panels.py` maps every member to
    the report panel that shows its evidence (a test checks the map is total)."""

    # quality over the evals
    NEVER_FIT = "never_fit"
    REGRESSION = "regression"
    STAGNATION = "stagnation"
    MODE_COLLAPSE = "mode_collapse"
    PARTIAL_COLLAPSE = "partial_collapse"
    BETWEEN_MODES = "between_modes"  # all modes covered, but many samples off every mode
    # structure on any data (the data profile's modes, the k-NN support metrics)
    DROPPED_MODE = "dropped_mode"  # a data mode with >= 5 % of the weight gets < 1/4 of it
    SKEWED_WEIGHTS = "skewed_weights"  # every mode there, in the wrong proportions
    OFF_SUPPORT = "off_support"  # low precision: mass where the data has none
    MISSED_SUPPORT = "missed_support"  # low recall or coverage: data never generated
    TOO_NARROW = "too_narrow"  # samples closer to the data's centre than the data
    TOO_WIDE = "too_wide"  # samples farther from it
    # the steps
    NONFINITE = "nonfinite"
    OSCILLATION = "oscillation"
    D_DOMINANCE = "d_dominance"
    G_DOMINANCE = "g_dominance"
    EQUILIBRIUM = "equilibrium"
    VANISHING_GRADIENTS = "vanishing_gradients"
    EXPLODING_GRADIENTS = "exploding_gradients"
    DEAD_PARAMETERS = "dead_parameters"
    CLIPPING_SATURATION = "clipping_saturation"
    FOCK_LEAKAGE = "fock_leakage"
    # the jobs and checkpoints
    CRASH = "crash"
    LOST_WORK = "lost_work"
    JOB_HISTORY = "job_history"
    PRUNED = "pruned"  # the pruner stopped the run (jobs.json: finding and step)
    UNFINISHED = "unfinished"
    CHECKPOINT_CADENCE = "checkpoint_cadence"
    CHECKPOINT_REJECTED = "checkpoint_rejected"
    CHECKPOINT_FAILED = "checkpoint_failed"
    # the experiment
    SEED_SPREAD = "seed_spread"
    HYPERPARAMETER_EFFECT = "hyperparameter_effect"
    KEEP = "keep"
    # the run directory's files
    MISSING_FILE = "missing_file"
    CORRUPT_FILE = "corrupt_file"
    UNSAFE_PATH = "unsafe_path"
    MISSING_TABLE = "missing_table"
    EMPTY_TABLE = "empty_table"
    EMPTY_COLUMNS = "empty_columns"
    PART_SCHEMA = "part_schema"
    CORRUPT_PART = "corrupt_part"
    ANALYSIS_ERROR = "analysis_error"  # an analysis raised on this run's data


# Eval metrics a monitor or the best-checkpoint keeper may watch, and which way is better.
# The one source of truth for a metric's direction (checkpoint.best_metric, analysis).
METRIC_MODE: dict[str, str] = {
    "w1_mean": "min",
    "sliced_w1": "min",
    "precision": "max",
    "recall": "max",
    "coverage": "max",
    "sample_var_ratio": "max",
    "mode_balance": "max",
    "modes_covered": "max",
    "high_quality_frac": "max",
}


def better(metric: str, a: float, b: float, min_delta: float = 0.0) -> bool:
    """True when value `a` of `metric` is better than `b` by more than `min_delta`."""
    return (b - a if METRIC_MODE[metric] == "min" else a - b) > min_delta
