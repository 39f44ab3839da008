"""The best checkpoint of a run: which step was best by the watched eval metric, and whether
the state of that step is still on disk.

New runs (checkpoint.keep_best = true) name it in checkpoints/manifest.json ("best": the
`best-<seq>/` folder outside the keep-N rotation). Older runs only have their evals: the best
eval step is found there, and a rotating `ckpt-*` folder of that step may or may not survive.
Every file here is untrusted input, read by the one reader of checkpoints/
(qgan/checkpoint_index.py): "kept" means every file's sha256 matches its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.headline import best_index
from analysis.series import as_int, col, events_of
from qgan import checkpoint_index as index
from qgan import schema
from qgan.vocabulary import METRIC_MODE

if TYPE_CHECKING:  # the loader (pandas) only for type checkers
    from analysis.rundata import RunData

DEFAULT_METRIC = "w1_mean"


@dataclass
class BestCheckpoint:
    metric: str  # the eval metric watched (checkpoint.best_metric)
    mode: str  # "min" or "max": which way is better (qgan.vocabulary.METRIC_MODE)
    step: int
    value: float
    checkpoint: Path | None  # the folder holding that step's state, if known
    kept: bool  # the folder is on disk and every file matches its recorded sha256
    note: str  # plain words: where it is, or why it is gone and what to set

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "step": self.step,
                "value": self.value, "checkpoint": str(self.checkpoint)
                if self.checkpoint is not None else None, "kept": self.kept, "note": self.note}


def watched_metric(run: RunData) -> tuple[str, str]:
    """(metric, mode) the run's best checkpoint is chosen by."""
    metric = run.config.get("checkpoint.best_metric", DEFAULT_METRIC)
    metric = metric if metric in METRIC_MODE else DEFAULT_METRIC
    return metric, METRIC_MODE[metric]


def best_checkpoint(run: RunData) -> BestCheckpoint | None:
    """The run's best checkpoint (None when no eval has a finite value of the metric)."""
    metric, mode = watched_metric(run)
    ckpt_dir = run.path / schema.CHECKPOINT_DIR
    best = index.read_best_entry(ckpt_dir, require_folder=False)
    info = index.describe_best(ckpt_dir, best, []) if best is not None else None
    if best is not None and info is not None:
        folder = info.path
        value = best.get("value")
        problem = index.problem(info)
        if problem is None:
            note = (f"kept outside the keep-N rotation in {schema.CHECKPOINT_DIR}/"
                    f"{folder.name}")
        else:
            note = (f"the manifest names {folder.name} but it cannot be used ({problem}); the "
                    "storage damaged it after it was written")
        return BestCheckpoint(str(best.get("metric", metric)), str(best.get("mode", mode)),
                              info.step, float(value) if isinstance(
                                  value, (int, float)) else float("nan"),
                              folder, problem is None, note)
    values = col(run.evals, metric)
    i = best_index(values, mode)
    if i is None:
        return None
    step = int(run.evals["step"].iloc[i])
    at_step = [info for info in index.list_checkpoints(ckpt_dir).infos if info.step == step]
    for info in reversed(at_step):
        folder = info.path
        if index.problem(info) is None:
            return BestCheckpoint(metric, mode, step, float(values[i]), folder, True,
                                  f"a keep-N checkpoint ({folder.name}) happens to hold the "
                                  "best step; the rotation will delete it: copy it, or set "
                                  "checkpoint.keep_best = true")
    written = any(as_int(d.get("step")) == step
                  for _, _, d in events_of(run.events, "checkpoint_written"))
    keep = run.config.get("checkpoint.keep")
    if written:
        note = ("deleted by keep-N rotation" + (f" (checkpoint.keep = {keep})" if keep else "")
                + ": set checkpoint.keep_best = true")
    else:
        every = run.config.get("checkpoint.every_steps")
        note = (f"no checkpoint was written at step {step}"
                + (f" (checkpoint.every_steps = {every})" if every else "")
                + ": set checkpoint.keep_best = true")
    return BestCheckpoint(metric, mode, step, float(values[i]), None, False, note)
