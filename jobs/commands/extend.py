"""`qgan extend EXP`: more steps (or another config change) for some or all runs of an
experiment, each resuming from its checkpoint, and more values of a swept key as new runs of
the same experiment, so that the postmortem ranks old and new together.

    qgan extend runs/my --set train.steps=4000               # every run trains on to 4,000
    qgan extend runs/my --sweep run.seed=4,5                 # two more seeds of every setting
    qgan extend runs/my --runs task-002 --set train.steps=4000

The trainer applies a change with `--allow-config-change`: the run's config.toml becomes the
new one and the old one is kept as config.<time>.toml; the change is also recorded with the
submission in experiment.json (`tasks[].jobs[].set`). A run still queued or running is refused
(cancel it first).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qgan.errors import UserError
from qgan.sanitise import clean

NAME = "extend"
HELP = ("train some or all runs of an experiment further (--set train.steps=N), or add runs "
        "(--sweep KEY=V1,V2); each resumes from its checkpoint")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jobs.commands.submit import add_profile_arguments

    p.add_argument("path", type=Path, help="an experiment directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change the selected runs' config, e.g. train.steps=4000 (repeatable)")
    p.add_argument("--runs", metavar="NAMES", help="only these runs (comma-separated; default "
                   "all): with --set, the runs changed; with --sweep, the settings copied")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="new runs: every setting of the experiment's other swept keys with each "
                   "of these values (repeatable: the cartesian product)")
    p.add_argument("--parallel", type=int, metavar="N", help="runs at once, as for submit")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write <experiment>/report.html again when these runs have ended")
    add_profile_arguments(p)


def _config_with(run_dir: Path, pairs: list[tuple[str, object]], source: str):
    from qgan.config import ConfigInvalid, apply_overrides, config_from_dict, read_toml
    from qgan.schema import CONFIG_FILE

    try:
        raw = read_toml(run_dir / CONFIG_FILE, root=run_dir)
        return config_from_dict(apply_overrides(raw, pairs), source)
    except ConfigInvalid as exc:
        raise UserError(str(exc)) from None


def _changed(exp_dir: Path, names: list[str], pairs: list) -> list[str]:
    """The runs whose config the --set pairs change (every one is validated first)."""
    from qgan.config import dumps

    return [name for name in names
            if dumps(_config_with(exp_dir / name, pairs, f"{name} with --set"))
            != dumps(_config_with(exp_dir / name, [], name))]


def _new_tasks(exp: dict, names: list[str], grid: dict[str, list]) -> list[dict]:
    """One task per (setting of the experiment's other keys, among `names`) x new value
    combination, skipping combinations the experiment has already."""
    from jobs import sweep

    tasks = [t for t in exp["tasks"] if t["run"] in names]
    have = {sweep.combo_key(t.get("overrides") or {}) for t in exp["tasks"]}
    groups: dict[str, tuple[dict, str]] = {}
    for t in tasks:
        rest = {k: v for k, v in (t.get("overrides") or {}).items() if k not in grid}
        groups.setdefault(json.dumps(rest, sort_keys=True), (rest, t["run"]))
    index = max(int(t["index"]) for t in exp["tasks"]) + 1
    out = []
    for rest, like in groups.values():
        for combo in sweep.expand(grid, []):
            overrides = {**rest, **combo}
            key = sweep.combo_key(overrides)
            if key in have:
                continue
            have.add(key)
            out.append({"index": index, "run": f"task-{index:03d}", "overrides": overrides,
                        "job_id": None, "like": like, "combo": combo})
            index += 1
    return out


def run(args: argparse.Namespace) -> int:
    from jobs import schedulers, experiment, ledger, progress, sweep
    from jobs.commands.resubmit import recorded_profile, select_runs
    from qgan.atomic import atomic_write_text
    from qgan.config import ConfigInvalid, dumps, parse_override

    exp_dir, exp, runs = ledger.locate(args.path)
    if not runs or exp.get("executor") not in schedulers.NAMES:
        raise UserError(f"{args.path} is not an experiment made by `qgan submit`")
    ledger.check_submittable(exp_dir)
    if not args.overrides and not args.sweep:
        raise UserError("nothing to extend: pass --set KEY=VALUE (e.g. train.steps=4000) "
                        "and/or --sweep KEY=V1,V2 (new runs)")
    if args.parallel is not None and args.parallel < 1:
        raise UserError(f"--parallel {args.parallel}: must be at least 1")
    names = select_runs(args.runs, runs)
    try:
        pairs = [parse_override(s) for s in args.overrides]
    except ConfigInvalid as exc:
        raise UserError(str(exc)) from None
    grid = sweep.parse_cli_sweep(args.sweep)
    changed = _changed(exp_dir, names, pairs) if pairs else []
    added = _new_tasks(exp, names, grid) if grid else []
    configs = {t["run"]: _config_with(exp_dir / t["like"], pairs + list(t["combo"].items()),
                                      f"new run {t['run']}") for t in added}
    busy = [r["run"] for r in progress.experiment_rows(exp_dir, exp, changed)
            if r["state"] in progress.ACTIVE_STATES]
    if busy:
        raise UserError(f"{', '.join(busy)} still queued or running: `qgan cancel` them first "
                        "(they resume from their checkpoint), or pass --runs")
    if not changed and not added:
        print("nothing to extend: the runs already have these settings and values")
        return 0
    taken = [t["run"] for t in added if (exp_dir / t["run"]).exists()]
    if taken:
        raise UserError(f"{', '.join(taken)} already exist in {exp_dir} but not in its "
                        "experiment.json: move them away first")
    for t in added:  # the new runs' folders and configs, then their tasks, under the lock
        (exp_dir / t["run"]).mkdir()
        atomic_write_text(exp_dir / t["run"] / "config.toml", dumps(configs[t["run"]]))

    def add(doc: dict) -> None:
        doc["tasks"].extend({k: v for k, v in t.items() if k not in ("like", "combo")}
                            for t in added)

    ledger.update_experiment(exp_dir, add)
    doc = experiment.submit_runs(exp_dir, changed + [t["run"] for t in added],
                                 recorded_profile(args, exp, exp_dir), args.parallel, by="extend",
                                 report=args.report, overrides=list(args.overrides))
    ids = ledger.task_job_ids(doc)
    for name in changed:
        print(f"extended {clean(name)} ({clean(' '.join(args.overrides))}): "
              + (f"job {ids[name]}" if name in ids else "queued"))
    for t in added:
        values = ", ".join(f"{k}={v!r}" for k, v in t["overrides"].items())
        print(f"added {t['run']} ({values}): "
              + (f"job {ids[t['run']]}" if t["run"] in ids else "queued"))
    print(f"watch:  qgan status {exp_dir} --watch")
    return 0
