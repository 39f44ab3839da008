"""The data the report's charts draw, as compact JSON embedded in the page.

Charts are drawn in the browser by the vendored uPlot (reports/vendor/uplot); Python only
reduces the series and writes them once. Long series are reduced to at most MAX_BUCKETS
equal-width step buckets (a 10,000-step run costs the same as a 400-step one): the mean per
bucket for most columns, but the maximum for gradient norms and the minimum for the Fock
trace, so that a spike or a leak is never averaged away. Values keep SIG_DIGITS significant
digits; NaN and infinities become null (a gap in the line).

Samples are quantised to integers 0..QUANT on a frame shared by real and generated points, so
an animation of up to MAX_FRAMES evals costs a few kB per run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.rundata import read_samples, real_samples, sample_files
from analysis.series import col
from qgan import saferead, schema

MAX_BUCKETS = 200
SIG_DIGITS = 4
MAX_FRAMES = 16
MAX_POINTS = 128  # per frame
QUANT = 999
HIST_BINS = 40  # 1-D data: the animation shows histograms


@dataclass(frozen=True)
class Series:
    table: str  # "steps" or "evals"
    column: str
    label: str
    agg: str = "mean"  # per bucket: mean | max | min


@dataclass(frozen=True)
class ChartSpec:
    """One chart of a run section; `panel` is the panel id (analysis' vocabulary) that advice
    and findings link to; a panel may hold more than one chart."""
    id: str
    panel: str
    title: str
    ylabel: str
    series: tuple[Series, ...]
    log: bool = False
    note: str = ""  # what the shading means, under the title


SHADED = "red bands: the step ranges of this run's findings and advice"
CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("w1", "w1", "Wasserstein-1 distance to held-out data (lower is better)",
              "W1 (data units)", (Series("evals", "w1_mean", "W1"),), log=True, note=SHADED),
    ChartSpec("sliced", "w1", "Sliced W1 to held-out data: sees the joint shape (lower is "
              "better; the floor is what a second real sample set scores)", "sliced W1 (data units)",
              (Series("evals", "sliced_w1", "sliced W1"),
               Series("evals", "sliced_w1_floor", "floor (real vs real)")), log=True,
              note=SHADED),
    ChartSpec("losses", "losses", "Losses", "loss",
              (Series("steps", "g_loss", "G loss"), Series("steps", "d_loss", "D loss")),
              note=SHADED),
    ChartSpec("critic", "critic", "Discriminator / critic outputs (BCE: probability; WGAN: score)",
              "D output",
              (Series("steps", "d_real", "D(real)"), Series("steps", "d_fake", "D(fake)")),
              note="background: pale red = D dominant, pale blue = G dominant, pale green = "
                   "equilibrium; red bands: findings"),
    ChartSpec("grads", "grads", "Gradient norms before clipping (bucket max)", "L2 norm",
              (Series("steps", "g_grad_norm", "G", "max"),
               Series("steps", "d_grad_norm", "D", "max")), log=True, note=SHADED),
    ChartSpec("live", "grads", "Parameters with a live gradient (bucket min)", "fraction",
              (Series("steps", "g_grad_live", "G", "min"),
               Series("steps", "d_grad_live", "D", "min"))),
    ChartSpec("trace", "trace", "Fock-state trace (1 = nothing leaks past the cutoff)",
              "trace",
              (Series("steps", "fock_trace_min", "min over batch", "min"),
               Series("steps", "fock_trace_mean", "mean over batch")),
              note="dashed: the leak threshold (leak_trace); red bands: findings"),
    ChartSpec("modes", "modes", "Mode coverage", "modes",
              (Series("evals", "modes_covered", "modes covered"),
               Series("evals", "n_modes", "modes in the data")), note=SHADED),
    ChartSpec("quality", "modes", "High-quality samples: within 3 std of a mode (the rest lie "
              "off every mode)", "fraction of samples",
              (Series("evals", "paper_hq_frac", "HQ (papers: 3 std)"),
               Series("evals", "high_quality_frac", "HQ (loose: 3 std x sqrt(d))")),
              note="dashed: the HQ below which too many samples lie off every mode "
                   "(1 - off_mode_max); red bands: findings"),
    ChartSpec("diversity", "modes", "Diversity of generated samples", "generated / real",
              (Series("evals", "sample_var_ratio", "variance ratio"),
               Series("evals", "pairwise_ratio", "pairwise-distance ratio"))),
    ChartSpec("support", "support", "Support of the data (k-NN manifolds): precision = "
              "samples on the data's support, recall and coverage = data reached by the "
              "samples", "fraction",
              (Series("evals", "precision", "precision"), Series("evals", "recall", "recall"),
               Series("evals", "coverage", "coverage")),
              note="a second real sample set scores about 0.95 in 2-D, 0.8 in 16-D (the "
                   "finding compares with that run's own value); red bands: findings"),
    ChartSpec("density", "support", "Density (1 = samples spread like the data; above 1 "
              "they crowd its dense parts)", "density",
              (Series("evals", "density", "density"),)),
    ChartSpec("spread", "support", "Spread: distance from the data's centre, generated / "
              "real quantiles (1 = same spread)", "generated / real",
              (Series("evals", "radius_q10_ratio", "10th percentile"),
               Series("evals", "radius_q50_ratio", "median"),
               Series("evals", "radius_q90_ratio", "90th percentile"),
               Series("evals", "radius_q99_ratio", "99th percentile (the tails)")), log=True,
              note=SHADED),
)

# The overlay charts (one series per run): id -> (title, y label, series, log by default).
OVERLAYS: dict[str, tuple[str, str, Series, bool]] = {
    "w1": ("W1 to held-out data (lower is better)", "W1 (data units)",
           Series("evals", "w1_mean", "W1"), True),
    "sliced_w1": ("Sliced W1 to held-out data: the joint shape (lower is better)",
                  "sliced W1 (data units)", Series("evals", "sliced_w1", "sliced W1"), True),
    "precision": ("Precision: samples on the data's support (k-NN manifold)", "fraction",
                  Series("evals", "precision", "precision"), False),
    "recall": ("Recall: the data's support reached by the samples (k-NN manifold)",
               "fraction", Series("evals", "recall", "recall"), False),
    "coverage": ("Coverage: real samples with a generated one nearby", "fraction",
                 Series("evals", "coverage", "coverage"), False),
    "g_loss": ("Generator loss", "G loss", Series("steps", "g_loss", "G loss"), False),
    "d_loss": ("Discriminator / critic loss", "D loss", Series("steps", "d_loss", "D loss"),
               False),
    "d_gap": ("Critic gap D(real) - D(fake)", "D(real) - D(fake)",
              Series("steps", "d_gap", "gap"), False),
    "g_grad_norm": ("Generator gradient norm (bucket max)", "L2 norm",
                    Series("steps", "g_grad_norm", "G grad", "max"), True),
    "fock_trace_min": ("Fock-state trace, batch minimum (bucket min)", "trace",
                       Series("steps", "fock_trace_min", "trace", "min"), False),
    "modes_covered": ("Modes covered", "modes", Series("evals", "modes_covered", "modes"),
                      False),
    "paper_hq_frac": ("High-quality samples (within 3 std of a mode, the papers' test)",
                      "fraction of samples", Series("evals", "paper_hq_frac", "HQ"), False),
    "sample_var_ratio": ("Variance ratio generated / real", "generated / real",
                         Series("evals", "sample_var_ratio", "ratio"), False),
}


# ---- encoding ------------------------------------------------------------------------------

_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(obj: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>', '&' (so no '</script>' or '<!--' can
    end or change the element) and no U+2028/9 (line terminators in older JavaScript).
    Non-finite floats are rejected: encode them as None first."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).translate(_SCRIPT_ESCAPES)


def rounded(y: np.ndarray) -> list[float | None]:
    """Floats with SIG_DIGITS significant digits; non-finite -> None."""
    return [float(f"{v:.{SIG_DIGITS}g}") if math.isfinite(v) else None for v in y.tolist()]


def hlines(th: dict[str, float]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Dashed threshold lines ({panel id: y}, {overlay id: y}): the leak limit, and the HQ
    below which too many samples are off every mode."""
    leak = th.get("leak_trace")
    quality = 1 - th["off_mode_max"] if "off_mode_max" in th else None
    return {"trace": leak, "quality": quality}, {"fock_trace_min": leak}


def kept_run(d) -> str | None:
    """The run the page (and the figures) single out: the run to keep, else the best ranked."""
    return d.keep if d.keep is not None else (d.ranking[0] if d.ranking else None)


def best_step(rd) -> int | None:
    """The eval step of a run's kept (best) checkpoint: a frame the animation always shows."""
    return rd.best.step if rd.best is not None else rd.numbers.get("best_step")


# ---- reduction -----------------------------------------------------------------------------

def bucket_edges(n: int, k: int = MAX_BUCKETS) -> np.ndarray | None:
    """Start indices of at most k nearly equal buckets over n rows; None when n <= k."""
    if n <= k:
        return None
    return np.linspace(0, n, k + 1).astype(int)[:-1]


def ema(y: list[float | None], a: float) -> list[float | None]:
    """The report's smoothing (report.js `ema`): TensorBoard's debiased exponential moving
    average with weight `a` (0 = off), over the reduced series; None stays a gap and does not
    count towards the debiasing."""
    if not a:
        return list(y)
    out: list[float | None] = []
    last, n = 0.0, 0
    for v in y:
        if v is None:
            out.append(None)
            continue
        last = last * a + (1 - a) * v
        n += 1
        out.append(last / (1 - a ** n))
    return out


def reduce(y: np.ndarray, starts: np.ndarray | None, agg: str) -> np.ndarray:
    """y per bucket (NaN-aware; a bucket of NaNs stays NaN)."""
    if starts is None:
        return y
    fin = np.isfinite(y)
    if agg == "mean":
        s = np.add.reduceat(np.where(fin, y, 0.0), starts)
        c = np.add.reduceat(fin.astype(float), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, s / np.maximum(c, 1), np.nan)
    fill = -np.inf if agg == "max" else np.inf
    op = np.maximum if agg == "max" else np.minimum
    out = op.reduceat(np.where(fin, y, fill), starts)
    return np.where(np.isfinite(out), out, np.nan)


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name == "d_gap":
        return col(df, "d_real") - col(df, "d_fake")
    if name == "pairwise_ratio":
        with np.errstate(all="ignore"):
            return col(df, "mean_pairwise_dist") / col(df, "real_mean_pairwise_dist")
    return col(df, name)


def table_payload(df: pd.DataFrame, series: list[Series]) -> dict[str, list]:
    """{"x": steps, column: values...} for one table, reduced to MAX_BUCKETS."""
    if df.empty:
        return {"x": []}
    step = df["step"].to_numpy()
    starts = bucket_edges(len(step))
    # the bucket's last step: a reduced curve never runs past the data
    x = step if starts is None else step[np.r_[starts[1:] - 1, len(step) - 1]]
    out: dict[str, list] = {"x": [int(v) for v in x]}
    for s in series:
        if s.column not in out:
            out[s.column] = rounded(reduce(_column(df, s.column), starts, s.agg))
    return out


def run_series(steps: pd.DataFrame, evals: pd.DataFrame) -> dict[str, dict[str, list]]:
    """Every column any panel or overlay draws, per table."""
    wanted = [s for p in CHARTS for s in p.series] + [o[2] for o in OVERLAYS.values()]
    return {"steps": table_payload(steps, [s for s in wanted if s.table == "steps"]),
            "evals": table_payload(evals, [s for s in wanted if s.table == "evals"])}


# ---- samples -------------------------------------------------------------------------------

def frame_steps(have: list[int], keep: list[int], k: int = MAX_FRAMES) -> list[int]:
    """At most k eval steps spread evenly over `have`, always including those in `keep`
    (e.g. the best eval) that exist."""
    if len(have) <= k:
        return list(have)
    pick = {have[int(round(i))] for i in np.linspace(0, len(have) - 1, k)}
    pick |= {s for s in keep if s in set(have)}
    return sorted(pick)


def sample_limits(arrays: list[np.ndarray], dim: int) -> list[tuple[float, float]]:
    """Per axis: the 1st..99th percentile of all points, padded by 10%, so that one far-off
    point does not squash the picture (points outside are drawn on the border)."""
    allp = np.vstack([a[:, :dim] for a in arrays])
    out = []
    for j in range(dim):
        v = allp[:, j][np.isfinite(allp[:, j])]
        lo, hi = (np.percentile(v, [1, 99]) if v.size else (0.0, 1.0))
        pad = (hi - lo) * 0.1 or 1.0
        out.append((float(lo - pad), float(hi + pad)))
    return out


def _quantise(a: np.ndarray, lim: list[tuple[float, float]]) -> list[int]:
    a = a[:MAX_POINTS]
    a = a[np.isfinite(a).all(axis=1)]
    q = [np.clip(np.round((a[:, j] - lo) / (hi - lo) * QUANT), 0, QUANT)
         for j, (lo, hi) in enumerate(lim)]
    return np.column_stack(q).astype(int).ravel().tolist()


def _hist(a: np.ndarray | None, lim: tuple[float, float]) -> list[int]:
    if a is None or not a.size:
        return []
    h, _ = np.histogram(np.clip(a[:, 0], *lim), np.linspace(*lim, HIST_BINS + 1),
                        density=True)
    top = h.max() or 1.0
    return np.round(h / top * QUANT).astype(int).tolist()


class View:
    """The plane samples are drawn on: the two axes in 2-D; for d > 2 the first two principal
    components of the real data (PCA fitted on the real samples only, so the generated ones
    are seen on the data's own axes), labelled with the share of variance each holds."""

    def __init__(self, real: np.ndarray | None, fallback: np.ndarray):
        basis = real if real is not None and real.size else fallback
        self.dim = basis.shape[1]
        self.mean, self.axes = None, None
        self.labels = ["x"] if self.dim == 1 else ["x0", "x1"]
        if self.dim > 2:
            ok = basis[np.isfinite(basis).all(axis=1)]
            self.mean = ok.mean(axis=0)
            _, sv, vt = np.linalg.svd(ok - self.mean, full_matrices=False)
            self.axes = vt[:2].T  # [d, 2]
            share = sv ** 2 / max(float((sv ** 2).sum()), 1e-300)
            self.labels = [f"PC{k + 1} ({share[k]:.0%} of the variance)" for k in range(2)]

    def __call__(self, a: np.ndarray | None) -> np.ndarray | None:
        if a is None or self.axes is None or a.shape[1] != self.dim:
            return a
        return (a - self.mean) @ self.axes


def samples_payload(files: dict[int, Path], real: np.ndarray | None,
                    keep: list[int], root: Path | None = None) -> dict[str, Any] | None:
    """Frames of generated samples over the evals, on the same axes as the real data (for
    d > 2, its first two principal components: `View`); `keep` (the best eval's step) is
    always a frame and is named `best`. `root`: the run directory the files are confined to
    (qgan.saferead)."""
    steps = frame_steps(sorted(files), keep)
    gens = {s: read_samples(files[s], root) for s in steps}
    gens = {s: g for s, g in gens.items() if g is not None and g.size}
    if not gens:
        return None
    view = View(real, next(iter(gens.values())))
    real = view(real)
    gens = {s: view(g) for s, g in gens.items()}
    dim = 2 if min(g.shape[1] for g in gens.values()) >= 2 else 1
    arrays = list(gens.values()) + ([real] if real is not None and real.size else [])
    lim = sample_limits(arrays, dim)
    best = keep[0] if keep and keep[0] in gens else None
    if dim == 1:
        return {"dim": 1, "lim": lim, "steps": list(gens), "bins": HIST_BINS, "best": best,
                "axes": view.labels,
                "real": _hist(real, lim[0]), "frames": [_hist(g, lim[0]) for g in gens.values()]}
    return {"dim": 2, "lim": lim, "steps": list(gens), "best": best, "axes": view.labels,
            "real": _quantise(real, lim) if real is not None and real.size else [],
            "frames": [_quantise(g, lim) for g in gens.values()]}


def run_samples(run, keep: list[int]) -> dict[str, Any] | None:
    return samples_payload(sample_files(run), real_samples(run), keep, run.path)


def _column_of(path: Path, name: str, root: Path) -> np.ndarray | None:
    """One numeric column of a parquet file as float, or None (absent, unreadable, refused)."""
    try:
        return saferead.read_parquet(path, "samples", root=root, columns=[name])[name].to_numpy(
            zero_copy_only=False).astype(float)
    except Exception:  # noqa: BLE001 - an optional column
        return None


def interpolation_line(run) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """(points in line order, the line parameter t, the Fock trace along it; NaN for a
    classical generator) from the samples/best-interpolation.parquet the trainer wrote at the
    kept checkpoint; None when there is no such file (or it is unreadable)."""
    path = run.path / schema.SAMPLES_DIR / schema.INTERPOLATION_FILE
    line = read_samples(path, run.path)
    if line is None or not line.size:
        return None
    t = _column_of(path, "t", run.path)  # the line parameter: rows need not be in line order
    trace = _column_of(path, "trace", run.path)
    if trace is not None and len(trace) != len(line):
        trace = None
    if t is not None and len(t) == len(line):
        order = np.argsort(t, kind="stable")
        line, t = line[order], t[order]
        trace = trace[order] if trace is not None else None
    else:
        t = None
    return line, t, trace


def interpolation_payload(run) -> dict[str, Any] | None:
    """The kept checkpoint's generator along a straight line in latent space, on the real
    data's axes; None when the trainer wrote no such file (or it is unreadable)."""
    got = interpolation_line(run)
    if got is None:
        return None
    line, _, trace = got
    trace_min = float(np.nanmin(trace)) if trace is not None and np.isfinite(trace).any() \
        else None
    real = real_samples(run)
    view = View(real, line)
    line, real = view(line), view(real)
    dim = 2 if line.shape[1] >= 2 else 1
    arrays = [line] + ([real] if real is not None and real.size else [])
    lim = sample_limits(arrays, dim)
    if dim == 1:
        line = np.column_stack([line[:, 0], np.linspace(0, 1, len(line))])
        lim = [lim[0], (0.0, 1.0)]
        real = None
    return {"dim": dim, "lim": lim, "line": _quantise(line, lim), "trace_min": trace_min,
            "axes": view.labels,
            "real": _quantise(real, lim) if real is not None and real.size else []}
