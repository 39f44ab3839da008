"""Gradient health per network: vanishing, exploding, dead parameters, clipping saturation."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import col, episodes, flag
from qgan.vocabulary import FindingKind

NETWORKS = {"g": "generator", "d": "discriminator"}


def diagnose_gradients(run: RunData, th: dict[str, float]) -> list[Finding]:
    st = run.steps
    if st.empty:
        return []
    ok = ~flag(st, "nonfinite")
    steps = st["step"].to_numpy()
    last = int(steps[-1])
    kw = {"min_len": int(th["grad_min_steps"]), "max_gap": int(th["grad_merge_gap"])}
    out = []
    for net, label in NETWORKS.items():
        norm = col(st, f"{net}_grad_norm")
        live = col(st, f"{net}_grad_live")
        lr_key = f"train.{net}_lr"
        checks = [
            (FindingKind.VANISHING_GRADIENTS, ok & (norm < th["grad_vanish"]),
             f"{label} gradient norm below {th['grad_vanish']:g}",
             f"The {label} gets no learning signal. If the discriminator dominates, lower "
             f"train.d_lr or loss.n_critic; for BCE use the non-saturating loss or "
             f"loss.kind = 'wgan-gp'; for a circuit, fewer layers (barren plateau)."),
            (FindingKind.EXPLODING_GRADIENTS, ok & (norm > th["grad_explode"]),
             f"{label} gradient norm above {th['grad_explode']:g}",
             f"Lower {lr_key}, set train.clip_norm, or raise loss.gp_weight (WGAN-GP)."),
            (FindingKind.DEAD_PARAMETERS, ok & (live < th["grad_live_warn"]),
             f"{label}: fewer than {th['grad_live_warn']:.0%} of parameters get a finite "
             f"non-zero gradient",
             f"Parameters of the {label} are disconnected or saturated: check the circuit "
             f"(gates with zero derivative at their init), activation saturation, or "
             f"Fock cutoff leakage."),
        ]
        for kind, mask, what, advice in checks:
            for a, b, n in episodes(steps, mask, **kw):
                sel = (steps >= a) & (steps <= b)
                persists = b == last
                severity = "warning"
                ev = {"network": label, "steps": n, "persists": persists,
                      "median_grad_norm": float(np.nanmedian(norm[sel])) if
                      np.isfinite(norm[sel]).any() else None}
                if kind == FindingKind.DEAD_PARAMETERS:
                    med_live = float(np.nanmedian(live[sel]))
                    ev["median_live_fraction"] = med_live
                    if med_live < th["grad_live_error"]:
                        severity = "error"
                elif persists and kind == FindingKind.VANISHING_GRADIENTS:
                    severity = "error"
                out.append(Finding(kind, severity, run.name,
                                   f"{what} at steps {a}-{b}", advice, a, b, ev))
        clipped = flag(st, f"{net}_clipped") & ok
        for a, b, n in episodes(steps, clipped, min_len=int(th["clip_min_steps"]),
                                max_gap=int(th["grad_merge_gap"])):
            sel = (steps >= a) & (steps <= b)
            out.append(Finding(
                FindingKind.CLIPPING_SATURATION, "warning", run.name,
                f"{label} gradients clipped on every step at {a}-{b}",
                f"Every update has the clip norm as its size, so {lr_key} alone sets the step: "
                f"lower {lr_key} or raise train.clip_norm.", a, b,
                {"network": label, "steps": n,
                 "median_grad_norm": float(np.nanmedian(norm[sel]))
                 if np.isfinite(norm[sel]).any() else None,
                 "clip_norm": run.config.get("train.clip_norm")}))
    return out
