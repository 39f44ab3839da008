"""The best checkpoint of a run: which step was best by the watched eval metric, and whether
the state of that step is still on disk.

New runs (checkpoint.keep_best = true) name it in checkpoints/manifest.json ("best": the
`best-<seq>/` folder outside the keep-N rotation). Older runs only have their evals: the best
eval step is found there, and a rotating `ckpt-*` folder of that step may or may not survive.
Every file here is untrusted input: folder names must match the contract's pattern (no path
leaves checkpoints/), and "kept" means every file's sha256 matches its record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.headline import best_index
from analysis.load import RunData
from analysis.series import as_int, col, events_of
from qgan import saferead, schema
from qgan.vocabulary import METRIC_MODE

_FOLDER = re.compile(rf"^({re.escape(schema.CHECKPOINT_PREFIX)}|{re.escape(schema.BEST_PREFIX)})"
                     r"\d{6,}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
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


def _read_json(path: Path, kind: str) -> Any:
    """A JSON file under the run's checkpoints/, through the confined reader (the run
    directory is two levels up for checksums.json, one for the manifest)."""
    root = path.parent.parent if kind == "manifest" else path.parent.parent.parent
    try:
        return saferead.read_json(path, kind, root=root)
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    return saferead.sha256_file(path, "checkpoint", root=path.parent.parent.parent)


def verify_folder(folder: Path, files: Any) -> str | None:
    """None if every recorded file is present with its sha256; else what is wrong."""
    if not isinstance(files, dict) or not files:
        return "no checksums recorded"
    if not folder.is_dir():
        return "the folder is missing"
    for name, meta in sorted(files.items()):
        digest = meta.get("sha256") if isinstance(meta, dict) else meta
        if not isinstance(name, str) or "/" in name or name.startswith(".") or \
                not isinstance(digest, str) or not _SHA.match(digest):
            return f"bad checksum record for {name!r}"
        try:
            if _sha256(folder / name) != digest:
                return f"{name} does not match its checksum"
        except (OSError, ValueError):  # ValueError: refused (a link, a FIFO, ...)
            return f"{name} is missing, unreadable or not a regular file"
    return None


def _entries(ckpt_dir: Path) -> tuple[dict | None, list[dict]]:
    """(the manifest's best entry, every checkpoint folder's record), validated."""
    manifest = _read_json(ckpt_dir / schema.MANIFEST_FILE, "manifest")
    manifest = manifest if isinstance(manifest, dict) else {}
    best = manifest.get("best")
    best = best if isinstance(best, dict) and _FOLDER.match(str(best.get("folder", ""))) and \
        str(best["folder"]).startswith(schema.BEST_PREFIX) and \
        as_int(best.get("step")) is not None else None
    records: dict[str, dict] = {}
    listed = manifest.get("checkpoints")
    for e in listed if isinstance(listed, list) else []:
        if isinstance(e, dict) and _FOLDER.match(str(e.get("folder", ""))) and \
                as_int(e.get("step")) is not None:
            records[str(e["folder"])] = e
    if ckpt_dir.is_dir() and not ckpt_dir.is_symlink():  # never listed through a link
        for d in sorted(ckpt_dir.iterdir()):
            if d.name in records or not _FOLDER.match(d.name) or not d.is_dir():
                continue
            doc = _read_json(d / schema.CHECKSUM_FILE, "checksums")
            if isinstance(doc, dict) and as_int(doc.get("step")) is not None:
                records[d.name] = {**doc, "folder": d.name}
    return best, list(records.values())


def best_checkpoint(run: RunData) -> BestCheckpoint | None:
    """The run's best checkpoint (None when no eval has a finite value of the metric)."""
    metric, mode = watched_metric(run)
    ckpt_dir = run.path / schema.CHECKPOINT_DIR
    best, records = _entries(ckpt_dir)
    if best is not None:
        folder = ckpt_dir / str(best["folder"])
        value = best.get("value")
        problem = verify_folder(folder, best.get("files"))
        if problem is None:
            note = (f"kept outside the keep-N rotation in {schema.CHECKPOINT_DIR}/"
                    f"{folder.name}")
        else:
            note = (f"the manifest names {folder.name} but it cannot be used ({problem}); the "
                    "storage damaged it after it was written")
        return BestCheckpoint(str(best.get("metric", metric)), str(best.get("mode", mode)),
                              int(best["step"]), float(value) if isinstance(
                                  value, (int, float)) else float("nan"),
                              folder, problem is None, note)
    values = col(run.evals, metric)
    i = best_index(values, mode)
    if i is None:
        return None
    step = int(run.evals["step"].iloc[i])
    at_step = [r for r in records if as_int(r.get("step")) == step
               and str(r["folder"]).startswith(schema.CHECKPOINT_PREFIX)]
    for rec in sorted(at_step, key=lambda r: str(r["folder"]), reverse=True):
        folder = ckpt_dir / str(rec["folder"])
        if verify_folder(folder, rec.get("files")) is None:
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
