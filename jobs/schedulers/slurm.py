"""The SLURM scheduler: submitit's SlurmExecutor with a cluster profile, job arrays split at
the cluster's MaxArraySize, live state from squeue/sacct (one call each per refresh), and the
job's deadline read from scontrol (StartTime + TimeLimit), not guessed from elapsed time.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jobs import slurmctl
from jobs import ledger, report_job
from jobs.schedulers.base import Scheduler
from qgan.errors import UserError
from jobs.profiles import Profile
from qgan.vocabulary import RunOutcome, StopCause

log = logging.getLogger(__name__)

SLURM_JOB_ID = re.compile(r"\d+(_\d+)?")
DEFAULT_MAX_ARRAY = 1001  # SLURM's default MaxArraySize
RESTART_MARGIN_S = 60  # run time a requeued drill job gets before its (lowered) limit's warning
REPORT_TIME_MIN = 30  # the report job's time limit (a 64 x 10,000-step report takes ~1 min)


def slurm_parameters(profile: Profile, job_name: str, parallel: int | None = None) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for a profile (`parallel` overrides its
    array_parallelism, as `--parallel` does)."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": profile.time,
        "cpus_per_task": profile.cpus,
        "mem": profile.mem,
        "signal_delay_s": profile.signal_delay,
        "array_parallelism": parallel or profile.array_parallelism,
        "stderr_to_stdout": True,
        "additional_parameters": profile.sbatch_options(),
    }
    if profile.partition:
        params["partition"] = profile.partition
    if profile.gpus:
        params["gpus_per_node"] = profile.gpus
    if profile.setup:
        params["setup"] = list(profile.setup)
    return params


def python_for(profile: Profile | None) -> str:
    return (profile.python if profile and profile.python else sys.executable)


def sbatch_script(profile: Profile, folder: Path, job_name: str, n_tasks: int,
                  parallel: int | None = None) -> str:
    """The sbatch script submitit would write, without needing SLURM installed (--dry-run).

    submitit 1.5.4 has no public way to render it: `SlurmExecutor` refuses to exist without
    `srun` on PATH, and its `_make_submission_file_text` calls the module's private
    `_make_sbatch_string`. That private function is used here and nowhere else;
    tests/test_jobs_units.py (test_dry_run_prints_script_and_submits_nothing and
    test_submitit_sbatch_renderer_is_what_we_call) fails if a submitit release changes it."""
    from submitit.slurm.slurm import _make_sbatch_string  # lazy: submitit, only to submit

    command = " ".join([shlex.quote(python_for(profile)), "-u -m submitit.core._submit",
                        shlex.quote(str(folder / "%j"))])
    params = slurm_parameters(profile, job_name, parallel)
    return _make_sbatch_string(command=command, folder=folder / "%j",
                               map_count=n_tasks if n_tasks > 1 else None, **params)


def _jobs_of(job_ids: list[str]) -> list[str]:
    """The jobs to ask squeue/sacct about: each array once (its id lists every task, `-r`
    expands them), not each task: one short command per refresh at any sweep size."""
    return list(dict.fromkeys(str(j).split("_")[0] for j in job_ids))


class SlurmScheduler(Scheduler):
    name = "slurm"
    sends_time_limit_warning = True
    needs_profile = True

    # -- submission ----------------------------------------------------------------------------
    def check_profile(self, explicit: bool, dry_run: bool) -> None:
        if not explicit and not dry_run:
            raise UserError("--executor slurm needs --profile NAME|PATH (e.g. --profile dev for "
                            "the development cluster; slurm/profiles/example.toml is a template)")

    def resolve_parallel(self, requested: int | None, profile: Profile | None) -> int | None:
        return requested or (profile.array_parallelism if profile else None)

    def dry_run(self, profile: Profile | None, folder: Path, job_name: str, n_tasks: int,
                parallel: int | None = None) -> str:
        assert profile is not None
        chunk = slurmctl.max_array_size() or DEFAULT_MAX_ARRAY
        sizes = [min(chunk, n_tasks - start) for start in range(0, n_tasks, chunk)]
        split = (f"{n_tasks} task(s) in {len(sizes)} submission(s) of {', '.join(map(str, sizes))} "
                 f"(MaxArraySize {chunk}), at most {parallel or profile.array_parallelism} "
                 "running at once per array; with --report, one report job afterany on all")
        return (f"{split}\n\nsbatch script (of the first):\n\n"
                + sbatch_script(profile, folder, job_name, sizes[0], parallel))

    def executor(self, folder: Path, profile: Profile, job_name: str, parallel: int | None):
        import submitit  # lazy: submitit, only to submit

        if not slurmctl.have("sbatch"):
            raise UserError("--executor slurm: sbatch is not on PATH (is this a SLURM login "
                            "node? for the development cluster: eval \"$(slurm/dev-cluster/up)\")")
        ex = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=10**6,
                                    python=python_for(profile))
        ex.update_parameters(**slurm_parameters(profile, job_name, parallel))
        return ex

    def submit(self, exp_dir: Path, jobs: list, profile: Profile | None, job_name: str,
               parallel: int | None, submitted: float, report: bool = False) -> None:
        """One array per chunk of at most MaxArraySize tasks (indices start at 0 in each),
        each throttled to `parallel` (default: the profile's array_parallelism)."""
        assert profile is not None
        ex = self.executor(exp_dir / ledger.SUBMITIT_DIR, profile, job_name, parallel)
        chunk = slurmctl.max_array_size() or DEFAULT_MAX_ARRAY
        ids: list[str] = []
        for start in range(0, len(jobs), chunk):
            part = jobs[start:start + chunk]
            if len(part) == 1:
                ids.append(ex.submit(part[0]).job_id)
            else:
                ids.extend(job.job_id for job in ex.submit_array(part))

        def record(exp: dict) -> None:
            for job, job_id in zip(jobs, ids):
                ledger.record_job(exp, Path(job.run_dir).name, job_id, {})

        ledger.update_experiment(exp_dir, record)
        if report:
            self.submit_report(exp_dir, profile, job_name, ids)

    @staticmethod
    def submit_report(exp_dir: Path, profile: Profile, job_name: str, ids: list[str]) -> None:
        """The dependent report job: `afterany` on every array (and single job) of this
        submission, split arrays included, so it starts once every task has ended for good;
        a requeued task is pending again, not ended. A refused sbatch is recorded, never
        fatal: the runs are submitted."""
        jobs = list(dict.fromkeys(i.split("_")[0] for i in ids))
        folder = exp_dir / ledger.SUBMITIT_DIR
        command = shlex.join([python_for(profile), "-m", "jobs.report_job", str(exp_dir),
                              str(folder / "report.log")])
        cmd = ["sbatch", "--parsable", f"--dependency=afterany:{':'.join(jobs)}",
               f"--job-name={job_name}-report", f"--output={folder / 'report-%j.out'}",
               f"--time={REPORT_TIME_MIN}", "--cpus-per-task=1", f"--mem={profile.mem}"]
        if profile.partition:
            cmd.append(f"--partition={profile.partition}")
        cmd += [line for line in profile.extra_sbatch if not line.startswith("--requeue")]
        cmd += ["--wrap", " && ".join([*profile.setup, command])]
        rc, out = slurmctl.run_status(*cmd)
        if rc == 0:
            report_job.record(exp_dir, state="waiting", by="slurm job", job_id=out.split(";")[0],
                              depends_on=jobs)
        else:
            log.warning("the report job was refused: %s", out)
            report_job.record(exp_dir, state="failed", by="slurm job", job_id=None, exit=rc,
                              error=f"sbatch refused the report job: {out}", log=None)

    # -- status --------------------------------------------------------------------------------
    def accounting(self, job_ids: list[str]) -> dict[str, list[str]]:
        return slurmctl.accounting(_jobs_of(job_ids))

    def live_states(self, exp: dict, ids: dict[str, str],
                    acct: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
        if not ids:
            return {}
        queued = slurmctl.queue_states(_jobs_of(list(ids.values())))
        out: dict[str, tuple[str, str]] = {}
        for run, jid in ids.items():
            if jid in queued:
                out[run] = queued[jid]
            elif acct.get(jid):
                out[run] = (acct[jid][-1], "")
        return out

    # -- cancel --------------------------------------------------------------------------------
    def cancel_jobs(self, exp: dict, targets: dict[str, str]) -> list[str]:
        """One scancel for every job (a 1,000-task sweep is one call, not 1,000)."""
        failed = [f"{run}: {job_id!r} is not a SLURM job id; not cancelled"
                  for run, job_id in targets.items()  # e.g. "--user=me" would cancel them all
                  if not SLURM_JOB_ID.fullmatch(job_id)]
        ids = [j for j in targets.values() if SLURM_JOB_ID.fullmatch(j)]
        if ids:
            rc, out = slurmctl.run_status("scancel", *ids)
            if rc != 0:
                failed.append(f"scancel {' '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}: "
                              f"{out}")
        return failed

    # -- job side ------------------------------------------------------------------------------
    def current_job_id(self) -> str | None:
        return slurmctl.current_job_id()

    def deadline(self, started: float) -> float | None:
        job = slurmctl.current_job_id()
        return slurmctl.job_deadline(job) if job else None

    def cancelled_by_scheduler(self) -> bool:
        # While the job completes, scontrol says COMPLETING either way; a preemption sets
        # PreemptTime, and sacct already says CANCELLED for scancel.
        job = slurmctl.current_job_id() or ""
        info = slurmctl.show_job(job) or {}
        if info.get("PreemptTime") not in (None, "None", "Unknown"):
            return False
        states = slurmctl.accounting([job]).get(job, [])
        return bool(states) and states[-1].startswith("CANCELLED")

    def requeue(self, run_dir: Path, doc: dict, episode: dict) -> dict[str, Any]:
        job = slurmctl.current_job_id() or ""
        # After a real preemption SLURM has requeued the job already and this fails
        # harmlessly; where the partition cancels preempted jobs it rescues the run.
        rc, out = slurmctl.run_status("scontrol", "requeue", job)
        if rc != 0:
            episode["note"] = f"scontrol requeue {job} failed ({rc}): {out}"
            # "Job is pending execution": SLURM has requeued it already (a preemption that
            # coincided with the signal); not a failure.
            if episode["stop_cause"] != StopCause.PREEMPTION and "pending" not in out.lower():
                episode["action"] = "requeue_failed"
                doc["outcome"] = RunOutcome.REQUEUE_FAILED
                doc["reason"] = episode["note"]
            ledger.write_jobs(run_dir, doc)
            log.warning("%s", episode["note"])
        else:
            log.info("requeued job %s (%s)", job, episode["stop_cause"])
        # Not a result: submitit must not record this episode as the job's outcome.
        raise SystemExit(0 if rc == 0 else 1)

    # -- drill ---------------------------------------------------------------------------------
    def preflight(self, drill) -> bool:
        missing = [c for c in ("sbatch", "squeue", "sacct", "scontrol", "scancel")
                   if not slurmctl.have(c)]
        if missing:
            return drill.record("SLURM commands", False,
                                f"missing on this host: {', '.join(missing)}",
                                "run the drill on a login node with the SLURM client commands")
        drill.record("SLURM commands", True, "sbatch, squeue, sacct, scontrol, scancel found")
        conf = slurmctl.show_config()
        profile = drill.profile
        if conf.get("JobRequeue") == "0" and not profile.requeue:
            drill.record("requeue allowed", False,
                         "JobRequeue=0 and the profile has requeue = false",
                         "set requeue = true in the profile (sbatch --requeue)")
        part = slurmctl.show_partition(profile.partition) if profile.partition else None
        mode = (part or {}).get("PreemptMode", conf.get("PreemptMode", ""))
        if mode and "CANCEL" in mode.upper():
            # Not fatal by itself: the job requeues itself within the grace time (checked later).
            drill.record("partition preempt mode", None,
                         f"partition {profile.partition!r} has PreemptMode={mode}: SLURM "
                         "cancels preempted jobs; qgan requeues them itself within the grace "
                         "time. PreemptMode=REQUEUE is safer (ask the admins)")
        elif mode:
            drill.record("partition preempt mode", True, f"PreemptMode={mode}")
        return True

    def job_state(self, job_id: str | None) -> str:
        if not job_id:
            return ""
        return (slurmctl.show_job(job_id) or {}).get("JobState", "")

    def release(self, job_id: str | None, seen: dict[str, float]) -> None:
        if job_id:
            slurmctl.release_held(job_id, seen)

    def send_signal(self, job_id: str | None, name: str, pid: int | None) -> str:
        rc, out = slurmctl.run_status("scancel", f"--signal={name}", job_id or "")
        return f"scancel --signal={name}" + ("" if rc == 0 else f" failed: {out}")

    def preempt(self, job_id: str | None, profile: Profile, pid: int | None) -> str:
        """A real preemption: a job in `preempt_partition` asking for every CPU of the node."""
        if not profile.preempt_partition:
            return self.send_signal(job_id, "TERM", pid)
        info = slurmctl.show_job(job_id or "") or {}
        node = info.get("NodeList", "")
        cpus = (slurmctl.run("sinfo", "-h", "-n", node, "-o", "%c") or "1").split()[0]
        rc, out = slurmctl.run_status(
            "sbatch", "--parsable", "-p", profile.preempt_partition, "-w", node,
            "-c", cpus, "-t", "1", "-o", "/dev/null", "-J", "qgan-drill-preempt",
            "--wrap", "sleep 3")
        return f"job {out.strip()} in {profile.preempt_partition} on {node}" if rc == 0 \
            else f"could not submit the preempting job: {out}"

    def provoke_time_limit(self, job_id: str | None, profile: Profile, pid: int | None,
                           wait_s: float) -> str:
        # Lower the job's own limit so that SLURM sends the time-limit signal itself, soon.
        # The requeued job keeps the lowered limit (only admins may raise it again), so the
        # limit leaves a restart RESTART_MARGIN_S before its warning: a warning that
        # arrives while submitit is still starting kills the job (FAILED, no requeue).
        delay = profile.signal_delay
        for _ in range(int(wait_s)):
            info = slurmctl.show_job(job_id or "") or {}
            if info.get("JobState") == "RUNNING":
                elapsed = slurmctl.parse_duration(info.get("RunTime")) or 0
                minutes = max(math.ceil((delay + RESTART_MARGIN_S) / 60),
                              math.ceil((elapsed + delay + 10) / 60))
                rc, out = slurmctl.run_status("scontrol", "update", f"jobid={job_id}",
                                               f"TimeLimit={minutes}")
                if rc == 0:
                    return (f"time limit lowered to {minutes} min after {elapsed:.0f} s "
                            f"(warning due at {minutes * 60 - delay} s)")
                return (self.send_signal(job_id, "USR2", pid)
                        + f" (lowering the time limit failed: {out})")
            time.sleep(1)
        return "the job did not run long enough to lower its time limit"
