"""A small, fast plotter for the report's panels: Pillow's C drawing primitives, no matplotlib.

Why not matplotlib: it spends ~0.1 s of CPU per multi-panel figure on tick objects and text
layout, whatever the data; a 64-run sweep has ~640 panels, which made rendering take a minute
of CPU (BENCHMARKS.md). The report's panels need only lines, min/max bands, shaded spans,
reference lines, bars, points, a few nice ticks and short labels; drawn here at 2x and
downsampled once (that is the antialiasing), a panel costs about a millisecond.

Coordinates: a `Canvas` is in output pixels; `Panel` maps data to pixels (linear or log10 y).
Translucency is faked by mixing colours with white: every shade is drawn before the lines, on a
white background, so the result matches alpha blending except where two shades overlap.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SS = 2  # supersampling factor: draw at 2x, downsample once
PNG_COLORS = 64
PALETTE = {"C0": "#1f77b4", "C1": "#ff7f0e", "C2": "#2ca02c", "C3": "#d62728",
           "C4": "#9467bd", "C5": "#8c564b", "C7": "#7f7f7f", "k": "#000000",
           "red": "#ff0000", "black": "#000000"}
AXIS = (90, 90, 90)
GRID = (235, 235, 235)
TEXT = (34, 34, 34)


def rgb(color: str | tuple) -> tuple[int, int, int]:
    if isinstance(color, tuple):
        return color[:3]
    c = PALETTE.get(color, color).lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def tint(color: str | tuple, alpha: float) -> tuple[int, int, int]:
    """`color` at opacity `alpha` over white."""
    return tuple(int(round(255 - alpha * (255 - v))) for v in rgb(color))  # type: ignore


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib) at `size` output pixels, scaled for SS."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size * SS)
    except Exception:  # noqa: BLE001 - any font beats no figure
        return ImageFont.load_default(size * SS)


# ---- ticks ---------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, n: int = 4, integer: bool = False) -> list[float]:
    """About n round values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi]; `integer` keeps
    them whole (step numbers)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw)
    if integer:
        step = max(1, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return out


def log_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Decades inside [lo, hi] (lo, hi are log10 values), thinned to at most n."""
    a, b = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    if b - a < 1:  # less than two decades in view: add round values between them
        extra = [math.log10(v) for v in nice_ticks(10 ** lo, 10 ** hi, 3) if v > 0]
        return sorted({float(e) for e in range(a, b + 1)} | set(extra))
    k = max(1, math.ceil((b - a + 1) / n))
    return [float(e) for e in range(a, b + 1, k)]


def label(v: float, log: bool = False) -> str:
    if log:
        if abs(v - round(v)) > 1e-6:
            return label(10.0 ** v)
        e = int(round(v))
        return f"{10.0 ** e:g}" if -2 <= e <= 4 else f"1e{e}"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.2g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


# ---- canvas and panels ---------------------------------------------------------------------

class Canvas:
    """An image in output pixels, drawn at SS x; `png()` downsamples and encodes it."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.image = Image.new("RGB", (width * SS, height * SS), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, x: float, y: float, s: str, size: int = 9, color=TEXT,
             anchor: str = "la") -> None:
        self.draw.text((x * SS, y * SS), s, fill=rgb(color), font=font(size), anchor=anchor)

    def png(self) -> str:
        """The image as a data: URI (the report must not reference any external file).

        Quantised to a 64-colour palette first: plots have few distinct colours (antialiased
        edges aside), and an 8-bit PNG is half the bytes and encodes in half the time."""
        buf = io.BytesIO()
        small = self.image.reduce(SS).quantize(PNG_COLORS, method=Image.Quantize.FASTOCTREE)
        small.save(buf, format="PNG", compress_level=6)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Box:
    left: float
    top: float
    right: float
    bottom: float


def limits(values: list[np.ndarray], log: bool = False, pad: float = 0.05,
           default: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """Data limits of `values` (log10 units if log) with `pad` of margin each side."""
    finite = [v[np.isfinite(v) & ((v > 0) if log else True)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return default
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-12:
        half = 0.5 if log or lo == 0 else abs(lo) * 0.1
        return lo - half, hi + half
    m = (hi - lo) * pad
    return lo - m, hi + m


class Panel:
    """One plot area inside a canvas, with its own data-to-pixel mapping."""

    def __init__(self, canvas: Canvas, box: Box, xlim: tuple[float, float],
                 ylim: tuple[float, float], *, log: bool = False, xint: bool = True):
        self.c, self.box, self.log, self.xint = canvas, box, log, xint
        self.x0, self.x1 = xlim if xlim[1] > xlim[0] else (xlim[0] - 0.5, xlim[0] + 0.5)
        self.y0, self.y1 = ylim if ylim[1] > ylim[0] else (ylim[0] - 0.5, ylim[0] + 0.5)

    # data -> supersampled pixels
    def px(self, x: np.ndarray) -> np.ndarray:
        b = self.box
        f = (np.asarray(x, float) - self.x0) / (self.x1 - self.x0)
        return (b.left + np.clip(f, -0.01, 1.01) * (b.right - b.left)) * SS

    def py(self, y: np.ndarray) -> np.ndarray:
        b = self.box
        y = np.asarray(y, float)
        if self.log:
            with np.errstate(all="ignore"):
                y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        f = (y - self.y0) / (self.y1 - self.y0)
        return (b.bottom - np.clip(f, -0.01, 1.01) * (b.bottom - b.top)) * SS

    # decorations
    def frame(self, title: str = "", *, xticks: bool = True, yticks: bool = True,
              xlabel: str = "", ytick_labels: list[tuple[float, str]] | None = None,
              grid: bool = True, nx: int = 5) -> None:
        b, d = self.box, self.c.draw
        ys = ([v for v, _ in ytick_labels] if ytick_labels is not None else
              (log_ticks(self.y0, self.y1) if self.log else nice_ticks(self.y0, self.y1)))
        xs = nice_ticks(self.x0, self.x1, nx, integer=self.xint)
        for v in ys:
            y = self.py(10 ** v if self.log else v).item()
            if grid:
                d.line([(b.left * SS, y), (b.right * SS, y)], fill=GRID, width=1)
            if yticks:
                text = (dict(ytick_labels)[v] if ytick_labels is not None
                        else label(v, self.log))
                self.c.text(b.left - 3, y / SS, text, 7, anchor="rm")
        for v in xs:
            x = self.px(v).item()
            d.line([(x, b.bottom * SS), (x, (b.bottom + 3) * SS)], fill=AXIS, width=SS)
            if xticks:
                self.c.text(x / SS, b.bottom + 4, label(v), 7, anchor="ma")
        d.rectangle([b.left * SS, b.top * SS, b.right * SS, b.bottom * SS], outline=AXIS,
                    width=SS)
        if title:
            self.c.text((b.left + b.right) / 2, b.top - 3, title, 9, anchor="md")
        if xlabel:
            self.c.text((b.left + b.right) / 2, b.bottom + (16 if xticks else 5), xlabel, 8,
                        anchor="ma")

    def legend(self, entries: list[tuple[str, str]], where: str = "right") -> None:
        """Colour swatches with labels in the panel's top corner."""
        entries = [(t, c) for t, c in entries if t]
        if not entries:
            return
        b, f = self.box, font(7)
        widths = [f.getlength(t) / SS for t, _ in entries]
        w, h = max(widths) + 22, 11 * len(entries) + 4
        x = b.right - w - 4 if where == "right" else b.left + 4
        y = b.top + 4
        self.c.draw.rectangle([x * SS, y * SS, (x + w) * SS, (y + h) * SS], fill="white",
                              outline=(200, 200, 200), width=1)
        for i, (t, c) in enumerate(entries):
            yy = y + 8 + 11 * i
            self.c.draw.line([((x + 3) * SS, yy * SS), ((x + 15) * SS, yy * SS)], fill=rgb(c),
                             width=2 * SS)
            self.c.text(x + 18, yy, t, 7, anchor="lm")

    def note(self, text: str) -> None:
        b = self.box
        self.c.text((b.left + b.right) / 2, (b.top + b.bottom) / 2, text, 8, color=AXIS,
                    anchor="mm")

    # data
    def line(self, x: np.ndarray, y: np.ndarray, color: str, width: float = 1.0,
             shade: float | None = None) -> None:
        """A polyline broken at NaN; `shade` < 1 draws it lighter (a faint raw curve)."""
        fill = tint(color, shade) if shade is not None else rgb(color)
        px, py = self.px(x), self.py(y)
        ok = np.isfinite(px) & np.isfinite(py)
        w = max(1, int(round(width * SS)))
        for seg in _runs(ok):
            pts = np.column_stack([px[seg], py[seg]])
            if len(pts) == 1:
                pts = np.vstack([pts, pts + [0.5, 0]])
            self.c.draw.line(pts.ravel().tolist(), fill=fill, width=w, joint=None)

    def band(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str,
             alpha: float = 0.2) -> None:
        """Filled area between lo and hi, broken at NaN."""
        px, plo, phi = self.px(x), self.py(lo), self.py(hi)
        ok = np.isfinite(px) & np.isfinite(plo) & np.isfinite(phi)
        fill = tint(color, alpha)
        for seg in _runs(ok):
            if len(seg) < 2:
                continue
            poly = np.r_[np.column_stack([px[seg], phi[seg]]),
                         np.column_stack([px[seg], plo[seg]])[::-1]]
            self.c.draw.polygon(poly.ravel().tolist(), fill=fill)

    def vspan(self, a: float, b: float, color: str, alpha: float = 0.2) -> None:
        x0, x1 = self.px(a).item(), self.px(b).item()
        self.c.draw.rectangle([x0, self.box.top * SS, max(x1, x0 + SS), self.box.bottom * SS],
                              fill=tint(color, alpha))

    def hline(self, y: float, color: str, dashed: bool = True) -> None:
        yy = self.py(y).item()
        if not math.isfinite(yy):
            return
        l, r = self.box.left * SS, self.box.right * SS
        if not dashed:
            self.c.draw.line([(l, yy), (r, yy)], fill=rgb(color), width=SS)
            return
        for x in np.arange(l, r, 8 * SS):
            self.c.draw.line([(x, yy), (min(x + 5 * SS, r), yy)], fill=rgb(color), width=SS)

    def points(self, x: np.ndarray, y: np.ndarray, color: str, size: float = 1.5,
               alpha: float = 0.7) -> None:
        px, py = self.px(x), self.py(y)
        ok = np.isfinite(px) & np.isfinite(py)
        r = size * SS / 2
        fill = tint(color, alpha)
        for a, b in zip(px[ok].tolist(), py[ok].tolist()):
            self.c.draw.rectangle([a - r, b - r, a + r, b + r], fill=fill)

    def bar(self, y: float, left: float, right: float, height: float, color: str,
            alpha: float = 1.0) -> None:
        """A horizontal bar from x=left to x=right centred on y (timeline rows)."""
        x0, x1 = self.px(left).item(), self.px(right).item()
        y0, y1 = self.py(y - height / 2).item(), self.py(y + height / 2).item()
        self.c.draw.rectangle([x0, min(y0, y1), max(x1, x0 + SS), max(y0, y1)],
                              fill=tint(color, alpha))

    def marker(self, x: float, y: float, color: str, shape: str = "o", size: float = 5) -> None:
        cx, cy, r = self.px(x).item(), self.py(y).item(), size * SS
        if shape == "v":
            self.c.draw.polygon([(cx - r, cy - r), (cx + r, cy - r), (cx, cy + r)],
                                fill=rgb(color))
        else:
            self.c.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb(color))


def _runs(ok: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the consecutive True stretches of `ok`."""
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > 1) + 1
    return np.split(idx, cuts)


def grid(width: int, height: int, rows: int, cols: int, *, left: float = 46,
         right: float = 16, top: float = 18, bottom: float = 28, hgap: float = 26,
         wgap: float = 50) -> list[Box]:
    """Boxes of a rows x cols layout with fixed margins, row-major."""
    w = (width - left - right - wgap * (cols - 1)) / cols
    h = (height - top - bottom - hgap * (rows - 1)) / rows
    return [Box(left + c * (w + wgap), top + r * (h + hgap), left + c * (w + wgap) + w,
                top + r * (h + hgap) + h) for r in range(rows) for c in range(cols)]
