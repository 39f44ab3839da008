"""Where commands that turn runs into files (`qgan figures`, `qgan export`) may write, and
which runs they take: one check each, so every such command refuses the same things."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TypeVar

from jobs.errors import UserError
from qgan import schema

# folders of a run directory that the toolkit writes and reads: output there would be taken
# for the run's own files (or, in checkpoints/, put the kept state at risk)
PROTECTED = (schema.CHECKPOINT_DIR, schema.METRICS_DIR, schema.SAMPLES_DIR,
             schema.TENSORBOARD_DIR)

T = TypeVar("T")


def output_dir(out: Path, runs: Sequence[Path]) -> Path:
    """`-o DIR`, created if missing; UserError when it is a file, cannot be created or
    written, or lies in a protected folder of one of `runs` (links resolved)."""
    target = out.resolve()
    for run in runs:
        for sub in PROTECTED:
            folder = (run / sub).resolve()
            if target == folder or folder in target.parents:
                raise UserError(f"-o {out}: inside {run.name}/{sub}/, which the toolkit writes "
                                "and reads; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a folder; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {out}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"-o {out}: not writable; choose another folder")
    return out


def pick_runs(items: Sequence[T], names: list[tuple[str, str]],
              wanted: list[str] | None) -> list[T]:
    """The items whose (run name, folder name) is in `wanted` (all when None), in their
    order; UserError naming the unknown ones and what there is."""
    if not wanted:
        return list(items)
    known = {n for pair in names for n in pair}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        have = ", ".join(sorted({folder for _, folder in names}))
        raise UserError(f"--runs: no run named {', '.join(map(repr, unknown))}; the runs "
                        f"are: {printable(have)}")
    return [item for item, pair in zip(items, names) if set(pair) & set(wanted)]


def printable(text: str) -> str:
    """`text` for a terminal: control characters (from untrusted names) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
