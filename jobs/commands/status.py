"""`qgan status PATH`: one row per run: state, attempts, preemptions, requeues, progress, health."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from qgan.errors import UserError
from qgan.sanitise import clean, control

NAME = "status"
HELP = "show the runs of an experiment (or one run): state, attempts, preemptions, progress"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="an experiment directory or one run directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="refresh until every run has ended")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def verdict_cells(r: dict) -> tuple[str, str]:
    """(VERDICT, WORST FINDING) of a row: the verdict ("!" when a pruner would stop the
    run), the worst finding's kind and steps."""
    v = r.get("verdict") or "-"
    w = r.get("worst")
    worst = f"{w['severity']}: {w['kind']}" + (f" @{w['steps']}" if w["steps"] else "") \
        if w else "-"
    return clean(v.replace("_", " ") + ("!" if r.get("terminal") else "")), clean(worst[:48])


def render(rows: list[dict]) -> str:
    head = ("RUN", "STATE", "ATT", "PREEMPT", "TLIMIT", "STEP", "CKPT AGE", "STEPS/S", "HEALTH",
            "VERDICT", "WORST FINDING", "JOBS")
    table = [head]
    for r in rows:
        total = r["total"] if r["total"] is not None else "?"
        health = ",".join(f"{k}" if v == 1 else f"{k}x{v}" for k, v in sorted(r["health"].items()))
        state = r["state"] + (f" ({r['reason']})" if r["reason"] and r["reason"] != "None" else "")
        table.append((clean(r["run"]), clean(state[:40]), str(r["attempts"]),
                      str(r["preemptions"]), str(r["time_limits"]), f"{r['step']}/{total}",
                      _age(r["checkpoint_age_s"]),
                      f"{r['steps_per_s']:.2f}" if r["steps_per_s"] else "-", health or "ok",
                      *verdict_cells(r), clean(",".join(r["jobs"])) or "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def _shape(rows: list[dict]) -> list:
    return [(r["state"], r["attempts"], r["preemptions"], r["time_limits"]) for r in rows]


def collect(path: Path) -> tuple[list[dict], str]:
    """(one row per run, the report line)."""
    from jobs import ledger, progress, report_job, verdicts

    exp_dir, exp, runs = ledger.locate(path)
    if not runs:
        raise UserError(f"{path} is neither an experiment (experiment.json) nor a run directory")
    rows = progress.experiment_rows(exp_dir, exp, runs)
    verdicts.add_live_verdicts(exp_dir, exp, rows)
    return rows, report_job.describe(exp)


# How long `--watch` (and `qgan submit --wait`) waits, once every run has ended, for the job
# layer to record the end of each run's last episode in jobs.json: seconds after the trainer
# exits normally; a job killed outright never records it, so the wait is bounded.
LEDGER_GRACE_S = 60.0


def watch(path: Path, interval: float, until_done: bool = True, as_json: bool = False) -> int:
    from jobs import progress

    last = None
    ended_at: float | None = None
    while True:
        rows, report = collect(path)
        stamp = time.strftime("%H:%M:%S")
        if as_json:
            print(json.dumps({"time": stamp, "runs": rows}), flush=True)
        else:
            table = render(rows) + (f"\n{clean(report)}" if report else "")
            if sys.stdout.isatty():
                control("\033[2J\033[H")  # clear the screen: our own sequence
                print(f"{clean(path)}  ({stamp})\n{table}\n", flush=True)
            elif _shape(rows) != last:  # a log: print only when something changed
                print(f"{clean(path)}  ({stamp})\n{table}\n", flush=True)
            last = _shape(rows)
        if not (until_done and all(progress.is_terminal(r) for r in rows)):
            ended_at = None
        else:
            ended_at = ended_at or time.monotonic()
            if (not any(r.get("episode_open") for r in rows)
                    or time.monotonic() - ended_at > LEDGER_GRACE_S):
                return 0 if all(r["state"] == "FINISHED" for r in rows) else 1
        time.sleep(interval)


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return watch(args.path, args.interval, as_json=args.json)
    rows, report = collect(args.path)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render(rows) + (f"\n{clean(report)}" if report else ""))
    return 0
