"""Figures and animations for papers and talks, drawn with matplotlib (the `[figures]`
extra, imported only when figures are made):

    from reports.figures import Options, write_figures
    write_figures(diagnosis, None, Path("figs"), Options(fmt="svg"))
"""

from reports.figures.build import FigureError, Options, Result, write_figures
from reports.figures.style import FORMATS, WIDTH_IN, MissingFigures

__all__ = ["FORMATS", "FigureError", "MissingFigures", "Options", "Result", "WIDTH_IN",
           "write_figures"]
