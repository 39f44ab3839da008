"""One run's share of the report: its reduced series, sample frames and notable events, the
part of the page that needs the run's data. Computed where the run is loaded (a worker
process, analysis/cache.py) and cached beside its diagnosis as the `Extra` RUN_PART, so a
report of a sweep where one run changed loads one run, not all of them.

The cached document is untrusted input: `check` accepts only what `compute` writes.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from analysis.cache import Extra
from analysis.diagnosis import RunDiagnosis
from analysis.rundata import RunData
from qgan import __version__
from reports import payload

# too many to list (one per checkpoint, per improving eval, per NaN step); counted elsewhere
ROUTINE_EVENTS = ("checkpoint_written", "best_checkpoint", "nonfinite_step")
MAX_EVENTS = 200
EVENT_FIELDS = ("attempt", "step", "kind", "severity", "message")


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None and math.isfinite(float(v)) else None
    except (TypeError, ValueError):
        return None


def events(run: RunData) -> list[dict[str, Any]]:
    """The run's events worth reading, oldest first, at most MAX_EVENTS."""
    ev = run.events
    if ev.empty:
        return []
    ev = ev[~ev["kind"].isin(ROUTINE_EVENTS)].head(MAX_EVENTS)
    return [{"attempt": _int_or_none(r["attempt"]), "step": _int_or_none(r["step"]),
             "kind": str(r["kind"]), "severity": str(r["severity"]),
             "message": "" if r["message"] is None else str(r["message"])}
            for r in ev[list(EVENT_FIELDS)].to_dict("records")]


def compute(run: RunData, rd: RunDiagnosis) -> dict[str, Any]:
    """The run's report part, from its loaded data."""
    best = payload.best_step(rd)
    return {"series": payload.run_series(run.steps, run.evals),
            "samples": payload.run_samples(run, [best] if best else []),
            "events": events(run)}


def of(rd: RunDiagnosis) -> dict[str, Any]:
    """The cached part when the diagnosis carries it, else computed from the loaded run."""
    part = rd.extras.get(RUN_PART.name)
    if part is not None:
        return part
    if not rd.run.loaded:
        raise ValueError(f"{rd.run.name}: neither loaded nor a cached report part")
    return compute(rd.run, rd)


# ---- the strict reading of a cached part ----------------------------------------------------

def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(f"the report part: {what}")


def _is_int(v: Any) -> bool:
    return type(v) is int  # not a bool


_INT = {int}
_FLOAT_OR_NULL = {float, type(None)}


def _ints(v: Any, what: str) -> None:
    # set(map(type, ...)): the per-element check in C; a report reads ~10^6 of these
    _need(isinstance(v, list) and set(map(type, v)) <= _INT, what)


def _series(t: Any) -> None:
    _need(isinstance(t, dict) and "x" in t and all(isinstance(k, str) for k in t), "a table")
    _ints(t["x"], "a table's steps")
    for k, v in t.items():
        if k != "x":
            _need(isinstance(v, list) and len(v) == len(t["x"]) and
                  set(map(type, v)) <= _FLOAT_OR_NULL, f"the column {k!r}")


def _samples(s: Any) -> None:
    if s is None:
        return
    keys = {"dim", "lim", "steps", "best", "axes", "real", "frames"}
    _need(isinstance(s, dict) and s.get("dim") in (1, 2) and
          set(s) == (keys | {"bins"} if s["dim"] == 1 else keys), "the samples' fields")
    _need(isinstance(s["lim"], list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, float) for x in p)
        for p in s["lim"]), "the samples' limits")
    _ints(s["steps"], "the samples' steps")
    _need(s["best"] is None or _is_int(s["best"]), "the samples' best step")
    _need(isinstance(s["axes"], list) and all(isinstance(a, str) for a in s["axes"]),
          "the samples' axes")
    _ints(s["real"], "the real samples")
    _need(isinstance(s["frames"], list) and len(s["frames"]) == len(s["steps"]),
          "the samples' frames")
    for f in s["frames"]:
        _ints(f, "a frame")
    _need(s["dim"] == 2 or _is_int(s["bins"]), "the histogram's bins")


def check(doc: Any) -> None:
    """ValueError unless `doc` has exactly the shape and types `compute` writes."""
    _need(isinstance(doc, dict) and set(doc) == {"series", "samples", "events"}, "its fields")
    _need(isinstance(doc["series"], dict) and set(doc["series"]) == {"steps", "evals"},
          "its series")
    _series(doc["series"]["steps"])
    _series(doc["series"]["evals"])
    _samples(doc["samples"])
    _need(isinstance(doc["events"], list) and len(doc["events"]) <= MAX_EVENTS, "its events")
    for e in doc["events"]:
        _need(isinstance(e, dict) and set(e) == set(EVENT_FIELDS), "an event's fields")
        _need(all(e[k] is None or _is_int(e[k]) for k in ("attempt", "step")), "an event's step")
        _need(all(isinstance(e[k], str) for k in ("kind", "severity", "message")),
              "an event's text")


def _code() -> str:
    """The version and the code that computes a part: a changed payload recomputes it."""
    h = hashlib.sha256(__version__.encode())
    for p in (Path(payload.__file__), Path(__file__)):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


RUN_PART = Extra("report", compute, check, _code())
