"""`qgan figures PATH -o DIR`: the report's charts, sample grids, animations and the latent
interpolation as files for a paper or a talk (reports/figures)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from analysis.commands.diagnose import load_diagnosis
from reports.commands.outputs import output_dir, pick_runs, printable
from qgan.errors import UserError

NAME = "figures"
HELP = ("write the report's charts (runs overlaid), sample grids, a GIF/MP4 of the samples "
        "over the evals and the latent interpolation as PDF/SVG/PNG files (needs the "
        "[figures] extra)")
FORMATS = ("pdf", "svg", "png")  # reports.figures.FORMATS (not imported: the CLI loads
#                                 every command module to build its parser)


def _steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give steps as 100,200,300") from None
    if not steps or min(steps) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give steps as 100,200,300")
    return steps


def _number(lo: float, hi: float, hint: str, open_top: bool = False):
    """An argparse type: a number in [lo, hi] (or [lo, hi) with open_top)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (lo <= v < hi if open_top else lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{text!r}: {hint}")
        return v
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="a run directory or an experiment")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="output folder (created if missing; files in it are replaced)")
    p.add_argument("--format", choices=FORMATS, default="pdf",
                   help="figure format (default pdf; animations are GIF and MP4)")
    p.add_argument("--runs", nargs="+", metavar="NAME",
                   help="only these runs (run or folder names); they also get the per-run "
                        "files, which otherwise only the run to keep gets")
    p.add_argument("--evals", type=_steps, metavar="STEP,...",
                   help="the evals of the sample grid (default: 4 spread over the run, the "
                        "best one included)")
    p.add_argument("--smooth", type=_number(0, 1, "give a number in [0, 1), e.g. 0.6",
                                            open_top=True), default=0.0, metavar="A",
                   help="smooth the charts as the report's slider does (TensorBoard's EMA "
                        "weight, 0 = off, the default)")
    p.add_argument("--width", type=_number(1, 20, "give inches from 1 to 20 (3.5 = one column, "
                                           "7.2 = a page)"), default=3.5, metavar="INCHES",
                   help="figure width (default 3.5 in, one column)")
    p.add_argument("--no-titles", action="store_true",
                   help="leave titles out (when the caption says it)")
    p.add_argument("--thresholds", type=Path, metavar="TOML",
                   help="override thresholds (names in analysis/thresholds.py)")


def run(args: argparse.Namespace) -> int:
    from reports.figures import FigureError, MissingFigures, Options, write_figures
    from reports.figures.style import load

    try:
        load()  # a missing extra is said before any work
    except MissingFigures as exc:
        raise UserError(str(exc)) from None
    d = load_diagnosis(args.path, args.thresholds, data=True)
    chosen = pick_runs(d.runs, [(rd.run.name, rd.run.path.name) for rd in d.runs],
                       args.runs) if args.runs else None
    out = output_dir(args.output)
    opts = Options(fmt=args.format, evals=args.evals, smooth=args.smooth, width=args.width,
                   titles=not args.no_titles)
    try:
        res = write_figures(d, chosen, out, opts)
    except FigureError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"-o {out}: cannot write ({exc.strerror or exc})") from None
    for path in res.written:
        print(path)
    for note in res.notes:
        print(f"qgan figures: {printable(note)}", file=sys.stderr)
    if not res.written:
        raise UserError(f"nothing to draw: {args.path} has no metrics or samples yet")
    return 0
