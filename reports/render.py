"""Render an ExperimentDiagnosis into one self-contained HTML file (Jinja2, autoescaped).

Every string from the run directories (run names, config values, event messages) is
untrusted: it reaches the page only through Jinja2's autoescaping. Figures are data: URIs.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from jinja2 import Environment, PackageLoader

from analysis.diagnose import ExperimentDiagnosis, RunDiagnosis, diagnose_path, diagnose_run
from analysis.load import load_run
from analysis.findings import severity_rank
from analysis.verdict import FINAL_EVALS, LEGEND as VERDICT_LEGEND
from reports import figures

log = logging.getLogger(__name__)

ROUTINE_EVENTS = ("checkpoint_written", "nonfinite_step")  # too many to list; counted elsewhere
MAX_EVENTS = 200
PARALLEL_MIN_RUNS_PER_WORKER = 4  # below this a process pool costs more than it saves

# which figure of a run section shows the evidence for a finding kind
FIGURE_OF = {
    "mode_collapse": "evals", "partial_collapse": "evals", "stagnation": "evals",
    "lost_work": "timeline", "job_history": "timeline", "checkpoint_cadence": "timeline",
    "crash": "timeline", "unfinished": "timeline", "checkpoint_rejected": "timeline",
    "checkpoint_failed": "timeline",
}


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _sort_key(v: Any) -> str:
    """data-v attribute for the sortable table: numbers as numbers, missing sorts last."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "Infinity"
    return str(v)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["sortkey"] = _sort_key
    return env


def _figures_worker(args: tuple[str, dict, dict]) -> dict[str, str | None]:
    """In a worker process: reload and re-diagnose one run (cheaper than shipping its data
    frames across) and draw its figures."""
    path, overrides, th = args
    return figures.run_figures(diagnose_run(load_run(path, overrides), th), th)


def all_run_figures(d: ExperimentDiagnosis, workers: int | None = None) -> list[dict]:
    """Figures of every run, in this process by default: drawing costs ~20 ms of CPU per run
    (reports.raster), less than a spawned worker spends importing and re-reading its runs.
    `workers` > 1 asks for a process pool anyway (spawned: no fork of pyarrow's threads),
    which only pays off in wall time on an idle many-core node with very large sweeps."""
    th = d.thresholds
    workers = workers if workers is not None else 1
    if workers <= 1 or len(d.runs) < 2 * PARALLEL_MIN_RUNS_PER_WORKER:
        return [figures.run_figures(rd, th) for rd in d.runs]
    jobs = [(str(rd.run.path), rd.run.overrides, th) for rd in d.runs]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        return pool.map(_figures_worker, jobs, chunksize=1)


def _run_context(i: int, rd: RunDiagnosis, figs: dict, fid: dict[int, str]) -> dict:
    anchor = f"run-{i}"
    findings = []
    for f in sorted(rd.findings, key=lambda f: (-severity_rank(f.severity),
                                                f.start_step if f.start_step is not None else -1)):
        fig = FIGURE_OF.get(f.kind, "training")
        findings.append({"f": f, "id": fid[id(f)],
                         "figure": f"{anchor}-{fig}" if figs.get(fig) else anchor})
    ev = rd.run.events
    if not ev.empty:
        ev = ev[~ev["kind"].isin(ROUTINE_EVENTS)].head(MAX_EVENTS)
    events = [] if ev.empty else ev[["attempt", "step", "kind", "severity", "message"]].to_dict(
        "records")
    return {"anchor": anchor, "rd": rd, "figs": figs, "findings": findings, "events": events,
            "config": sorted(rd.run.config.items()), "overrides": rd.run.overrides}


def render_html(d: ExperimentDiagnosis, workers: int | None = None) -> str:
    """The report as a string. `workers`: processes drawing figures (default 1 = in this
    process; see all_run_figures)."""
    th = d.thresholds
    anchors = {rd.run.name: f"run-{i}" for i, rd in enumerate(d.runs)}
    all_findings = d.all_findings()
    fid = {id(f): f"f-{n}" for n, f in enumerate(all_findings)}
    runs = [_run_context(i, rd, figs, fid)
            for i, (rd, figs) in enumerate(zip(d.runs, all_run_figures(d, workers)))]
    rank = {name: k + 1 for k, name in enumerate(d.ranking)}
    by_name = {rd.run.name: rd for rd in d.runs}
    sweep = len(d.runs) > 1
    ctx = {
        "title": d.experiment.name, "path": str(d.experiment.path),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs, "rank": rank, "anchors": anchors, "sweep": sweep,
        "findings": [{"f": f, "id": fid[id(f)],
                      "href": "#" + anchors.get(f.run, "sweep" if sweep else "overview")}
                     for f in all_findings],
        "verdict_counts": _counts(d.runs), "verdict_legend": VERDICT_LEGEND,
        "final_evals": FINAL_EVALS,
        "hp_keys": list(next(iter(d.hyperparameters.values()), {})) if sweep else [],
        "hparams": d.hyperparameters, "separation": d.separation,
        "ranked": [by_name[n] for n in d.ranking],
        "small_multiples": figures.small_multiples(d, [by_name[n] for n in d.ranking])
        if sweep else None,
        "hparam_fig": figures.hparam_outcomes(d) if sweep else None,
        "thresholds": sorted(th.items()),
    }
    return _env().get_template("report.html.j2").render(**ctx)


def _counts(runs: list[RunDiagnosis]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for r in runs:
        out[r.verdict] = out.get(r.verdict, 0) + 1
    order = [v for v, _ in VERDICT_LEGEND]  # precedence: worst first
    return sorted(out.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                               else len(order), kv[0]))


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(d: ExperimentDiagnosis, out: str | Path, workers: int | None = None) -> Path:
    out = Path(out)
    write_atomic(out, render_html(d, workers))
    log.info("report written to %s", out)
    return out


def report(path: str | Path, out: str | Path | None = None,
           thresholds: Mapping[str, float] | str | Path | None = None) -> Path:
    """Diagnose a run or experiment folder and write its report (default PATH/report.html)."""
    d = diagnose_path(path, thresholds)
    return write_report(d, Path(out) if out else Path(path) / "report.html")
