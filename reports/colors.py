"""Run colours by swept value: one sequential ramp for numbers, a qualitative set otherwise.

Overlaid curves are read by the swept setting that matters most, so each run takes the colour
of its value of that setting (its seeds share it; hover and the legend name the run).
"""

from __future__ import annotations

import math
from typing import Any

from analysis.sweep import SEED_KEY
from qgan.vocabulary import FindingKind

# viridis stops 0..0.85 (its light yellow end is unreadable as a line on white)
RAMP = ((0x44, 0x01, 0x54), (0x41, 0x44, 0x87), (0x2a, 0x78, 0x8e), (0x22, 0xa8, 0x84),
        (0x7a, 0xd1, 0x51))
# Petroff's accessible 10-colour sequence (Petroff 2021, matplotlib's "petroff10" style):
# chosen to stay apart under the common colour-vision deficiencies, unlike Tableau 10
# (matplotlib's default cycle, used here until issue 22), whose red and green merge
QUALITATIVE = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300",
               "#b9ac70", "#717581", "#92dadd")

# background of the critic panel in each adversarial phase (analysis.balance)
PHASE_COLORS: dict[FindingKind, str] = {FindingKind.D_DOMINANCE: "rgba(214,39,40,0.10)",
                                        FindingKind.G_DOMINANCE: "rgba(31,119,180,0.10)",
                                        FindingKind.EQUILIBRIUM: "rgba(44,160,44,0.10)"}


def ramp(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    f = t - i
    return "#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(RAMP[i], RAMP[i + 1]))


def color_key(hparams: dict[str, dict[str, Any]], preferred: list[str]) -> str | None:
    """The setting that colours the runs: the first of `preferred` (e.g. the settings that
    separate good from bad runs) that is swept, else the swept setting with most values;
    the seed only when nothing else is swept."""
    keys = list(next(iter(hparams.values()), {}))
    distinct = {k: len({repr(h.get(k)) for h in hparams.values()}) for k in keys}
    swept = [k for k in keys if distinct[k] > 1]
    for k in preferred:
        if k in swept and k != SEED_KEY:
            return k
    others = [k for k in swept if k != SEED_KEY]
    if others:
        return max(others, key=lambda k: distinct[k])
    return swept[0] if swept else None


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_colors(values: list[Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """(a colour per run, legend entries (value text, colour) in value order)."""
    if not values:
        return [], []
    distinct = sorted({repr(v): v for v in values}.values(),
                      key=lambda v: (not _numeric(v), v if _numeric(v) else 0, str(v)))
    if all(_numeric(v) for v in distinct) and len(distinct) > 1:
        lo, hi = min(distinct), max(distinct)
        log = lo > 0 and hi / lo > 20
        f = (lambda v: math.log(v)) if log else (lambda v: v)
        span = (f(hi) - f(lo)) or 1.0
        of = {repr(v): ramp((f(v) - f(lo)) / span) for v in distinct}
    else:
        of = {repr(v): QUALITATIVE[i % len(QUALITATIVE)] for i, v in enumerate(distinct)}
    return [of[repr(v)] for v in values], [(_text(v), of[repr(v)]) for v in distinct]


def _text(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_styles(d) -> tuple[list[str], list[list[int]], str | None, list[tuple[str, str]]]:
    """(a colour per run of the ExperimentDiagnosis `d`, a dash pattern per run, the setting
    that colours them, its legend): what the report and `qgan figures` draw runs with."""
    hp = d.hyperparameters if len(d.runs) > 1 else {}
    ckey = color_key(hp, [s["key"] for s in d.separation]) if hp else None
    colors, legend = run_colors([hp[rd.run.name].get(ckey) for rd in d.runs]) \
        if ckey else ([QUALITATIVE[i % len(QUALITATIVE)] for i in range(len(d.runs))], [])
    return colors, run_dashes(colors), ckey, legend


DASHES = ([], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4])  # canvas setLineDash patterns, in px


def run_dashes(colors: list[str]) -> list[list[int]]:
    """Runs that share a colour (seeds of one setting) get different dash patterns, so each
    line can still be followed on the overlay chart."""
    seen: dict[str, int] = {}
    out = []
    for c in colors:
        k = seen.get(c, 0)
        seen[c] = k + 1
        out.append(DASHES[k % len(DASHES)])
    return out
