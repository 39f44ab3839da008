"""A run the pruner stopped (`qgan submit --prune`, jobs/prune.py): the finding that says so,
with the live verdict and finding that decided it, the step, and the compute it saved.

The decision is read from the job layer's ledger (`<run>/jobs.json`, the episode whose
`stop_cause` is `pruned`), like every stop cause. The saving is the steps the run did not
train times its wall seconds per step as it trained (evals and checkpoints included, model
building and the time between attempts not: `seconds_per_step`), times the CPUs a run was given
(the submission's profile `cpus`, else 1): core-seconds, as a cluster bills them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import as_int, col
from qgan import records, schema
from qgan.vocabulary import FindingKind, StopCause


def prune_decision(run: RunData) -> tuple[dict, dict] | None:
    """(the pruned episode, its decision) from jobs.json, or None: the newest episode only
    (a pruned run resubmitted since is no longer pruned)."""
    doc = records.load(run.path / schema.JOBS_FILE, "jobs", root=run.path).doc or {}
    episodes = doc.get("episodes") if isinstance(doc.get("episodes"), list) else []
    last = episodes[-1] if episodes and isinstance(episodes[-1], dict) else {}
    if last.get("stop_cause") != StopCause.PRUNED:
        return None
    decision = last.get("pruned") if isinstance(last.get("pruned"), dict) else {}
    return last, decision


def seconds_per_step(steps: pd.DataFrame) -> float | None:
    """Wall seconds per step as the run trained, evals and checkpoints included: the wall
    time between consecutive steps of one attempt, summed, over the steps they span (each
    attempt's first step, which builds the models, is before its first gap; the time between
    attempts is not counted). The median step time when the wall times are unusable."""
    if len(steps) > 2 and {"step", "wall_time", "attempt"} <= set(steps.columns):
        st = steps.sort_values("step")
        same = st["attempt"].to_numpy()[1:] == st["attempt"].to_numpy()[:-1]
        ds = np.diff(st["step"].to_numpy(dtype=float))
        dw = np.diff(st["wall_time"].to_numpy(dtype=float))
        ok = same & (ds > 0) & np.isfinite(dw) & (dw >= 0)
        if ok.any() and dw[ok].sum() > 0:
            return float(dw[ok].sum() / ds[ok].sum())
    secs = col(steps, "step_seconds")
    secs = secs[np.isfinite(secs)][1:]  # the first step includes building the models
    return float(np.median(secs)) if secs.size else None


def _cpus(run: RunData) -> int:
    exp = records.load(run.path.parent / schema.EXPERIMENT_FILE, "experiment",
                       root=run.path.parent).doc or {}
    profile = exp.get("profile") if isinstance(exp.get("profile"), dict) else {}
    cpus = as_int(profile.get("cpus"))
    return cpus if cpus and cpus > 0 else 1


def diagnose_pruned(run: RunData, th: dict[str, float]) -> list[Finding]:
    found = prune_decision(run)
    if found is None:
        return []
    episode, decision = found
    last = int(run.steps["step"].max()) if len(run.steps) else 0
    step = as_int(decision.get("step")) or as_int(episode.get("end_step")) or last
    total = run.total_steps
    per_step = seconds_per_step(run.steps)
    remaining = max(0, total - last) if total else None
    saved = remaining * per_step if remaining is not None and per_step is not None else None
    cpus = _cpus(run)
    finding = decision.get("finding") if isinstance(decision.get("finding"), dict) else {}
    verdict = str(decision.get("verdict") or "?")
    why = str(decision.get("reason") or "")
    text = (f"pruned at step {step}" + (f" of {total}" if total else "")
            + f": live verdict {verdict}" + (f" ({why})" if why else "")
            + (f"; saved ~{saved * cpus:,.0f} core-seconds" if saved is not None else ""))
    return [Finding(
        FindingKind.PRUNED, "warning", run.name, text,
        "The pruner stopped this run because more training could not change its verdict "
        "(README, Pruning). Fix the cause the finding names; `qgan resubmit "
        "--include-pruned` resumes it from its checkpoint if you disagree.",
        step, last, {"verdict": verdict, "reason": why, "finding": finding.get("kind"),
                     "finding_steps": finding.get("steps"), "step": step,
                     "remaining_steps": remaining, "seconds_per_step": per_step,
                     "cpus": cpus, "core_seconds_saved": saved * cpus if saved is not None
                     else None, "persists": True})]
