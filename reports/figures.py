"""Figures as embeddable PNG data: URIs (matplotlib, Agg, no pyplot global state).

Curves are reduced to at most MAX_POINTS buckets before plotting (mean line + min/max band),
so a 10,000-step run costs the same as a 1,000-step one.
"""

from __future__ import annotations

import base64
import io
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.diagnose import ExperimentDiagnosis, RunDiagnosis  # noqa: E402
from analysis.load import read_samples, real_samples, sample_files  # noqa: E402
from analysis.series import col  # noqa: E402

MAX_POINTS = 600
DPI = 72
PHASE_COLORS = {"D dominant": "#d62728", "G dominant": "#1f77b4", "equilibrium": "#2ca02c"}
CAUSE_COLORS = {"finished": "#2ca02c", "early_stop": "#2ca02c", "preemption": "#ff7f0e",
                "time_limit": "#9467bd", "killed": "#d62728", "crash": "#d62728",
                "diverged": "#d62728", "running": "#7f7f7f", "signal": "#ff7f0e"}


def png(fig: Figure, dpi: int = DPI) -> str:
    """The figure as a data: URI (the report must not reference any external file)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bucket(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS):
    """(x, mean, min, max) over at most n equal-count buckets, NaN-aware."""
    if len(x) <= n:
        return x, y, y, y
    k = math.ceil(len(x) / n)
    pad = (-len(x)) % k
    xs = np.r_[x.astype(float), np.full(pad, np.nan)].reshape(-1, k)
    ys = np.r_[y, np.full(pad, np.nan)].reshape(-1, k)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN buckets (NaN episodes)
        return (np.nanmean(xs, 1), np.nanmean(ys, 1), np.nanmin(ys, 1), np.nanmax(ys, 1))


def _smooth(y: np.ndarray, w: int) -> np.ndarray:
    if len(y) < w or w < 2:
        return y
    ok = np.isfinite(y)
    num = np.convolve(np.where(ok, y, 0.0), np.ones(w), "same")
    den = np.convolve(ok.astype(float), np.ones(w), "same")
    with np.errstate(all="ignore"):
        return num / den


def _curve(ax, x, y, label, color, log=False, smooth=0):
    if not np.isfinite(y).any():
        return
    if log:
        y = np.where(y > 0, y, np.nan)
    bx, m, lo, hi = bucket(x, y)
    if smooth:
        ax.fill_between(bx, lo, hi, color=color, alpha=0.15, lw=0)
        ax.plot(bx, m, color=color, alpha=0.35, lw=0.6)
        ax.plot(bx, _smooth(m, smooth), color=color, lw=1.2, label=label)
    else:
        if len(x) > MAX_POINTS:
            ax.fill_between(bx, lo, hi, color=color, alpha=0.2, lw=0)
        ax.plot(bx, m, color=color, lw=1, label=label)
    if log:
        ax.set_yscale("log")
        ax.minorticks_off()  # minor log ticks cost more to draw than the curves


def _nan_spans(ax, rd: RunDiagnosis):
    for f in rd.findings:
        if f.kind == "nonfinite":
            ax.axvspan(f.start_step, f.end_step + 1, color="red", alpha=0.25, lw=0)


def training(rd: RunDiagnosis, th: dict[str, float]) -> str:
    """Losses, D outputs with phase bands, grad norms, live fractions, param norms, Fock trace."""
    st = rd.run.steps
    x = st["step"].to_numpy()
    fig = Figure(figsize=(10, 7.2))
    axs = fig.subplots(3, 2, sharex=True).ravel()
    _curve(axs[0], x, col(st, "g_loss"), "G loss", "C0", smooth=15)
    _curve(axs[0], x, col(st, "d_loss"), "D loss", "C1", smooth=15)
    _nan_spans(axs[0], rd)
    axs[0].set_title("losses (raw band, smoothed line; red = NaN episode)", fontsize=9, y=1.0)
    for name, a, b in rd.phases:
        axs[1].axvspan(a, b, color=PHASE_COLORS[name], alpha=0.12, lw=0)
    _curve(axs[1], x, col(st, "d_real"), "D(real)", "C2")
    _curve(axs[1], x, col(st, "d_fake"), "D(fake)", "C3")
    axs[1].set_title("D(real) / D(fake); bands: red D wins, blue G wins, green equilibrium",
                     fontsize=9)
    _curve(axs[2], x, col(st, "g_grad_norm"), "G", "C0", log=True)
    _curve(axs[2], x, col(st, "d_grad_norm"), "D", "C1", log=True)
    axs[2].set_title("gradient norm (log, before clipping)", fontsize=9, y=1.0)
    _curve(axs[3], x, col(st, "g_grad_live"), "G", "C0")
    _curve(axs[3], x, col(st, "d_grad_live"), "D", "C1")
    axs[3].set_ylim(-0.05, 1.05)
    axs[3].set_title("fraction of parameters with a live gradient", fontsize=9, y=1.0)
    _curve(axs[4], x, col(st, "g_param_norm"), "G", "C0")
    _curve(axs[4], x, col(st, "d_param_norm"), "D", "C1")
    axs[4].set_title("parameter norm", fontsize=9, y=1.0)
    _curve(axs[5], x, col(st, "fock_trace_min"), "min", "C4")
    _curve(axs[5], x, col(st, "fock_trace_mean"), "mean", "C5")
    axs[5].axhline(th["leak_trace"], color="red", ls="--", lw=0.8)
    axs[5].set_title("Fock state trace (1 = no leakage)", fontsize=9, y=1.0)
    for ax in axs:
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    axs[4].set_xlabel("step", fontsize=8)
    axs[5].set_xlabel("step", fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.96, bottom=0.07, hspace=0.3, wspace=0.15)
    return png(fig)


def evals(rd: RunDiagnosis, th: dict[str, float]) -> str:
    """Variance ratio, pairwise-distance ratio, modes covered, W1 over time."""
    ev = rd.run.evals
    x = ev["step"].to_numpy()
    fig = Figure(figsize=(10, 2.6))
    axs = fig.subplots(1, 3)
    with np.errstate(all="ignore"):
        pdr = col(ev, "mean_pairwise_dist") / col(ev, "real_mean_pairwise_dist")
    _curve(axs[0], x, col(ev, "sample_var_ratio"), "variance ratio", "C0")
    _curve(axs[0], x, pdr, "pairwise-distance ratio", "C1")
    axs[0].axhline(th["collapse_var_ratio"], color="red", ls="--", lw=0.8)
    axs[0].set_title("diversity (generated / real)", fontsize=9, y=1.0)
    _curve(axs[1], x, col(ev, "modes_covered"), "modes covered", "C2")
    _curve(axs[1], x, col(ev, "n_modes"), "modes", "k")
    _curve(axs[1], x, col(ev, "high_quality_frac") * np.nanmax(np.r_[col(ev, "n_modes"), 1]),
           "high-quality frac (scaled)", "C4")
    axs[1].set_title("mode coverage", fontsize=9, y=1.0)
    _curve(axs[2], x, col(ev, "w1_mean"), "W1 mean", "C3", log=True)
    axs[2].set_title("Wasserstein-1 to held-out data (log)", fontsize=9, y=1.0)
    for ax in axs:
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    fig.subplots_adjust(left=0.05, right=0.99, top=0.9, bottom=0.17, wspace=0.2)
    return png(fig)


def sample_steps(rd: RunDiagnosis, files: dict[int, object], k: int = 4) -> list[int]:
    """First eval, collapse onset, best W1 eval, last eval (those with a samples file)."""
    if not files:
        return []
    have = sorted(files)
    want = [have[0]]
    for f in rd.findings:
        if f.kind in ("mode_collapse", "partial_collapse") and f.start_step is not None:
            want.append(f.start_step)
    if rd.numbers.get("best_w1_step") is not None:
        want.append(rd.numbers["best_w1_step"])
    want.append(have[-1])
    picked = []
    for w in want:
        nearest = min(have, key=lambda h: abs(h - w))
        if nearest not in picked:
            picked.append(nearest)
    return sorted(picked)[:k]


def samples(rd: RunDiagnosis) -> str | None:
    files = sample_files(rd.run)
    steps = sample_steps(rd, files)
    if not steps:
        return None
    real = real_samples(rd.run)
    fig = Figure(figsize=(2.5 * len(steps), 2.6))
    axs = np.atleast_1d(fig.subplots(1, len(steps)))
    for ax, s in zip(axs, steps):
        gen = read_samples(files[s])
        if real is not None and real.shape[1] >= 1:
            _scatter(ax, real, "#bbbbbb", "real")
        if gen is not None:
            _scatter(ax, gen, "C0", "generated")
        ax.set_title(f"step {s}", fontsize=9, y=1.0)
        ax.tick_params(labelsize=7)
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def _scatter(ax, x: np.ndarray, color: str, label: str):
    if x.shape[1] >= 2:
        ax.scatter(x[:, 0], x[:, 1], s=3, color=color, label=label, alpha=0.7, lw=0)
    else:
        ax.hist(x[:, 0], bins=40, color=color, alpha=0.6, label=label, density=True)


def timeline(rd: RunDiagnosis) -> str | None:
    """Attempts as bars over wall-clock hours; lost steps shaded; end cause marked."""
    tl = [t for t in rd.timeline if t["start_time"] is not None]
    if not tl:
        return None
    t0 = min(t["start_time"] for t in tl)
    fig = Figure(figsize=(10, 0.5 + 0.35 * len(tl)))
    ax = fig.subplots()
    for i, t in enumerate(tl):
        a = (t["start_time"] - t0) / 3600
        b = ((t["end_time"] or t["start_time"]) - t0) / 3600
        color = CAUSE_COLORS.get(t["cause"], "#7f7f7f")
        ax.barh(i, max(b - a, 1e-6), left=a, color="#4c72b0", height=0.6)
        if t["lost_seconds"]:
            lost = t["lost_seconds"] / 3600
            ax.barh(i, lost, left=b - lost, color="red", alpha=0.5, height=0.6, hatch="//")
        ax.plot([b], [i], marker="v" if t["cause"] != "finished" else "o", color=color, ms=8)
        ax.text(b, i + 0.35, f" {t['cause']} @ {t['end_step']}", fontsize=7, va="bottom")
    ax.set_yticks(range(len(tl)), [f"attempt {t['attempt']}" for t in tl], fontsize=7)
    ax.set_xlabel("hours since first start (red hatch = lost work)", fontsize=8)
    ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return png(fig)


def run_figures(rd: RunDiagnosis, th: dict[str, float]) -> dict[str, str | None]:
    """Every figure of one run section, keyed by the section anchor suffix."""
    return {"training": training(rd, th) if len(rd.run.steps) else None,
            "evals": evals(rd, th) if len(rd.run.evals) else None,
            "samples": samples(rd), "timeline": timeline(rd)}


# ---- sweep figures -------------------------------------------------------------------------

def small_multiples(d: ExperimentDiagnosis, order: list[RunDiagnosis]) -> str:
    """W1 over time for every run, one tiny panel each, in ranking order."""
    n = len(order)
    ncol = min(8, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(1.6 * ncol, 1.2 * nrow))
    axs = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True)).ravel()
    for ax, rd in zip(axs, order):
        ev = rd.run.evals
        w1 = col(ev, "w1_mean")
        if np.isfinite(w1).any():
            ax.plot(ev["step"].to_numpy(), np.where(w1 > 0, w1, np.nan),
                    color="C3" if rd.verdict != "healthy" else "C0", lw=0.8)
            ax.set_yscale("log")
        ax.set_title(f"#{d.ranking.index(rd.run.name) + 1} {rd.verdict}", fontsize=6, y=1.0)
        ax.tick_params(labelsize=5)
    for ax in axs[n:]:
        ax.set_visible(False)
    fig.tight_layout(pad=0.3)
    return png(fig, dpi=60)


def hparam_outcomes(d: ExperimentDiagnosis) -> str | None:
    """Final W1 against each swept hyperparameter, coloured by verdict."""
    keys = [s["key"] for s in d.separation][:6] or list(
        next(iter(d.hyperparameters.values()), {}))[:6]
    if not keys:
        return None
    fig = Figure(figsize=(3.2 * len(keys), 2.6))
    axs = np.atleast_1d(fig.subplots(1, len(keys), sharey=True))
    verdict_color = {"healthy": "C2", "collapsed": "C3", "diverged": "C1", "stalled": "C4",
                     "unfinished": "C7", "failed": "k"}
    for ax, key in zip(axs, keys):
        vals = [d.hyperparameters[r.run.name].get(key) for r in d.runs]
        y = [r.numbers["final_w1"] if r.numbers["final_w1"] is not None else np.nan
             for r in d.runs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if numeric:
            xs = np.array(vals, float)
        else:
            cats = sorted({str(v) for v in vals})
            xs = np.array([cats.index(str(v)) for v in vals], float)
            ax.set_xticks(range(len(cats)), [c[:12] for c in cats], fontsize=7, rotation=20)
        ax.scatter(xs, y, c=[verdict_color.get(r.verdict, "k") for r in d.runs], s=12)
        if numeric and xs.min() > 0 and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set_title(key, fontsize=9, y=1.0)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    axs[0].set_ylabel("final W1 (log)", fontsize=8)
    fig.tight_layout()
    return png(fig)
