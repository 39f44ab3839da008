"""One word per run, from its findings and how its last attempt ended, plus its key numbers."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.load import RunData
from analysis.series import col, flag

VERDICTS = ("healthy", "collapsed", "diverged", "stalled", "unfinished", "failed")


def verdict(run: RunData, findings: list[Finding],
            timeline: list[dict]) -> tuple[str, str]:
    """(verdict, reason). Precedence: failed > diverged > collapsed > stalled > unfinished."""
    last = timeline[-1] if timeline else {}
    if run.steps.empty:
        return "failed", "no step rows could be read"
    if last.get("cause") == "crash":
        return "failed", f"attempt {last['attempt']} crashed"
    kinds = {f.kind: f for f in findings}
    diverged = last.get("cause") == "diverged" or any(
        f.kind == "nonfinite" and f.evidence.get("diverged") for f in findings)
    if diverged or (not run.events.empty and (run.events["kind"] == "diverged").any()):
        return "diverged", "the guard gave up after repeated rollbacks"
    if flag(run.steps, "nonfinite")[-1]:
        return "diverged", "the last step is non-finite"
    for f in findings:
        if f.kind == "mode_collapse" and f.evidence.get("persists"):
            return "collapsed", f"mode collapse from step {f.start_step} to the end"
    for f in findings:
        if f.kind in ("vanishing_gradients", "dead_parameters") and f.evidence.get("persists"):
            return "stalled", f"{f.kind.replace('_', ' ')} from step {f.start_step} to the end"
    if "stagnation" in kinds:
        return "stalled", kinds["stagnation"].summary
    if "unfinished" in kinds:
        return "unfinished", kinds["unfinished"].summary
    return "healthy", "no persistent problem"


def key_numbers(run: RunData, timeline: list[dict]) -> dict:
    """What the overview table shows per run."""
    st, ev = run.steps, run.evals
    w1 = col(ev, "w1_mean")
    ok = np.isfinite(w1)
    best = int(np.nanargmin(w1)) if ok.any() else None
    wall = col(st, "step_seconds")
    lost = run.steps_superseded
    return {
        "last_step": int(st["step"].max()) if len(st) else None,
        "total_steps": run.total_steps,
        "final_w1": float(w1[ok][-1]) if ok.any() else None,
        "best_w1": float(w1[best]) if best is not None else None,
        "best_w1_step": int(ev["step"].iloc[best]) if best is not None else None,
        "final_var_ratio": float(col(ev, "sample_var_ratio")[-1]) if len(ev) else None,
        "modes_covered": _last(col(ev, "modes_covered")),
        "n_modes": _last(col(ev, "n_modes")),
        "attempts": len(timeline),
        "lost_steps": int(len(lost)),
        "nonfinite_steps": int(flag(st, "nonfinite").sum() + flag(lost, "nonfinite").sum()),
        "compute_hours": float(np.nansum(wall) + np.nansum(col(lost, "step_seconds"))) / 3600,
    }


def _last(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x[-1]) if x.size else None
