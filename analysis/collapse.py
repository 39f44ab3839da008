"""Mode collapse from the evals table: full collapse, partial collapse, recovery."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import col, episodes, events_of
from qgan.thresholds import collapsed
from qgan.vocabulary import FindingKind


def collapsed_mask(run: RunData, th: dict[str, float]) -> np.ndarray:
    """Per eval row: variance ratio or pairwise-distance ratio below threshold."""
    ev = run.evals
    ratio = col(ev, "sample_var_ratio")
    with np.errstate(divide="ignore", invalid="ignore"):
        pd_ratio = col(ev, "mean_pairwise_dist") / col(ev, "real_mean_pairwise_dist")
    return collapsed(ratio, pd_ratio, th)


def diagnose_collapse(run: RunData, th: dict[str, float]) -> list[Finding]:
    ev = run.evals
    if ev.empty:
        return []
    steps = ev["step"].to_numpy()
    n = len(ev)
    mask = collapsed_mask(run, th)
    ratio = col(ev, "sample_var_ratio")
    with np.errstate(divide="ignore", invalid="ignore"):
        pd_ratio = col(ev, "mean_pairwise_dist") / col(ev, "real_mean_pairwise_dist")
    n_modes, covered = col(ev, "n_modes"), col(ev, "modes_covered")
    hq = col(ev, "high_quality_frac")
    actions = [(s, d) for s, _, d in events_of(run.events, "recovery_action")]
    out = []
    min_evals = int(th["collapse_min_evals"])
    for a, b, _ in episodes(np.arange(n), mask, min_len=min_evals):
        persists = b == n - 1
        sel = slice(a, b + 1)
        acts = [(s, d) for s, d in actions if steps[max(a - 1, 0)] <= s <= steps[b]]
        worked = None
        if acts:
            first_act = acts[0][0]
            after = np.flatnonzero(steps > first_act)
            limit = after[: int(th["recovery_window_evals"])]
            worked = bool(len(limit) and (~mask[limit]).any())
        ev_d = {
            "onset_step": steps[a], "last_collapsed_step": steps[b],
            "recovered_step": None if persists else steps[b + 1],
            "var_ratio_at_onset": ratio[a], "min_var_ratio": np.nanmin(ratio[sel])
            if np.isfinite(ratio[sel]).any() else None,
            "pairwise_ratio_at_onset": pd_ratio[a],
            "modes_covered": covered[b], "n_modes": n_modes[b],
            "high_quality_frac": hq[b], "evals_collapsed": b - a + 1,
            "recovery_actions": ", ".join(str(d.get("action", "?")) for _, d in acts) or None,
            "recovery_worked": worked, "persists": persists,
        }
        if persists:
            advice = ("Collapse lasted to the end. Restart from the checkpoint before step "
                      f"{steps[a]} with a lower train.g_lr or a diversity term "
                      "(loss.diversity_weight > 0); for BCE try loss.kind = 'wgan-gp'.")
            if worked is False:
                advice = ("The recovery action did not help within "
                          f"{int(th['recovery_window_evals'])} evals. " + advice)
        else:
            advice = ("The run recovered; "
                      + ("the recovery action worked. " if worked else "")
                      + "If this recurs, lower train.g_lr or set monitor.collapse_action.")
        out.append(Finding(
            FindingKind.MODE_COLLAPSE, "error" if persists else "warning", run.name,
            f"mode collapse from step {steps[a]}"
            + (" to the end" if persists else f", recovered by step {steps[b + 1]}")
            + f" (variance ratio {ratio[a]:.3g})",
            advice, steps[a], steps[b], ev_d))
    if run.profile is None or run.profile.source != "fitted":  # else: dropped_mode says it
        out += _partial(run, th, mask, steps, n_modes, covered, hq)
    return out


def _partial(run, th, mask, steps, n_modes, covered, hq) -> list[Finding]:
    """Modes dropped after having been covered, without full collapse."""
    full = np.flatnonzero((n_modes > 0) & (covered >= n_modes))
    if full.size == 0:
        return []
    dropped = (covered < n_modes) & ~mask
    dropped[: full[0]] = False
    out = []
    n = len(steps)
    for a, b, _ in episodes(np.arange(n), dropped, min_len=int(th["collapse_min_evals"])):
        persists = b == n - 1
        out.append(Finding(
            FindingKind.PARTIAL_COLLAPSE, "warning", run.name,
            f"modes dropped from step {steps[a]}: {int(covered[a])} of {int(n_modes[a])} covered",
            "Modes once learned were lost: the generator is chasing the discriminator. Lower "
            "train.g_lr, raise loss.n_critic, or add loss.diversity_weight.",
            steps[a], steps[b],
            {"modes_covered_min": np.nanmin(covered[a:b + 1]), "n_modes": n_modes[a],
             "high_quality_frac": hq[b], "persists": persists,
             "high_quality_low": bool(hq[b] < th["high_quality_min"])}))
    return out

