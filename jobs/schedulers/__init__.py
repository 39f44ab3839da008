"""The schedulers by name: `get("local")`, `get("slurm")`; anything else (a bare run
directory's "none", a damaged experiment.json) is the no-scheduler `Scheduler`."""

from __future__ import annotations

from jobs import slurmctl
from jobs.schedulers.base import Scheduler
from jobs.schedulers.local import LocalScheduler
from jobs.schedulers.slurm import SlurmScheduler

REGISTRY: dict[str, Scheduler] = {b.name: b for b in (LocalScheduler(), SlurmScheduler())}
NAMES = tuple(REGISTRY)  # the --executor choices


def get(name: object) -> Scheduler:
    return REGISTRY.get(name, Scheduler()) if isinstance(name, str) else Scheduler()


def default() -> str:
    """SLURM when sbatch is on PATH, else this machine."""
    return SlurmScheduler.name if slurmctl.have("sbatch") else LocalScheduler.name


__all__ = ["Backend", "NAMES", "REGISTRY", "default", "get"]
