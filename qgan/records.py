"""Schema-checked JSON records of a run or experiment directory (issue 25, class 4).

The metric parts have had a schema check since issue 12; the JSON records had none, so an
episode list that was a string, a step written as text or an attempt number as text became a
traceback wherever the value was used. Every record is now read by `load` (through the
confined reader, qgan.saferead) and checked against its spec here, once, at read:

- a value of the wrong type is dropped (the key reads as absent) and named in `problems`;
- an item of a list that does not fit is dropped, the others kept;
- a record without a required key (an attempt's number, a task's run name, a checkpoint
  entry's step) is dropped whole.

So a reader always gets the types its code expects, and says what it dropped as one line (a
finding in analysis, a log line or a refusal in the CLI). Keys a spec does not name are kept
as they are (newer writers may add some); code reads only the keys its spec names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgan import saferead

__all__ = ["Leaf", "ListOf", "MapOf", "Obj", "Loaded", "RecordError", "check", "load", "SPECS"]

_MISSING = object()


@dataclass(frozen=True)
class Leaf:
    """A JSON scalar of one of `types` (bool is never an int here), or null if `nullable`."""

    types: tuple[type, ...]
    nullable: bool = True
    finite: bool = False  # numbers must be finite (no NaN, no inf)


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """An object with string keys and values of one spec (or null if `nullable`)."""

    value: Any
    nullable: bool = False


@dataclass(frozen=True)
class Obj:
    fields: dict[str, Any]
    required: tuple[str, ...] = ()


INT = Leaf((int,))
NUM = Leaf((int, float))
STR = Leaf((str,))
ANY = Leaf((object,))
ID = Leaf((str, int))  # a job id: SLURM's "123_4" or a local pid
STAMP = Leaf((int, float, str))  # a creation time: epoch seconds (ours) or ISO text, shown only
REQ_INT = Leaf((int,), nullable=False)
REQ_NUM = Leaf((int, float), nullable=False, finite=True)
REQ_STR = Leaf((str,), nullable=False)


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else f"{value}"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(spec: Any) -> str:
    if isinstance(spec, Leaf):
        words = {int: "an integer", float: "a number", str: "text", bool: "true/false",
                 object: "anything"}
        names = [words.get(t, t.__name__) for t in spec.types]
        if spec.types[:2] == (int, float):
            names = ["a number"] + names[2:]
        if spec.finite:
            names = [f"{names[0]} (finite)"] + names[1:]
        return " or ".join(names + (["null"] if spec.nullable else []))
    word = {ListOf: "a list", MapOf: "an object", Obj: "an object"}[type(spec)]
    return word + (" or null" if getattr(spec, "nullable", False) else "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _leaf_ok(value: Any, spec: Leaf) -> bool:
    if value is None:
        return spec.nullable
    if object in spec.types:
        return True
    if isinstance(value, bool):
        return bool in spec.types
    if not isinstance(value, spec.types):
        return False
    if spec.finite and isinstance(value, float) and not math.isfinite(value):
        return False
    return True


def check(value: Any, spec: Any, name: str = "the record") -> tuple[Any, list[str]]:
    """(`value` with everything that does not fit `spec` dropped, or None when the value
    itself does not fit; the problems, one line each: "NAME: key.path is ..., expected ...")."""
    problems: list[str] = []
    out = _check(value, spec, "", problems)
    return (None if out is _MISSING else out), [f"{name}: {p}" for p in problems]


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _bad(where: str, value: Any, spec: Any, problems: list[str]) -> object:
    problems.append(f"{where or 'the whole record'} is {_type_word(value)} ({_show(value)}), "
                    f"expected {_expected(spec)}")
    return _MISSING


def _check(value: Any, spec: Any, where: str, problems: list[str]) -> Any:
    if isinstance(spec, Leaf):
        return value if _leaf_ok(value, spec) else _bad(where, value, spec, problems)
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return _bad(where, value, spec, problems)
        items = (_check(v, spec.item, f"{where}[{i}]", problems) for i, v in enumerate(value))
        return [v for v in items if v is not _MISSING]
    if isinstance(spec, MapOf):
        if value is None and spec.nullable:
            return None
        if not isinstance(value, dict):
            return _bad(where, value, spec, problems)
        out = {}
        for k, v in value.items():
            checked = _check(v, spec.value, _join(where, k), problems)
            if checked is not _MISSING:
                out[k] = checked
        return out
    if not isinstance(value, dict):
        return _bad(where, value, spec, problems)
    out = dict(value)
    for key, sub in spec.fields.items():
        if key not in value:
            continue
        checked = _check(value[key], sub, _join(where, key), problems)
        if checked is _MISSING:
            del out[key]
        else:
            out[key] = checked
    missing = [k for k in spec.required if k not in out]
    if missing:
        absent = [k for k in missing if k not in value]
        if absent:
            problems.append(f"{where + ' ' if where else ''}lacks {', '.join(absent)}")
        problems[-1] += f"; {where or 'the whole record'} is left out"
        return _MISSING
    return out


# ---- the records -------------------------------------------------------------------------------
RUN = Obj({"name": STR, "experiment": STR, "array_index": INT, "seed": INT, "total_steps": INT,
           "created": STAMP, "versions": MapOf(STR)})

ATTEMPT = Obj({"attempt": REQ_INT, "start_time": NUM, "end_time": NUM, "start_step": INT,
               "end_step": INT, "resumed_from": INT, "reason": STR, "signal": STR,
               "exit_status": INT, "host": STR, "pid": INT, "slurm_job_id": ID,
               "slurm_array_task_id": INT, "slurm_restart_count": INT}, required=("attempt",))

EPISODE = Obj({"n": INT, "executor": STR, "job_id": ID, "restart_count": INT, "host": STR,
               "pid": INT, "trainer_pid": INT, "start_time": NUM, "end_time": NUM,
               "deadline": NUM, "signals": ListOf(REQ_STR), "signal_time": NUM,
               "trainer_exit": INT, "trainer_attempt": INT, "end_step": INT,
               "stop_cause": STR, "action": STR, "note": STR,
               # CPU seconds (rusage) of the trainer and of the job's own process (jobs/task.py)
               "cpu": Obj({"trainer_s": NUM, "job_s": NUM, "judgements": INT}),
               # jobs/prune.py: why the pruner stopped this episode's run
               "pruned": Obj({"verdict": STR, "reason": STR, "step": INT, "evals": INT,
                              "time": NUM, "finding": Obj({"kind": STR, "severity": STR,
                                                           "steps": STR, "summary": STR})})})
JOBS = Obj({"outcome": STR, "reason": STR, "episodes": ListOf(EPISODE)})

SUBMISSION = Obj({"job_id": ID, "by": STR, "submitted": NUM, "started": NUM,
                  "set": ListOf(REQ_STR), "queue": MapOf(ANY)})
TASK = Obj({"index": REQ_INT, "run": REQ_STR, "overrides": MapOf(ANY), "job_id": ID,
            "jobs": ListOf(SUBMISSION), "process": MapOf(ANY)}, required=("run",))
EXPERIMENT = Obj({"name": STR, "created": STAMP, "executor": STR, "config": STR,
                  "prune": Leaf((bool,)),  # `qgan submit --prune` (jobs/prune.py)
                  "prune_never_fit": Leaf((bool,)),  # `qgan submit --prune-never-fit`
                  "profile": MapOf(ANY, nullable=True),  # null: the local scheduler needs none
                  "tasks": ListOf(TASK), "job_ids": ListOf(ID),
                  "cancelled": ListOf(Obj({"time": NUM, "runs": ListOf(REQ_STR)})),
                  "report": Obj({"state": STR, "by": STR, "job_id": ID, "started": NUM,
                                 "ended": NUM, "exit": INT, "path": STR, "error": STR,
                                 "log": STR})})

FILES = MapOf(Obj({"sha256": REQ_STR, "bytes": INT}, required=("sha256",)))
_ENTRY = {"seq": REQ_INT, "step": REQ_INT, "wall_time": REQ_NUM, "folder": REQ_STR,
          "files": FILES}
CHECKPOINT_ENTRY = Obj(_ENTRY, required=tuple(_ENTRY))
BEST_ENTRY = Obj({**_ENTRY, "metric": STR, "mode": STR, "value": NUM}, required=tuple(_ENTRY))
MANIFEST = Obj({"format": INT, "checkpoints": ListOf(CHECKPOINT_ENTRY), "best": BEST_ENTRY})
CHECKSUMS = Obj({k: v for k, v in _ENTRY.items() if k != "folder"},
                required=("seq", "step", "wall_time", "files"))
LOCK = Obj({"pid": REQ_INT, "host": STR, "since": REQ_NUM}, required=("pid", "since"))

SPECS: dict[str, Any] = {"run": RUN, "attempt": ATTEMPT, "jobs": JOBS,
                         "experiment": EXPERIMENT, "manifest": MANIFEST,
                         "checksums": CHECKSUMS, "lock": LOCK}


class RecordError(ValueError):
    """A record that cannot be used at all (unreadable, refused, or not of its shape)."""


@dataclass
class Loaded:
    """What `load` found: `doc` (None when missing or unusable), the problems (one line each;
    empty when the record is clean) and whether the file was simply absent."""

    doc: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    missing: bool = False

    @property
    def usable(self) -> bool:
        return self.doc is not None


def load(path: Path | str, kind: str, *, root: Path | str | None = None) -> Loaded:
    """Read the JSON record at `path` (confined below `root`, bounded: qgan.saferead) and
    check it against `SPECS[kind]`. Never raises for what is in the file."""
    path = Path(path)
    try:
        raw = saferead.read_json(path, kind, root=root)
    except FileNotFoundError:
        return Loaded(None, [], missing=True)
    except saferead.ReadRefused as exc:
        return Loaded(None, [str(exc)])
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Loaded(None, [f"{path} is unreadable: {reason}"])
    doc, problems = check(raw, SPECS[kind], str(path))
    return Loaded(doc, problems)
