"""Figures as embeddable PNG data: URIs.

Per-run figures and the sweep's small multiples are drawn by `reports.raster` (Pillow), which
costs milliseconds per panel where matplotlib cost ~0.1 s per figure in tick and text layout:
that was ~1 s of CPU per run and a minute for a 64-run sweep (BENCHMARKS.md). Layouts use
fixed margins (no tight_layout), shared step axes and few ticks. Only the one-per-report
hyperparameter plot, with its categorical axes, still uses matplotlib.

Curves are reduced to at most MAX_POINTS buckets before drawing (mean line + min/max band),
so a 10,000-step run costs the same as a 1,000-step one.
"""

from __future__ import annotations

import base64
import io
import math
import warnings

import numpy as np

from analysis.diagnose import ExperimentDiagnosis, RunDiagnosis
from analysis.load import read_samples, real_samples, sample_files
from analysis.series import col
from reports.raster import SS, Box, Canvas, Panel, grid, limits

MAX_POINTS = 600
DPI = 72
PHASE_COLORS = {"D dominant": "#d62728", "G dominant": "#1f77b4", "equilibrium": "#2ca02c"}
CAUSE_COLORS = {"finished": "#2ca02c", "early_stop": "#2ca02c", "preemption": "#ff7f0e",
                "time_limit": "#9467bd", "killed": "#d62728", "crash": "#d62728",
                "diverged": "#d62728", "running": "#7f7f7f", "signal": "#ff7f0e"}
VERDICT_COLORS = {"converged": "C2", "improving": "C9", "degraded": "C5", "collapsed": "C3",
                  "diverged": "C1", "leaking": "C6", "never_fit": "C8", "regressed": "C0",
                  "stalled": "C4", "unfinished": "C7", "failed": "k"}


def png(fig, dpi: int = DPI) -> str:
    """A matplotlib figure as a data: URI (the report must not reference any external file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

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


# ---- curves: bucket first, then pick limits, then draw -------------------------------------

class Curve:
    """One bucketed series ready to draw: mean line, min/max band, optional smoothing."""

    def __init__(self, x: np.ndarray, y: np.ndarray, label: str, color: str, *,
                 log: bool = False, smooth: int = 0):
        y = np.asarray(y, float)
        if log:
            y = np.where(y > 0, y, np.nan)
        self.label, self.color, self.smooth = label, color, smooth
        self.ok = bool(np.isfinite(y).any())
        self.x, self.mean, self.lo, self.hi = bucket(np.asarray(x), y)
        self.banded = smooth or len(x) > MAX_POINTS

    def values(self) -> list[np.ndarray]:
        return [self.lo, self.hi] if self.ok else []

    def draw(self, p: Panel) -> None:
        if not self.ok:
            return
        if self.banded:
            p.band(self.x, self.lo, self.hi, self.color, 0.15 if self.smooth else 0.2)
        if self.smooth:
            p.line(self.x, self.mean, self.color, 0.6, shade=0.35)
            p.line(self.x, _smooth(self.mean, self.smooth), self.color, 1.2)
        else:
            p.line(self.x, self.mean, self.color, 1.0)


def _panel(c: Canvas, box: Box, curves: list[Curve], xlim: tuple[float, float], *,
           log: bool = False, ylim: tuple[float, float] | None = None,
           extra_y: list[float] = ()) -> Panel:
    vals = [v for cv in curves for v in cv.values()] + [np.array(extra_y, float)]
    return Panel(c, box, xlim, ylim or limits(vals, log), log=log)


def _draw(p: Panel, curves: list[Curve], title: str, *, xticks: bool, xlabel: str = "",
          empty: str = "no data") -> None:
    """Frame first (grid under the data), then curves, then legend and notes on top."""
    p.frame(title, xticks=xticks, xlabel=xlabel, yticks=any(cv.ok for cv in curves))
    for cv in curves:
        cv.draw(p)
    if not any(cv.ok for cv in curves):
        p.note(empty)
    p.legend([(cv.label, cv.color) for cv in curves if cv.ok])


def _xlim(x: np.ndarray) -> tuple[float, float]:
    return (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)


def training(rd: RunDiagnosis, th: dict[str, float]) -> str:
    """Losses, D outputs with phase bands, grad norms, live fractions, param norms, Fock trace."""
    st = rd.run.steps
    x = st["step"].to_numpy()
    xl = _xlim(x)
    c = Canvas(760, 540)
    boxes = grid(760, 540, 3, 2, left=52, top=18, bottom=30, hgap=28, wgap=58)
    panels = [
        ([Curve(x, col(st, "g_loss"), "G loss", "C0", smooth=15),
          Curve(x, col(st, "d_loss"), "D loss", "C1", smooth=15)],
         "losses (raw band, smoothed line; red = NaN episode)", {}),
        ([Curve(x, col(st, "d_real"), "D(real)", "C2"),
          Curve(x, col(st, "d_fake"), "D(fake)", "C3")],
         "D(real) / D(fake); bands: red D wins, blue G wins, green equil.", {}),
        ([Curve(x, col(st, "g_grad_norm"), "G", "C0", log=True),
          Curve(x, col(st, "d_grad_norm"), "D", "C1", log=True)],
         "gradient norm (log, before clipping)", {"log": True}),
        ([Curve(x, col(st, "g_grad_live"), "G", "C0"),
          Curve(x, col(st, "d_grad_live"), "D", "C1")],
         "fraction of parameters with a live gradient", {"ylim": (-0.05, 1.05)}),
        ([Curve(x, col(st, "g_param_norm"), "G", "C0"),
          Curve(x, col(st, "d_param_norm"), "D", "C1")], "parameter norm", {}),
        ([Curve(x, col(st, "fock_trace_min"), "min", "C4"),
          Curve(x, col(st, "fock_trace_mean"), "mean", "C5")],
         "Fock state trace (1 = no leakage)", {"extra_y": [th["leak_trace"]]}),
    ]
    for i, ((curves, title, kw), box) in enumerate(zip(panels, boxes)):
        p = _panel(c, box, curves, xl, **kw)
        if i == 0:
            for f in rd.findings:
                if f.kind == "nonfinite":
                    p.vspan(f.start_step, f.end_step + 1, "red", 0.25)
        if i == 1:
            for name, a, b in rd.phases:
                p.vspan(a, b, PHASE_COLORS[name], 0.12)
        if i == 5 and any(cv.ok for cv in curves):
            p.hline(th["leak_trace"], "red")
        bottom = i >= 4
        _draw(p, curves, title, xticks=bottom, xlabel="step" if bottom else "",
              empty="no Fock trace (classical generator)" if i == 5 else "no data")
    return c.png()


def evals(rd: RunDiagnosis, th: dict[str, float]) -> str:
    """Variance ratio, pairwise-distance ratio, modes covered, W1 over time."""
    ev = rd.run.evals
    x = ev["step"].to_numpy()
    xl = _xlim(x)
    with np.errstate(all="ignore"):
        pdr = col(ev, "mean_pairwise_dist") / col(ev, "real_mean_pairwise_dist")
    c = Canvas(760, 200)
    boxes = grid(760, 200, 1, 3, left=42, top=18, bottom=30, wgap=44)
    n_modes = np.nanmax(np.r_[col(ev, "n_modes"), 1])
    panels = [
        ([Curve(x, col(ev, "sample_var_ratio"), "variance ratio", "C0"),
          Curve(x, pdr, "pairwise-distance ratio", "C1")], "diversity (generated / real)",
         {"extra_y": [th["collapse_var_ratio"]]}),
        ([Curve(x, col(ev, "modes_covered"), "modes covered", "C2"),
          Curve(x, col(ev, "n_modes"), "modes", "k"),
          Curve(x, col(ev, "high_quality_frac") * n_modes, "high-quality frac (scaled)", "C4")],
         "mode coverage", {"extra_y": [0.0]}),
        ([Curve(x, col(ev, "w1_mean"), "W1 mean", "C3", log=True)],
         "Wasserstein-1 to held-out data (log)", {"log": True}),
    ]
    for i, ((curves, title, kw), box) in enumerate(zip(panels, boxes)):
        p = _panel(c, box, curves, xl, **kw)
        if i == 0:
            p.hline(th["collapse_var_ratio"], "red")
        _draw(p, curves, title, xticks=True, xlabel="step")
    return c.png()


def sample_steps(rd: RunDiagnosis, files: dict[int, object], k: int = 4) -> list[int]:
    """First eval, collapse onset, best W1 eval, last eval (those with a samples file)."""
    if not files:
        return []
    have = sorted(files)
    want = [have[0]]
    for f in rd.findings:
        if f.kind in ("mode_collapse", "partial_collapse") and f.start_step is not None:
            want.append(f.start_step)
    if rd.numbers.get("best_step") is not None:
        want.append(rd.numbers["best_step"])
    want.append(have[-1])
    picked = []
    for w in want:
        nearest = min(have, key=lambda h: abs(h - w))
        if nearest not in picked:
            picked.append(nearest)
    return sorted(picked)[:k]


def samples(rd: RunDiagnosis) -> str | None:
    """Generated (blue) over real (grey) samples at a few chosen evals; 1-D data as
    histograms. All panels share the real data's limits so that spreads compare."""
    files = sample_files(rd.run)
    steps = sample_steps(rd, files)
    if not steps:
        return None
    real = real_samples(rd.run)
    gens = {s: read_samples(files[s]) for s in steps}
    arrays = [a for a in [real, *gens.values()] if a is not None and a.size]
    if not arrays:
        return None
    two_d = arrays[0].shape[1] >= 2
    width = 190 * len(steps)
    c = Canvas(width, 200)
    boxes = grid(width, 200, 1, len(steps), left=36, top=18, bottom=22, wgap=40)
    stack = np.vstack([a[:, :2] if two_d else a[:, :1] for a in arrays])
    xl = limits([stack[:, 0]])
    for i, (s, box) in enumerate(zip(steps, boxes)):
        gen = gens[s]
        if two_d:
            p = Panel(c, box, xl, limits([stack[:, 1]]), xint=False)
            p.frame(f"step {s}")
            if real is not None:
                p.points(real[:, 0], real[:, 1], "#bbbbbb", 1.5, 1.0)
            if gen is not None:
                p.points(gen[:, 0], gen[:, 1], "C0", 1.5, 0.8)
        else:
            p = _histograms(c, box, xl, real, gen)
            p.frame(f"step {s}", yticks=False, grid=False)
        if i == 0:
            p.legend([("real", "#bbbbbb"), ("generated", "C0")], "left")
    return c.png()


def _histograms(c: Canvas, box: Box, xl: tuple[float, float], real: np.ndarray | None,
                gen: np.ndarray | None) -> Panel:
    edges = np.linspace(xl[0], xl[1], 41)
    dens = {name: np.histogram(a[:, 0], edges, density=True)[0]
            for name, a in (("real", real), ("gen", gen)) if a is not None and a.size}
    top = max((float(d.max()) for d in dens.values()), default=1.0) * 1.05
    p = Panel(c, box, xl, (0.0, top or 1.0), xint=False)
    for name, color, alpha in (("real", "#bbbbbb", 0.8), ("gen", "C0", 0.6)):
        if name in dens:
            for a, b, h in zip(edges[:-1], edges[1:], dens[name]):
                if h > 0:
                    p.bar(h / 2, a, b, h, color, alpha)
    return p


def timeline(rd: RunDiagnosis) -> str | None:
    """Attempts as bars over wall-clock hours; lost steps shaded; end cause marked."""
    tl = [t for t in rd.timeline if t["start_time"] is not None]
    if not tl:
        return None
    t0 = min(t["start_time"] for t in tl)
    spans = [((t["start_time"] - t0) / 3600, ((t["end_time"] or t["start_time"]) - t0) / 3600)
             for t in tl]
    unit, per = _time_unit(max(b for _, b in spans))
    spans = [(a * per, b * per) for a, b in spans]
    end = max(b for _, b in spans)
    height = int(44 + 22 * len(tl))
    c = Canvas(760, height)
    box = Box(70, 8, 650, height - 30)
    p = Panel(c, box, (0.0, end * 1.02 or 1.0), (-0.5, len(tl) - 0.5), xint=False)
    row = [float(len(tl) - 1 - i) for i in range(len(tl))]  # first attempt on top
    p.frame(xlabel=f"{unit} since first start (red = lost work)", grid=False,
            ytick_labels=[(r, f"attempt {t['attempt']}") for r, t in zip(row, tl)])
    for r, t, (a, b) in zip(row, tl, spans):
        p.bar(r, a, b, 0.6, "#4c72b0")
        if t["lost_seconds"]:
            lost = t["lost_seconds"] / 3600 * per
            p.bar(r, b - lost, b, 0.6, "red", 0.55)
        p.marker(b, r, CAUSE_COLORS.get(t["cause"], "#7f7f7f"),
                 "o" if t["cause"] == "finished" else "v", 4)
        c.text(p.px(b).item() / SS + 9, p.py(r).item() / SS, f"{t['cause']} @ {t['end_step']}",
               7, anchor="lm")
    return c.png()


def _time_unit(hours: float) -> tuple[str, float]:
    """(unit, factor from hours) that keeps a timeline's tick labels short."""
    if hours < 0.05:
        return "seconds", 3600.0
    if hours < 2:
        return "minutes", 60.0
    return "hours", 1.0


def run_figures(rd: RunDiagnosis, th: dict[str, float]) -> dict[str, str | None]:
    """Every figure of one run section, keyed by the section anchor suffix."""
    return {"training": training(rd, th) if len(rd.run.steps) else None,
            "evals": evals(rd, th) if len(rd.run.evals) else None,
            "samples": samples(rd), "timeline": timeline(rd)}


# ---- sweep figures -------------------------------------------------------------------------

def small_multiples(d: ExperimentDiagnosis, order: list[RunDiagnosis]) -> str:
    """W1 over time for every run, one tiny panel each, in ranking order, on shared axes (so
    panels compare at a glance); tick labels only on the left column and the bottom row."""
    n = len(order)
    ncol = min(8, n)
    nrow = math.ceil(n / ncol)
    w, h = 128 * ncol + 40, 92 * nrow + 24
    c = Canvas(w, h)
    boxes = grid(w, h, nrow, ncol, left=36, right=16, top=14, bottom=18, hgap=18, wgap=8)
    series = []
    for rd in order:
        ev = rd.run.evals
        w1 = col(ev, "w1_mean")
        series.append((ev["step"].to_numpy(), np.where(w1 > 0, w1, np.nan)))
    xs = [x for x, _ in series if len(x)]
    xl = (min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)) if xs else (0, 1)
    yl = limits([y for _, y in series], log=True)
    for i, (rd, (x, y), box) in enumerate(zip(order, series, boxes)):
        p = Panel(c, box, xl, yl, log=True)
        p.frame(f"#{d.ranking.index(rd.run.name) + 1} {rd.verdict}",
                xticks=i >= n - ncol, yticks=i % ncol == 0, nx=2)
        if np.isfinite(y).any():
            p.line(x, y, "C0" if rd.verdict == "converged" else "C3", 0.8)
    return c.png()


def hparam_outcomes(d: ExperimentDiagnosis) -> str | None:
    """Final W1 against each swept hyperparameter, coloured by verdict (matplotlib: one per
    report, and categorical axes are not worth re-implementing)."""
    from matplotlib.figure import Figure

    keys = [s["key"] for s in d.separation][:6] or list(
        next(iter(d.hyperparameters.values()), {}))[:6]
    if not keys:
        return None
    fig = Figure(figsize=(3.2 * len(keys), 2.6))
    axs = np.atleast_1d(fig.subplots(1, len(keys), sharey=True))
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
        ax.scatter(xs, y, c=[VERDICT_COLORS.get(r.verdict, "k") for r in d.runs], s=12)
        if numeric and xs.min() > 0 and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set_title(key, fontsize=9, y=1.0)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        ax.minorticks_off()
    axs[0].set_ylabel("final W1 (log)", fontsize=8)
    fig.subplots_adjust(left=0.08 if len(keys) > 1 else 0.2, right=0.98, top=0.88,
                        bottom=0.2, wspace=0.15)
    return png(fig)
