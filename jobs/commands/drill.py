"""`qgan drill`: rehearse a preemption and a time limit on the user's cluster with a tiny run."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.commands.submit import add_executor_argument, add_profile_arguments, profile_from_args

NAME = "drill"
HELP = ("fire drill: submit a tiny run, preempt it and hit its time limit, check it was requeued "
        "and resumed without lost work; prints a verdict with fixes")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_executor_argument(p)
    p.add_argument("--runs-root", type=Path, default=Path("runs"), help="where the drill's run "
                   "goes (on a cluster: a shared filesystem)")
    p.add_argument("--wait", type=float, default=180.0, metavar="S", help="seconds to wait for "
                   "each step (a busy partition needs more)")
    p.add_argument("--preempt-partition", help="a partition whose jobs preempt the profile's "
                   "(default: the profile's preempt_partition; empty = simulate with SIGTERM)")
    add_profile_arguments(p)


def run(args: argparse.Namespace) -> int:
    from jobs import schedulers
    from jobs.drill import Drill

    kind = args.executor or schedulers.default()
    profile = profile_from_args(args)
    if args.preempt_partition is not None:
        profile.preempt_partition = args.preempt_partition
    drill = Drill(kind, profile, args.runs_root, wait_s=args.wait)
    print(f"qgan drill: {kind} executor, profile {profile.source}, partition "
          f"{profile.partition or '(default)'}")
    ok = drill.run()
    print()
    failed = [s for s in drill.steps if s.ok is False]
    if ok:
        print(f"VERDICT: PASS. Runs on this cluster survive preemption and time limits "
              f"({drill.run_dir}).")
        return 0
    print(f"VERDICT: FAIL ({len(failed)} problem(s)):")
    for s in failed:
        print(f"  - {s.name}: {s.fix or s.detail}")
    return 1
