"""`qgan export --tensorboard`: finished (or stopped) runs as TensorBoard logs.

One sub-folder per run (its folder name, made safe), holding one event file with the rows
that count (per step the latest attempt and revision: what the report draws), in the same
format as the trainer's live mirror (qgan/tbevents.py). An experiment also gets its swept
values as HParams: each run's folder starts with the run's values (a session), and the
output folder's own event file declares the swept settings and the eval metrics
(qgan.vocabulary.METRIC_MODE) for the HParams dashboard.

Files are named from the data (the run's first wall time), written atomically, and an
export into the same folder again replaces them: TensorBoard never sees a run twice.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.rundata import Experiment, RunData
from analysis.sweep import hyperparameters
from qgan.atomic import atomic_write_bytes
from qgan.tbevents import TABLES, encode, protos, scalars
from qgan.vocabulary import METRIC_MODE
from reports.files import safe_names

log = logging.getLogger(__name__)

SUFFIX = ".qgan-export"  # our files, and the only ones an export replaces


@dataclass
class Exported:
    folder: Path
    points: int  # scalar values written
    hparams: dict[str, Any]


def _rows(run: RunData) -> list[tuple[str, dict[str, Any]]]:
    """(table, row) in step order, steps before evals at the same step."""
    out = []
    for order, table in enumerate(TABLES):
        frame = run.steps if table == "steps" else run.evals
        for row in frame.to_dict("records"):
            out.append((int(row["step"]), order, table, row))
    out.sort(key=lambda r: r[:2])
    return [(table, row) for _, _, table, row in out]


def _start_time(run: RunData) -> float:
    times = [float(f["wall_time"].min()) for f in (run.steps, run.evals) if len(f)]
    return min(times) if times else 0.0


def _hparam_value(v: Any) -> bool | float | str | None:
    """An HParams value: bool, number or string (lists and tables as JSON text)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else str(v)
    return json.dumps(v, sort_keys=True, default=str)


def _swept(exp: Experiment) -> dict[str, dict[str, Any]]:
    """run name -> its values of the swept settings (none for a single run)."""
    if len(exp.runs) < 2:
        return {}
    return {name: {k: _hparam_value(v) for k, v in values.items()}
            for name, values in hyperparameters(exp.runs).items()}


def _hparams_summaries(values: dict[str, Any], trial: str, start: float) -> list:
    from tensorboard.plugins.hparams import summary_v2 as hp  # lazy: the optional tensorboard extra

    values = {k: v for k, v in values.items() if v is not None}
    return [(0, start, hp.hparams_pb(values, trial_id=trial, start_time_secs=start))]


def _experiment_summary(swept: dict[str, dict[str, Any]], start: float):
    """The HParams dashboard's table: the swept settings (their values as the domain) and
    the eval metrics (the last value of `evals/<metric>` in each run)."""
    from tensorboard.plugins.hparams import summary_v2 as hp  # lazy: the optional tensorboard extra

    keys = sorted({k for v in swept.values() for k in v})
    params = []
    for k in keys:
        values = sorted({v[k] for v in swept.values() if v.get(k) is not None}, key=repr)
        kinds = {type(v) for v in values}
        if len(kinds) > 1:  # a setting given as a number in one run and text in another
            values = sorted({str(v) for v in values})
        params.append(hp.HParam(k, hp.Discrete(values) if values else None))
    metrics = [hp.Metric(f"evals/{m}", display_name=f"{m} (last eval)")
               for m in METRIC_MODE]
    return hp.hparams_config_pb(params, metrics, time_created_secs=start)


def _write_events(folder: Path, start: float, data: bytes) -> Path:
    """Replace our event file in `folder` (and any older export of ours there)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events.out.tfevents.{int(start):010d}{SUFFIX}"
    atomic_write_bytes(path, data)
    for old in folder.glob(f"events.out.tfevents.*{SUFFIX}"):
        if old != path:
            old.unlink()
    return path


def export_tensorboard(exp: Experiment, out: Path) -> list[Exported]:
    """Write `exp` (its runs, in order) as TensorBoard logs under `out`."""
    protos()  # a missing tensorboard package is reported before anything is written
    swept = _swept(exp)
    done = []
    for run, name in zip(exp.runs, safe_names([r.path.name for r in exp.runs])):
        start = _start_time(run)
        rows = _rows(run)
        values = swept.get(run.name, {})
        summaries = _hparams_summaries(values, name, start) if values else []
        _write_events(out / name, start, encode(rows, start, summaries))
        done.append(Exported(out / name, sum(len(scalars(t, r)) for t, r in rows), values))
    if swept:
        start = min(_start_time(r) for r in exp.runs)
        _write_events(out, start, encode([], start, [(0, start, _experiment_summary(
            swept, start))]))
    return done

