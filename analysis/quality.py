"""Quality over the whole run, from the evals table: a run that never fit the data, one that got
worse after its best (regression), and one whose distance to the data stopped improving far
from the target (stagnation). The distance is the per-axis W1, or for runs that watch the
sliced W1 (data files) the sliced W1 above its floor (`analysis.headline.quality_series`). At most one of the three per run, in that order: a run that never fit also
stagnates, and a regressed one does not improve in its tail either, so the later words would
only repeat the earlier. The verdict rules turn them into never_fit / regressed / stalled."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.headline import FINAL_EVALS, QUALITY_LABEL, best_index, final_of, quality_series
from analysis.rundata import RunData
from analysis.series import col, data_scale
from qgan.vocabulary import FindingKind


def diagnose_quality(run: RunData, th: dict[str, float]) -> list[Finding]:
    ev = run.evals
    metric, w1 = quality_series(run)
    ok = np.isfinite(w1)
    if not ok.any():
        return []
    steps = ev["step"].to_numpy()[ok]
    w1 = w1[ok]
    name = QUALITY_LABEL[metric]
    return (_never_fit(run, th, steps, w1, name) or _regression(run, th, steps, w1, name)
            or _stagnation(run, th, steps, w1, name))


def _never_fit(run: RunData, th: dict[str, float], steps: np.ndarray,
               w1: np.ndarray, name: str) -> list[Finding]:
    if len(w1) < th["never_fit_min_evals"]:
        return []
    ev = run.evals
    covered, n_modes = col(ev, "modes_covered"), col(ev, "n_modes")
    mixture = bool(np.nanmax(n_modes, initial=0) > 0) if np.isfinite(n_modes).any() else False
    # the first eval comes before (almost) any training: what it covers is the initial state's
    no_mode = mixture and len(covered) > 1 and bool(np.all(np.nan_to_num(covered[1:]) == 0))
    best = float(w1.min())
    flat = best >= w1[0] * (1 - th["never_fit_rel"])
    if not (no_mode or flat):
        return []
    why = []
    if no_mode:
        why.append(f"no mode of {int(np.nanmax(n_modes))} covered at any eval after the first")
    if flat:
        why.append(f"{name} never improved: best {best:.3g} vs {w1[0]:.3g} at the first eval "
                   f"(step {int(steps[0])})")
    return [Finding(
        FindingKind.NEVER_FIT, "error", run.name, "never fit the data: " + "; ".join(why),
        "The generator never reached the data: check the data scale against the generator's "
        "output range (readout, generator.latent_scale), raise train.g_lr, or lower "
        "train.d_lr if the discriminator dominates from the start.",
        int(steps[0]), int(steps[-1]),
        {"no_mode_covered": no_mode, "w1_never_improved": flat, "first_w1": float(w1[0]),
         "best_w1": best, "n_modes": float(np.nanmax(n_modes)) if mixture else 0,
         "persists": True})]


def _regression(run: RunData, th: dict[str, float], steps: np.ndarray,
                w1: np.ndarray, name: str) -> list[Finding]:
    if len(w1) <= FINAL_EVALS:
        return []
    i = best_index(w1)
    best, final = float(w1[i]), final_of(w1)
    gap_min = th["regress_min_gap"] * data_scale(run.evals)
    if i >= len(w1) - FINAL_EVALS or final < best * th["regress_ratio"] or \
            final - best < gap_min:
        return []
    return [Finding(
        FindingKind.REGRESSION, "warning", run.name,
        f"{name} got worse after its best: {best:.3g} at step {int(steps[i])}, final {final:.3g} "
        f"(median of the last {FINAL_EVALS} evals, {final / best:.1f}x the best)",
        f"Keep the checkpoint of step {int(steps[i])}, not the last one "
        "(checkpoint.keep_best = true keeps it), and stop near the best next time with "
        "early stopping (monitor.patience).",
        int(steps[i]), int(steps[-1]),
        {"best_w1": best, "best_step": int(steps[i]), "final_w1": final,
         "ratio": final / best if best > 0 else None, "persists": True})]


def _stagnation(run: RunData, th: dict[str, float], steps: np.ndarray,
                w1: np.ndarray, name: str) -> list[Finding]:
    if len(w1) < th["stagnation_min_evals"]:
        return []
    tail = max(1, int(round(len(w1) * th["stagnation_frac"])))
    best_before, best_tail = w1[:-tail].min(), w1[-tail:].min()
    scale = data_scale(run.evals)
    final = final_of(w1)
    good = final <= th["w1_good_rel"] * scale
    if best_tail < best_before * (1 - th["stagnation_rel_delta"]) or good:
        return []
    return [Finding(
        FindingKind.STAGNATION, "warning", run.name,
        f"no improvement of {'w1_mean' if name == 'W1' else name} over the last {tail} evals "
        f"(steps {steps[-tail]}-{steps[-1]})",
        "Quality stopped improving far from the target: more steps will not help. Try another "
        "learning rate, more circuit layers, or a larger Fock cutoff; early stopping "
        "(monitor.patience) would have saved the compute.",
        int(steps[-tail]), int(steps[-1]),
        {"best_w1_before": best_before, "best_w1_tail": best_tail, "final_w1": final,
         "good_w1": th["w1_good_rel"] * scale})]
