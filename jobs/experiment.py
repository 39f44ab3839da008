"""An experiment's lifecycle: create its directory and submit its tasks, cancel its runs
(shared by `qgan submit`, `qgan cancel` and `qgan drill`)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from jobs import executors, ledger, progress, scheduler
from jobs.errors import UserError
from jobs.profiles import Profile
from jobs.sweep import Task
from jobs.task import TrainJob
from qgan.atomic import atomic_write_text
from qgan.config import Config, dumps


SLURM_JOB_ID = re.compile(r"\d+(_\d+)?")


def policy_for(profile: Profile | None) -> dict:
    p = profile or Profile()
    return {"max_requeues": p.max_requeues, "max_failures": p.max_failures,
            "signal_delay": p.signal_delay}


def submit_tasks(exp_dir: Path, name: str, kind: str, profile: Profile | None,
                 config_path: Path | None, tasks: list[Task], configs: list[Config]) -> dict:
    """Write each run's config and experiment.json, submit, record the job ids."""
    if (exp_dir / "experiment.json").exists():
        raise UserError(f"{exp_dir} already holds an experiment; pick another --name, or "
                        f"`qgan status {exp_dir}` to see it")
    exp_dir.mkdir(parents=True, exist_ok=True)
    for task, cfg in zip(tasks, configs):
        run_dir = exp_dir / task.run
        run_dir.mkdir(exist_ok=True)
        atomic_write_text(run_dir / "config.toml", dumps(cfg))
    doc = {"name": name, "created": time.time(), "executor": kind,
           "config": str(config_path.resolve()) if config_path else None,
           "profile": {k: v for k, v in profile.__dict__.items()} if profile else None,
           "tasks": [{"index": t.index, "run": t.run, "overrides": t.overrides, "job_id": None}
                     for t in tasks],
           "job_ids": []}
    ledger.write_experiment(exp_dir, doc)  # before submitting: a job may start at once
    policy = policy_for(profile)
    callables = [TrainJob(str(exp_dir / t.run), name, t.index, policy) for t in tasks]
    try:
        ids = executors.submit(kind, exp_dir / ledger.SUBMITIT_DIR, profile, f"qgan-{name}",
                               callables)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - sbatch refused it: say why
        raise UserError(f"submission failed: {exc}") from None
    for t, job_id in zip(doc["tasks"], ids):
        t["job_id"] = job_id
        if kind == "local":  # who the pid is: `qgan cancel` signals only this process
            t["process"] = progress.process_identity(int(job_id))
    doc["job_ids"] = list(dict.fromkeys(i.split("_")[0] for i in ids))
    ledger.write_experiment(exp_dir, doc)
    return doc


def cancel(exp_dir: Path, exp: dict, runs: list[str]) -> tuple[dict[str, str], list[str]]:
    """Cancel the jobs of `runs`: ({run: job id} cancelled, failures). The cancellation is
    recorded in experiment.json first: a job that gets SIGTERM from scancel must see it and not
    requeue itself. Locally the controller gets SIGINT, which it passes to our callable, which
    has the trainer checkpoint before it goes."""
    ids = ledger.task_job_ids(exp)
    targets = {r: ids[r] for r in runs if r in ids}
    failed = []
    if exp.get("executor") == "local":
        # A pid from experiment.json is only signalled if it is still the controller that
        # submit started (start time and command line recorded then): a stale or edited
        # ledger must never make us signal an unrelated process.
        who = ledger.task_field(exp, "process")
        for run_name, job_id in list(targets.items()):
            if progress.local_alive(job_id) and not progress.is_our_process(job_id, who.get(run_name)):
                failed.append(f"{run_name} (job {job_id}): process {job_id} is not the job "
                              "controller `qgan submit` started (its start time or command "
                              "line differs from experiment.json: a reused pid or an edited "
                              "file); not signalled")
                del targets[run_name]
    if not isinstance(exp.get("cancelled"), list):  # absent, or damaged: start a valid record
        exp["cancelled"] = []
    exp["cancelled"].append({"time": time.time(), "runs": list(targets)})
    ledger.write_experiment(exp_dir, exp)
    for run_name, job_id in targets.items():
        if exp.get("executor") == "slurm":
            if not SLURM_JOB_ID.fullmatch(job_id):  # e.g. "--user=me" would cancel them all
                failed.append(f"{run_name}: {job_id!r} is not a SLURM job id; not cancelled")
                continue
            rc, out = scheduler.run_status("scancel", job_id)
            if rc != 0:
                failed.append(f"{run_name} (job {job_id}): {out}")
        elif exp.get("executor") == "local" and progress.is_our_process(
                job_id, ledger.task_field(exp, "process").get(run_name)):
            try:
                os.kill(int(job_id), signal.SIGINT)
            except ProcessLookupError:
                pass
    return targets, failed
