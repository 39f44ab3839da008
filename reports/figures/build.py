"""`qgan figures`: every file for a run or an experiment, from its diagnosis.

Metric charts show the chosen runs overlaid (coloured as in the report, from all runs of the
experiment, so a subset keeps its colours). The per-run files (sample grid, animation,
latent interpolation) are made for the chosen runs, or by default for the run to keep only:
an experiment of 64 runs should not give 200 files unasked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from analysis.diagnosis import ExperimentDiagnosis, RunDiagnosis
from analysis.rundata import sample_files
from reports import payload
from reports.colors import run_styles
from reports.figures import charts, samples
from reports.figures.style import WIDTH_IN, load, save, style
from reports.files import safe_names

log = logging.getLogger(__name__)


class FigureError(ValueError):
    """A request the runs cannot satisfy (e.g. an eval without saved samples)."""


@dataclass
class Options:
    fmt: str = "pdf"
    evals: list[int] | None = None  # sample grid steps (default: spread, the best included)
    smooth: float = 0.0  # the report's smoothing slider (TensorBoard's EMA weight)
    width: float = WIDTH_IN
    titles: bool = True


@dataclass
class Result:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ffmpeg_available() -> bool:
    from matplotlib.animation import writers  # lazy: the optional figures extra

    return writers.is_available("ffmpeg")


def write_figures(d: ExperimentDiagnosis, chosen: list[RunDiagnosis] | None, out: Path,
                  opts: Options) -> Result:
    """Write the figures of `d` into the folder `out`; `chosen`: the runs to draw (None:
    all runs for the charts, the run to keep for the per-run files)."""
    load()
    res = Result()
    per_run = chosen if chosen is not None else [rd for rd in d.runs
                                                 if rd.run.name == payload.kept_run(d)]
    if opts.evals:
        for rd in per_run:
            _check_evals(rd, opts.evals)
    colors, dashes, key, legend = run_styles(d)
    keep = payload.kept_run(d)
    runs = chosen if chosen is not None else list(d.runs)
    index = {rd.run.name: i for i, rd in enumerate(d.runs)}
    lines = [charts.RunLine(rd.run.name, colors[index[rd.run.name]],
                            dashes[index[rd.run.name]], rd.run.name == keep and len(d.runs) > 1,
                            payload.run_series(rd.run.steps, rd.run.evals)) for rd in runs]
    if chosen is not None and key:  # the legend names only the values the chosen runs have
        have = {colors[index[rd.run.name]] for rd in runs}
        legend = [(v, c) for v, c in legend if c in have]
    with style():
        for chart in charts.charts(d.thresholds):
            fig = charts.draw(chart, lines, smooth=opts.smooth, key=key, legend=legend,
                              width=opts.width, title=opts.titles)
            if fig is None:
                res.notes.append(f"{chart.id}: no data in these runs, no figure")
                continue
            res.written.append(save(fig, out / f"{chart.id}.{opts.fmt}", opts.fmt))
        names = dict(zip([rd.run.name for rd in d.runs],
                         safe_names([rd.run.path.name for rd in d.runs])))
        movie = ffmpeg_available()
        if per_run and not movie:
            res.notes.append("MP4 not written: ffmpeg is not installed (e.g. apt-get install "
                             "ffmpeg); the GIF has the same frames")
        for rd in per_run:
            _run_files(rd, out, names[rd.run.name], opts, movie, res)
    return res


def _run_files(rd: RunDiagnosis, out: Path, name: str, opts: Options, movie: bool,
               res: Result) -> None:
    run, best = rd.run, payload.best_step(rd)
    have = sorted(sample_files(run))
    if not have:
        res.notes.append(f"{name}: no saved samples (eval.save_samples = 0?): no sample grid "
                         "or animation")
    else:
        steps = opts.evals or samples.grid_steps(have, best)
        res.written.append(save(samples.grid(run, steps, best, opts.width),
                                out / f"samples-{name}.{opts.fmt}", opts.fmt))
        gif, mp4 = out / f"samples-{name}.gif", out / f"samples-{name}.mp4"
        res.notes += samples.animate(run, best, gif, mp4 if movie else None)
        res.written += [gif] + ([mp4] if movie else [])
    fig = samples.interpolation(run, opts.width)
    if fig is None:
        res.notes.append(f"{name}: no samples/best-interpolation.parquet (checkpoint.keep_best "
                         "or eval.interpolation_points off?): no interpolation figure")
    else:
        res.written.append(save(fig, out / f"interpolation-{name}.{opts.fmt}", opts.fmt))


def _check_evals(rd: RunDiagnosis, evals: list[int]) -> None:
    """--evals must name saved evals of every run that gets a sample grid."""
    have = sorted(sample_files(rd.run))
    missing = [s for s in evals if s not in have]
    if have and missing:
        shown = ", ".join(map(str, have[:12])) + (", ..." if len(have) > 12 else "")
        raise FigureError(f"--evals: run {rd.run.path.name} saved no samples at step(s) "
                          f"{', '.join(map(str, missing))}; it saved: {shown}")
