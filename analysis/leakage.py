"""Fock cutoff leakage: the simulated state's trace below 1 means probability past the cutoff,
so the samples are partly a truncation artefact.

An episode is found on the steps table (the training batches' lowest trace). It is an error,
the "leaking" verdict, when a sample lost more than `leak_trace_error` of its probability
and the generator the evals sample from still did so when the episode ended (the median of
the evals' lowest trace over its last `leak_end_evals` evals): those are the samples a
researcher keeps. A generator that leaked on its way but samples inside the cutoff at the end
(a large `generator.encode_amplitude` starts past it) gets a warning: the training saw
truncated states, the result did not (BENCHMARKS.md: re-simulated at twice the cutoff, such
runs' HQ moved by <= 0.2 points).
"""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.rundata import RunData
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
        end = _end_trace(run, a, b, int(th["leak_end_evals"]))
        severe = worst < th["leak_trace_error"] and (end is None or end < th["leak_trace_error"])
        out.append(Finding(
            FindingKind.FOCK_LEAKAGE, "error" if severe else "warning", run.name,
            f"Fock trace below {th['leak_trace']:g} from step {a} (min {worst:.3f}"
            + ("" if end is None else f"; {end:.3f} in the evals at its end") + ")",
            "Probability leaks past the cutoff: raise generator.cutoff"
            + (f" (now {cutoff})" if cutoff is not None else "")
            + ", add loss.trace_penalty, or lower generator.init_std / train.g_lr to keep "
              "squeezing and displacement small.", a, b,
            {"onset_step": a, "steps_below": n, "min_trace": worst, "end_eval_trace": end,
             "mean_trace": float(np.nanmean(tmean[sel])) if np.isfinite(tmean[sel]).any()
             else None, "cutoff": cutoff, "persists": b == int(steps[-1])}))
    return out


def _end_trace(run: RunData, a: int, b: int, k: int) -> float | None:
    """Median lowest trace of the sampling generator over the last k evals of steps a..b, or
    None without evals there (then the steps alone decide)."""
    ev = run.evals
    if ev.empty or "fock_trace_min" not in ev:
        return None
    steps = ev["step"].to_numpy()
    trace = col(ev, "fock_trace_min")[(steps >= a) & (steps <= b)]
    trace = trace[np.isfinite(trace)][-k:]
    return float(np.median(trace)) if trace.size else None
