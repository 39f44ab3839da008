"""NaN/Inf episodes: where, how long, what the guard did, and what preceded them.

Episodes are found in every computed row, superseded ones included: a rollback replaces the
bad rows in the final timeline, so only the superseded rows still show the episode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import col, episodes, events_of, flag, nanmedian
from qgan.vocabulary import FindingKind


def all_rows(run: RunData) -> pd.DataFrame:
    """Current and superseded step rows, sorted by (attempt, revision, step)."""
    df = pd.concat([run.steps, run.steps_superseded], ignore_index=True)
    return df.sort_values(["attempt", "revision", "step"], kind="mergesort", ignore_index=True)


def nonfinite_episodes(run: RunData, th: dict[str, float]) -> list[dict]:
    """Each episode: attempt, revision, start, end, nonfinite count, skipped count."""
    rows = all_rows(run)
    if rows.empty:
        return []
    bad = flag(rows, "nonfinite")
    out: dict[tuple[int, int], dict] = {}
    for (att, rev), idx in rows.groupby(["attempt", "revision"], sort=True).indices.items():
        steps = rows["step"].to_numpy()[idx]
        for a, b, n in episodes(steps, bad[idx], max_gap=int(th["nan_merge_gap"])):
            inside = idx[(steps >= a) & (steps <= b)]
            ep = {"attempt": int(att), "revision": int(rev), "start": a, "end": b,
                  "nonfinite": n, "skipped": int(flag(rows, "skipped")[inside].sum()),
                  "series": rows.iloc[idx]}
            out[(a, b)] = ep  # a replay of the same steps (next attempt) keeps the latest
    return sorted(out.values(), key=lambda e: (e["start"], e["attempt"], e["revision"]))


def _growth(series: pd.DataFrame, start: int, column: str, th: dict[str, float]) -> float:
    """max of the last `recent` finite steps before `start` / median of the window's first
    half: how much the quantity grew just before the episode."""
    pre = series[(series["step"] < start) & ~flag(series, "nonfinite")].tail(
        int(th["nan_precursor_steps"]))
    x = col(pre, column)
    recent = int(th["nan_precursor_recent"])
    if len(x) < recent + 2:
        return float("nan")
    base = nanmedian(x[: len(x) // 2])
    peak = np.nanmax(x[-recent:]) if np.isfinite(x[-recent:]).any() else np.nan
    return float(peak / base) if base and np.isfinite(base) and base > 0 else float("nan")


def _trace_drop(series: pd.DataFrame, start: int, th: dict[str, float]) -> float:
    pre = series[(series["step"] < start)].tail(int(th["nan_precursor_steps"]))
    x = col(pre, "fock_trace_min")
    recent = int(th["nan_precursor_recent"])
    if len(x) < recent + 2 or not np.isfinite(x).any():
        return float("nan")
    return float(nanmedian(x[: len(x) // 2]) - np.nanmin(x[-recent:]))


def rollbacks(events: pd.DataFrame) -> list[tuple[int, int, dict]]:
    """(step, attempt, data) of every rollback, with `to_step`, `g_lr` and `d_lr` filled in.

    The contract puts them in the rollback event's data; the trainer records them instead in
    the `checkpoint_restored` event that follows (data: step, from_step, lr), so both are read:
    the restore whose `from_step` is the rollback's step, in the same attempt."""
    restores = {(att, d.get("from_step")): d for _, att, d in events_of(events,
                                                                         "checkpoint_restored")
                if "from_step" in d}
    out = []
    for step, att, d in events_of(events, "rollback"):
        r = restores.get((att, step), {})
        lr = r.get("lr") if isinstance(r.get("lr"), dict) else {}
        out.append((step, att, {**d, "to_step": d.get("to_step", r.get("step")),
                                "g_lr": d.get("g_lr", lr.get("g")),
                                "d_lr": d.get("d_lr", lr.get("d"))}))
    return out


def _max(*xs: float) -> float:
    """Largest finite value, NaN if none (np.nanmax warns on all-NaN)."""
    finite = [x for x in xs if np.isfinite(x)]
    return max(finite) if finite else float("nan")


def diagnose_nonfinite(run: RunData, th: dict[str, float]) -> list[Finding]:
    rbs = rollbacks(run.events)
    diverged = events_of(run.events, "diverged")
    last_step = int(run.steps["step"].iloc[-1]) if not run.steps.empty else None
    out = []
    for ep in nonfinite_episodes(run, th):
        a, b, s = ep["start"], ep["end"], ep["series"]
        rb = [d for st, att, d in rbs if att == ep["attempt"] and a <= st <= b + 1]
        gave_up = any(st >= a for st, _, _ in diverged)
        g_growth = _growth(s, a, "g_grad_norm", th)
        d_growth = _growth(s, a, "d_grad_norm", th)
        p_growth = _max(_growth(s, a, "g_param_norm", th), _growth(s, a, "d_param_norm", th))
        drop = _trace_drop(s, a, th)
        causes, advice = [], []
        if _max(g_growth, d_growth) >= th["nan_grad_growth"]:
            causes.append("gradient norm growth")
            advice.append("lower train.g_lr/d_lr or train.clip_norm")
        if p_growth >= th["nan_param_growth"]:
            causes.append("parameter norm growth")
            advice.append("smaller generator.init_std or g_lr keeps squeezing/displacement "
                          "bounded")
        if drop >= th["nan_trace_drop"]:
            causes.append("Fock trace drop")
            advice.append("raise generator.cutoff or set loss.trace_penalty")
        if not causes:
            advice.append("no precursor in the metrics: check the data and, for BCE, a "
                          "saturated discriminator (log 0)")
        recovered = last_step is not None and last_step > b and not gave_up
        severity = "error" if gave_up or not recovered else ("warning" if rb else "info")
        lr_after = rb[-1].get("g_lr") if rb else None
        to_step = rb[-1].get("to_step") if rb else None
        text = "; ".join(advice)
        out.append(Finding(
            FindingKind.NONFINITE, severity, run.name,
            f"NaN/Inf episode at steps {a}-{b}: {ep['nonfinite']} non-finite, "
            f"{ep['skipped']} skipped, {len(rb)} rollback(s)"
            + (f" to step {to_step}" if to_step is not None else "")
            + (f"; preceded by {', '.join(causes)}" if causes else ""),
            text[:1].upper() + text[1:] + ".", a, b,
            {"attempt": ep["attempt"], "revision": ep["revision"],
             "nonfinite_steps": ep["nonfinite"], "skipped_steps": ep["skipped"],
             "rollbacks": len(rb), "rollback_to_step": to_step,
             "g_lr_after": lr_after, "g_grad_growth": g_growth, "d_grad_growth": d_growth,
             "param_norm_growth": p_growth, "fock_trace_drop": drop,
             "recovered": recovered, "diverged": gave_up}))
    return out
