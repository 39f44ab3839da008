"""An experiment's lifecycle: create its directory and submit its tasks, cancel its runs
(shared by `qgan submit`, `qgan cancel` and `qgan drill`)."""

from __future__ import annotations

import time
from pathlib import Path

from jobs import schedulers, ledger
from qgan.errors import UserError
from jobs.profiles import Profile
from jobs.sweep import Task
from jobs.task import TrainJob
from qgan.atomic import atomic_write_text
from qgan.config import Config, dumps, resolve_auto


def policy_for(profile: Profile | None) -> dict:
    p = profile or Profile()
    return {"max_requeues": p.max_requeues, "max_failures": p.max_failures,
            "signal_delay": p.signal_delay}


def submit_tasks(exp_dir: Path, name: str, kind: str, profile: Profile | None,
                 config_path: Path | None, tasks: list[Task], configs: list[Config],
                 parallel: int | None = None, report: bool = False, prune: bool = False,
                 prune_never_fit: bool = False) -> dict:
    """Write each run's config and experiment.json, submit, record the job ids. `prune`
    (recorded, so resubmissions and extensions keep it): jobs/prune.py watches every run."""
    if (exp_dir / "experiment.json").exists():
        raise UserError(f"{exp_dir} already holds an experiment; pick another --name, or "
                        f"`qgan status {exp_dir}` to see it")
    exp_dir.mkdir(parents=True, exist_ok=True)
    for task, cfg in zip(tasks, configs):
        run_dir = exp_dir / task.run
        run_dir.mkdir(exist_ok=True)
        atomic_write_text(run_dir / "config.toml", dumps(resolve_auto(cfg)))
    doc = {"name": name, "created": time.time(), "executor": kind,
           "config": str(config_path.resolve()) if config_path else None,
           "profile": {k: v for k, v in profile.__dict__.items()} if profile else None,
           "tasks": [{"index": t.index, "run": t.run, "overrides": t.overrides, "job_id": None}
                     for t in tasks],
           "job_ids": [], "prune": bool(prune or prune_never_fit),
           "prune_never_fit": bool(prune_never_fit)}
    ledger.write_experiment(exp_dir, doc)  # before submitting: a job may start at once
    return submit_runs(exp_dir, [t.run for t in tasks], profile, parallel, by="submit",
                       report=report)


def submit_runs(exp_dir: Path, runs: list[str], profile: Profile | None, parallel: int | None,
                by: str, report: bool = False, overrides: list[str] | None = None) -> dict:
    """Submit `runs` of the experiment (again): a new entry in each run's job history, then
    the scheduler's jobs; returns experiment.json as it is then. `overrides` (KEY=VALUE, `qgan
    extend`): config changes each run's trainer applies and records."""
    exp = ledger.read_experiment(exp_dir) or {}
    scheduler = schedulers.get(exp.get("executor"))
    policy = policy_for(profile) | {"prune": exp.get("prune") is True,
                                    "prune_never_fit": exp.get("prune_never_fit") is True}
    index = {t["run"]: t["index"] if isinstance(t.get("index"), int) else i
             for i, t in enumerate(exp.get("tasks", [])) if t.get("run") in runs}
    submitted = time.time()
    jobs = [TrainJob(str(exp_dir / run), exp["name"], index[run], policy, submitted, overrides)
            for run in runs]
    ledger.update_experiment(exp_dir, lambda e: ledger.record_submission(
        e, runs, by, submitted, changes=overrides))
    try:
        scheduler.submit(exp_dir, jobs, profile, f"qgan-{exp['name']}", parallel, submitted,
                       report)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - sbatch refused it: say why
        raise UserError(f"submission failed: {exc}") from None
    return ledger.read_experiment(exp_dir) or {}


def cancel(exp_dir: Path, runs: list[str]) -> tuple[dict[str, str], list[str]]:
    """Cancel `runs`: ({run: job id, or "queued"} cancelled, failures). The cancellation is
    recorded in experiment.json first, under its lock: a job that gets SIGTERM from scancel
    must see it and not requeue itself, and a local queue must not start a run cancelled
    while it waited."""
    targets: dict[str, str] = {}
    failed: list[str] = []
    scheduler = schedulers.Scheduler()

    def record(exp: dict) -> None:
        nonlocal scheduler, failed
        scheduler = schedulers.get(exp.get("executor"))
        ids = ledger.task_job_ids(exp)
        queued = ledger.queued_runs(exp)
        found = {r: ids[r] for r in runs if r in ids and r not in queued}
        refused = scheduler.refuse_targets(exp, found)
        failed = list(refused.values())
        targets.update({r: j for r, j in found.items() if r not in refused})
        targets.update({r: "queued" for r in runs if r in queued})
        if not isinstance(exp.get("cancelled"), list):  # absent, or damaged: a valid record
            exp["cancelled"] = []
        exp["cancelled"].append({"time": time.time(), "runs": list(targets)})

    exp = ledger.update_experiment(exp_dir, record)
    failed += scheduler.cancel_jobs(exp, {r: j for r, j in targets.items() if j != "queued"})
    return targets, failed
