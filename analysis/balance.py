"""Adversarial balance: who wins when (phases), and loss oscillation."""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import col, data_scale, episodes, flag
from qgan.vocabulary import FindingKind

# the adversarial phases are the balance finding kinds; how the page names them
PHASE_LABEL: dict[FindingKind, str] = {FindingKind.D_DOMINANCE: "D dominant",
                                       FindingKind.G_DOMINANCE: "G dominant",
                                       FindingKind.EQUILIBRIUM: FindingKind.EQUILIBRIUM.value}


def loss_kind(run: RunData) -> str:
    """'bce' or 'wgan-gp': from the config, else inferred (BCE outputs are probabilities and
    have no gradient penalty)."""
    kind = run.config.get("loss.kind")
    if kind in ("bce", "wgan-gp"):
        return kind
    st = run.steps
    dr, df, gp = col(st, "d_real"), col(st, "d_fake"), col(st, "gp")
    vals = np.concatenate([dr[np.isfinite(dr)], df[np.isfinite(df)]])
    if vals.size and vals.min() >= 0 and vals.max() <= 1 and not np.isfinite(gp).any():
        return "bce"
    return "wgan-gp"


def phase_masks(run: RunData, th: dict[str, float]) -> dict[FindingKind, np.ndarray]:
    st = run.steps
    dr, df = col(st, "d_real"), col(st, "d_fake")
    ok = ~flag(st, "nonfinite") & np.isfinite(dr) & np.isfinite(df)
    if loss_kind(run) == "bce":
        eq = ok & (np.abs(dr - 0.5) < th["equilibrium_tol"]) & \
            (np.abs(df - 0.5) < th["equilibrium_tol"])
        d_dom = ok & (dr > th["d_dominant_real"]) & (df < th["d_dominant_fake"])
        g_dom = ok & ~eq & (dr < th["g_dominant_real"]) & (df > th["g_dominant_fake"])
    else:
        gap = (dr - df) / data_scale(run.evals)
        eq = ok & (np.abs(gap) < th["critic_gap_tol"])
        d_dom = ok & (gap > th["critic_gap_dominant"])
        g_dom = ok & (gap < -th["critic_gap_tol"])
    return {FindingKind.D_DOMINANCE: d_dom, FindingKind.G_DOMINANCE: g_dom,
            FindingKind.EQUILIBRIUM: eq}


def balance_phases(run: RunData, th: dict[str, float]
                   ) -> list[tuple[FindingKind, int, int]]:
    """(phase, start step, end step) for every persistent phase; the report draws them."""
    if run.steps.empty:
        return []
    steps = run.steps["step"].to_numpy()
    out = []
    for name, mask in phase_masks(run, th).items():
        for a, b, _ in episodes(steps, mask, min_len=int(th["balance_min_steps"]),
                                max_gap=int(th["balance_merge_gap"])):
            out.append((name, a, b))
    return sorted(out, key=lambda p: p[1])


def diagnose_balance(run: RunData, th: dict[str, float]) -> list[Finding]:
    if run.steps.empty:
        return []
    out = []
    kind = loss_kind(run)
    dr, df = col(run.steps, "d_real"), col(run.steps, "d_fake")
    steps = run.steps["step"].to_numpy()
    advice = {
        FindingKind.D_DOMINANCE: "The discriminator wins and the generator's gradients fade: lower "
                      "train.d_lr or loss.n_critic"
                      + (", or add loss.label_smoothing / loss.instance_noise." if kind == "bce"
                         else ", or raise train.g_lr."),
        FindingKind.G_DOMINANCE: "The discriminator cannot tell real from fake although quality is not "
                      "at equilibrium: raise train.d_lr or loss.n_critic.",
    }
    for name, a, b in balance_phases(run, th):
        sel = (steps >= a) & (steps <= b)
        ev = {"loss": kind, "steps": int(sel.sum()),
              "mean_d_real": float(np.nanmean(dr[sel])), "mean_d_fake": float(np.nanmean(df[sel]))}
        severity = "info" if name == FindingKind.EQUILIBRIUM else "warning"
        out.append(Finding(name, severity, run.name, f"{PHASE_LABEL[name]} at steps {a}-{b}",
                           advice.get(name, ""), a, b, ev))
    out += _oscillation(run, th)
    return out


def _oscillation(run: RunData, th: dict[str, float]) -> list[Finding]:
    st = run.steps[~flag(run.steps, "nonfinite")]
    steps = st["step"].to_numpy()
    w, k = int(th["osc_window"]), int(th["osc_smooth"])
    out = []
    for loss in ("g_loss", "d_loss"):
        x = col(st, loss)
        flagged = []
        for lo in range(0, len(x) - w + 1, w):
            seg = x[lo:lo + w]
            if not np.isfinite(seg).all():
                continue
            t = np.arange(w)
            resid = seg - np.polyval(np.polyfit(t, seg, 1), t)
            smooth = np.convolve(resid, np.ones(k) / k, mode="valid")
            raw_sd = resid.std()
            if raw_sd == 0:
                continue
            ratio = smooth.std() / raw_sd
            crossings = int((np.diff(np.sign(smooth - smooth.mean())) != 0).sum())
            if ratio > th["osc_ratio"] and crossings >= th["osc_min_crossings"]:
                flagged.append((lo, ratio, crossings))
        # merge consecutive windows
        groups: list[list] = []
        for g in flagged:
            if groups and g[0] == groups[-1][-1][0] + w:
                groups[-1].append(g)
            else:
                groups.append([g])
        for g in groups:
            a, b = int(steps[g[0][0]]), int(steps[g[-1][0] + w - 1])
            out.append(Finding(
                FindingKind.OSCILLATION, "warning", run.name,
                f"{loss} oscillates at steps {a}-{b}",
                "The two players chase each other: lower both learning rates (train.g_lr, "
                "train.d_lr) or lower Adam's beta1 (train.beta1).", a, b,
                {"loss": loss, "amplitude_ratio": max(r for _, r, _ in g),
                 "crossings_per_window": max(c for _, _, c in g), "window": w}))
    return out
