"""Samples as figures and animations: real vs generated at chosen evals, the samples over
every saved eval (GIF, and MP4 when ffmpeg is installed), and the kept checkpoint's latent
interpolation. Everything is read from the run directory's samples/ files (no TensorFlow),
on the axes the report uses (payload.sample_limits: 1st-99th percentile of real and
generated points, padded).
"""

from __future__ import annotations

import contextlib

import math
from pathlib import Path

import numpy as np

from analysis.rundata import RunData, read_samples, real_samples, sample_files
from reports import payload
from reports.colors import QUALITATIVE
from reports.figures.style import GREY, WIDTH_IN, figure, plain
from reports.files import atomic_path

GENERATED = QUALITATIVE[0]
GRID_EVALS = 4  # default sample grid: evals spread over the run, the best one included
FPS = 2.5  # the report's animation: 400 ms a frame
MOVIE_IN = 4.0  # animation frames: 4 in (480 px at 120 dpi) wide
MOVIE_DPI = 120
HIST_BINS = payload.HIST_BINS


def grid_steps(have: list[int], best: int | None, k: int = GRID_EVALS) -> list[int]:
    """k eval steps spread over the run (payload.frame_steps), with the best eval replacing
    the pick nearest to it."""
    picks = payload.frame_steps(have, [], k)
    if best in have and best not in picks:
        nearest = min(picks, key=lambda s: abs(s - best))
        picks = sorted({*picks, best} - {nearest})
    return picks


def _data(run: RunData, steps: list[int]) -> tuple[dict[int, np.ndarray], np.ndarray | None,
                                                    int, list[tuple[float, float]],
                                                    tuple[str, str]]:
    """(generated samples by step, real samples, 1 or 2, axis limits, axis labels), on the
    report's plane: the data's axes, or for d > 2 its first two principal components."""
    files = sample_files(run)
    gens = {s: g for s in steps
            if (g := read_samples(files[s], root=run.path)) is not None and g.size}
    real = real_samples(run)
    if real is not None and not real.size:
        real = None
    if gens:
        view = payload.View(real, next(iter(gens.values())))
        gens, real = {s: view(g) for s, g in gens.items()}, view(real)
    arrays = list(gens.values()) + ([real] if real is not None else [])
    dim = 2 if arrays and min(a.shape[1] for a in arrays) >= 2 else 1
    labels = _labels(view.labels if gens else ["x"], dim)
    return (gens, real, dim, payload.sample_limits(arrays, dim) if arrays else [(0, 1)] * dim,
            labels)


def _labels(axes: list[str], dim: int) -> tuple[str, str]:
    """Axis labels: data units for the data's own axes, the principal components as named."""
    if dim == 1:
        return "x (data units)", "density"
    unit = "" if axes[0].startswith("PC") else " (data units)"
    return axes[0] + unit, axes[1] + unit


def _draw(ax, gen: np.ndarray | None, real: np.ndarray | None, dim: int,
          lim: list[tuple[float, float]], size: float = 2.0) -> list:
    """Real (grey) and generated points, or histograms for 1-D data; returns the artists
    that change between frames."""
    if dim == 2:
        if real is not None:
            ax.scatter(*np.clip(real[:, :2], *np.array(lim).T).T, s=size, c=GREY,
                       linewidths=0, alpha=0.6, rasterized=False)
        pts = np.empty((0, 2)) if gen is None else np.clip(gen[:, :2], *np.array(lim).T)
        art = ax.scatter(pts[:, 0], pts[:, 1], s=size, c=GENERATED, linewidths=0, alpha=0.85)
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
        ax.set_aspect("equal", adjustable="box")
        return [art]
    bins = np.linspace(*lim[0], HIST_BINS + 1)
    if real is not None:
        ax.hist(np.clip(real[:, 0], *lim[0]), bins, density=True, color=GREY, alpha=0.6)
    h = np.histogram(np.clip(gen[:, 0], *lim[0]), bins, density=True)[0] if gen is not None \
        else np.zeros(HIST_BINS)
    art = ax.stairs(h, bins, color=GENERATED, lw=1.0)
    ax.set_xlim(*lim[0])
    return [art]


def _aspect(lim: list[tuple[float, float]], dim: int) -> float:
    """Height / width of a panel: the data's own for 2-D points (equal axes, so a cluster
    keeps its shape; a flat one makes a flat panel, not white space), within [0.3, 1.3]."""
    if dim != 2:
        return 0.65
    (x0, x1), (y0, y1) = lim[:2]
    return min(max((y1 - y0) / ((x1 - x0) or 1.0), 0.3), 1.3)


def grid(run: RunData, steps: list[int], best: int | None, width: float = WIDTH_IN):
    """Real vs generated at `steps` (saved evals of `run`); None without samples."""
    gens, real, dim, lim, (xlabel, ylabel) = _data(run, steps)
    if not gens:
        return None
    n = len(gens)
    cols = 2 if n <= 4 else 3
    rows = math.ceil(n / cols)
    cell = (width - 0.5) / cols  # minus the y labels
    fig = figure(0.75 + rows * (0.25 + cell * _aspect(lim, dim)), width)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=dim == 2)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_visible(False)
            continue
        step = list(gens)[k]
        _draw(ax, gens[step], real, dim, lim, size=1.2)
        ax.set_title(f"step {step}" + (" (best)" if step == best else ""), fontsize=7, pad=2)
        ax.grid(False)
    fig.supxlabel(xlabel, fontsize=8)
    fig.supylabel(ylabel, fontsize=8)
    fig.suptitle(f"{plain(run.name)}: generated (blue) vs real (grey)")
    return fig


def animate(run: RunData, best: int | None, gif: Path, mp4: Path | None) -> list[str]:
    """One frame per saved eval into `gif` (Pillow) and, when `mp4` is given, into an MP4
    (ffmpeg, H.264); both written atomically. Returns notes for the user."""
    from matplotlib.animation import FFMpegWriter, PillowWriter  # lazy: the optional figures extra

    steps = sorted(sample_files(run))
    gens, real, dim, lim, (xlabel, ylabel) = _data(run, steps)
    steps = list(gens)
    if not steps:
        return [f"{plain(run.name)}: no saved samples (eval.save_samples = 0?): no animation"]
    fig = _movie_figure(_aspect(lim, dim))
    ax = fig.add_subplot()
    (art,) = _draw(ax, None, real, dim, lim, size=4.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    title = ax.set_title("", fontsize=8)
    writers = [(PillowWriter(fps=FPS), gif)]
    if mp4 is not None:
        writers.append((FFMpegWriter(fps=FPS, codec="h264", extra_args=[
            "-pix_fmt", "yuv420p", "-threads", "1", "-fflags", "+bitexact",
            "-flags:v", "+bitexact", "-map_metadata", "-1"]), mp4))
    with _saving(fig, writers):
        for k, step in enumerate(steps):
            _update(art, gens[step], dim, lim)
            title.set_text(f"{plain(run.name)}: step {step} (eval {k + 1} of {len(steps)})"
                           + (", best" if step == best else ""))
            for writer, _ in writers:
                writer.grab_frame()
    return []


def _movie_figure(aspect: float):
    """MOVIE_IN wide, as high as the data's aspect needs, in whole pixel pairs (H.264 wants
    even sizes), with fixed margins (in inches) so that frames do not jitter."""
    left, right, bottom, top = 0.7, 0.15, 0.5, 0.35
    axes_w = MOVIE_IN - left - right
    height = round((axes_w * aspect + bottom + top) * MOVIE_DPI / 2) * 2 / MOVIE_DPI
    fig = figure(height, MOVIE_IN, layout=None)
    fig.subplots_adjust(left=left / MOVIE_IN, right=1 - right / MOVIE_IN,
                        bottom=bottom / height, top=1 - top / height)
    return fig


def _update(art, gen: np.ndarray, dim: int, lim: list[tuple[float, float]]) -> None:
    if dim == 2:
        art.set_offsets(np.clip(gen[:, :2], *np.array(lim).T))
        return
    bins = np.linspace(*lim[0], HIST_BINS + 1)
    art.set_data(np.histogram(np.clip(gen[:, 0], *lim[0]), bins, density=True)[0])


class _saving:
    """Every writer's `saving` context at once, each into a temporary file that replaces
    its target only when all frames are written."""

    def __init__(self, fig, writers) -> None:
        self.stack = contextlib.ExitStack()
        self.fig, self.writers = fig, writers

    def __enter__(self):
        for writer, path in self.writers:
            tmp = self.stack.enter_context(atomic_path(path))
            self.stack.enter_context(writer.saving(self.fig, str(tmp), MOVIE_DPI))
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)


def interpolation(run: RunData, width: float = WIDTH_IN):
    """The kept checkpoint's generator along a straight latent line (samples/
    best-interpolation.parquet): the path over the real data, coloured from start to end,
    each output and the Fock trace against the position on the line. None without it."""
    from matplotlib.collections import LineCollection  # lazy: the optional figures extra

    got = payload.interpolation_line(run)
    if got is None:
        return None
    line, t, trace = got
    t = np.linspace(0, 1, len(line)) if t is None else (t - t.min()) / (np.ptp(t) or 1.0)
    real = real_samples(run)
    outputs = line  # every output against t below; the path on the report's plane above
    view = payload.View(real, line)
    line, real = view(line), view(real)
    xlabel, ylabel = _labels(view.labels, 2 if line.shape[1] >= 2 else 1)
    dim = 2 if line.shape[1] >= 2 else 1
    has_trace = trace is not None and np.isfinite(trace).any()
    lim = payload.sample_limits([line] + ([real] if real is not None and real.size else []),
                                dim)
    heights = [(width - 1.2) * _aspect(lim, dim) + 0.35, 1.0] + ([0.8] if has_trace else [])
    fig = figure(0.35 + sum(heights), width)
    axes = fig.subplots(len(heights), 1, height_ratios=heights)
    ax = axes[0]
    cmap = "cividis"  # sequential and colour-blind safe
    if dim == 2:
        if real is not None and real.size:
            ax.scatter(real[:, 0], real[:, 1], s=1.2, c=GREY, linewidths=0, alpha=0.6)
        segments = np.stack([line[:-1, :2], line[1:, :2]], axis=1)
        path = LineCollection(segments, cmap=cmap, linewidths=1.6)
        path.set_array((t[:-1] + t[1:]) / 2)
        ax.add_collection(path)
        ax.plot(*line[0, :2], "o", color="black", ms=3)
        ax.plot(*line[-1, :2], "s", color="black", ms=3)
        ax.annotate("start", line[0, :2], xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.annotate("end", line[-1, :2], xytext=(3, -8), textcoords="offset points", fontsize=7)
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(path, ax=ax, label="t on the line", fraction=0.05, pad=0.02)
    else:
        if real is not None and real.size:
            ax.hist(real[:, 0], np.linspace(*lim[0], HIST_BINS + 1), density=True, color=GREY,
                    alpha=0.6)
        sc = ax.scatter(line[:, 0], np.zeros(len(line)), c=t, cmap=cmap, s=6, zorder=3)
        ax.set_xlim(*lim[0])
        ax.set_xlabel("x (data units)")
        ax.set_ylabel("density (real)")
        fig.colorbar(sc, ax=ax, label="t on the line", fraction=0.05, pad=0.02)
    axes[1].sharex(axes[-1])
    axes[1].tick_params(labelbottom=False)
    for i in range(outputs.shape[1]):
        axes[1].plot(t, outputs[:, i], color=QUALITATIVE[i % len(QUALITATIVE)], label=f"x{i}")
    axes[1].set_ylabel("output")
    axes[1].legend(ncols=min(outputs.shape[1], 4), loc="best")
    if has_trace:
        axes[2].plot(t, trace, color=QUALITATIVE[3])
        axes[2].set_ylabel("trace")
    axes[-1].set_xlabel("position t on the latent line (start 0, end 1)")
    fig.suptitle(f"{plain(run.name)}: latent interpolation of the kept checkpoint")
    return fig
