"""One status row per run, from the run directory plus the scheduler when it answers.

The run directory is authoritative for progress (attempts, checkpoints, metrics); the scheduler
only adds the live state (PENDING/RUNNING, reason). Nothing here raises on a missing or
half-written file: a run that has not started yet is a row too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jobs import backends, ledger
from qgan import schema, thresholds
from qgan.atomic import atomic_write_json
from qgan.vocabulary import AttemptEnd, RunOutcome

log = logging.getLogger(__name__)

HEALTH_EVENTS = {"nonfinite_step": "nan", "rollback": "rollback", "collapse_detected": "collapse",
                 "checkpoint_rejected": "bad-ckpt", "diverged": "diverged",
                 "early_stop": "early-stop", "checkpoint_failed": "ckpt-failed"}
# A job in one of these states still has work coming (SLURM's names, and the local ones).
ACTIVE_STATES = {"RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED",
                 "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED", "RUNNING?", "SIGNALING", "STAGE_OUT"}
TERMINAL_STATES = {"FINISHED", "GAVE_UP", "BAD_INPUT", "DIVERGED", "CANCELLED", "FAILED", "ENDED",
                   "REQUEUE_FAILED", "COMPLETED"}


def _table(run_dir: Path, name: str, columns: list[str]):
    """A metrics table as a pyarrow Table (only `columns` + attempt), or None."""
    path = run_dir / schema.METRICS_DIR / name
    if not path.is_dir():
        return None
    try:
        import pyarrow.dataset as ds

        d = ds.dataset(path, format="parquet", partitioning="hive")
        # a few small files: pyarrow's own thread pool costs more than it gives, and
        # experiment_rows already reads runs side by side
        return d.to_table(columns=[c for c in columns if c in d.schema.names], use_threads=False)
    except Exception as exc:  # noqa: BLE001 - a half-written part must not break status
        log.debug("cannot read %s: %s", path, exc)
        return None


def _steps_info(run_dir: Path) -> dict[str, Any]:
    t = _table(run_dir, "steps", ["step", "wall_time", "attempt", "fock_trace_min"])
    if t is None or t.num_rows == 0:
        return {}
    rows = t.to_pydict()
    out: dict[str, Any] = {"metrics_step": max(rows["step"]),
                           "rows": t.num_rows, "unique_steps": len(set(rows["step"]))}
    last_attempt = max(rows["attempt"])
    pts = sorted((w, s) for w, s, a in zip(rows["wall_time"], rows["step"], rows["attempt"])
                 if a == last_attempt)
    pts = pts[-50:]
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        out["steps_per_s"] = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    traces = [v for v in rows.get("fock_trace_min", []) if v is not None and v == v]
    # the same rule as analysis' fock_leakage finding: the last leak_min_steps below leak_trace
    if traces and max(traces[-int(thresholds.value("leak_min_steps")):]) < thresholds.value(
            "leak_trace"):
        out["leak"] = True
    return out


def _health(run_dir: Path) -> dict[str, int]:
    t = _table(run_dir, "events", ["kind"])
    flags: dict[str, int] = {}
    if t is None:
        return flags
    for kind in t.column("kind").to_pylist():
        if kind in HEALTH_EVENTS:
            flags[HEALTH_EVENTS[kind]] = flags.get(HEALTH_EVENTS[kind], 0) + 1
    return flags


STATUS_CACHE = ".status-cache.json"  # in the experiment folder: metrics rows already read


def _parts_signature(run_dir: Path) -> str:
    """Names, sizes and mtimes of the run's metrics parts: any new or rewritten part changes
    it. A few stat calls instead of decoding Parquet."""
    parts = []
    for table in ("steps", "events"):
        try:
            with os.scandir(run_dir / schema.METRICS_DIR / table) as dirs:
                for d in dirs:
                    if not d.is_dir(follow_symlinks=False):
                        continue
                    with os.scandir(d.path) as files:
                        for f in files:
                            st = f.stat(follow_symlinks=False)
                            parts.append(f"{table}/{d.name}/{f.name}:{st.st_size}:"
                                         f"{st.st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


_CACHED_TYPES = {"metrics_step": int, "rows": int, "unique_steps": int,
                 "steps_per_s": (int, float), "leak": bool}


def _plausible(entry: dict) -> bool:
    """A cache entry shaped as `_steps_info` and `_health` make them (the file is untrusted)."""
    steps, health = entry.get("steps"), entry.get("health")
    return (isinstance(steps, dict) and isinstance(health, dict)
            and all(k in _CACHED_TYPES and isinstance(v, _CACHED_TYPES[k])
                    for k, v in steps.items())
            and all(k in HEALTH_EVENTS.values() and isinstance(v, int) and not
                    isinstance(v, bool) for k, v in health.items()))


class MetricsCache:
    """What status reads from each run's Parquet (`_steps_info`, `_health`), kept in
    `<experiment>/.status-cache.json` under the parts' signature: a run whose parts have not
    changed since the last refresh (every finished run) is not decoded again. The file is a
    cache: damaged, foreign or unwritable, it is ignored, never trusted over the parts."""

    def __init__(self, exp_dir: Path):
        self.path = exp_dir / STATUS_CACHE
        doc = ledger.read_json(self.path)
        self.entries: dict[str, Any] = doc if isinstance(doc, dict) else {}
        self.changed = False
        self._lock = threading.Lock()

    def read(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, int]]:
        sig = _parts_signature(run_dir)
        hit = self.entries.get(run_dir.name)
        if isinstance(hit, dict) and hit.get("sig") == sig and _plausible(hit):
            return dict(hit["steps"]), dict(hit["health"])
        steps, health = _steps_info(run_dir), _health(run_dir)
        with self._lock:
            self.entries[run_dir.name] = {"sig": sig, "steps": steps, "health": health}
            self.changed = True
        return steps, health

    def save(self) -> None:
        if not self.changed:
            return
        try:
            atomic_write_json(self.path, self.entries)
        except OSError as exc:  # a read-only experiment folder: status still works
            log.debug("status cache not written: %s", exc)


def run_row(run_dir: Path, sched: tuple[str, str] | None, total_default: int | None = None,
            acct: list[str] | None = None, history: list[dict] | None = None,
            cache: MetricsCache | None = None) -> dict:
    """`acct`: SLURM's requeue episodes of the run's job (sacct -D); a preemption that struck
    before the job's callable could record anything is only there. `history`: the run's
    submissions (ledger.job_history): an outcome recorded before the newest one is history."""
    jobs = ledger.read_jobs(run_dir)
    history = history or []
    submitted = history[-1].get("submitted") if history else None
    ends = [e.get("end_time") for e in jobs["episodes"]]
    superseded = (isinstance(submitted, (int, float)) and bool(ends)
                  and isinstance(ends[-1], (int, float)) and ends[-1] < submitted)
    if superseded:  # resubmitted (or extended) since: the last outcome is history
        jobs["outcome"], jobs["reason"] = None, None
    counts = ledger.counts(jobs)
    if acct:
        counts["preemptions"] = max(counts["preemptions"], acct.count("PREEMPTED"))
    attempts = ledger.trainer_attempts(run_dir)
    run_json = ledger.read_json(run_dir / schema.RUN_FILE) or {}
    total = run_json.get("total_steps") or total_default
    cps = ledger.checkpoints(run_dir)
    steps, flags = cache.read(run_dir) if cache is not None else (_steps_info(run_dir),
                                                                   _health(run_dir))
    step_candidates = [a.get("end_step") for a in attempts if a.get("end_step") is not None]
    if cps:
        step_candidates.append(int(cps[-1]["step"]))
    if "metrics_step" in steps:
        step_candidates.append(steps["metrics_step"])
    step = max(step_candidates) if step_candidates else 0
    done = ledger.finished(run_dir)
    outcome = jobs.get("outcome")
    if superseded and sched and sched[0] in ACTIVE_STATES:
        state = sched[0]  # e.g. an extension of a finished run, queued or starting
    elif done in (AttemptEnd.FINISHED, AttemptEnd.EARLY_STOP):
        state = "FINISHED"
    elif outcome in set(RunOutcome) - {RunOutcome.FINISHED, RunOutcome.INTERRUPTED}:
        state = outcome.upper()
    elif done == AttemptEnd.DIVERGED:
        state = "DIVERGED"
    elif sched:
        state = sched[0]
    elif attempts and attempts[-1].get("end_time") is None:
        state = "RUNNING?"
    elif not attempts:
        state = "PENDING?"
    else:
        state = "STOPPED"
    if steps.get("leak"):
        flags["leak"] = 1
    if counts["crashes"]:
        flags["crash"] = counts["crashes"]
    lost = [a for a in attempts if a.get("end_time") is None and a is not attempts[-1]]
    if lost:
        flags["killed"] = len(lost)
    return {
        "run": run_dir.name, "path": str(run_dir), "state": state,
        "reason": (sched[1] if sched and sched[1] != "None" else "") or jobs.get("reason") or "",
        "attempts": len(attempts), "episodes": counts["episodes"],
        "preemptions": counts["preemptions"], "time_limits": counts["time_limits"],
        "requeues": counts["requeues"], "step": step, "total": total,
        "checkpoint_age_s": (time.time() - cps[-1]["wall_time"]) if cps else None,
        "steps_per_s": steps.get("steps_per_s"),
        "metric_rows": steps.get("rows"), "unique_steps": steps.get("unique_steps"),
        "health": flags,
        "jobs": [str(h["job_id"]) for h in history if h.get("job_id") is not None],
    }


def experiment_rows(exp_dir: Path, exp: dict, runs: list[str]) -> list[dict]:
    """One row per run; the scheduler is asked once per refresh (its queue and its
    accounting of every job of the experiment), never once per run."""
    ids = ledger.task_job_ids(exp)
    backend = backends.get(exp.get("executor"))
    acct = backend.accounting(list(ids.values()))
    sched = backend.live_states(exp, ids, acct)
    cancelled = ledger.cancelled_runs(exp)
    history = ledger.job_history(exp)

    cache = MetricsCache(exp_dir)

    def row_of(r: str) -> dict:
        row = run_row(exp_dir / r, sched.get(r), acct=acct.get(ids.get(r, "")),
                      history=history.get(r), cache=cache)
        if r in cancelled and row["state"] != "FINISHED" and row["state"] not in ("RUNNING", "PENDING"):
            row["state"] = "CANCELLED"
        return row

    if len(runs) < 16:
        rows = [row_of(r) for r in runs]
    else:
        # Reading a run is file opens and Parquet decoding, which release the GIL: a few
        # threads read 1,000 runs 2-3x faster than one (measured on 2 cores, BENCHMARKS.md).
        with ThreadPoolExecutor(min(32, 2 * (os.cpu_count() or 1))) as pool:
            rows = list(pool.map(row_of, runs))
    cache.save()
    return rows


def is_terminal(row: dict) -> bool:
    return row["state"] in TERMINAL_STATES
