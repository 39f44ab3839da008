"""Render an ExperimentDiagnosis into one self-contained HTML file (Jinja2, autoescaped).

Every string from the run directories (run names, config values, event messages) is
untrusted: it reaches the page through Jinja2's autoescaping, or inside the embedded JSON
(reports.payload.script_json, safe inside <script>). Charts are drawn in the browser by the
vendored uPlot from that JSON; the page loads nothing from anywhere (CSP default-src 'none').
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from analysis.diagnose import summarise_path
from analysis.diagnosis import ExperimentDiagnosis, RunDiagnosis
from analysis.findings import severity_rank
from analysis.headline import FINAL_EVALS, HEADLINE
from analysis.keep import metric_label, versus
from analysis.panels import PANELS as PANEL_TEXT, panel_of
from analysis.sweep import SAMPLED_PERMUTATIONS
from analysis.verdict import LEGEND as VERDICT_LEGEND
from qgan.safewrite import write_output
from qgan.schema import REPORT_FILE
from qgan.vocabulary import FindingKind, Verdict
from reports import payload, runpart
from reports.colors import PHASE_COLORS, run_styles

log = logging.getLogger(__name__)

GOOD_VERDICTS = (Verdict.CONVERGED, Verdict.IMPROVING)  # any other verdict or flag: a problem
OTHERS_SHOWN = 12  # the card lists this many other runs, the rest behind "more"
VENDOR = ("vendor/uplot/uPlot.min.css", "vendor/uplot/uPlot.iife.min.js")


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _pvalue(p: float | None) -> str:
    """A permutation p-value; 0 only comes from sampled permutations, where it means below
    one in SAMPLED_PERMUTATIONS."""
    if p is None or not math.isfinite(p):
        return "–"
    return f"< {1 / SAMPLED_PERMUTATIONS:.2g}" if p == 0 else f"{p:.2g}"


def _sort_key(v: Any) -> str:
    """data-v attribute for the sortable table: numbers as numbers, missing sorts last."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "Infinity"
    return str(v)


def _asset(name: str) -> str:
    return resources.files("reports").joinpath(name).read_text(encoding="utf-8")


def _inline(name: str) -> Markup:
    """A packaged script or style sheet, inlined verbatim. Only our own files, never run
    data; '</' must not occur in them (it would end the element early)."""
    text = _asset(name)
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} contains an end tag; it cannot be inlined")
    return Markup(text)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["metric"] = metric_label
    env.filters["sortkey"] = _sort_key
    env.filters["pvalue"] = _pvalue
    return env


def is_problem(rd: RunDiagnosis) -> bool:
    return rd.verdict not in GOOD_VERDICTS or bool(rd.flags)


def _shades(rd: RunDiagnosis) -> dict[str, list[list[int]]]:
    """Per panel id: the step ranges its advice and its warning or error findings point at
    (shaded there in red; an info finding such as equilibrium is not a problem)."""
    out: dict[str, set[tuple[int, int]]] = {}
    for a in rd.advice:
        for lo, hi in a.steps:
            out.setdefault(a.panel, set()).add((int(lo), int(hi)))
    for f in rd.findings:
        if f.start_step is not None and severity_rank(f.severity) > 0:
            end = f.end_step if f.end_step is not None else f.start_step
            out.setdefault(panel_of(f.kind), set()).add((f.start_step, end))
    return {k: [list(r) for r in sorted(v)] for k, v in out.items()}


def _run_data(rd: RunDiagnosis, part: dict[str, Any], color: str, dash: list[int],
              kept: bool) -> dict[str, Any]:
    return {"name": rd.run.name, "verdict": str(rd.verdict), "flags": [str(f) for f in rd.flags],
            "problem": is_problem(rd), "color": color, "dash": dash, "keep": kept,
            "data": part["series"], "shade": _shades(rd),
            "phases": [[str(k), a, b, PHASE_COLORS[k]] for k, a, b in rd.phases],
            "samples": part["samples"],
            # read from the run folder alone (a header will do): only the kept run has it
            "interp": payload.interpolation_payload(rd.run) if kept else None}


def _verdict_counts(runs: list[RunDiagnosis]) -> list[tuple[str, int]]:
    """(verdict, runs with it as primary verdict or flag), in the legend's order."""
    order = [v for v, _ in VERDICT_LEGEND]
    counts = {v: sum(1 for rd in runs if rd.verdict == v or v in rd.flags) for v in order}
    return [(v, n) for v, n in counts.items() if n]


def _by_best(rd: RunDiagnosis) -> tuple:
    """Sort key: best value of the watched metric first (its direction), none last."""
    b = rd.best
    if b is None:
        return (1, 0.0, rd.run.name)
    return (0, b.value if b.mode == "min" else -b.value, rd.run.name)


def _timeline_bars(rd: RunDiagnosis) -> list[dict[str, Any]]:
    """Attempts as bars on a shared wall-clock axis, in percent of the whole span."""
    tl = [t for t in rd.timeline if t.get("start_time") is not None]
    if not tl:
        return []
    t0 = min(t["start_time"] for t in tl)
    t1 = max((t["end_time"] or t["start_time"]) for t in tl)
    span = (t1 - t0) or 1.0
    out = []
    for t in tl:
        a = (t["start_time"] - t0) / span * 100
        b = ((t["end_time"] or t["start_time"]) - t0) / span * 100
        lost = min((t.get("lost_seconds") or 0) / span * 100, b - a)
        out.append({"t": t, "left": a, "width": max(b - a, 0.3), "lost": lost})
    return out


def _run_context(i: int, rd: RunDiagnosis, part: dict[str, Any], swept: dict[str, Any]
                 ) -> dict[str, Any]:
    anchor = f"run-{i}"
    findings = []
    for f in sorted(rd.findings, key=lambda f: (-severity_rank(f.severity),
                                                f.start_step if f.start_step is not None else -1)):
        findings.append({"f": f, "panel": panel_of(f.kind)})
    return {"i": i, "anchor": anchor, "rd": rd, "findings": findings, "events": part["events"],
            "config": sorted(rd.run.config.items()), "overrides": rd.run.overrides,
            "swept": swept, "timeline": _timeline_bars(rd)}


def _title(d: ExperimentDiagnosis) -> str:
    """A sweep by its experiment name; a single run by its folder (all tasks of a sweep share
    run.name), with the run name when it differs."""
    if len(d.runs) > 1:
        return d.experiment.name
    run = d.runs[0].run
    folder = run.path.name
    return folder if run.name == folder else f"{folder} ({run.name})"


def _chart_data(d: ExperimentDiagnosis, parts: list[dict[str, Any]], keep: str | None
                ) -> tuple[dict[str, Any], str | None, list[tuple[str, str]]]:
    """(everything the page's charts draw, embedded as JSON: per run its reduced series,
    colour, shaded ranges and samples, and the panel and overlay definitions; the setting
    that colours the runs; its colour legend)."""
    colors, dashes, ckey, legend = run_styles(d)
    panel_lines, overlay_lines = payload.hlines(d.thresholds)
    return {"runs": [_run_data(rd, parts[i], colors[i], dashes[i], rd.run.name == keep)
                     for i, rd in enumerate(d.runs)],
            "panels": [{"id": p.id, "panel": p.panel, "ylabel": p.ylabel, "log": p.log,
                        "hline": panel_lines.get(p.id),
                        "series": [[s.table, s.column, s.label] for s in p.series]}
                       for p in payload.CHARTS],
            "overlays": [{"id": k, "title": t, "ylabel": y, "table": s.table,
                          "column": s.column, "log": lg, "hline": overlay_lines.get(k)}
                         for k, (t, y, s, lg) in payload.OVERLAYS.items()]}, ckey, legend


def render_html(d: ExperimentDiagnosis) -> str:
    """The report as a string."""
    sweep = len(d.runs) > 1
    hp = d.hyperparameters if sweep else {}
    keep = payload.kept_run(d)
    index = {rd.run.name: i for i, rd in enumerate(d.runs)}
    parts = [runpart.of(rd) for rd in d.runs]
    runs = [_run_context(i, rd, parts[i], hp.get(rd.run.name, {}))
            for i, rd in enumerate(d.runs)]
    data, ckey, legend = _chart_data(d, parts, keep)
    kept_rd = d.runs[index[keep]] if keep is not None else None
    for r, x in zip(runs, data["runs"]):
        r["has_samples"] = x["samples"] is not None
        r["has_interp"] = x["interp"] is not None
        r["trace_min"] = x["interp"]["trace_min"] if x["interp"] else None
    ctx = {
        "title": _title(d), "path": str(d.experiment.path), "sweep": sweep,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs, "index": index,
        "rank": {name: k + 1 for k, name in enumerate(d.ranking)},
        "ranked": [runs[index[n]] for n in d.ranking],
        "keep": runs[index[keep]] if keep is not None else None,
        "others": [runs[index[rd.run.name]] | {"versus": versus(rd, kept_rd)}
                   for rd in sorted(d.runs, key=_by_best) if rd.run.name != keep],
        "verdict_counts": _verdict_counts(d.runs), "others_shown": OTHERS_SHOWN,
        "good_verdicts": GOOD_VERDICTS, "keep_findings": [f for f in d.findings if f.kind == FindingKind.KEEP],
        "experiment_findings": [f for f in d.findings if f.kind != FindingKind.KEEP],
        "verdict_legend": VERDICT_LEGEND, "final_evals": FINAL_EVALS,
        "hp_keys": list(next(iter(hp.values()), {})),
        "color_key": ckey, "color_legend": legend,
        "separation": d.separation, "settings": d.settings,
        "h": HEADLINE, "panel_text": PANEL_TEXT,
        "charts": payload.CHARTS, "overlays": payload.OVERLAYS,
        "thresholds": sorted(d.thresholds.items()),
        "data_json": Markup(payload.script_json(data)),
        "vendor_css": _inline(VENDOR[0]), "vendor_js": _inline(VENDOR[1]),
        "report_css": _inline("static/report.css"), "report_js": _inline("static/report.js"),
    }
    return _env().get_template("report.html.j2").render(**ctx)


def write_report(d: ExperimentDiagnosis, out: str | Path) -> Path:
    """Write the report through the one safe writer (qgan.safewrite: never into a run's
    state, atomic, OutputRefused with one line). A name that is not UTF-8 (a folder's raw
    bytes, carried as surrogates) is written as a visible escape, never as invalid UTF-8."""
    path = write_output(out, render_html(d).encode("utf-8", "backslashreplace"),
                        make_parents=True)
    log.info("report written to %s", path)
    return Path(out)


def diagnose_for_report(path: str | Path,
                        thresholds: Mapping[str, float] | str | Path | None = None
                        ) -> ExperimentDiagnosis:
    """The diagnosis the report draws: each run's diagnosis and report part from its cache,
    the runs that changed loaded and diagnosed in parallel processes (raises
    analysis.NotARunError)."""
    return summarise_path(path, thresholds, (runpart.RUN_PART,))


def report(path: str | Path, out: str | Path | None = None,
           thresholds: Mapping[str, float] | str | Path | None = None) -> Path:
    """Diagnose a run or experiment folder and write its report (default PATH/report.html)."""
    d = diagnose_for_report(path, thresholds)
    return write_report(d, Path(out) if out else Path(path) / REPORT_FILE)
