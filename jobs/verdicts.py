"""Live verdicts for `qgan status` rows: the postmortem's rules applied to what each run has
written so far (analysis/live.py), with each run's diagnosis cached in its own folder
(analysis/cache.py), so a refresh re-diagnoses only the runs that wrote something new."""

from __future__ import annotations

import logging
from pathlib import Path

from analysis.live import experiment_verdicts
from jobs import progress

log = logging.getLogger(__name__)

UNKNOWN = {"verdict": None, "verdict_reason": "", "terminal": False, "worst": None}


def overrides(exp: dict) -> dict[str, dict]:
    tasks = exp.get("tasks") if isinstance(exp.get("tasks"), list) else []
    return {str(t.get("run")): t["overrides"] for t in tasks
            if isinstance(t, dict) and isinstance(t.get("overrides"), dict)}


def running(row: dict) -> bool:
    """A run that still trains, or will: its verdict is a live one."""
    return not progress.is_terminal(row) and row["state"] not in ("STOPPED",)


def add_live_verdicts(exp_dir: Path, exp: dict, rows: list[dict]) -> None:
    """Add `verdict` (a Verdict, or "too_early"), `verdict_reason`, `terminal` (a pruner
    would stop it) and `worst` (the worst finding: kind, severity, steps, summary) to every
    row. Never raises: a status without verdicts beats no status."""
    try:
        live = experiment_verdicts([Path(r["path"]) for r in rows],
                                   {r["run"]: running(r) for r in rows}, overrides(exp))
    except Exception as exc:  # noqa: BLE001 - damaged data must not break status
        log.warning("live verdicts unavailable: %s", exc)
        live = {}
    for r in rows:
        v = live.get(r["run"])
        r.update(UNKNOWN if v is None else {"verdict": v.verdict, "verdict_reason": v.reason,
                                            "terminal": v.terminal, "worst": v.worst})
