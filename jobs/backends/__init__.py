"""Scheduler backends by name: `get("local")`, `get("slurm")`; anything else (a bare run
directory's "none", a damaged experiment.json) is the no-scheduler `Backend`."""

from __future__ import annotations

from jobs import scheduler
from jobs.backends.base import Backend
from jobs.backends.local import LocalBackend
from jobs.backends.slurm import SlurmBackend

REGISTRY: dict[str, Backend] = {b.name: b for b in (LocalBackend(), SlurmBackend())}
NAMES = tuple(REGISTRY)  # the --executor choices


def get(name: object) -> Backend:
    return REGISTRY.get(name, Backend()) if isinstance(name, str) else Backend()


def default() -> str:
    """SLURM when sbatch is on PATH, else this machine."""
    return SlurmBackend.name if scheduler.have("sbatch") else LocalBackend.name


__all__ = ["Backend", "NAMES", "REGISTRY", "default", "get"]
