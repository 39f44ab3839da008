"""`qgan submit CONFIG`: one run, or a job array when the config has a sweep table."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from qgan.errors import UserError

NAME = "submit"
HELP = ("submit a run, or a sweep as a job array, that resumes itself after preemptions and "
        "time limits")


def add_executor_argument(p: argparse.ArgumentParser) -> None:
    from jobs import schedulers

    p.add_argument("--executor", choices=schedulers.NAMES, help="where to run (default: slurm "
                   "when sbatch is on PATH, else local)")


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    """Profile options shared by submit and drill."""
    g = p.add_argument_group("cluster profile (slurm executor)")
    g.add_argument("--profile", metavar="NAME|PATH", help="cluster profile: a name in "
                   "slurm/profiles (e.g. dev) or a .toml file; see slurm/profiles/example.toml")
    g.add_argument("--partition", help="override the profile's partition")
    g.add_argument("--time", type=int, metavar="MIN", help="override the time limit (minutes)")
    g.add_argument("--cpus", type=int, help="override CPUs per task")
    g.add_argument("--mem", help="override memory, e.g. 4G")
    g.add_argument("--signal-delay", type=int, metavar="S", help="override the seconds of "
                   "warning before the time limit")


def profile_from_args(args: argparse.Namespace):
    from jobs import profiles

    return profiles.load(args.profile, {"partition": args.partition, "time": args.time,
                                        "cpus": args.cpus, "mem": args.mem,
                                        "signal_delay": args.signal_delay})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="config file (TOML), optionally with a [sweep] table")
    add_executor_argument(p)
    p.add_argument("--runs-root", type=Path, default=Path("runs"), help="parent folder of "
                   "experiments (default: ./runs); on a cluster it must be on a shared filesystem")
    p.add_argument("--name", help="experiment name (default: the config file's name)")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="sweep a key over values (repeatable; cartesian product with the "
                   "config's sweep table)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key in every task, as in `qgan train`")
    p.add_argument("--parallel", type=int, metavar="N", help="runs at once (default: the "
                   "profile's array_parallelism; locally without a profile, the CPUs divided by "
                   "the threads one run uses); the rest wait, shown PENDING")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write <experiment>/report.html when every run has ended (on SLURM: "
                   "a small job depending on the array(s)); default on")
    p.add_argument("--prune", action="store_true", help="stop a run whose live verdict is "
                   "terminal (diverged, leaking with no recovery, never fit after a grace); "
                   "recorded as `pruned`, its slot goes to the next run (README: Pruning)")
    p.add_argument("--prune-never-fit", action="store_true", help="--prune, and also stop "
                   "a run that never fit after the grace, but only while another run of the "
                   "experiment already fits better (jobs/prune.py)")
    p.add_argument("--dry-run", action="store_true", help="print the sbatch script and the task "
                   "table; submit nothing")
    p.add_argument("--wait", action="store_true", help="stay until every run has ended, "
                   "showing their status")
    add_profile_arguments(p)


def _task_table(tasks) -> str:
    lines = []
    for t in tasks:
        o = ", ".join(f"{k}={v!r}" for k, v in t.overrides.items()) or "(no overrides)"
        lines.append(f"  {t.index:>4}  {t.run}  {o}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from jobs import schedulers, ledger, sweep

    if args.parallel is not None and args.parallel < 1:
        raise UserError(f"--parallel {args.parallel}: must be at least 1")
    kind = args.executor or schedulers.default()
    scheduler = schedulers.get(kind)
    scheduler.check_profile(explicit=bool(args.profile), dry_run=args.dry_run)
    profile = profile_from_args(args) if (scheduler.needs_profile or args.profile) else None
    tasks, configs = sweep.build_tasks(args.config, args.sweep, args.overrides)
    name = args.name or args.config.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"experiment name {name!r}: use letters, digits, '.', '_' and '-'")
    exp_dir = (args.runs_root / name).resolve()
    folder = exp_dir / ledger.SUBMITIT_DIR

    parallel = scheduler.resolve_parallel(args.parallel, profile)
    at_once = f", at most {parallel} at a time" if parallel else ""
    print(f"experiment {name}: {len(tasks)} task(s) on the {kind} executor{at_once} -> {exp_dir}")
    print(_task_table(tasks))
    if args.dry_run:
        shown = scheduler.dry_run(profile, folder, f"qgan-{name}", len(tasks), parallel)
        if shown:
            print(f"\n{shown}")
        print("\n(dry run: nothing submitted)")
        return 0
    from jobs.experiment import submit_tasks

    doc = submit_tasks(exp_dir, name, kind, profile, args.config, tasks, configs, parallel,
                       args.report, prune=args.prune,
                       prune_never_fit=args.prune_never_fit)
    queued = len(ledger.queued_runs(doc))
    print(f"submitted: job id(s) {', '.join(doc['job_ids'])}"
          + (f"; {queued} run(s) queued" if queued else ""))
    print(f"watch:  qgan status {exp_dir} --watch")
    print(f"cancel: qgan cancel {exp_dir}")
    if args.wait:
        from jobs.commands import status

        rc = status.watch(exp_dir, interval=5.0, until_done=True)
        print(f"runs are in {exp_dir}/")
        if args.report:
            from jobs import report_job

            print(report_job.wait(exp_dir))
        return rc
    return 0
