"""`qgan cancel PATH`: cancel one run or a whole experiment (scancel, or the local controller)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qgan.errors import UserError
from qgan.sanitise import clean

NAME = "cancel"
HELP = "cancel the jobs of one run or of a whole experiment"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="an experiment directory or one of its runs")


def run(args: argparse.Namespace) -> int:
    from jobs import experiment, ledger

    exp_dir, exp, runs = ledger.locate(args.path)
    if not runs:
        raise UserError(f"{args.path} is neither an experiment nor a run directory")
    known = {**ledger.task_job_ids(exp), **ledger.queued_runs(exp)}
    if not any(r in known for r in runs):
        raise UserError(f"no submitted jobs recorded for {args.path} (was it run with "
                        "`qgan train`? stop that process directly)")
    cancelled, failed = experiment.cancel(exp_dir, runs)
    for run_name, job_id in cancelled.items():
        print(f"cancelled {clean(run_name)} " + ("(queued, never started)"
                                                 if job_id == "queued"
                                                 else f"(job {clean(job_id)})"))
    if failed:
        raise UserError("not cancelled:\n" + "\n".join(f"  - {f}" for f in failed))
    return 0
