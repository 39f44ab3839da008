"""Publication style for `qgan figures`, and figure files that are identical for identical
input.

matplotlib (the `[figures]` extra) is imported only here and only when figures are made: the
trainer never imports it (qgan/tflib.py keeps Keras from doing so). Figures use matplotlib's
object API (Figure, no pyplot): no global state, no GUI backend.

Style: one column of a two-column paper (3.5 in) wide, 8 pt text in DejaVu Sans (shipped with
matplotlib, so the output does not depend on the machine's fonts), thin lines, no top/right
spines, fonts embedded as TrueType (Type 42: journals refuse Type 3), SVG text kept as text.
Determinism: no creation dates (PDF CreationDate, SVG Date), a fixed SVG hash salt, and the
toolkit's name and version as the creator.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterator

from qgan import __version__
from qgan.atomic import atomic_write_bytes

EXTRA = "pip install 'qgan-toolkit[figures]'"
FORMATS = ("pdf", "svg", "png")
WIDTH_IN = 3.5  # one column of a two-column paper
PNG_DPI = 300
ROW_IN = 1.25  # height of one chart row
GREY = "#9a9a9a"  # real data
THRESHOLD = "#bd1f01"  # dashed threshold lines (reports.colors.QUALITATIVE's red)

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 8,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 2.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.color": "#e3e3e3",
    "axes.axisbelow": True,
    "legend.frameon": False,
    "figure.constrained_layout.h_pad": 0.02,
    "figure.constrained_layout.w_pad": 0.02,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "qgan-toolkit",
    "path.simplify": True,
    "axes.formatter.useoffset": False,  # 0.99998, not "1e-5 + 9.999e-1" above the axis
}


class MissingFigures(ImportError):
    """matplotlib or Pillow is not installed; the message names the extra."""


def load() -> None:
    """Import matplotlib and Pillow, or raise MissingFigures naming the extra."""
    try:
        import matplotlib  # noqa: F401  lazy: the optional figures extra
        import PIL  # noqa: F401  lazy: the optional figures extra
    except ImportError as exc:
        raise MissingFigures(f"qgan figures needs matplotlib and Pillow: {EXTRA} ({exc.name} "
                             "is missing)") from None


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The publication style for building and saving figures (rcParams are read both when
    artists are made and when a file is written)."""
    import matplotlib  # lazy: the optional figures extra

    with matplotlib.rc_context(STYLE):
        yield


def figure(height: float, width: float = WIDTH_IN, layout: str | None = "constrained"):
    from matplotlib.figure import Figure  # lazy: the optional figures extra

    return Figure(figsize=(width, height), layout=layout)


def metadata(fmt: str) -> dict[str, str | None]:
    creator = f"qgan-toolkit {__version__}"
    return {"pdf": {"Creator": creator, "CreationDate": None},
            "svg": {"Creator": creator, "Date": None},
            "png": {"Software": creator}}[fmt]


def save(fig, path: Path, fmt: str) -> Path:
    """Render `fig` and replace `path` with it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=metadata(fmt))
    atomic_write_bytes(path, buf.getvalue())
    return path


def plain(text: object) -> str:
    """Untrusted text (run names, config values) as matplotlib shows it literally: no
    mathtext (`$` escaped), no control characters."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s.replace("$", r"\$")
