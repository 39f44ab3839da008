"""`qgan cancel PATH`: cancel one run or a whole experiment (scancel, or the local controller)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from jobs.errors import UserError

NAME = "cancel"
HELP = "cancel the jobs of one run or of a whole experiment"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="an experiment directory or one of its runs")


def run(args: argparse.Namespace) -> int:
    from jobs import ledger, progress, scheduler

    exp_dir, exp, runs = ledger.locate(args.path)
    if not runs:
        raise UserError(f"{args.path} is neither an experiment nor a run directory")
    ids = ledger.task_job_ids(exp)
    targets = {r: ids[r] for r in runs if r in ids}
    if not targets:
        raise UserError(f"no submitted jobs recorded for {args.path} (was it run with "
                        "`qgan train`? stop that process directly)")
    # Recorded first: a job that gets SIGTERM from scancel must see it and not requeue itself.
    exp.setdefault("cancelled", []).append({"time": time.time(), "runs": list(targets)})
    ledger.write_experiment(exp_dir, exp)
    failed = []
    for run_name, job_id in targets.items():
        if exp.get("executor") == "slurm":
            rc, out = scheduler.run_status("scancel", job_id)
            if rc != 0:
                failed.append(f"{run_name} (job {job_id}): {out}")
        elif exp.get("executor") == "local":
            # The controller turns SIGINT into SIGINT to our callable, which asks the trainer to
            # checkpoint (SIGTERM) before it goes.
            if progress._local_alive(job_id):
                try:
                    os.kill(int(job_id), signal.SIGINT)
                except ProcessLookupError:
                    pass
        print(f"cancelled {run_name} (job {job_id})")
    if failed:
        raise UserError("scancel failed for:\n" + "\n".join(f"  - {f}" for f in failed))
    return 0
