"""Job history: attempts, why each ended, work thrown away, checkpoint cadence vs grace time."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import as_int, col, events_of
from qgan.vocabulary import AttemptEnd, FindingKind, StopCause

# how an attempt ended when no job ledger says (a bare `qgan train` under sbatch): SLURM's
# conventions, SIGTERM for a preemption and USR2 (submitit's --signal) for a time limit
_SIGNALS = {"SIGUSR2": StopCause.TIME_LIMIT, "SIGUSR1": StopCause.TIME_LIMIT,
            "SIGTERM": StopCause.PREEMPTION}
# stops decided by the job layer that came from outside the trainer (a signal)
SIGNALLED = (StopCause.PREEMPTION, StopCause.TIME_LIMIT, StopCause.REQUESTED,
             StopCause.CANCELLED, StopCause.PRUNED)
# how a last attempt can end that leaves the run unfinished until it is resumed
# an attempt that wrote no end: killed without warning, or (the last one) still running
KILLED, RUNNING = "killed", "running"
# how a last attempt can end that leaves the run unfinished until it is resumed
UNFINISHED = SIGNALLED + (AttemptEnd.WRITE_FAILED, AttemptEnd.SIGNAL, KILLED, RUNNING)


def attempt_cause(a: dict, is_last: bool) -> str:
    """finished | early_stop | diverged | crash | write_failed | preemption | time_limit |
    requested | cancelled | signal | killed | running.

    The job layer's `stop_cause` (jobs.json, attached by `load`) decides for a signalled stop:
    it knows the job's deadline, so a preemption that arrived as USR2 is still a preemption.
    Without a ledger, the signal's name decides. No reason at all means the attempt never wrote
    its end: SIGKILL, node failure, or (for the last one) still running."""
    cause = a.get("stop_cause")
    if cause in SIGNALLED:
        return str(cause)
    reason = a.get("reason")
    if reason == AttemptEnd.SIGNAL:
        return str(_SIGNALS.get(str(a.get("signal")), AttemptEnd.SIGNAL))
    if reason in set(AttemptEnd):
        return str(reason)
    if cause is not None:  # the ledger knows how an attempt without an end record stopped
        return str(cause)
    return RUNNING if is_last and a.get("end_time") is None else KILLED


def _job_of(a: dict) -> str | None:
    """The job that ran an attempt: the ledger's job id (every executor, resubmissions
    included), else the SLURM job id the trainer saw; None for a bare run."""
    job = a.get("job_id") or a.get("slurm_job_id")
    return str(job) if isinstance(job, (str, int)) and not isinstance(job, bool) else None


def _seconds(v) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v).timestamp()
        except ValueError:
            return None
    return None


def lost_rows(run: RunData) -> pd.DataFrame:
    """Superseded step rows with `why`: 'restart' (a later attempt redid the step) or
    'rollback' (the same attempt replayed it after a rollback)."""
    old = run.steps_superseded
    if old.empty:
        return old.assign(why=pd.Series(dtype=str))
    winner = run.steps.set_index("step")["attempt"]
    later = old["step"].map(winner).to_numpy() > old["attempt"].to_numpy()
    return old.assign(why=np.where(later, "restart", "rollback"))


def _first(recorded, rows: pd.DataFrame | None, pick) -> int | None:
    """The attempt file's step if it has one; else the step rows' min/max. A SIGKILLed attempt
    never writes its `end_step` (null per the contract): its rows still say how far it got."""
    if as_int(recorded) is not None:
        return as_int(recorded)
    if rows is None or not len(rows):
        return None
    return int(pick(rows["step"]))


def attempt_timeline(run: RunData) -> list[dict]:
    """One dict per attempt: wall-clock span, steps, cause, and the work it lost."""
    rows = pd.concat([run.steps, run.steps_superseded], ignore_index=True)
    lost = lost_rows(run)
    by_attempt = {int(k): g for k, g in rows.groupby("attempt")} if not rows.empty else {}
    numbers = sorted({int(a["attempt"]) for a in run.attempts if a.get("attempt")} |
                     set(by_attempt))
    meta = {int(a["attempt"]): a for a in run.attempts if a.get("attempt")}
    out = []
    for i, n in enumerate(numbers):
        a = meta.get(n, {})
        g = by_attempt.get(n)
        t0 = _seconds(a.get("start_time"))
        t1 = _seconds(a.get("end_time"))
        if g is not None and len(g):
            wt = col(g, "wall_time")
            ss = col(g, "step_seconds")
            t0 = t0 if t0 is not None else float(np.nanmin(wt) - (ss[0] if np.isfinite(ss[0])
                                                                   else 0))
            t1 = t1 if t1 is not None else float(np.nanmax(wt))
        mine = lost[(lost["attempt"] == n) & (lost["why"] == "restart")] if len(lost) else lost
        out.append({
            "attempt": n, "start_time": t0, "end_time": t1,
            "start_step": _first(a.get("start_step"), g, min),
            "end_step": _first(a.get("end_step"), g, max),
            "cause": attempt_cause(a, i == len(numbers) - 1) if a else
            (RUNNING if i == len(numbers) - 1 else KILLED),
            "signal": a.get("signal"), "exit_status": a.get("exit_status"),
            "job": _job_of(a), "lost_steps": int(len(mine)),
            "lost_range": (int(mine["step"].min()), int(mine["step"].max())) if len(mine) else None,
            "lost_seconds": float(np.nansum(col(mine, "step_seconds"))),
        })
    return out


def _lost_advice(run: RunData, t: dict) -> str:
    """Why an attempt's steps were thrown away, from how it ended and how the next resumed."""
    if t["cause"] in SIGNALLED + (AttemptEnd.SIGNAL,):
        text = ("The attempt got a signal but its steps were still recomputed: make sure the "
                "grace time (SLURM GraceTime/KillWait) exceeds one step plus one checkpoint.")
    else:
        text = ("The attempt was killed without warning (SIGKILL, out of memory, node "
                "failure), so everything after its last checkpoint was redone: checkpoint "
                "more often (checkpoint.every_steps/every_seconds), or give the job a grace "
                "time so it checkpoints on SIGTERM.")
    nxt = t["attempt"] + 1
    if any(att == nxt for _, att, _ in events_of(run.events, "checkpoint_rejected")):
        text += (f" Attempt {nxt} also rejected a damaged checkpoint and resumed from "
                 "an older one, which added to the lost steps (see checkpoint_rejected).")
    return text


def diagnose_history(run: RunData, th: dict[str, float]) -> list[Finding]:
    timeline = attempt_timeline(run)
    lost = lost_rows(run)
    out = []
    computed = len(run.steps) + len(run.steps_superseded)
    for t in timeline:
        if t["cause"] == AttemptEnd.CRASH:
            out.append(Finding(FindingKind.CRASH, "error", run.name,
                               f"attempt {t['attempt']} crashed at step {t['end_step']}",
                               f"Read logs/ of attempt {t['attempt']} for the traceback.",
                               t["end_step"], t["end_step"], {"attempt": t["attempt"],
                                                              "exit_status": t["exit_status"]}))
        if t["lost_steps"]:
            a, b = t["lost_range"]
            frac = t["lost_steps"] / max(computed, 1)
            out.append(Finding(
                FindingKind.LOST_WORK, "warning" if frac > th["lost_work_frac"] else "info", run.name,
                f"attempt {t['attempt']} ({t['cause']}) lost steps {a}-{b}: "
                f"{t['lost_steps']} steps, {t['lost_seconds']:.3g} s recomputed",
                _lost_advice(run, t), a, b, {"attempt": t["attempt"], "cause": t["cause"],
                       "lost_steps": t["lost_steps"], "lost_seconds": t["lost_seconds"],
                       "lost_fraction": frac}))
    causes = [t["cause"] for t in timeline]
    if len(timeline) > 1 or len(lost):
        n_pre, n_tl = causes.count(StopCause.PREEMPTION), causes.count(StopCause.TIME_LIMIT)
        n_killed = causes.count(KILLED)
        out.append(Finding(
            FindingKind.JOB_HISTORY, "info", run.name,
            f"{len(timeline)} attempts: {n_pre} preemption(s), {n_tl} time limit(s), "
            f"{n_killed} killed; {len(lost)} steps recomputed", "", None, None,
            {"attempts": len(timeline), "preemptions": n_pre, "time_limits": n_tl,
             "killed": n_killed,
             "lost_steps_restart": int((lost["why"] == "restart").sum()) if len(lost) else 0,
             "lost_steps_rollback": int((lost["why"] == "rollback").sum()) if len(lost) else 0,
             "lost_seconds": float(np.nansum(col(lost, "step_seconds")))}))
    out += _cadence(run, th)
    if timeline and timeline[-1]["cause"] in UNFINISHED:
        total, last = run.total_steps, (int(run.steps["step"].max()) if len(run.steps) else 0)
        if total is None or last < total:
            out.append(Finding(
                FindingKind.UNFINISHED, "warning", run.name,
                f"run stopped at step {last}" + (f" of {total}" if total else "")
                + f" (last attempt: {timeline[-1]['cause']})",
                "If no job is queued for it any more, resubmit: it resumes from its last "
                "checkpoint.", last, last, {"last_step": last, "total_steps": total}))
    return out


def _steady_rows(run: RunData) -> pd.DataFrame:
    """Every computed step row except each attempt's first: that one includes building the
    models and tracing the step function (tens of seconds on the real trainer), which says
    nothing about how long a step takes when a signal arrives mid-run."""
    rows = pd.concat([run.steps, run.steps_superseded], ignore_index=True)
    if rows.empty:
        return rows
    first = rows.groupby("attempt")["wall_time"].transform("min").to_numpy()
    steady = rows[rows["wall_time"].to_numpy() > first]
    return steady if len(steady) else rows


def _cadence(run: RunData, th: dict[str, float]) -> list[Finding]:
    ck = events_of(run.events, "checkpoint_written")
    if not ck:
        return []
    ev = run.events[run.events["kind"] == "checkpoint_written"]
    intervals = np.concatenate([np.diff(g["wall_time"].to_numpy())
                                for _, g in ev.groupby("attempt")] or [np.array([])])
    write_s = [d.get("seconds") for _, _, d in ck if isinstance(d.get("seconds"), (int, float))]
    step_s = col(_steady_rows(run), "step_seconds")
    step_p95 = float(np.nanpercentile(step_s, 95)) if np.isfinite(step_s).any() else float("nan")
    need = step_p95 + (max(write_s) if write_s else 0.0)
    ev_d = {"checkpoints": len(ck),
            "median_interval_s": float(np.median(intervals)) if intervals.size else None,
            "max_interval_s": float(intervals.max()) if intervals.size else None,
            "step_seconds_p95": step_p95, "max_write_s": max(write_s) if write_s else None,
            "needed_grace_s": need, "grace_s": th["grace_seconds"]}
    if np.isfinite(need) and need > th["grace_seconds"]:
        return [Finding(FindingKind.CHECKPOINT_CADENCE, "warning", run.name,
                        f"one step + one checkpoint take {need:.0f} s, more than the "
                        f"{th['grace_seconds']:.0f} s grace time",
                        "A preempted attempt will be killed before its final checkpoint: ask "
                        "for a longer grace time (sbatch --signal=USR2@<s>, partition "
                        "GraceTime) or make steps shorter (smaller train.batch_size).",
                        None, None, ev_d)]
    every = ev_d["median_interval_s"] or 0.0
    return [Finding(FindingKind.CHECKPOINT_CADENCE, "info", run.name,
                    f"{len(ck)} checkpoints, median every {every:.{1 if every < 10 else 0}f} s; "
                    "a step + checkpoint fits the grace time", "", None, None, ev_d)]
