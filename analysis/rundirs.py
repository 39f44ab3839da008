"""Which folders are runs and what they are called: what `qgan status`, the pruner and the
experiment loader agree on, without loading any run's data (no pandas here: status imports
this at every refresh)."""

from __future__ import annotations

from pathlib import Path

from qgan import records, schema


class NotARunError(ValueError):
    """The path is neither a run directory nor an experiment (folder of runs)."""


def is_run_dir(path: Path) -> bool:
    return (path / schema.RUN_FILE).is_file() or (path / schema.METRICS_DIR).is_dir()


def find_runs(path: Path) -> list[Path]:
    """The run folders directly inside `path`, in name order."""
    return sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))


def run_names(run_dirs: list[Path]) -> list[str]:
    """The names `load_experiment` gives these runs, read from run.json alone (so that runs
    loaded apart, in parallel, are named as if loaded together)."""
    names = []
    for d in run_dirs:
        doc = records.load(d / schema.RUN_FILE, "run", root=d).doc
        names.append(str((doc or {}).get("name") or d.name) if isinstance(doc, dict)
                     else d.name)
    return names if len(set(names)) == len(names) else [d.name for d in run_dirs]
