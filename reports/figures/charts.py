"""The report's metric charts as figures of overlaid runs.

The charts are derived from the report's own definitions (reports.payload.CHARTS, then every
OVERLAYS metric no panel draws), so a panel added there appears here too; each series of a
panel gets a row, each run a line. The numbers are the report's: the same reduction to at
most payload.MAX_BUCKETS buckets (payload.run_series), the same optional smoothing
(payload.ema, the report's slider), log axes without non-positive values, the same run
colours and dash patterns (reports.colors.run_styles), the run to keep drawn thicker, and the
same dashed threshold lines (payload.hlines).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import numpy as np

from reports import payload
from reports.figures.style import ROW_IN, THRESHOLD, figure, plain
from reports.payload import Series

MARKERS_BELOW = 60  # points: as in the report, short series show their points
LEGEND_RUNS_MAX = 12  # more runs than this: the legend names colours by setting only
LW, KEPT_LW = 0.8, 1.4  # the run to keep stands out, as in the report (1.3 vs 2.6 px)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    ylabel: str
    series: tuple[Series, ...]
    log: bool
    hline: float | None


def charts(thresholds: dict[str, float]) -> list[Chart]:
    """Every panel of the report, then each overlay metric that no panel draws."""
    panel_lines, overlay_lines = payload.hlines(thresholds)
    out = [Chart(p.id, p.title, p.ylabel, p.series, p.log, panel_lines.get(p.id))
           for p in payload.CHARTS]
    drawn = {(s.table, s.column) for c in out for s in c.series}
    for key, (title, ylabel, s, log) in payload.OVERLAYS.items():
        if (s.table, s.column) not in drawn:
            out.append(Chart(key, title, ylabel, (s,), log, overlay_lines.get(key)))
    return out


@dataclass
class RunLine:
    """One run as the charts draw it."""
    name: str
    color: str
    dash: list[int]
    kept: bool
    data: dict[str, dict[str, list]]  # payload.run_series


def _xy(line: RunLine, s: Series, smooth: float, log: bool) -> tuple[np.ndarray, np.ndarray]:
    table = line.data[s.table]
    y = payload.ema(table.get(s.column, [None] * len(table["x"])), smooth)
    arr = np.array([np.nan if v is None else v for v in y], float)
    if log:
        arr[~(arr > 0)] = np.nan
    return np.asarray(table["x"], float), arr


def _linestyle(dash: list[int]):
    """The report's canvas dash pattern (px at 1.5 px width) for a 1 pt matplotlib line."""
    return (0, tuple(v / 2 for v in dash)) if dash else "-"


def _log_axis(ax, ys: list[np.ndarray]) -> None:
    """A log y axis labelled as the report labels it: 1, 2 and 5 x 10^k as plain numbers
    over up to 3 decades, only the powers of ten beyond."""
    from matplotlib import ticker  # lazy: the optional figures extra

    ax.set_yscale("log")
    v = np.concatenate([y[np.isfinite(y)] for y in ys])
    decades = np.log10(v.max() / v.min()) if v.size and v.min() > 0 else 0
    if decades < 1:  # 1-2-5 would leave one label or none: plain steps (e.g. 0.09 ... 0.12)
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    else:
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0,) if decades > 3 else
                                                     (1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _legend(fig, lines: list[RunLine], key: str | None, legend: list[tuple[str, str]],
            hline: bool) -> None:
    from matplotlib.lines import Line2D  # lazy: the optional figures extra

    if key and legend:
        handles = [Line2D([], [], color=c, lw=1.2) for _, c in legend]
        labels = [plain(v) for v, _ in legend]
        title = plain(key)
    elif len(lines) <= LEGEND_RUNS_MAX:
        handles = [Line2D([], [], color=r.color, ls=_linestyle(r.dash), lw=KEPT_LW if r.kept
                          else LW) for r in lines]
        labels = [plain(r.name) + (" (kept)" if r.kept and len(lines) > 1 else "")
                  for r in lines]
        title = None
    else:
        handles, labels, title = [], [], None
    if hline:
        handles.append(Line2D([], [], color=THRESHOLD, ls="--", lw=0.8))
        labels.append("threshold")
    if len(handles) > 1 or title:  # below the x axis: the title keeps the top
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 4),
                   title=title, handlelength=2.2, columnspacing=1.2)


def _constant(xys) -> float | None:
    """The one value a series has in every run (e.g. the number of modes in the data):
    drawn as a reference line, not as a row of its own."""
    v = np.unique(np.concatenate([y[np.isfinite(y)] for _, _, y in xys]))
    return float(v[0]) if v.size == 1 else None


def _count_axis(ax, ys: list[np.ndarray]) -> None:
    """Counts (modes): whole-number ticks from 0, so 8 of 8 modes does not read as a wobble
    between 7.6 and 8.4."""
    from matplotlib import ticker  # lazy: the optional figures extra

    top = max(float(np.nanmax(y)) for y in ys if np.isfinite(y).any())
    if min(float(np.nanmin(y)) for y in ys if np.isfinite(y).any()) >= 0:
        ax.set_ylim(0, max(top, 1) * 1.08)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))


def _integer(ys: list[np.ndarray]) -> bool:
    v = np.concatenate([y[np.isfinite(y)] for y in ys])
    return bool(v.size) and bool(np.all(v == np.round(v)))


def draw(chart: Chart, lines: list[RunLine], *, smooth: float, key: str | None,
         legend: list[tuple[str, str]], width: float, title: bool) -> Any | None:
    """The chart's figure, one row per series with data; None when no run has any."""
    rows: list[tuple[Series, list]] = []
    references: list[tuple[str, float]] = []  # constant series, drawn in the row above
    for s in chart.series:
        xys = [(r, *_xy(r, s, smooth, chart.log)) for r in lines]
        if not any(np.isfinite(y).any() for _, _, y in xys):
            continue
        level = _constant(xys)
        if level is not None and rows:
            references.append((s.label, level))  # a dotted line in the first row
        else:
            rows.append((s, xys))
    if not rows:
        return None
    fig = figure(0.55 + ROW_IN * len(rows) + (0.3 if title else 0), width)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, (s, xys)) in enumerate(zip(axes, rows)):
        for r, x, y in sorted(xys, key=lambda t: t[0].kept):  # the kept run on top
            ax.plot(x, y, color=r.color, ls=_linestyle(r.dash), lw=KEPT_LW if r.kept else LW,
                    marker="o" if len(x) < MARKERS_BELOW else None,
                    markersize=2.2 if r.kept else 1.6, zorder=3 if r.kept else 2)
        if i == 0:
            for label, level in references:
                ax.axhline(level, color="#555555", ls=":", lw=0.9, zorder=1)
                ax.annotate(label, (1, level), xycoords=("axes fraction", "data"),
                            xytext=(0, 2), textcoords="offset points", ha="right",
                            va="bottom", fontsize=6.5, color="#555555")
        if chart.log:
            _log_axis(ax, [y for _, _, y in xys])
        elif _integer([y for _, _, y in xys] + [np.array([v]) for _, v in references]):
            _count_axis(ax, [y for _, _, y in xys] + [np.array([v]) for _, v in references])
        if chart.hline is not None:
            ax.axhline(chart.hline, color=THRESHOLD, ls="--", lw=0.8, zorder=1)
        ax.set_ylabel(chart.ylabel)
        if len(chart.series) > 1:
            ax.set_title(s.label, loc="left", fontsize=7, pad=2)
        ax.margins(x=0.01)
    axes[-1].set_xlabel("optimizer step")
    if title:
        fig.suptitle(textwrap.fill(chart.title, 62))
    _legend(fig, lines, key, legend, chart.hline is not None)
    return fig
