"""Atomic file writes: a file is either its complete new content or its previous content.

A reader (or a new attempt after SIGKILL / power loss) must never see half a file. We write to a
temporary name in the *same* folder (a rename is only atomic within one filesystem), flush and
fsync the data, `os.replace` it over the target, and fsync the folder so the rename itself is
durable. Temporary names start with a dot and end in `.tmp`, so pyarrow.dataset / pandas (which
skip names starting with `.` or `_`) and globs such as DuckDB's `**/*.parquet` never pick them up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TMP_PREFIX = "."
TMP_SUFFIX = ".tmp"


class UnsafePathError(ValueError):
    """A path inside a run directory leads out of it (a symbolic link, `..`, an absolute
    name): every file in a run directory is untrusted input, so it is refused, not followed."""


def confined(root: Path, path: Path) -> Path:
    """`path` if it lies under `root` with no symbolic link on the way; else UnsafePathError.

    `root` itself may be a link (e.g. /scratch -> /lustre/...): only what is inside the run
    directory is checked. Components that do not exist yet are fine (they will be created as
    real folders). Used for every path built from a name read out of a run directory, and
    before any folder the trainer writes into or deletes from.
    """
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise UnsafePathError(f"{path} is not inside {root}") from None
    current = root
    for part in rel.parts:
        if part in ("..", "") or os.sep in part:
            raise UnsafePathError(f"{path}: '..' leads out of {root}")
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"{current} is a symbolic link (to {os.readlink(current)}); a run directory "
                "must hold its own files: replace the link by a real folder or file")
    return path


def plain_name(name: str, what: str) -> str:
    """`name` if it is a single path component (no '/', not '.' or '..'); else
    UnsafePathError. For file names read from manifests and ledgers."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name \
            or "\0" in name:
        raise UnsafePathError(f"{what} {name!r} is not a plain file name (it could lead out of "
                              "the run directory)")
    return name


def temp_name(final_name: str) -> str:
    """A temporary sibling name for `final_name` that readers ignore (leading dot, `.tmp` end)."""
    return f"{TMP_PREFIX}{final_name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """True for names made by `temp_name` (used to clean up after a killed writer)."""
    return name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)


def fsync_dir(path: Path) -> None:
    """fsync a folder so that creations/renames/deletions inside it survive a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a file someone else wrote (e.g. TensorFlow, which does not fsync its files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked); the seam tests patch for ENOSPC."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically and durably.

    On any error the temporary file is removed, the previous content of `path` (if any) is
    untouched, and the error is re-raised. `durable=False` skips both fsyncs: still complete
    or absent for every reader, but may be lost in a power cut (for caches, which are
    rebuilt).
    """
    path = Path(path)
    folder = path.parent
    tmp = folder / temp_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder)


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding))


def dumps_json(obj: Any) -> str:
    """The one JSON spelling we write: sorted keys, indent 2, trailing newline.

    NaN/Infinity are allowed (Python's json reads them back) because monitor state legitimately
    holds e.g. `best = inf` before the first eval.
    """
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=True) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write `obj` as JSON atomically (sorted keys, indent 2)."""
    atomic_write_text(path, dumps_json(obj))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files/folders a killed writer left in `folder`; returns what was removed.

    Only call this when no other process writes into `folder` (one writer per run directory).
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not is_temp_name(entry.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError as exc:  # best effort: a stale temp is invisible to readers anyway
            log.warning("could not remove stale temporary %s: %s", entry, exc)
    return removed
