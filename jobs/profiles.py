"""Cluster profiles: where and how runs are submitted (slurm/profiles/*.toml, `[slurm]` table).

A profile is validated as a whole before anything is submitted; every problem is listed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgan.errors import UserError
from qgan import saferead

PROFILE_DIRS = (Path(__file__).resolve().parents[1] / "slurm" / "profiles",
                Path.home() / ".config" / "qgan" / "profiles")


@dataclass
class Profile:
    partition: str = ""
    time: int = 60  # minutes
    cpus: int = 1
    mem: str = "4G"
    gpus: int = 0
    signal_delay: int = 120  # seconds between the time-limit warning (USR2) and the limit
    array_parallelism: int = 16
    max_requeues: int = 20  # time-limit requeues per run; preemptions are not counted
    max_failures: int = 2  # crashes without progress before a run is given up
    requeue: bool = True
    extra_sbatch: list = field(default_factory=list)
    setup: list = field(default_factory=list)
    python: str = ""
    preempt_partition: str = ""  # `qgan drill`: a partition whose jobs preempt `partition`
    source: str = "(defaults)"

    def sbatch_options(self) -> dict[str, Any]:
        """extra_sbatch lines as submitit `additional_parameters` ({'account': 'x', ...})."""
        out: dict[str, Any] = {}
        for line in self.extra_sbatch:
            key, sep, value = line.strip().lstrip("-").partition("=")
            out[key.replace("-", "_")] = value if sep else True
        if self.requeue:
            out.setdefault("requeue", True)
        return out


MIN_RUN_BEFORE_WARNING_S = 60
_MEM = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
_SBATCH_LINE = re.compile(r"^--[a-z][a-z0-9-]*(=.+)?$")


def check(raw: dict, source: str) -> Profile:
    """A profile from a raw `[slurm]` table (or one recorded in experiment.json), every
    problem listed at once."""
    problems: list[str] = []
    fields = {f.name: f for f in dataclasses.fields(Profile) if f.name != "source"}
    for key in raw:
        if key not in fields:
            problems.append(f"slurm.{key}: unknown key; known keys: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        value = raw[name]
        default = Profile().__dict__[name]
        expected = type(default)
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"slurm.{name}: got {value!r}; expected an integer")
        elif expected is bool and not isinstance(value, bool):
            problems.append(f"slurm.{name}: got {value!r}; expected true or false")
        elif expected is str and not isinstance(value, str):
            problems.append(f"slurm.{name}: got {value!r}; expected a string")
        elif expected is list and (not isinstance(value, list)
                                   or not all(isinstance(v, str) for v in value)):
            problems.append(f"slurm.{name}: got {value!r}; expected a list of strings")
        else:
            values[name] = value
    p = Profile(**values, source=source)
    for name, low in (("time", 1), ("cpus", 1), ("array_parallelism", 1), ("gpus", 0),
                      ("max_requeues", 0), ("max_failures", 1), ("signal_delay", 1)):
        if getattr(p, name) < low:
            problems.append(f"slurm.{name}: got {getattr(p, name)!r}; must be >= {low}")
    if not _MEM.match(p.mem):
        problems.append(f"slurm.mem: got {p.mem!r}; expected e.g. '4G' or '4000M'")
    if p.signal_delay + MIN_RUN_BEFORE_WARNING_S > p.time * 60:
        # SLURM sends the warning at its next timer tick once the remaining time is below the
        # delay: a warning due at the start can land before submitit handles USR2 and kills
        # the job (measured: FAILED after 15 s, never requeued).
        most = p.time * 60 - MIN_RUN_BEFORE_WARNING_S
        need = math.ceil((p.signal_delay + MIN_RUN_BEFORE_WARNING_S) / 60)
        fix = (f"lower signal_delay to at most {most} or raise time to at least {need}"
               if most >= 1 else f"raise time to at least {need}")
        problems.append(f"slurm.signal_delay: got {p.signal_delay} s with time = {p.time} min; "
                        f"the warning must leave at least {MIN_RUN_BEFORE_WARNING_S} s of run "
                        f"time: {fix}")
    for line in p.extra_sbatch:
        if not _SBATCH_LINE.match(line.strip()):
            problems.append(f"slurm.extra_sbatch: {line!r} is not an sbatch option "
                            "(expected '--name' or '--name=value')")
        elif line.strip().startswith(("--signal", "--array", "--output", "--error")):
            problems.append(f"slurm.extra_sbatch: {line!r} is set by qgan (use signal_delay, "
                            "array_parallelism)")
    if problems:
        raise UserError(f"profile {source} has {len(problems)} problem(s):\n"
                        + "\n".join(f"  - {x}" for x in problems))
    return p


def find(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path:
        if not path.exists():
            raise UserError(f"profile {path} not found")
        return path
    for folder in PROFILE_DIRS:
        candidate = folder / f"{name_or_path}.toml"
        if candidate.exists():
            return candidate
    known = sorted({p.stem for d in PROFILE_DIRS if d.is_dir() for p in d.glob("*.toml")})
    raise UserError(f"profile {name_or_path!r} not found in {', '.join(map(str, PROFILE_DIRS))}; "
                    f"known: {', '.join(known) or '(none)'}; or pass a path to a .toml file")


def load(name_or_path: str | None, overrides: dict[str, Any] | None = None) -> Profile:
    """Read a profile (name in slurm/profiles, or a path) and apply command-line overrides."""
    raw: dict[str, Any] = {}
    source = "(defaults)"
    if name_or_path:
        path = find(name_or_path)
        source = str(path)
        try:
            doc = tomllib.loads(saferead.read_text(path, "profile", follow=True))
        except (OSError, ValueError) as exc:  # also refused (a FIFO), not UTF-8, not TOML
            raise UserError(f"profile {path}: cannot read: {exc}") from None
        if set(doc) - {"slurm"} or not isinstance(doc.get("slurm", {}), dict):
            raise UserError(f"profile {path}: expected one [slurm] table, found "
                            f"{', '.join(doc) or 'nothing'}")
        raw = dict(doc.get("slurm", {}))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return check(raw, source)
