"""The jobs layer's records: `experiment.json` (what was submitted) and `<run>/jobs.json`
(what the scheduler did to each run: one entry per job episode, with its stop cause).

`jobs.json` is written only by the job callable (one process per run at a time) and the
trainer's `attempts/NNNN.json` only by the trainer, so neither races the other. See
docs/run-directory.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from qgan import schema
from qgan.schema import JOBS_FILE
from qgan.vocabulary import StopCause
from qgan.atomic import atomic_write_json

log = logging.getLogger(__name__)

SUBMITIT_DIR = ".submitit"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---- experiment.json ---------------------------------------------------------------------------
def write_experiment(exp_dir: Path, doc: dict) -> None:
    atomic_write_json(exp_dir / schema.EXPERIMENT_FILE, doc)


def read_experiment(exp_dir: Path) -> dict | None:
    return read_json(exp_dir / schema.EXPERIMENT_FILE)


def locate(path: Path) -> tuple[Path, dict, list[str]]:
    """(experiment dir, experiment.json, run names) for an experiment or one of its runs.

    A bare run directory (from `qgan train`) is its own one-run experiment.
    """
    path = path.resolve()
    exp = read_experiment(path)
    if exp is not None:
        return path, exp, [t["run"] for t in exp.get("tasks", [])]
    parent = read_experiment(path.parent)
    if parent is not None:
        names = [t["run"] for t in parent.get("tasks", [])]
        if path.name in names:
            return path.parent, parent, [path.name]
    if (path / schema.RUN_FILE).exists() or (path / schema.CONFIG_FILE).exists():
        return path.parent, {"name": path.parent.name, "executor": "none", "tasks": [
            {"index": 0, "run": path.name, "overrides": {}}]}, [path.name]
    return path, {}, []


def task_job_ids(exp: dict) -> dict[str, str]:
    """{run name: scheduler job id} (A_i for array tasks, controller pid for local jobs)."""
    out = {}
    for t in exp.get("tasks", []):
        if t.get("job_id"):
            out[t["run"]] = str(t["job_id"])
    return out


# ---- <run>/jobs.json ---------------------------------------------------------------------------
def read_jobs(run_dir: Path) -> dict:
    doc = read_json(run_dir / JOBS_FILE)
    if not isinstance(doc, dict):
        doc = {}
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
    for p in sorted((run_dir / schema.ATTEMPTS_DIR).glob("[0-9][0-9][0-9][0-9].json")):
        rec = read_json(p)
        if isinstance(rec, dict):
            out.append(rec)
    return out


def finished(run_dir: Path) -> str | None:
    """'finished' / 'early_stop' / 'diverged' if the trainer ended this run for good."""
    for rec in reversed(trainer_attempts(run_dir)):
        if rec.get("reason") in ("finished", "early_stop", "diverged"):
            return rec["reason"]
    return None


def checkpoints(run_dir: Path) -> list[dict]:
    doc = read_json(run_dir / schema.CHECKPOINT_DIR / schema.MANIFEST_FILE)
    return list(doc.get("checkpoints", [])) if isinstance(doc, dict) else []


def newest_checkpoint_step(run_dir: Path) -> int | None:
    cps = checkpoints(run_dir)
    return int(cps[-1]["step"]) if cps else None

