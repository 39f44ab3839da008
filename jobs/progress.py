"""One status row per run, from the run directory plus the scheduler when it answers.

The run directory is authoritative for progress (attempts, checkpoints, metrics); the scheduler
only adds the live state (PENDING/RUNNING, reason). Nothing here raises on a missing or
half-written file: a run that has not started yet is a row too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs import schedulers, ledger
from qgan import saferead, schema, thresholds
from qgan.atomic import atomic_write_bytes, dumps_json
from qgan.vocabulary import AttemptEnd, RunOutcome

log = logging.getLogger(__name__)

HEALTH_EVENTS = {"nonfinite_step": "nan", "rollback": "rollback", "collapse_detected": "collapse",
                 "checkpoint_rejected": "bad-ckpt", "diverged": "diverged",
                 "early_stop": "early-stop", "checkpoint_failed": "ckpt-failed"}
# A job in one of these states still has work coming (SLURM's names, and the local ones).
ACTIVE_STATES = {"RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED",
                 "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED", "RUNNING?", "SIGNALING", "STAGE_OUT"}
TERMINAL_STATES = {"FINISHED", "GAVE_UP", "BAD_INPUT", "DIVERGED", "CANCELLED", "FAILED", "ENDED",
                   "REQUEUE_FAILED", "COMPLETED", "PRUNED"}


def _table(run_dir: Path, name: str, columns: list[str]):
    """A metrics table as a pyarrow Table (only `columns` + attempt), or None. Every part is
    read through the confined reader (qgan.saferead): a linked, oversized or non-regular part
    is skipped, never followed; a damaged one is skipped too (status must not break)."""
    pieces = []
    for attempt, part in schema.metric_parts(run_dir, name):
        try:
            t = saferead.read_parquet(part, "part", root=run_dir)
            t = t.select([c for c in columns if c in t.column_names and c != "attempt"])
        except Exception as exc:  # noqa: BLE001 - a damaged part must not break status
            log.debug("cannot read %s: %s", part, exc)
            continue
        pieces.append(t.append_column("attempt", pa.array([attempt] * t.num_rows, pa.int32())))
    if not pieces:
        return None
    try:
        return pa.concat_tables(pieces, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # parts of incompatible schemas
        log.debug("cannot combine the parts of %s/%s: %s", run_dir, name, exc)
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


def _parts_signature(run_dir: Path) -> str:
    """Every metrics part's name, size, mtime, ctime and inode (stat, never followed): a new,
    rewritten, replaced or copied part changes it. A few stat calls instead of decoding
    Parquet."""
    parts = []
    for table in ("steps", "events"):
        for attempt, part in schema.metric_parts(run_dir, table):
            try:
                st = part.lstat()
            except OSError:
                continue
            parts.append(f"{table}/{attempt}/{part.name}:{st.st_size}:{st.st_mtime_ns}:"
                         f"{st.st_ctime_ns}:{st.st_ino}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


_CACHED_TYPES = {"metrics_step": int, "rows": int, "unique_steps": int,
                 "steps_per_s": (int, float), "leak": bool}
CACHE_FORMAT = 2


def _plausible(entry: object) -> bool:
    """A cache entry shaped as `_steps_info` and `_health` make them (the file is untrusted)."""
    if not isinstance(entry, dict):
        return False
    steps, health = entry.get("steps"), entry.get("health")
    return (isinstance(steps, dict) and isinstance(health, dict)
            and all(k in _CACHED_TYPES and isinstance(v, _CACHED_TYPES[k])
                    for k, v in steps.items())
            and all(k in HEALTH_EVENTS.values() and isinstance(v, int) and not
                    isinstance(v, bool) for k, v in health.items()))


def _identity(run_dir: Path) -> list[int] | None:
    try:
        st = run_dir.stat()
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def cached_progress(run_dir: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """What status reads from a run's Parquet (`_steps_info`, `_health`), cached in
    `<run>/.status-cache.json`: inside the run it describes (never in a folder shared with
    others), and never above the data: it is used only when its signature equals the one
    computed now from the real parts (`_parts_signature`) and it names this very run folder
    (device and inode); anything else (forged, copied from another run, damaged, oversized,
    a link) is treated as absent and the parts are decoded. Every finished run is then
    decoded once, not at every refresh."""
    path = run_dir / schema.STATUS_CACHE_FILE
    sig = _parts_signature(run_dir)
    try:
        doc = saferead.read_json(path, "status_cache", root=run_dir)
    except (OSError, ValueError):
        doc = None
    if (isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT
            and doc.get("sig") == sig and doc.get("run") == _identity(run_dir)
            and _plausible(doc)):
        return dict(doc["steps"]), dict(doc["health"])
    steps, health = _steps_info(run_dir), _health(run_dir)
    try:
        doc = {"format": CACHE_FORMAT, "run": _identity(run_dir), "sig": sig, "steps": steps,
               "health": health}  # a cache: complete or absent, not worth two fsyncs per run
        atomic_write_bytes(path, dumps_json(doc).encode(), durable=False)
    except OSError as exc:  # a read-only run directory: status still works
        log.debug("status cache not written: %s", exc)
    return steps, health


def run_row(run_dir: Path, sched: tuple[str, str] | None, total_default: int | None = None,
            acct: list[str] | None = None, history: list[dict] | None = None,
            cache: bool = False) -> dict:
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
    run_json = ledger.read_record(run_dir / schema.RUN_FILE, "run", run_dir) or {}
    total = run_json.get("total_steps") or total_default
    cps = ledger.checkpoints(run_dir)
    steps, flags = cached_progress(run_dir) if cache else (_steps_info(run_dir),
                                                           _health(run_dir))
    step_candidates = [a.get("end_step") for a in attempts if a.get("end_step") is not None]
    if cps:
        step_candidates.append(cps[-1].step)
    if "metrics_step" in steps:
        step_candidates.append(steps["metrics_step"])
    step = max(step_candidates) if step_candidates else 0
    done = ledger.finished(run_dir, attempts)  # the snapshot `step` came from
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
        "checkpoint_age_s": (time.time() - cps[-1].wall_time) if cps else None,
        "steps_per_s": steps.get("steps_per_s"),
        "metric_rows": steps.get("rows"), "unique_steps": steps.get("unique_steps"),
        "health": flags,
        "jobs": [str(h["job_id"]) for h in history if h.get("job_id") is not None],
        # the job layer has not yet recorded the end of its newest episode (it does so after
        # the trainer exits: the run can be FINISHED a few seconds before its ledger is)
        "episode_open": bool(jobs["episodes"]) and jobs["episodes"][-1].get("end_time") is None,
    }


def experiment_rows(exp_dir: Path, exp: dict, runs: list[str]) -> list[dict]:
    """One row per run; the scheduler is asked once per refresh (its queue and its
    accounting of every job of the experiment), never once per run."""
    ids = ledger.task_job_ids(exp)
    scheduler = schedulers.get(exp.get("executor"))
    acct = scheduler.accounting(list(ids.values()))
    sched = scheduler.live_states(exp, ids, acct)
    cancelled = ledger.cancelled_runs(exp)
    history = ledger.job_history(exp)

    def row_of(r: str) -> dict:
        row = run_row(exp_dir / r, sched.get(r), acct=acct.get(ids.get(r, "")),
                      history=history.get(r), cache=True)
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
    return rows


def is_terminal(row: dict) -> bool:
    return row["state"] in TERMINAL_STATES
