"""Thin, never-fatal wrappers around the SLURM client commands.

Status and the job callable must keep working when a command is missing, slow or failing
(a login node without sacct, a compute node without scontrol): every helper returns None or an
empty result instead of raising, and logs why at debug level.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from datetime import datetime

log = logging.getLogger(__name__)


def have(command: str) -> bool:
    return shutil.which(command) is not None


def run(*cmd: str, timeout: float = 30) -> str | None:
    """stdout of a SLURM command, or None if it is missing or fails."""
    if not have(cmd[0]):
        log.debug("%s not on PATH", cmd[0])
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", " ".join(cmd), exc)
        return None
    if proc.returncode != 0:
        log.debug("%s exited %s: %s", " ".join(cmd), proc.returncode, proc.stderr.strip())
        return None
    return proc.stdout


def run_status(*cmd: str, timeout: float = 60) -> tuple[int, str]:
    """(exit status, stdout+stderr) of a command; 127 if it is missing."""
    if not have(cmd[0]):
        return 127, f"{cmd[0]}: command not found"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 124, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def parse_fields(line: str) -> dict[str, str]:
    """`scontrol show ... -o` output (KEY=VALUE tokens) as a dict."""
    out: dict[str, str] = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def show_job(job_id: str) -> dict[str, str] | None:
    text = run("scontrol", "show", "job", job_id, "-o")
    if not text:
        return None
    return parse_fields(text.splitlines()[0])


def show_config() -> dict[str, str]:
    """`scontrol show config` as a dict (empty when unavailable)."""
    text = run("scontrol", "show", "config") or ""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def show_partition(name: str) -> dict[str, str] | None:
    text = run("scontrol", "show", "partition", name, "-o")
    return parse_fields(text.splitlines()[0]) if text else None


def max_array_size() -> int | None:
    value = show_config().get("MaxArraySize")
    return int(value) if value and value.isdigit() else None


def parse_time(value: str | None) -> float | None:
    """A SLURM timestamp (local time, 2026-11-21T22:42:48) as epoch seconds."""
    if not value or value in ("Unknown", "None", "N/A"):
        return None
    try:
        return time.mktime(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").timetuple())
    except ValueError:
        return None


def parse_duration(value: str | None) -> float | None:
    """A SLURM duration ([D-]HH:MM:SS, MM:SS, UNLIMITED) in seconds; None when unlimited."""
    if not value or value in ("UNLIMITED", "Partition_Limit", "INFINITE", "NOT_SET"):
        return None
    days = 0
    if "-" in value:
        d, _, value = value.partition("-")
        days = int(d)
    parts = [int(p) for p in value.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts[-3:]
    return days * 86400 + h * 3600 + m * 60 + s


def job_deadline(job_id: str) -> float | None:
    """When the job's time limit runs out: StartTime + TimeLimit (read now, so a limit
    changed while the job runs counts). EndTime is not used: a preemption rewrites it."""
    info = show_job(job_id)
    if not info:
        return None
    start = parse_time(info.get("StartTime"))
    limit = parse_duration(info.get("TimeLimit"))
    if start is None or limit is None:
        return None
    return start + limit


def current_job_id() -> str | None:
    """This process's job as scontrol/scancel want it (ARRAYID_TASK for array tasks)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def queue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id (A_i for array tasks): (state, reason)} for jobs still in the queue."""
    if not job_ids:
        return {}
    text = run("squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r")
    out = {}
    for line in (text or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def accounting(job_ids: list[str]) -> dict[str, list[str]]:
    """{job id: [state of each requeue episode, oldest first]} from sacct (-D keeps the
    episodes a requeue replaced: PREEMPTED, REQUEUED, TIMEOUT)."""
    if not job_ids:
        return {}
    text = run("sacct", "-n", "-X", "-D", "-P", "-j", ",".join(job_ids), "-o", "JobID,State")
    out: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 2 and parts[0]:
            out.setdefault(parts[0], []).append(parts[1].split()[0] if parts[1] else "")
    return out


RELEASE_AFTER_S = 5.0  # a requeued job stays held this long before release_held lets it go


def release_held(job_id: str, seen: dict[str, float]) -> bool:
    """Let a requeued job start now instead of after SLURM's ~2-minute BeginTime hold, but only
    RELEASE_AFTER_S after it was first seen held (`seen` keeps those times across calls).
    Released at once, it can be allocated before slurmd has finished with the previous run,
    and SLURM then kills it: "Killing non-startable batch job: Job credential revoked", FAILED,
    never requeued again (seen in CI, released 0.4 s after the requeue)."""
    info = show_job(job_id) or {}
    if info.get("JobState") != "PENDING" or info.get("Reason") != "BeginTime":
        seen.pop(job_id, None)
        return False
    first = seen.setdefault(job_id, time.monotonic())
    if time.monotonic() - first < RELEASE_AFTER_S:
        return False
    seen.pop(job_id, None)
    return run_status("scontrol", "update", f"jobid={job_id}", "StartTime=now")[0] == 0
