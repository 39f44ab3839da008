"""`qgan resubmit EXP`: submit again the runs of an experiment that did not finish.

Each resumes from its newest good checkpoint (all state is in the run directory); a finished
run is never run again; a run still queued or running is left alone. The new job ids are
recorded in experiment.json next to the old ones (`qgan status` shows them all).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qgan.errors import UserError
from qgan.sanitise import clean

NAME = "resubmit"
HELP = ("submit again the runs of an experiment that did not finish (failed, cancelled, "
        "unfinished); each resumes from its newest good checkpoint")

# `qgan status` states by what resubmit calls them; any other state that is neither finished
# nor active is "unfinished" (its job ended without the run finishing).
CATEGORIES = {
    "cancelled": {"CANCELLED"},
    "failed": {"GAVE_UP", "BAD_INPUT", "DIVERGED", "FAILED", "REQUEUE_FAILED", "NODE_FAIL",
               "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "TIMEOUT"},
    "pruned": {"PRUNED"},  # only with --include-pruned (or --state pruned)
}
DEFAULT_STATES = "failed,cancelled,unfinished"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jobs.commands.submit import add_profile_arguments

    p.add_argument("path", type=Path, help="an experiment directory (or one of its runs)")
    p.add_argument("--runs", metavar="NAMES", help="only these runs (comma-separated names)")
    p.add_argument("--state", default=DEFAULT_STATES, metavar="STATES",
                   help=f"which runs, by state (comma-separated; default {DEFAULT_STATES})")
    p.add_argument("--include-pruned", action="store_true",
                   help="also resubmit runs the pruner stopped (`qgan submit --prune`)")
    p.add_argument("--parallel", type=int, metavar="N", help="runs at once, as for submit")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write <experiment>/report.html again when these runs have ended")
    p.add_argument("--dry-run", action="store_true", help="list what would be resubmitted")
    add_profile_arguments(p)


def category(state: str) -> str:
    from jobs.progress import ACTIVE_STATES

    if state == "FINISHED":
        return "finished"
    if state in ACTIVE_STATES:
        return "active"
    for name, states in CATEGORIES.items():
        if state in states:
            return name
    return "unfinished"


def select_runs(option: str | None, runs: list[str]) -> list[str]:
    """The runs named by a --runs option (all when absent); an unknown name is an error."""
    if not option:
        return list(runs)
    names = [n.strip() for n in option.split(",") if n.strip()]
    unknown = [n for n in names if n not in runs]
    if unknown or not names:
        raise UserError(f"--runs {option!r}: {', '.join(unknown) or 'no name'} not in this "
                        f"experiment (its runs: {', '.join(runs[:8])}"
                        f"{' ...' if len(runs) > 8 else ''})")
    return names


def _states(option: str) -> set[str]:
    wanted = {s.strip() for s in option.split(",") if s.strip()}
    allowed = {"failed", "cancelled", "unfinished", "pruned"}
    if not wanted or wanted - allowed:
        raise UserError(f"--state {option!r}: expected a comma-separated subset of "
                        f"{', '.join(sorted(allowed))}")
    return wanted


def recorded_profile(args: argparse.Namespace, exp: dict, exp_dir: Path):
    """The profile of the first submission (re-validated: experiment.json is untrusted), with
    this command line's overrides; --profile replaces it."""
    from jobs import profiles
    from jobs.commands.submit import profile_from_args

    recorded = exp.get("profile")
    if args.profile or not isinstance(recorded, dict):
        return profile_from_args(args) if args.profile or recorded is not None else None
    raw = {k: v for k, v in recorded.items() if k != "source"}
    raw.update({k: v for k, v in {"partition": args.partition, "time": args.time,
                                  "cpus": args.cpus, "mem": args.mem,
                                  "signal_delay": args.signal_delay}.items() if v is not None})
    return profiles.check(raw, str(recorded.get("source") or exp_dir / "experiment.json"))


def run(args: argparse.Namespace) -> int:
    from jobs import schedulers, experiment, ledger, progress

    exp_dir, exp, runs = ledger.locate(args.path)
    if not runs:
        raise UserError(f"{args.path} is neither an experiment nor a run directory")
    if exp.get("executor") not in schedulers.NAMES:
        raise UserError(f"{exp_dir} was not made by `qgan submit` (no executor recorded); "
                        "run `qgan train` on it again, or submit its config")
    ledger.check_submittable(exp_dir)
    if args.parallel is not None and args.parallel < 1:
        raise UserError(f"--parallel {args.parallel}: must be at least 1")
    names, wanted = select_runs(args.runs, runs), _states(args.state)
    if args.include_pruned:
        wanted.add("pruned")
    rows = {r["run"]: r for r in progress.experiment_rows(exp_dir, exp, names)}
    picked, skipped = [], []
    for name in names:
        kind = category(rows[name]["state"])
        if kind in wanted:
            picked.append(name)
        elif kind == "finished":
            skipped.append(f"{name}: finished (never run again)")
        elif kind == "pruned":
            skipped.append(f"{name}: pruned ({rows[name]['reason'][:80]}; --include-pruned "
                           "resubmits it)")
        elif kind == "active":
            skipped.append(f"{name}: {rows[name]['state']} (still active; `qgan cancel` it "
                           "first to resubmit it)")
        else:
            skipped.append(f"{name}: {rows[name]['state']} ({kind}; not in --state)")
    for line in skipped:
        print(f"skipped {clean(line)}")
    if not picked:
        print("nothing to resubmit")
        return 0
    if args.dry_run:
        print("would resubmit: " + clean(", ".join(picked)) + "\n(dry run: nothing submitted)")
        return 0
    profile = recorded_profile(args, exp, exp_dir)
    doc = experiment.submit_runs(exp_dir, picked, profile, args.parallel, by="resubmit",
                                 report=args.report)
    ids = ledger.task_job_ids(doc)
    for name in picked:
        print(f"resubmitted {clean(name)} "
              + (f"(job {clean(ids[name])})" if name in ids else "(queued)"))
    print(f"watch:  qgan status {exp_dir} --watch")
    return 0
