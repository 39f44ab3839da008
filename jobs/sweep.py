"""The sweep table: a config's `[sweep]` section and `--sweep` options -> one task per run.

    [sweep]
    "train.g_lr" = [0.01, 0.005]      # cartesian product of every listed key ...
    "run.seed" = [1, 2]
    sets = [ {"loss.kind" = "bce"}, {"loss.kind" = "wgan-gp", "loss.n_critic" = 3} ]
                                      # ... times each explicit override set (optional)

Keys may also be written as nested tables (`[sweep.train] g_lr = [...]`). Every task's config is
validated before anything is submitted, and all problems of all tasks are reported at once.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgan.errors import UserError
from qgan.config import ConfigInvalid, apply_overrides, config_from_dict, parse_override, read_toml
from qgan.schema import dotted_keys

log = logging.getLogger(__name__)


@dataclass
class Task:
    index: int
    run: str  # run directory name inside the experiment
    overrides: dict[str, Any]  # dotted key -> value (sweep values, then --set)


def parse_cli_sweep(items: list[str]) -> dict[str, list]:
    """`--sweep KEY=V1,V2` options as {key: [values]} (each value read as TOML, else a string)."""
    out: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"--sweep {item!r}: expected KEY=V1,V2,... e.g. train.g_lr=0.01,0.005")
        try:
            out[key.strip()] = [parse_override(f"{key}={v}")[1] for v in values.split(",")]
        except ConfigInvalid as exc:
            raise UserError(str(exc)) from None
    return out


def split_sweep(raw: dict) -> tuple[dict, dict[str, list], list[dict[str, Any]]]:
    """(config without [sweep], grid {key: values}, explicit sets) from a raw config dict."""
    sweep = raw.get("sweep")
    base = {k: v for k, v in raw.items() if k != "sweep"}
    if sweep is None:
        return base, {}, []
    if not isinstance(sweep, dict):
        raise UserError("[sweep] must be a table of KEY = [values] (and optionally sets = [...])")
    problems = []
    sets_raw = sweep.get("sets", [])
    sets: list[dict[str, Any]] = []
    if not isinstance(sets_raw, list) or not all(isinstance(s, dict) for s in sets_raw):
        problems.append("sweep.sets: expected a list of tables, e.g. "
                        'sets = [{"train.g_lr" = 0.01}, {"train.g_lr" = 0.1}]')
    else:
        sets = [dotted_keys(s) for s in sets_raw]
    grid = dotted_keys({k: v for k, v in sweep.items() if k != "sets"})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            problems.append(f"sweep.{key}: got {values!r}; expected a non-empty list of values")
    if problems:
        raise UserError("the sweep table has problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return base, grid, sets


def _value_key(value: Any) -> Any:
    """A key under which equal values meet: 0.01 and 1e-2, 1 and 1.0 (a number is a number
    however it was written); true is not 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and value.is_integer():
        return ("num", int(value))
    if isinstance(value, (int, float)):
        return ("num", value)
    if isinstance(value, list):
        return ("list", tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return ("table", tuple(sorted((str(k), _value_key(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def combo_key(overrides: dict[str, Any]) -> tuple:
    """The identity of a task's settings: two tasks with equal values are the same task
    (`qgan submit` and `qgan extend` both skip the second)."""
    return tuple(sorted((k, _value_key(v)) for k, v in overrides.items()))


def expand(grid: dict[str, list], sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the grid, times each explicit set; [{}] when there is no sweep.
    A combination equal to an earlier one (`--sweep train.g_lr=0.01,1e-2`) is made once,
    with a warning."""
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    if sets:
        combos = [{**c, **s} for c in combos for s in sets]
    seen: set[tuple] = set()
    unique = []
    for combo in combos:
        key = combo_key(combo)
        if key in seen:
            log.warning("sweep: %s repeats an earlier task (equal values); made once",
                        ", ".join(f"{k}={v!r}" for k, v in combo.items()))
            continue
        seen.add(key)
        unique.append(combo)
    return unique or [{}]


def build_tasks(config_path: Path, cli_sweep: list[str], cli_set: list[str]):
    """Read a config with its sweep table; return (tasks, configs) with every task validated.

    `configs[i]` is the resolved qgan Config of task i. Raises UserError listing all problems.
    """
    try:
        raw = read_toml(config_path)
        sets_cli = [parse_override(s) for s in cli_set]
    except ConfigInvalid as exc:
        raise UserError(str(exc)) from None
    base, grid, sets = split_sweep(raw)
    grid.update(parse_cli_sweep(cli_sweep))
    combos = expand(grid, sets)
    tasks, configs, problems = [], [], []
    for i, combo in enumerate(combos):
        overrides = {**combo, **dict(sets_cli)}
        try:
            cfg = config_from_dict(apply_overrides(base, list(overrides.items())),
                                   f"{config_path} task {i}")
        except ConfigInvalid as exc:
            for err in exc.errors:
                line = str(err)
                if line not in problems:
                    problems.append(line)
            continue
        tasks.append(Task(i, f"task-{i:03d}", overrides))
        configs.append(cfg)
    if problems:
        raise UserError(f"{config_path} has {len(problems)} problem(s) (across {len(combos)} "
                        "task(s)); nothing was submitted:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    return tasks, configs
