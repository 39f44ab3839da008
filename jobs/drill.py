"""`qgan drill`: a fire drill of the user's cluster with a tiny run, in a few minutes.

Steps: preflight (commands, cluster requeue settings) -> submit -> the job writes to the run
directory (shared filesystem) -> a preemption (a real one through `preempt_partition`, else
SIGTERM like one) is checkpointed and requeued -> the next attempt resumes where the last one
stopped -> a time-limit warning (the job's own limit is lowered, so SLURM itself sends the
`--signal`) is checkpointed and requeued -> resumed again, no step lost. Every failed step comes
with the concrete fix.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from jobs import schedulers, ledger
from jobs import progress
from jobs.experiment import cancel, submit_tasks
from qgan.config import config_from_dict
from jobs.profiles import Profile
from jobs.sweep import Task
from qgan import saferead, schema
from qgan.vocabulary import StopCause

log = logging.getLogger(__name__)

DRILL_CONFIG = {
    "run": {"name": "drill", "seed": 1},
    "generator": {"backend": "compiled", "cutoff": 3},
    "loss": {"n_critic": 1},
    "data": {"n_train": 64, "n_holdout": 16},
    "train": {"steps": 20000, "batch_size": 4, "log_every": 100},
    "eval": {"every_steps": 200, "n_samples": 16, "save_samples": 0},
    "checkpoint": {"every_steps": 100},
    "monitor": {"stop_on_critical": False, "collapse_action": "none", "patience": 0},
}


@dataclass
class Step:
    name: str
    ok: bool | None = None  # None = skipped
    detail: str = ""
    fix: str = ""


@dataclass
class Drill:
    kind: str
    profile: Profile
    runs_root: Path
    wait_s: float = 180.0
    steps: list[Step] = field(default_factory=list)
    exp_dir: Path | None = None
    job_id: str | None = None
    held_since: dict[str, float] = field(default_factory=dict)  # Scheduler.release
    say: Callable[[str], None] = print

    @property
    def scheduler(self) -> schedulers.Scheduler:
        return schedulers.get(self.kind)

    # -- helpers -------------------------------------------------------------------------------
    def record(self, name: str, ok: bool | None, detail: str = "", fix: str = "") -> bool:
        self.steps.append(Step(name, ok, detail, fix))
        mark = {True: "PASS", False: "FAIL", None: "NOTE"}[ok]
        self.say(f"[{mark}] {name}" + (f": {detail}" if detail else ""))
        if ok is False and fix:
            self.say(f"       fix: {fix}")
        return bool(ok)

    @property
    def run_dir(self) -> Path:
        assert self.exp_dir is not None
        return self.exp_dir / "task-000"

    def episodes(self) -> list[dict]:
        return ledger.read_jobs(self.run_dir)["episodes"]

    def wait(self, predicate: Callable[[], object], timeout: float, poll: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.release()
            time.sleep(poll)
        return None

    def job_state(self) -> str:
        return self.scheduler.job_state(self.job_id)

    def release(self) -> None:
        """A requeued job may be held (SLURM: ~2 min BeginTime); ask for sooner."""
        self.scheduler.release(self.job_id, self.held_since)

    def log_tail(self) -> str:
        if not self.exp_dir:
            return ""
        logs = sorted((self.exp_dir / ledger.SUBMITIT_DIR).glob("*/*_log.out"))
        if not logs:
            return "(no job log found)"
        return "\n".join(saferead.tail_lines(logs[-1], 8, root=self.exp_dir))

    # -- the drill -----------------------------------------------------------------------------
    def preflight(self) -> bool:
        return self.scheduler.preflight(self)

    def submit(self) -> bool:
        name = f"drill-{time.strftime('%Y%m%d-%H%M%S')}"
        self.exp_dir = (self.runs_root / name).resolve()
        cfg = config_from_dict(DRILL_CONFIG, "drill config")
        try:
            doc = submit_tasks(self.exp_dir, name, self.kind, self.profile, None,
                               [Task(0, "task-000", {})], [cfg])
        except Exception as exc:  # noqa: BLE001 - a refused submission is a drill finding
            return self.record("submit", False, str(exc),
                               "check the profile's partition, time and memory against "
                               "`sinfo -s` and your account's limits")
        self.job_id = doc["tasks"][0]["job_id"]
        return self.record("submit", True, f"job {self.job_id}, run directory {self.run_dir}")

    def first_attempt(self) -> bool:
        started = self.wait(lambda: ledger.trainer_attempts(self.run_dir), self.wait_s)
        if not started:
            state = self.job_state()
            if state == "RUNNING":
                return self.record(
                    "job writes to the run directory", False,
                    f"job {self.job_id} is RUNNING but nothing appeared in {self.run_dir}",
                    "the run directory is not on a filesystem shared with the compute nodes: "
                    "pass --runs-root on a shared filesystem (e.g. $HOME or /scratch)")
            return self.record("job starts", False, f"no attempt within {self.wait_s:.0f} s "
                               f"(job state {state or 'unknown'}); log:\n{self.log_tail()}",
                               "see the job log; if it is PENDING, the partition may be busy: "
                               "rerun the drill with a longer --wait or another partition")
        progressed = self.wait(lambda: (ledger.newest_checkpoint_step(self.run_dir) or 0) >= 100,
                               self.wait_s)
        if not progressed:
            return self.record("training progresses", False, "no checkpoint after step 0 within "
                               f"{self.wait_s:.0f} s; log:\n{self.log_tail()}",
                               "see the run's logs/ folder")
        return self.record("job starts and trains", True,
                           f"checkpoint at step {ledger.newest_checkpoint_step(self.run_dir)}")

    def _interrupt_and_resume(self, what: str, trigger: Callable[[], str], want: str) -> bool:
        current = len(self.episodes()) - 1  # the running episode
        how = trigger()
        ep = self.wait(lambda: self.episodes()[current].get("stop_cause")
                       and self.episodes()[current], self.wait_s)
        if not ep:
            state = self.job_state()
            fix = ("no signal reached the job: with `qgan submit` the signal goes to the job "
                   "steps (--signal=USR2@N, no B:); in hand-written scripts use "
                   "--signal=B:USR2@N and trap it in the batch shell (slurm/examples/train.sbatch)")
            if what == "preemption" and self.profile.preempt_partition:
                fix = (f"the job in {self.profile.preempt_partition!r} did not preempt it: check "
                       "PreemptType/PreemptMode and the partitions' PriorityTier")
            return self.record(f"{what} signal delivered", False,
                               f"{how}; no stop recorded (job {state or 'gone'})", fix)
        if ep.get("trainer_exit") != schema.EXIT_RESUME:
            return self.record(f"{what} checkpointed", False,
                               f"trainer exit {ep.get('trainer_exit')} after {ep.get('signals')}",
                               "the trainer was killed before it could checkpoint: the grace "
                               "time (KillWait / GraceTime) or the signal delay is shorter than "
                               "one step plus a checkpoint; raise signal_delay in the profile")
        self.record(f"{what} checkpointed", True, f"{how}; stop recorded as {ep['stop_cause']} at "
                    f"step {ep.get('end_step')}")
        # Where the drill sends the warning itself and the job has a deadline, the stop is
        # (rightly) a requested one.
        ok = ep["stop_cause"] == want or (want == StopCause.TIME_LIMIT
                                          and not self.scheduler.sends_time_limit_warning
                                          and ep["stop_cause"] == StopCause.REQUESTED)
        if not ok:
            self.record(f"{what} recognised", False, f"recorded as {ep['stop_cause']}",
                        "the job's deadline could not be read (scontrol missing on the compute "
                        "node?): install the SLURM client commands on the nodes")
        if ep.get("action") == "requeue_failed":
            return self.record(f"requeued after {what}", False, ep.get("note", ""),
                               "requeue is not permitted for this job: set requeue = true in the "
                               "profile, or ask the admins to allow it (JobRequeue=1)")
        resumed = self.wait(lambda: len(ledger.trainer_attempts(self.run_dir)) > (ep.get(
            "trainer_attempt") or 0) and ledger.trainer_attempts(self.run_dir)[-1]
            .get("resumed_from") is not None, self.wait_s)
        if not resumed:
            state = self.job_state() or "unknown"
            acct = self.scheduler.accounting([self.job_id or ""]).get(self.job_id or "", [])
            return self.record(f"requeued after {what}", False,
                               f"no new attempt within {self.wait_s:.0f} s; job state {state}, "
                               f"sacct {acct}",
                               "the job was not requeued: the partition's PreemptMode must be "
                               "REQUEUE (not CANCEL), the cluster must allow requeue "
                               "(JobRequeue=1 or requeue = true in the profile); a requeued job "
                               "may also wait in BeginTime for ~2 minutes")
        att = ledger.trainer_attempts(self.run_dir)[-1]
        lost = (ep.get("end_step") or 0) - (att.get("resumed_from") or 0)
        return self.record(f"resumed after {what}", lost == 0,
                           f"attempt {att['attempt']} resumed from step {att.get('resumed_from')}"
                           f" (stopped at {ep.get('end_step')}; {max(lost, 0)} step(s) lost)",
                           "the checkpoint written at the signal was not the one restored: "
                           "check the run's events for checkpoint_rejected")

    def _pid(self) -> int | None:
        eps = self.episodes()
        return eps[-1].get("pid") if eps else None

    def preempt(self) -> str:
        return self.scheduler.preempt(self.job_id, self.profile, self._pid())

    def time_limit(self) -> str:
        return self.scheduler.provoke_time_limit(self.job_id, self.profile, self._pid(),
                                               self.wait_s)

    def finish(self) -> None:
        """Stop the drill's job (it has no other purpose) and check the metrics."""
        if self.exp_dir is None:
            return
        cancel(self.exp_dir, ["task-000"])
        time.sleep(2)
        row = progress.run_row(self.run_dir, None)
        if row["metric_rows"] is not None:
            self.record("metrics: one row per step", row["metric_rows"] == row["unique_steps"],
                        f"{row['metric_rows']} rows for {row['unique_steps']} steps",
                        "steps were recomputed after a stop: the checkpoint at the signal was "
                        "missed (see the run's events)")

    def run(self) -> bool:
        if not self.preflight() or not self.submit():
            return False
        try:
            if not self.first_attempt():
                return False
            if not self._interrupt_and_resume("preemption", self.preempt, StopCause.PREEMPTION):
                return False
            self.wait(lambda: (ledger.newest_checkpoint_step(self.run_dir) or 0) >
                      (self.episodes()[-1].get("end_step") or 0) if self.episodes() else False, 60)
            self._interrupt_and_resume("time limit", self.time_limit, StopCause.TIME_LIMIT)
        finally:
            self.finish()
        return all(s.ok is not False for s in self.steps)
