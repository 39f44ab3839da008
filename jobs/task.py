"""The submitted callable: run `qgan train` for one run directory and decide what happens next.

Why a subprocess: submitit binds USR2 to its own checkpoint-and-requeue and *ignores* SIGTERM,
and guesses time limit vs preemption from elapsed time. Here the callable takes both signals
back, forwards them to the trainer (which checkpoints at the next step boundary and exits 75),
and decides itself from the trainer's exit status, the signals seen and the job's deadline
(StartTime + TimeLimit, read from scontrol) whether the stop was a preemption or a time limit,
records it in `<run>/jobs.json`, and requeues through its scheduler's scheduler (`jobs/schedulers`:
scontrol requeue on SLURM, exit 144 to the local controller). All resume state comes from the
run directory: a requeue by SLURM reruns this pickle unchanged, which is all it needs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from jobs import schedulers, ledger, prune
from qgan import schema
from qgan.atomic import UnsafePathError, confined
from qgan.sanitise import install_safe_logging
from qgan.vocabulary import STOPPED_FOR_GOOD, AttemptEnd, RunOutcome, StopCause

log = logging.getLogger(__name__)

# A time-limit warning arrives `signal_delay` before the limit, up to 60 s early (SLURM's event
# resolution): a signal this close to the deadline is the time limit.
DEADLINE_SLACK_S = 75.0
# A requeued job may start while the previous episode's trainer is still checkpointing after
# its signal (or is a zombie on a lost node): its trainer waits this long for the run lock.
LOCK_WAIT_S = 60.0
FORWARDED = (signal.SIGTERM, signal.SIGUSR2, signal.SIGUSR1, signal.SIGINT, signal.SIGCONT)


class RunStopped(RuntimeError):
    """The run ended without finishing and must not be requeued (recorded in jobs.json)."""


def _trainer_preexec() -> None:
    """In the trainer, before exec: get SIGTERM if the callable dies (SIGKILL), so it still
    checkpoints; and ignore stop signals until its StopFlag takes them over. SLURM signals
    every process of the step directly, and an unhandled USR2 during the trainer's start-up
    would kill it; the callable re-sends any signal once the trainer's attempt has begun."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    for signum in (signal.SIGTERM, signal.SIGUSR2, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)


def classify(status: int, signals: list[str], signal_time: float | None,
             deadline: float | None, signal_delay: float, trainer_signal: str | None) -> str:
    """The stop cause of one episode, from what this process saw (see module docstring)."""
    if status == schema.EXIT_OK:
        return StopCause.FINISHED
    if status == schema.EXIT_BAD_INPUT:
        return StopCause.BAD_INPUT
    if status == schema.EXIT_DIVERGED:
        return StopCause.DIVERGED
    if status == schema.EXIT_LOCKED:
        return StopCause.LOCKED
    if status == schema.EXIT_UNVERIFIED:
        return StopCause.UNVERIFIED
    if status != schema.EXIT_RESUME:
        return StopCause.CRASH
    names = set(signals) or ({trainer_signal} if trainer_signal else set())
    if not names:  # 75 without any signal: the trainer stopped because it could not write
        return StopCause.WRITE_FAILED
    at = signal_time or time.time()
    if deadline is not None and at >= deadline - signal_delay - DEADLINE_SLACK_S:
        return StopCause.TIME_LIMIT
    if "SIGINT" in names and "SIGTERM" not in names:
        return StopCause.CANCELLED
    if "SIGTERM" in names:
        return StopCause.PREEMPTION
    if "SIGUSR2" in names:
        return StopCause.TIME_LIMIT if deadline is None else StopCause.REQUESTED
    return StopCause.REQUESTED


class TrainJob(Checkpointable):
    """One run of an experiment. Picklable and stateless: everything lives in `run_dir`."""

    def __init__(self, run_dir: str, experiment: str, index: int, policy: dict[str, Any],
                 submitted: float | None = None, overrides: list[str] | None = None):
        self.run_dir = run_dir
        self.experiment = experiment
        self.index = index
        self.policy = dict(policy)  # max_requeues, max_failures, signal_delay, timeout_s
        self.submitted = submitted  # when this submission was made (`qgan resubmit`: anew)
        # `qgan extend`: KEY=VALUE changes the trainer applies (--set, --allow-config-change;
        # it keeps the old config as config.<time>.toml)
        self.overrides = list(overrides or [])

    # -- scheduler context ---------------------------------------------------------------------
    @staticmethod
    def _scheduler() -> schedulers.Scheduler:
        """The scheduler running this job (submitit says which); none when called directly."""
        return schedulers.get(os.environ.get("SUBMITIT_EXECUTOR", "none"))

    # -- the episode ---------------------------------------------------------------------------
    def __call__(self) -> dict[str, Any]:
        install_safe_logging(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s",
                             "%H:%M:%S")
        run_dir = Path(self.run_dir)
        doc = ledger.read_jobs(run_dir)
        new = self._new_submission(doc)
        done = ledger.finished(run_dir)
        if done in (AttemptEnd.FINISHED, AttemptEnd.EARLY_STOP) and new and getattr(self, "overrides", None):
            log.info("run %s extended (%s): it runs again", run_dir, " ".join(self.overrides))
            done = None
        if done in (AttemptEnd.FINISHED, AttemptEnd.EARLY_STOP):
            log.info("run %s already %s: not running it again", run_dir, done)
            doc["outcome"] = RunOutcome.FINISHED
            ledger.write_jobs(run_dir, doc)
            return {"run": str(run_dir), "outcome": RunOutcome.FINISHED, "rerun": False}
        if new and doc["outcome"] is not None:
            log.info("run %s submitted again after %s: its outcome is reset", run_dir,
                     doc["outcome"])
            doc["outcome"], doc["reason"] = None, None
        if doc["outcome"] in STOPPED_FOR_GOOD:
            raise RunStopped(f"run {run_dir} was stopped for good ({doc['outcome']}: "
                             f"{doc.get('reason')}); not running it again")

        started = time.time()
        scheduler = self._scheduler()
        episode: dict[str, Any] = {
            "n": len(doc["episodes"]) + 1, "executor": scheduler.name,
            "job_id": scheduler.current_job_id(),
            "restart_count": _int(os.environ.get("SLURM_RESTART_COUNT")),
            "host": socket.gethostname(), "pid": os.getpid(), "trainer_pid": None,
            "start_time": started, "end_time": None,
            "deadline": scheduler.deadline(started), "signals": [], "signal_time": None,
            "trainer_exit": None, "trainer_attempt": None, "end_step": None,
            "stop_cause": None, "action": None, "note": None,
        }
        doc["episodes"].append(episode)
        ledger.write_jobs(run_dir, doc)

        before = len(ledger.trainer_attempts(run_dir))
        status = self._run_trainer(run_dir, episode)
        attempts = ledger.trainer_attempts(run_dir)
        last = attempts[-1] if attempts else {}
        # The attempt this episode ran; none if its trainer died before starting one (then the
        # newest attempt file belongs to an earlier episode, whose cause stands).
        episode["trainer_attempt"] = last.get("attempt") if len(attempts) > before else None
        episode["end_step"] = last.get("end_step")
        if episode["end_step"] is None:
            episode["end_step"] = ledger.newest_checkpoint_step(run_dir)
        if episode["signals"]:
            # Read the deadline again: a limit changed while the job ran counts.
            episode["deadline"] = scheduler.deadline(started) or episode["deadline"]
        cause = classify(status, episode["signals"], episode["signal_time"], episode["deadline"],
                         float(self.policy.get("signal_delay", 0)), last.get("signal"))
        if ledger.finished(run_dir) in (AttemptEnd.FINISHED, AttemptEnd.EARLY_STOP):
            cause = StopCause.FINISHED  # a signal that arrived as the trainer was exiting
        elif status == schema.EXIT_RESUME and self._cancelled(run_dir):
            cause = StopCause.CANCELLED  # scancel / qgan cancel also sends SIGTERM: never requeue
        elif status == schema.EXIT_RESUME and episode.get("pruned"):
            cause = StopCause.PRUNED  # jobs/prune.py stopped it: never requeue

        episode["stop_cause"] = cause
        episode["end_time"] = time.time()
        episode["cpu"] = (episode.get("cpu") or {}) | {"job_s": _cpu_seconds(resource.RUSAGE_SELF)}
        return self._decide(run_dir, doc, episode, cause)

    def _new_submission(self, doc: dict) -> bool:
        """This is the first episode of this job's submission (`qgan resubmit`/`extend` made
        it after the run's last episode ended): that episode's outcome (cancelled, gave up,
        finished) is history."""
        submitted = getattr(self, "submitted", None)  # absent from jobs pickled before it
        ends = [e.get("end_time") for e in doc["episodes"]]
        return submitted is not None and (not ends or (
            isinstance(ends[-1], (int, float)) and ends[-1] < submitted))

    def _cancelled(self, run_dir: Path) -> bool:
        """`qgan cancel` recorded this run, or SLURM says the job was cancelled (scancel)."""
        exp = ledger.read_experiment(run_dir.parent) or {}
        if run_dir.name in ledger.cancelled_runs(exp):
            return True
        return self._scheduler().cancelled_by_scheduler()

    def _run_trainer(self, run_dir: Path, episode: dict) -> int:
        logs = run_dir / schema.LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"job-{episode['n']:04d}.log"
        env = dict(os.environ, QGAN_EXPERIMENT=self.experiment, QGAN_ARRAY_INDEX=str(self.index),
                   PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "qgan", "train", str(run_dir / schema.CONFIG_FILE),
               "--run-dir", str(run_dir), "--lock-wait", str(LOCK_WAIT_S)]
        for item in getattr(self, "overrides", None) or []:
            cmd += ["--set", item]
        if getattr(self, "overrides", None):
            cmd.append("--allow-config-change")
        log.info("episode %s of %s: %s (log %s)", episode["n"], run_dir, " ".join(cmd), log_path)
        known = len(schema.attempt_numbers(run_dir))
        children_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
        try:  # never append through a link planted in logs/
            confined(run_dir, log_path)
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        except (OSError, UnsafePathError) as exc:
            log.error("cannot open the job log %s safely: %s", log_path, exc)
            episode["note"] = f"job log unusable: {exc}"
            return schema.EXIT_BAD_INPUT
        with os.fdopen(fd, "ab") as out:
            child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_trainer_preexec)
        episode["trainer_pid"] = child.pid
        pending: list[int] = []

        def deliver() -> None:
            # The trainer handles stop signals once its attempt file exists (its StopFlag is
            # installed before); until then a USR2 would kill it, so signals wait here.
            if not pending or len(schema.attempt_numbers(run_dir)) <= known:
                return
            for signum in pending:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass
            pending.clear()

        def forward(signum: int, frame: object) -> None:
            name = signal.Signals(signum).name
            if signum == signal.SIGCONT:
                return
            episode["signals"].append(name)
            episode["signal_time"] = episode["signal_time"] or time.time()
            log.warning("%s received; forwarding it to the trainer (pid %s)", name, child.pid)
            pending.append(signal.SIGTERM if signum == signal.SIGINT else signum)
            deliver()

        previous = {s: signal.signal(s, forward) for s in FORWARDED}
        watcher = prune.start(run_dir, self.policy, episode,
                              lambda: pending.append(signal.SIGUSR1))
        try:
            while True:
                try:
                    status = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    deliver()
        finally:
            if watcher is not None:
                watcher.stop()
            for s, h in previous.items():
                signal.signal(s, h)
        episode["trainer_exit"] = status
        # the kernel's account of the trainer (and anything it waited for): its CPU seconds
        episode["cpu"] = {"trainer_s": _cpu_seconds(resource.RUSAGE_CHILDREN) - children_before}
        if watcher is not None:
            episode["cpu"]["judgements"] = watcher.judgements
        log.info("trainer exited %s after signals %s", status, episode["signals"] or "none")
        return status

    def _decide(self, run_dir: Path, doc: dict, episode: dict, cause: str) -> dict[str, Any]:
        counts = ledger.counts(doc)
        if cause == StopCause.FINISHED:
            episode["action"] = "done"
            doc["outcome"] = RunOutcome.FINISHED
            ledger.write_jobs(run_dir, doc)
            return {"run": str(run_dir), "outcome": RunOutcome.FINISHED,
                    "episodes": len(doc["episodes"])}
        if cause == StopCause.PRUNED:  # not an error: the job ends and frees its slot
            episode["action"], episode["note"] = "stop", prune.reason(episode["pruned"])
            doc["outcome"], doc["reason"] = RunOutcome.PRUNED, episode["note"]
            ledger.write_jobs(run_dir, doc)
            log.warning("run %s %s", run_dir, episode["note"])
            return {"run": str(run_dir), "outcome": RunOutcome.PRUNED}
        if cause in (StopCause.BAD_INPUT, StopCause.DIVERGED, StopCause.CANCELLED):
            return self._stop(run_dir, doc, episode, RunOutcome(cause), {
                StopCause.BAD_INPUT: "bad config or input (trainer exit 2): see the job log",
                StopCause.DIVERGED: "training diverged (trainer exit 3): see the run's events",
                StopCause.CANCELLED: "cancelled"}[cause])
        if cause == StopCause.TIME_LIMIT and counts["time_limits"] > int(self.policy["max_requeues"]):
            return self._stop(run_dir, doc, episode, RunOutcome.GAVE_UP,
                              f"time limit reached {counts['time_limits']} times (max_requeues="
                              f"{self.policy['max_requeues']}): raise the profile's time")
        if cause in ledger.FAILURES:
            same, trailing = _crash_streak(doc["episodes"])
            if cause == StopCause.UNVERIFIED and same >= int(self.policy["max_failures"]):
                return self._stop(run_dir, doc, episode, RunOutcome.GAVE_UP,
                                  f"no checkpoint of {run_dir} verified in {same} episode(s) "
                                  f"in a row (max_failures={self.policy['max_failures']}); "
                                  "nothing was deleted: see the job log, then start over by "
                                  f"hand with `qgan train {run_dir}/{schema.CONFIG_FILE} "
                                  f"--run-dir {run_dir} --fresh` (the old state is moved to "
                                  f"{schema.SUPERSEDED_DIR}/)")
            if cause == StopCause.LOCKED and same >= int(self.policy["max_failures"]):
                return self._stop(run_dir, doc, episode, RunOutcome.GAVE_UP,
                                  f"another trainer held {run_dir} for {same} episode(s) in a "
                                  f"row (max_failures={self.policy['max_failures']}): find it "
                                  f"(host and pid in {run_dir}/{schema.LOCK_FILE}), stop it, "
                                  "then submit again")
            if same >= int(self.policy["max_failures"]) or trailing >= 3 * int(self.policy["max_failures"]):
                return self._stop(run_dir, doc, episode, RunOutcome.GAVE_UP,
                                  f"the trainer crashed {trailing} time(s) in a row, {same} at "
                                  f"step {episode['end_step']} (max_failures="
                                  f"{self.policy['max_failures']}): see {run_dir}/logs")
        return self._requeue(run_dir, doc, episode)

    def _stop(self, run_dir: Path, doc: dict, episode: dict, outcome: RunOutcome,
              reason: str):
        episode["action"] = "stop"
        episode["note"] = reason
        doc["outcome"] = outcome
        doc["reason"] = reason
        ledger.write_jobs(run_dir, doc)
        log.error("run %s stopped (%s): %s", run_dir, outcome, reason)
        raise RunStopped(reason)

    def _requeue(self, run_dir: Path, doc: dict, episode: dict) -> dict[str, Any]:
        episode["action"] = "requeue"
        ledger.write_jobs(run_dir, doc)
        return schedulers.get(episode["executor"]).requeue(run_dir, doc, episode)


def _crash_streak(episodes: list[dict]) -> tuple[int, int]:
    """(trailing failures at the same end step as the last one, trailing failures in total);
    failures are crashes and lock refusals (ledger.FAILURES)."""
    trailing = []
    for e in reversed(episodes):
        if e.get("stop_cause") not in ledger.FAILURES:
            break
        trailing.append(e)
    if not trailing:
        return 0, 0
    step = trailing[0].get("end_step")
    same = 0
    for e in trailing:
        if e.get("end_step") != step:
            break
        same += 1
    return same, len(trailing)


def _cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF: the callable, the pruner's
    thread included) or of its waited-for children (RUSAGE_CHILDREN: the trainer)."""
    r = resource.getrusage(who)
    return round(r.ru_utime + r.ru_stime, 3)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
