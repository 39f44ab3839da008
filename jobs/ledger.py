"""The jobs layer's records: `experiment.json` (what was submitted) and `<run>/jobs.json`
(what the scheduler did to each run: one entry per job episode, with its stop cause).

`jobs.json` is written only by the job callable (one process per run at a time) and the
trainer's `attempts/NNNN.json` only by the trainer, so neither races the other. See
docs/run-directory.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator
from typing import Any

from qgan import records, schema
from qgan.checkpoint_index import CheckpointInfo, list_checkpoints
from qgan.atomic import UnsafePathError, atomic_write_json, plain_name
from qgan.errors import UserError, checked_path
from qgan.schema import JOBS_FILE
from qgan.vocabulary import RUN_OVER, StopCause

log = logging.getLogger(__name__)

SUBMITIT_DIR = ".submitit"
EXPERIMENT_LOCK = ".experiment.lock"  # serialises read-modify-writes of experiment.json

# Causes counted together against max_failures: retried, but never forever.
# UNVERIFIED too: an I/O error while verifying may pass, and the trainer touches nothing.
FAILURES = (StopCause.CRASH, StopCause.LOCKED, StopCause.WRITE_FAILED, StopCause.UNVERIFIED)


def read_record(path: Path, kind: str, root: Path) -> dict | None:
    """A JSON record of a run or experiment directory (`kind` in qgan.records.SPECS), read
    confined below `root`, bounded, and schema-checked; None if missing or unusable. What was
    dropped is logged, one line per problem."""
    loaded = records.load(path, kind, root=root)
    for problem in loaded.problems:
        log.warning("%s", problem)
    return loaded.doc


# ---- experiment.json ---------------------------------------------------------------------------
def write_experiment(exp_dir: Path, doc: dict) -> None:
    atomic_write_json(exp_dir / schema.EXPERIMENT_FILE, doc)


def read_experiment(exp_dir: Path) -> dict | None:
    return read_record(exp_dir / schema.EXPERIMENT_FILE, "experiment", exp_dir)


def experiment_problem(exp_dir: Path) -> str | None:
    """Why experiment.json of `exp_dir` cannot be used (one line), or None if it is absent or
    usable."""
    loaded = records.load(exp_dir / schema.EXPERIMENT_FILE, "experiment", root=exp_dir)
    return None if loaded.usable or loaded.missing else loaded.problems[0]


def check_submittable(exp_dir: Path) -> None:
    """`qgan resubmit` and `qgan extend` submit jobs from experiment.json and write it back:
    a record with any damage (a field missing or of the wrong type) is refused with one line
    naming the field, never half-used. Raises UserError."""
    path = exp_dir / schema.EXPERIMENT_FILE
    loaded = records.load(path, "experiment", root=exp_dir)
    problems = list(loaded.problems)
    doc = loaded.doc or {}
    if loaded.usable:
        if not doc.get("name"):
            problems.append(f"{path}: name is missing")
        if not doc.get("tasks"):
            problems.append(f"{path}: tasks is missing or empty")
        problems += [f"{path}: tasks[{i}] (run {t['run']!r}) has no index"
                     for i, t in enumerate(doc.get("tasks", [])) if "index" not in t]
    elif loaded.missing:
        problems.append(f"{path} is missing")
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{problems[0]}{more}; restore the file (nothing was submitted or "
                        "changed)")


@contextlib.contextmanager
def experiment_lock(exp_dir: Path) -> Iterator[None]:
    """Hold the experiment's write lock: `qgan submit`, `resubmit`, `cancel` and the local
    queue each read, change and write experiment.json under it, so none loses another's
    change (readers need no lock: every write is atomic)."""
    fd = os.open(exp_dir / EXPERIMENT_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update_experiment(exp_dir: Path, change: Callable[[dict], object]) -> dict:
    """Read experiment.json, apply `change` to it, write it back, all under the lock."""
    with experiment_lock(exp_dir):
        exp = read_experiment(exp_dir)
        if not isinstance(exp, dict):
            raise UserError(f"{exp_dir / schema.EXPERIMENT_FILE} is missing or damaged; "
                            "restore it")
        change(exp)
        write_experiment(exp_dir, exp)
    return exp


def _tasks(exp: dict) -> list[dict]:
    tasks = exp.get("tasks") if isinstance(exp, dict) else None
    return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []


def record_submission(exp: dict, runs: list[str], by: str, when: float,
                      changes: list[str] | None = None) -> None:
    """A new submission of `runs`: each task's job history gets an entry (its job id comes
    with `record_job`; until then the run is queued); `changes`: the config changes (KEY=VALUE)
    it makes (`qgan extend`)."""
    for t in _tasks(exp):
        if t.get("run") in runs:
            history = t["jobs"] if isinstance(t.get("jobs"), list) else []
            entry = {"job_id": None, "by": by, "submitted": when, "started": None}
            if changes:
                entry["set"] = list(changes)
            t["jobs"] = [*history, entry]
            t["job_id"] = None
            t.pop("process", None)


def record_job(exp: dict, run: str, job_id: str, extra: dict) -> None:
    """The scheduler took `run`'s newest submission: job id `job_id` (+ scheduler fields)."""
    for t in _tasks(exp):
        if t.get("run") == run:
            t["job_id"] = job_id
            t.update(extra)
            history = t.get("jobs") if isinstance(t.get("jobs"), list) else []
            if history and isinstance(history[-1], dict) and history[-1].get("job_id") is None:
                history[-1].update(job_id=job_id, started=time.time())
    array = str(job_id).split("_")[0]
    ids = exp.get("job_ids") if isinstance(exp.get("job_ids"), list) else []
    exp["job_ids"] = ids + ([array] if array not in ids else [])


def job_history(exp: dict) -> dict[str, list[dict]]:
    """{run: its submissions, oldest first} ({job_id, by, submitted, started}); a task from
    before the history was kept has its one job id."""
    out = {}
    for t in _tasks(exp):
        if "run" not in t:
            continue
        jobs = t.get("jobs")
        if isinstance(jobs, list):
            out[str(t["run"])] = [j for j in jobs if isinstance(j, dict)]
        elif t.get("job_id") is not None:
            out[str(t["run"])] = [{"job_id": str(t["job_id"]), "by": "submit",
                                   "submitted": exp.get("created"), "started": None}]
    return out


def queued_runs(exp: dict) -> dict[str, dict]:
    """{run: queue} for runs whose newest submission waits in a local queue (no job yet)."""
    out = {}
    for run, jobs in job_history(exp).items():
        if jobs and jobs[-1].get("job_id") is None and isinstance(jobs[-1].get("queue"), dict):
            out[run] = jobs[-1]["queue"]
    return out


def _submitted(jobs: list[dict]) -> float:
    when = jobs[-1].get("submitted") if jobs else None
    return float(when) if isinstance(when, (int, float)) and math.isfinite(when) else 0.0


def locate(path: Path) -> tuple[Path, dict, list[str]]:
    """(experiment dir, experiment.json, run names) for an experiment or one of its runs.

    A bare run directory (from `qgan train`) is its own one-run experiment.
    """
    path = checked_path(path, "PATH").resolve()
    for folder in (path, path.parent):
        problem = experiment_problem(folder)
        if problem is not None:
            raise UserError(f"{problem}; restore it (from a copy, or `qgan submit` the config "
                            "again into a new experiment)")
    exp = read_experiment(path)
    if exp is not None:
        return path, exp, run_names(exp, path)
    parent = read_experiment(path.parent)
    if parent is not None:
        names = run_names(parent, path.parent)
        if path.name in names:
            return path.parent, parent, [path.name]
    if (path / schema.RUN_FILE).exists() or (path / schema.CONFIG_FILE).exists():
        return path.parent, {"name": path.parent.name, "executor": "none", "tasks": [
            {"index": 0, "run": path.name, "overrides": {}}]}, [path.name]
    return path, {}, []


def run_names(exp: dict, exp_dir: Path) -> list[str]:
    """The runs an experiment.json lists: plain folder names only. A damaged or edited one
    (tasks not a list, a run named '../..') is a UserError, never a path followed."""
    tasks = exp.get("tasks", []) if isinstance(exp, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise UserError(f"{exp_dir / schema.EXPERIMENT_FILE} is damaged (tasks is not a list of "
                        "objects); restore it or pass a run directory")
    try:
        return [plain_name(t.get("run"), "run") for t in tasks]
    except UnsafePathError as exc:
        raise UserError(f"{exp_dir / schema.EXPERIMENT_FILE}: {exc}; restore the file") from None


def cancelled_runs(exp: dict) -> set[str]:
    """The runs `qgan cancel` recorded in experiment.json since their newest submission (a
    resubmitted run is no longer cancelled). Entries that are not {"runs": [...]} are
    ignored: the file is untrusted; an entry without a time counts."""
    entries = exp.get("cancelled") if isinstance(exp, dict) else None
    history = job_history(exp) if isinstance(exp, dict) else {}
    out: set[str] = set()
    for c in entries if isinstance(entries, list) else []:
        if isinstance(c, dict) and isinstance(c.get("runs"), list):
            when = c.get("time")
            when = when if isinstance(when, (int, float)) else math.inf
            out.update(str(r) for r in c["runs"] if when >= _submitted(history.get(str(r), [])))
    return out


def task_job_ids(exp: dict) -> dict[str, str]:
    """{run name: scheduler job id} (A_i for array tasks, controller pid for local jobs)."""
    return {run: str(v) for run, v in task_field(exp, "job_id").items() if v}


def task_field(exp: dict, key: str) -> dict[str, Any]:
    """{run name: task[key]} for the tasks of experiment.json that have it."""
    tasks = exp.get("tasks", [])
    if not isinstance(tasks, list):
        return {}
    return {str(t["run"]): t[key] for t in tasks
            if isinstance(t, dict) and "run" in t and t.get(key) is not None}


# ---- <run>/jobs.json ---------------------------------------------------------------------------
def read_jobs(run_dir: Path) -> dict:
    doc = read_record(run_dir / JOBS_FILE, "jobs", run_dir) or {}
    doc.setdefault("episodes", [])
    doc.setdefault("outcome", None)
    return doc


def write_jobs(run_dir: Path, doc: dict) -> None:
    atomic_write_json(run_dir / JOBS_FILE, doc)


def counts(doc: dict) -> dict[str, int]:
    """Episode tallies shown by status."""
    eps = doc.get("episodes", [])
    return {
        "episodes": len(eps),
        "preemptions": sum(e.get("stop_cause") == StopCause.PREEMPTION for e in eps),
        "time_limits": sum(e.get("stop_cause") == StopCause.TIME_LIMIT for e in eps),
        "requested": sum(e.get("stop_cause") == StopCause.REQUESTED for e in eps),
        "crashes": sum(e.get("stop_cause") == StopCause.CRASH for e in eps),
        "requeues": sum(e.get("action") == "requeue" for e in eps),
    }


# ---- the trainer's files -----------------------------------------------------------------------
def trainer_attempts(run_dir: Path) -> list[dict]:
    out = []
    for _, p in sorted(schema.attempt_numbers(run_dir).items()):
        rec = read_record(p, "attempt", run_dir)
        if rec is not None:
            out.append(rec)
    return out


def finished(run_dir: Path, attempts: list[dict] | None = None) -> str | None:
    """'finished' / 'early_stop' / 'diverged' if the trainer's newest attempt ended this run
    for good (an attempt after a finished one extends the run: `qgan extend`). `attempts`:
    trainer_attempts(run_dir) already read, so a caller's other figures (the step) come from
    the same snapshot, not one taken before the trainer closed its attempt."""
    if attempts is None:
        attempts = trainer_attempts(run_dir)
    reason = attempts[-1].get("reason") if attempts else None
    return reason if reason in RUN_OVER else None


def checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """The run's rotation checkpoints on disk, oldest first (qgan/checkpoint_index.py); what
    was dropped is logged, one line per problem."""
    listing = list_checkpoints(run_dir / schema.CHECKPOINT_DIR)
    for problem in listing.problems:
        log.warning("%s", problem)
    return listing.infos


def newest_checkpoint_step(run_dir: Path) -> int | None:
    cps = checkpoints(run_dir)
    return cps[-1].step if cps else None

