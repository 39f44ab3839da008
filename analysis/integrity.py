"""Checkpoint integrity: checkpoints rejected on resume and checkpoint writes that failed.

Both are silent in the step metrics (the run goes on), yet both cost work: a rejected
checkpoint sends the resume back to an older one, and a failed write leaves the previous one
as the newest. Only the events table says so; this module turns those events into findings.
"""

from __future__ import annotations

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import as_int, events_of
from qgan.vocabulary import FindingKind


def _resume_step(run: RunData, attempt: int) -> int | None:
    """The step the attempt resumed from: its first `checkpoint_restored` that is not a
    rollback (rollback restores carry `from_step`)."""
    for _, att, d in events_of(run.events, "checkpoint_restored"):
        if att == attempt and "from_step" not in d and isinstance(d.get("step"), int):
            return d["step"]
    return None


def diagnose_checkpoints(run: RunData, th: dict[str, float]) -> list[Finding]:
    out = []
    for ev_step, att, d in events_of(run.events, "checkpoint_rejected"):
        ck_step = as_int(d.get("step"))
        resumed = _resume_step(run, att)
        redone = ck_step - resumed if ck_step is not None and resumed is not None else None
        at = ck_step if ck_step is not None else ev_step
        out.append(Finding(
            FindingKind.CHECKPOINT_REJECTED, "warning" if resumed is not None else "error", run.name,
            f"attempt {att} rejected checkpoint {d.get('path', '?')}"
            + (f" (step {ck_step})" if ck_step is not None else "")
            + f": {d.get('reason', 'no reason recorded')}; "
            + (f"resumed from step {resumed} instead" if resumed is not None
               else "no older checkpoint restored, training restarted"),
            "A committed checkpoint failed verification, so the storage damaged it after it "
            "was written (writes are atomic and checksummed): check the file system (quota, "
            "node-local scratch, copies between clusters) and keep checkpoint.keep >= 2 so an "
            "older checkpoint is always there to fall back on.", at, at,
            {"attempt": att, "path": d.get("path"), "checkpoint_step": ck_step,
             "reason": d.get("reason"), "resumed_from_step": resumed,
             "steps_redone": redone}))
    for ev_step, att, d in events_of(run.events, "checkpoint_failed"):
        out.append(Finding(
            FindingKind.CHECKPOINT_FAILED, "warning", run.name,
            f"attempt {att}: writing the checkpoint at step {ev_step} failed: "
            f"{d.get('error', 'no error recorded')}",
            "The previous checkpoint stayed the newest, so a preemption now loses more work: "
            "free disk space or move checkpoints to a file system with room.",
            ev_step, ev_step, {"attempt": att, "error": d.get("error")}))
    return out
