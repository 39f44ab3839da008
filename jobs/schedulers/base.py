"""The scheduler type: one core (`jobs/experiment.py`, `jobs/task.py`, `jobs/progress.py`,
`jobs/drill.py`) and one subclass per scheduler (local, SLURM) with overridden hooks, as
submitit has one core and an executor per scheduler.

`Scheduler` itself is the "no scheduler" case: a `TrainJob` called directly, or a bare run
directory made by `qgan train` (its experiment says `executor = "none"`). Nobody can requeue
it, it has no deadline, no job id and no live state.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from jobs import ledger
from jobs.profiles import Profile
from qgan.errors import UserError
from qgan.vocabulary import RunOutcome


class Scheduler:
    """Hooks the core calls; each answers for one scheduler. Never raises on a scheduler that
    does not answer (status and the job callable must keep working)."""

    name = "none"
    #: SLURM sends the time-limit warning itself; elsewhere `qgan drill` rehearses it with USR2
    #: and the stop is recorded as `requested` when the job has a deadline.
    sends_time_limit_warning = False
    #: submissions are shaped by a cluster profile (a default one when none is given)
    needs_profile = False

    # -- submission side (`qgan submit`, `qgan resubmit`, `qgan drill`) -------------------------
    def check_profile(self, explicit: bool, dry_run: bool) -> None:
        """Refuse (UserError) a submission this scheduler cannot make without a profile given
        (`explicit`: --profile was passed)."""

    def dry_run(self, profile: Profile | None, folder: Path, job_name: str, n_tasks: int,
                parallel: int | None = None) -> str:
        """What `--dry-run` prints besides the task table ("" when there is nothing to show)."""
        return ""

    def resolve_parallel(self, requested: int | None, profile: Profile | None) -> int | None:
        """Runs at once (`--parallel`, else the profile's array_parallelism, else a default);
        None: the scheduler's own default."""
        return requested

    def submit(self, exp_dir: Path, jobs: list, profile: Profile | None, job_name: str,
               parallel: int | None, submitted: float, report: bool = False) -> None:
        """Submit one job per `TrainJob` (their runs' newest submission, made at `submitted`,
        is recorded already) and record each job id with `ledger.record_job`; with `report`,
        have `<experiment>/report.html` written when they have all ended (jobs/report_job)."""
        raise UserError(f"executor {self.name!r} cannot submit jobs")

    # -- status side (`qgan status`) ------------------------------------------------------------
    def accounting(self, job_ids: list[str]) -> dict[str, list[str]]:
        """{job id: [state of each requeue episode]} from the scheduler's accounting."""
        return {}

    def live_states(self, exp: dict, ids: dict[str, str],
                    acct: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
        """{run: (state, reason)} for the runs the scheduler knows, from its queue and `acct`
        (this scheduler's `accounting` of the same jobs); {} when it does not answer."""
        return {}

    # -- cancel side (`qgan cancel`) ------------------------------------------------------------
    def refuse_targets(self, exp: dict, targets: dict[str, str]) -> dict[str, str]:
        """{run: why} for the runs (of {run: job id}) that must not be signalled; checked
        before the cancellation is recorded."""
        return {}

    def cancel_jobs(self, exp: dict, targets: dict[str, str]) -> list[str]:
        """Cancel {run: job id}; return a line per failure."""
        return [f"{run}: executor {self.name!r} has no jobs to cancel" for run in targets]

    # -- job side (inside the submitted callable) -----------------------------------------------
    def current_job_id(self) -> str | None:
        return None

    def deadline(self, started: float) -> float | None:
        """When this job's time limit runs out (epoch seconds), None if it has none."""
        return None

    def cancelled_by_scheduler(self) -> bool:
        """The scheduler itself says this job was cancelled (not preempted)."""
        return False

    def requeue(self, run_dir: Path, doc: dict, episode: dict) -> dict[str, Any]:
        """Put this job back in the queue (raises SystemExit where the scheduler restarts it).
        Called directly, nobody can requeue: say so."""
        episode["action"] = "none"
        ledger.write_jobs(run_dir, doc)
        return {"run": str(run_dir), "outcome": RunOutcome.INTERRUPTED,
                "cause": episode["stop_cause"]}

    # -- drill side (`qgan drill`) --------------------------------------------------------------
    def preflight(self, drill) -> bool:
        """Checks before submitting; False stops the drill. A note is not a failure (before
        the schedulers, the local drill stopped here: `record` of a note returns False)."""
        drill.record("scheduler", None, f"{self.name} executor: signals are sent by the drill")
        return True

    def job_state(self, job_id: str | None) -> str:
        return ""

    def release(self, job_id: str | None, seen: dict[str, float]) -> None:
        """Let a requeued job start now rather than after the scheduler's hold."""

    def send_signal(self, job_id: str | None, name: str, pid: int | None) -> str:
        """Send SIG`name` to the job as its scheduler would (to its callable's pid here)."""
        if pid:
            os.kill(int(pid), getattr(signal, f"SIG{name}"))
        return f"SIG{name} sent to the job (pid {pid})"

    def preempt(self, job_id: str | None, profile: Profile, pid: int | None) -> str:
        return self.send_signal(job_id, "TERM", pid)

    def provoke_time_limit(self, job_id: str | None, profile: Profile, pid: int | None,
                           wait_s: float) -> str:
        return self.send_signal(job_id, "USR2", pid)
