"""The local scheduler: submitit's LocalExecutor, one controller process per run on this machine.

A job id is the controller's pid. It is recorded with the process's identity (start time and
command line), so that `qgan cancel` never signals a recycled pid or one edited into
experiment.json. A requeue is the task exiting LOCAL_REQUEUE: the controller starts it again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobs import ledger
from jobs.schedulers.base import Scheduler
from jobs.profiles import Profile
from qgan.errors import UserError

log = logging.getLogger(__name__)

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # the local executor has no time limit worth the name
LOCAL_NOMINAL_TIMEOUT_S = 24 * 3600  # a limit this long or longer is no deadline
LOCAL_REQUEUE = 144  # submitit's local controller restarts a task that exits with this
CONTROLLER_MODULE = "submitit.local._local"  # what a local job's controller process runs
QUEUE_START_S = 60.0  # `qgan submit` waits this long for the queue to start its first runs
QUEUE_MODULE = "jobs.schedulers.local_queue"  # what the local queue process runs


def process_identity(pid: int) -> dict | None:
    """What names one process for its whole life on Linux: its start time (clock ticks after
    boot, /proc/<pid>/stat field 22) and command line. Recorded at submit for each local
    controller, so a recycled pid, or a pid edited into experiment.json, is never taken for
    ours. None if the process does not exist (or is a zombie)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return {"start": int(fields[19]), "cmdline": cmdline.replace(b"\0", b" ").decode(
        "utf-8", "replace").strip()}


def settled_identity(pid: int, marker: str, timeout: float = 10.0) -> dict | None:
    """The identity of a process we just started, once it runs `marker` (e.g. its module).
    Right after fork /proc shows the parent's command line: recorded then, the identity would
    never match again and the live process would read as ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        who = process_identity(pid)
        if who is None or marker in who["cmdline"]:
            return who
        time.sleep(0.01)
    return process_identity(pid)


def is_our_process(job_id: str | None, identity: object) -> bool:
    """The local controller `job_id` is alive and is the very process recorded at submit."""
    if not job_id or not str(job_id).isdigit() or not isinstance(identity, dict):
        return False
    return process_identity(int(job_id)) == {"start": identity.get("start"),
                                             "cmdline": identity.get("cmdline")}


def local_alive(job_id: str | None, identity: object = None) -> bool:
    """A local executor's controller (job id = its pid) is still running. With the identity
    recorded at submit, the process must also be that one (not a recycled pid)."""
    if identity is not None:
        return is_our_process(job_id, identity)
    if not job_id or not job_id.isdigit():
        return False
    try:
        os.kill(int(job_id), 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie or a recycled pid is not our controller
        stat = Path(f"/proc/{job_id}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def start_queue(spec: dict, folder: Path) -> subprocess.Popen:
    """Write the queue's spec and start the queue process (jobs/schedulers/local_queue.py), detached from the caller's
    terminal (its session, its stdin/stdout): a submission outlives `qgan submit`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"queue-{time.time_ns()}.json"
    path.write_text(json.dumps(spec, indent=2))
    out = os.open(folder / "controllers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return subprocess.Popen([sys.executable, "-m", QUEUE_MODULE, str(path)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(out)


def queue_identity(proc: subprocess.Popen, timeout: float = 10.0) -> dict | None:
    """The queue process's identity once it runs this module (right after fork, /proc still
    shows the parent's command line: recorded then, it would never match again)."""
    return settled_identity(proc.pid, QUEUE_MODULE, timeout)


def default_parallel(profile: Profile | None) -> int:
    """Runs at once on this machine: the profile's array_parallelism when a profile is given
    (it means the same on both executors), else the CPUs this process may use divided by the
    threads one run uses (TF_NUM_INTRAOP_THREADS when set, else the profile's cpus, 1)."""
    if profile is not None and profile.source != "(defaults)":
        return profile.array_parallelism
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    per_run = int(threads) if threads.isdigit() and int(threads) > 0 else (
        profile.cpus if profile else 1)
    return max(1, (cpus or 1) // per_run)


class LocalScheduler(Scheduler):
    name = "local"

    # -- submission ----------------------------------------------------------------------------
    @staticmethod
    def executor(folder: Path, timeout_min: float, signal_delay: int):
        import submitit  # lazy: submitit, only to submit

        ex = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=10**6)
        ex.update_parameters(timeout_min=timeout_min, signal_delay_s=signal_delay,
                             stderr_to_stdout=True)
        return ex

    def resolve_parallel(self, requested: int | None, profile: Profile | None) -> int:
        return requested or default_parallel(profile)

    def submit(self, exp_dir: Path, jobs: list, profile: Profile | None, job_name: str,
               parallel: int | None, submitted: float, report: bool = False) -> None:
        """Hand the runs to a local queue process (jobs/schedulers/local_queue.py) and wait
        until it has started the first `parallel` of them."""
        parallel = self.resolve_parallel(parallel, profile)
        explicit = profile is not None and profile.source != "(defaults)"
        spec = {"exp_dir": str(exp_dir), "name": jobs[0].experiment if jobs else job_name,
                "submitted": submitted, "parallel": parallel, "report": report,
                "runs": [{"run": Path(j.run_dir).name, "index": j.index,
                          "overrides": j.overrides} for j in jobs],
                "policy": jobs[0].policy if jobs else {},
                "timeout_min": profile.time if explicit else LOCAL_TIMEOUT_MIN,
                "signal_delay": profile.signal_delay if profile else 120}
        proc = start_queue(spec, exp_dir / ledger.SUBMITIT_DIR)
        queue = {"pid": proc.pid, "process": queue_identity(proc), "parallel": parallel}
        runs = [r["run"] for r in spec["runs"]]

        def note_queue(exp: dict) -> None:
            if report:
                exp["report"] = {"state": "waiting", "by": "local queue", "job_id": None}
            for run, entries in ledger.job_history(exp).items():
                if run in runs and entries and entries[-1].get("submitted") == submitted:
                    entries[-1]["queue"] = queue

        ledger.update_experiment(exp_dir, note_queue)
        first = runs[:parallel]
        deadline = time.monotonic() + QUEUE_START_S
        while time.monotonic() < deadline:
            exp = ledger.read_experiment(exp_dir) or {}
            started = ledger.task_job_ids(exp)
            skipped = ledger.cancelled_runs(exp)
            if all(r in started or r in skipped for r in first):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise UserError(f"the local queue (pid {proc.pid}) did not start the first run(s) "
                        f"within {QUEUE_START_S:.0f} s (exit {proc.poll()}): see "
                        f"{exp_dir / ledger.SUBMITIT_DIR / 'controllers.log'}")

    # -- status --------------------------------------------------------------------------------
    def live_states(self, exp: dict, ids: dict[str, str],
                    acct: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
        """A controller alive is RUNNING; a run waiting in a live queue is PENDING; one whose
        queue is gone before starting it has ENDED (submit it again: `qgan resubmit`)."""
        who = ledger.task_field(exp, "process")
        out = {run: ("RUNNING", "") if local_alive(jid, who.get(run)) else ("ENDED", "")
               for run, jid in ids.items()}
        cancelled = ledger.cancelled_runs(exp)
        for run, queue in ledger.queued_runs(exp).items():
            if run in cancelled:
                out[run] = ("CANCELLED", "while queued")
            elif local_alive(str(queue.get("pid")), queue.get("process")):
                out[run] = ("PENDING", f"queued: {queue.get('parallel')} run(s) at a time")
            else:
                out[run] = ("ENDED", "its local queue ended before starting it")
        return out

    # -- cancel --------------------------------------------------------------------------------
    def refuse_targets(self, exp: dict, targets: dict[str, str]) -> dict[str, str]:
        # A pid from experiment.json is only signalled if it is still the controller that
        # submit started (start time and command line recorded then): a stale or edited
        # ledger must never make us signal an unrelated process.
        who = ledger.task_field(exp, "process")
        return {run: f"{run} (job {job_id}): process {job_id} is not the job controller `qgan "
                "submit` started (its start time or command line differs from experiment.json: "
                "a reused pid or an edited file); not signalled"
                for run, job_id in targets.items()
                if local_alive(job_id) and not is_our_process(job_id, who.get(run))}

    def cancel_jobs(self, exp: dict, targets: dict[str, str]) -> list[str]:
        """The controller gets SIGTERM, which it forwards to our callable and then waits: the
        callable has the trainer checkpoint, sees the cancellation in experiment.json and
        records the episode as cancelled. (Not SIGINT: submitit's controller answers it by
        killing the callable a second later, before it can record anything.)"""
        who = ledger.task_field(exp, "process")
        for run, job_id in targets.items():
            if is_our_process(job_id, who.get(run)):
                try:
                    os.kill(int(job_id), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return []

    # -- job side ------------------------------------------------------------------------------
    def current_job_id(self) -> str | None:
        return os.environ.get("SUBMITIT_LOCAL_JOB_ID")

    def deadline(self, started: float) -> float | None:
        # The local executor's default limit is nominal (a week): no deadline to compare
        # with, so a USR2 there counts as the time-limit warning.
        timeout = float(os.environ.get("SUBMITIT_LOCAL_TIMEOUT_S") or 0)
        return started + timeout if 0 < timeout < LOCAL_NOMINAL_TIMEOUT_S else None

    def requeue(self, run_dir: Path, doc: dict, episode: dict) -> dict[str, Any]:
        log.info("requeueing %s (local executor: exit %s)", run_dir, LOCAL_REQUEUE)
        raise SystemExit(LOCAL_REQUEUE)
