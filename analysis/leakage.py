"""Fock cutoff leakage: the simulated state's trace below 1 means probability past the cutoff,
so the samples are partly a truncation artefact."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.load import RunData
from analysis.series import col, episodes
from qgan.vocabulary import FindingKind


def diagnose_leakage(run: RunData, th: dict[str, float]) -> list[Finding]:
    st = run.steps
    tmin, tmean = col(st, "fock_trace_min"), col(st, "fock_trace_mean")
    if not np.isfinite(tmin).any():
        return []  # classical generator, or not recorded
    steps = st["step"].to_numpy()
    out = []
    cutoff = run.config.get("generator.cutoff")
    for a, b, n in episodes(steps, tmin < th["leak_trace"], min_len=int(th["leak_min_steps"]),
                            max_gap=5):
        sel = (steps >= a) & (steps <= b)
        worst = float(np.nanmin(tmin[sel]))
        out.append(Finding(
            FindingKind.FOCK_LEAKAGE, "error" if worst < th["leak_trace_error"] else "warning", run.name,
            f"Fock trace below {th['leak_trace']:g} from step {a} (min {worst:.3f})",
            "Probability leaks past the cutoff: raise generator.cutoff"
            + (f" (now {cutoff})" if cutoff is not None else "")
            + ", add loss.trace_penalty, or lower generator.init_std / train.g_lr to keep "
              "squeezing and displacement small.", a, b,
            {"onset_step": a, "steps_below": n, "min_trace": worst,
             "mean_trace": float(np.nanmean(tmean[sel])) if np.isfinite(tmean[sel]).any()
             else None, "cutoff": cutoff, "persists": b == int(steps[-1])}))
    return out
