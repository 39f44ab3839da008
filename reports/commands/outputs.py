"""Where commands that turn runs into files (`qgan figures`, `qgan export`) may write, and
which runs they take: one check each, so every such command refuses the same things."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

from qgan.errors import UserError
from qgan.safewrite import OutputRefused, check_output_dir

T = TypeVar("T")


def output_dir(out: Path) -> Path:
    """`-o DIR`, created if missing: qgan.safewrite.check_output_dir (the one check of where
    output may go; a run is recognised by its own files, wherever it lies) as a UserError
    (exit 2)."""
    try:
        check_output_dir(out)
    except OutputRefused as exc:
        raise UserError(str(exc)) from None
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
