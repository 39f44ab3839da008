"""The run-directory contract: file names, table schemas, event kinds, exit statuses.

This module is the one thing `analysis` imports from `qgan`: it has no TensorFlow in it.
Metric tables live under `<run>/metrics/<table>/attempt=<n>/part-*.parquet` (Hive-style
partitions). `attempt` is carried by the partition directory only, not repeated inside the
files: pandas' `read_parquet(dir)` refuses a column that is both (it infers the partition as a
dictionary type). Open a table with

    pyarrow.dataset.dataset(path, format="parquet", partitioning="hive")   # attempt: int32
    pandas.read_parquet(path, partitioning=<PARTITIONING, hive>)           # attempt: int32
    duckdb: read_parquet('path/**/*.parquet', hive_partitioning = true,
                         hive_types = {'attempt': INTEGER})

(plain `pandas.read_parquet(path)` makes `attempt` a category in folder-listing order, so 10
sorts before 9). Readers keep, per step, the row with the largest (attempt, revision); see
`_KEY` and the tested recipes in docs/run-directory.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa

from qgan.vocabulary import Severity

# ---- exit statuses of `qgan train` -------------------------------------------------------------
EXIT_OK = 0  # finished, or stopped early by a monitor (recorded as an event)
EXIT_CRASH = 1  # an unexpected error (a traceback is logged)
EXIT_BAD_INPUT = 2  # bad config, bad data, or a run directory created with another config
EXIT_DIVERGED = 3  # the guard gave up: too many rollbacks (recorded); do not requeue
EXIT_LOCKED = 4  # another trainer holds the run directory's lock: nothing was touched
EXIT_UNVERIFIED = 5  # checkpoints exist but none verifies (damage, or an I/O error while
#                      verifying): nothing was touched; `qgan train --fresh` starts over
EXIT_RESUME = 75  # stopped by a signal after checkpointing: requeue and resume (EX_TEMPFAIL)

# ---- run-directory layout ----------------------------------------------------------------------
CONFIG_FILE = "config.toml"
RUN_FILE = "run.json"
EXPERIMENT_FILE = "experiment.json"
CHECKPOINT_DIR = "checkpoints"
MANIFEST_FILE = "manifest.json"  # inside checkpoints/
CHECKPOINT_PREFIX = "ckpt-"  # checkpoints/ckpt-<seq>/: the keep-N rotation
BEST_PREFIX = "best-"  # checkpoints/best-<seq>/: the best eval so far (checkpoint.keep_best),
#                        outside the rotation; manifest.json's "best" entry names it
CHECKSUM_FILE = "checksums.json"  # inside each checkpoint folder
INTERPOLATION_FILE = "best-interpolation.parquet"  # samples/: the best checkpoint's latent line
METRICS_DIR = "metrics"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
TENSORBOARD_DIR = "tensorboard"  # event files, one per attempt (metrics.tensorboard; a mirror
#                                  of the metrics tables, never read by the toolkit)
LOCK_FILE = "run.lock"  # flock()ed by the one trainer of the run (qgan/rundir.py: RunLock)
ATTEMPTS_DIR = "attempts"  # one JSON file per attempt: start, end, reason, host, job id
REPORT_FILE = "report.html"  # the postmortem of a run or experiment folder (qgan report)
PROFILE_FILE = "data_profile.json"  # the data's modes, scale and reference values, written once
#                                    at the first attempt (qgan/dataprofile.py)
JOBS_FILE = "jobs.json"  # the job layer's ledger: one entry per job episode (jobs/ledger.py)
STATUS_CACHE_FILE = ".status-cache.json"  # `qgan status`'s cache of this run's parts (derived)
DIAGNOSIS_CACHE_FILE = ".diagnosis-cache.json"  # this run's diagnosis, keyed by what it read
#                                                 (analysis/cache.py; derived, never trusted blind)
SUPERSEDED_DIR = "superseded"  # `qgan train --fresh` moves the old state here, never deletes


def attempt_numbers(run_dir) -> dict[int, object]:
    """{attempt number: its file} in `<run>/attempts/`: NNNN.json, zero-padded to 4 digits
    and wider past 9999 (so a glob of four digits would miss attempt 10000)."""
    folder = Path(run_dir) / ATTEMPTS_DIR
    if folder.is_symlink() or not folder.is_dir():  # a link is never listed through
        return {}
    return {int(p.stem): p for p in folder.iterdir()
            if p.suffix == ".json" and p.stem.isdigit() and len(p.stem) >= 4}


_ATTEMPT_FOLDER = re.compile(r"attempt=(\d+)")


def metric_parts(run_dir, table: str) -> list[tuple[int, object]]:
    """[(attempt, part file)] of `<run>/metrics/<table>/attempt=<n>/*.parquet`, by attempt
    then name; temporaries (leading dot) are skipped. Links are listed, not followed: every
    reader opens them through qgan.saferead, which refuses them by name. (os.scandir: the
    status and the diagnosis cache list every run's parts at every refresh.)"""
    root = Path(run_dir) / METRICS_DIR / table
    for folder in (root.parent, root):
        if folder.is_symlink():  # never listed through: the reader refuses it by name
            return [(0, folder)]
    out = []
    try:
        with os.scandir(root) as it:
            folders = sorted((e for e in it), key=lambda e: e.name)
    except OSError:
        return []
    for entry in folders:
        m = _ATTEMPT_FOLDER.fullmatch(entry.name)
        if not m:
            continue
        attempt, folder = int(m.group(1)), root / entry.name
        if entry.is_symlink():  # never listed through: the reader refuses it by name
            out.append((attempt, folder))
            continue
        try:
            with os.scandir(entry.path) as it:
                names = sorted(e.name for e in it if e.name.endswith(".parquet")
                               and not e.name.startswith((".", "_")))
        except OSError:  # not a folder (or a link to a file)
            continue
        out += [(attempt, folder / n) for n in names]
    return sorted(out, key=lambda item: (item[0], item[1].name))


TABLES = ("steps", "evals", "events")

# ---- tables ------------------------------------------------------------------------------------
# `revision` counts the guard's rollbacks so far: a rollback replays steps inside one attempt, and
# the replayed rows supersede the rolled-back ones. The row that counts for a step is the one
# with the largest (attempt, revision); the others are evidence (lost work, NaN episodes).
# `attempt` (int32) is the partition key, added by the dataset reader.
PARTITIONING = pa.schema([pa.field("attempt", pa.int32())])
_KEY = [pa.field("step", pa.int64(), nullable=False),
        pa.field("revision", pa.int32(), nullable=False),
        pa.field("wall_time", pa.float64(), nullable=False)]

STEPS_SCHEMA = pa.schema(_KEY + [
    pa.field("step_seconds", pa.float64()),  # wall time of this optimizer step
    pa.field("g_loss", pa.float64()),
    pa.field("d_loss", pa.float64()),
    pa.field("d_real", pa.float64()),  # mean critic value (WGAN) or D probability (BCE) on real
    pa.field("d_fake", pa.float64()),
    pa.field("gp", pa.float64()),  # gradient penalty (WGAN-GP), NaN for BCE
    pa.field("g_grad_norm", pa.float64()),  # global norm before clipping
    pa.field("d_grad_norm", pa.float64()),
    pa.field("g_grad_live", pa.float64()),  # fraction of parameters with finite, non-zero grad
    pa.field("d_grad_live", pa.float64()),
    pa.field("g_clipped", pa.bool_()),
    pa.field("d_clipped", pa.bool_()),
    pa.field("g_param_norm", pa.float64()),
    pa.field("d_param_norm", pa.float64()),
    pa.field("g_lr", pa.float64()),
    pa.field("d_lr", pa.float64()),
    pa.field("nonfinite", pa.bool_()),  # a loss or gradient was NaN/Inf
    pa.field("skipped", pa.bool_()),  # the update was not applied
    pa.field("fock_trace_min", pa.float64()),  # min over the batch of the state's trace
    pa.field("fock_trace_mean", pa.float64()),  # (1 = nothing leaked past the cutoff; NaN
    #                                             for a classical generator)
    pa.field("g_nll", pa.float64()),  # mean -log p of the generator update's real batch under
    #                                   the generator's exact density (nats; NaN unless
    #                                   loss.likelihood_weight > 0)
])

EVALS_SCHEMA = pa.schema(_KEY + [
    pa.field("sample_var", pa.float64()),  # total variance of generated samples
    pa.field("real_var", pa.float64()),  # total variance of held-out real samples
    pa.field("sample_var_ratio", pa.float64()),
    pa.field("mean_pairwise_dist", pa.float64()),
    pa.field("min_pairwise_dist", pa.float64()),
    pa.field("real_mean_pairwise_dist", pa.float64()),
    pa.field("n_modes", pa.int32()),  # modes of a mixture target, or distinct modes found in a
    #                                   data file (data_profile.json); 0 = none
    # Two definitions of "near a mode" coexist; do not compare one with the other.
    # The toolkit's loose ones: a sample counts for its nearest centre when it is within
    # 3 std * sqrt(d) of it (a d-dimensional Gaussian's radius grows like sqrt(d));
    pa.field("modes_covered", pa.int32()),  # modes holding >= 1/(4 n_modes) of the samples
    pa.field("mode_balance", pa.float64()),  # normalised entropy of mode occupancy, 1 = even
    pa.field("high_quality_frac", pa.float64()),  # samples within 3 std sqrt(d) of a mode
    # the papers' protocol (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): a sample is
    # high-quality (HQ) when its Euclidean distance to the nearest centre is <= 3 std (no sqrt(d));
    # a mode is captured when >= 1 HQ sample is nearest to it; reverse KL is KL(p || uniform)
    # of the HQ samples' histogram over the modes (0 = even over all modes; log K when every HQ
    # sample sits on one mode; NaN when no sample is HQ). NaN/0 for non-mixture data, and null
    # in run directories written before these columns existed.
    pa.field("paper_hq_frac", pa.float64()),
    pa.field("paper_modes_captured", pa.int32()),
    pa.field("paper_reverse_kl", pa.float64()),
    pa.field("w1_mean", pa.float64()),  # mean over axes of the 1-D Wasserstein-1 distance
    pa.field("w1_per_axis", pa.list_(pa.float64())),
    # Structure on any data (issue 20; null in run directories written before): support by
    # k-nearest-neighbour manifolds in the data's coordinates (precision, recall:
    # Kynkaanniemi et al. 2019, k = 3; density, coverage: Naeem et al. 2020, k = 5), the
    # sliced W1 over 128 fixed directions in data units and its floor (a second real set of
    # the eval's size), the generated share of the samples within 3 std of each data mode
    # (data_profile.json's modes, in its order; null without distinct modes), and the
    # generated/real quantiles (10, 50, 90 %) of the distance from the data's centre.
    pa.field("precision", pa.float64()),
    pa.field("recall", pa.float64()),
    pa.field("density", pa.float64()),
    pa.field("coverage", pa.float64()),
    pa.field("sliced_w1", pa.float64()),
    pa.field("sliced_w1_floor", pa.float64()),
    pa.field("mode_weights", pa.list_(pa.float64())),
    pa.field("radius_q10_ratio", pa.float64()),
    pa.field("radius_q50_ratio", pa.float64()),
    pa.field("radius_q90_ratio", pa.float64()),
    pa.field("radius_q99_ratio", pa.float64()),  # the tails (a heavy-tailed blob's)
    pa.field("fock_trace_min", pa.float64()),
    pa.field("fock_trace_mean", pa.float64()),
])

EVENTS_SCHEMA = pa.schema(_KEY + [
    pa.field("kind", pa.string(), nullable=False),
    pa.field("severity", pa.string(), nullable=False),  # info | warning | error
    pa.field("message", pa.string(), nullable=False),
    pa.field("data", pa.string(), nullable=False),  # JSON object with the evidence
])

SCHEMAS = {"steps": STEPS_SCHEMA, "evals": EVALS_SCHEMA, "events": EVENTS_SCHEMA}

# Columns the contract gained after runs were already being written: a part written before
# them simply lacks them (read as null, and not a schema finding: the part is not damaged).
LATER_COLUMNS: dict[str, frozenset[str]] = {
    "steps": frozenset({"g_nll"}),  # issue 21
    "evals": frozenset({
        "paper_hq_frac", "paper_modes_captured", "paper_reverse_kl",  # issue 9
        "precision", "recall", "density", "coverage", "sliced_w1", "sliced_w1_floor",
        "mode_weights", "radius_q10_ratio", "radius_q50_ratio", "radius_q90_ratio",
        "radius_q99_ratio"}),  # issue 20
    "events": frozenset(),
}

# Samples: <run>/samples/attempt=<n>/step-<step:09d>-r<revision>.parquet, one file per eval,
# columns step (int64), revision (int32), x0..x{d-1} (float64); the real held-out data
# is stored once as <run>/samples/real.parquet with columns x0..x{d-1}.

# ---- event kinds -------------------------------------------------------------------------------
EVENT_KINDS = {
    "attempt_start": "An attempt began (data: host, pid, job_id, restart_count, resumed_from).",
    "attempt_end": "An attempt ended (data: reason = a qgan.vocabulary.AttemptEnd, "
                   "exit_status, signal).",
    "signal": "A signal arrived (data: signal = SIGTERM|SIGUSR2|..., at_step).",
    "checkpoint_written": "A checkpoint was committed (data: step, path, seconds, bytes).",
    "checkpoint_failed": "Writing a checkpoint failed; the previous one is intact (data: error; "
                         "best = true for the best checkpoint).",
    "best_checkpoint": "The best eval so far was kept outside the rotation (data: metric, mode, "
                       "value, step, folder, path, seconds).",
    "write_failed": "Writing a metrics part or samples file failed (disk full); the files "
                    "already written are intact (data: what, error).",
    "checkpoint_restored": "Training resumed from a checkpoint (data: step, path).",
    "checkpoint_rejected": "A damaged checkpoint was skipped (data: step, path, reason).",
    "nonfinite_step": "A step had a NaN/Inf loss or gradient and was skipped (data: which).",
    "rollback": "Consecutive bad steps: restored the last good checkpoint (data: to_step, "
                "lr_scale, g_lr, d_lr).",
    "lr_change": "A learning rate changed (data: network, old, new, reason).",
    "collapse_detected": "Mode collapse seen at an eval (data: sample_var_ratio, modes_covered).",
    "recovery_action": "An action taken against collapse (data: action, onset_step).",
    "collapse_ended": "Evals no longer show collapse (data: onset_step, sample_var_ratio, ...).",
    "early_stop": "A monitor stopped the run (data: reason, metric, best, best_step).",
    "diverged": "The guard gave up after too many rollbacks.",
    "fault_injected": "A configured fault fired (data: fault).",
}
SEVERITIES = tuple(s.value for s in Severity)  # info < warning < error


def empty_table(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()


def dotted_keys(table: dict, prefix: str = "") -> dict:
    """A config's nested tables as dotted keys ("train.g_lr"): how config.toml keys are named
    everywhere else in the contract (`--set`, sweep tables, experiment.json overrides)."""
    out: dict = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(dotted_keys(value, path + "."))
        else:
            out[path] = value
    return out
