"""Files the reports layer writes besides the report: names made from run names (untrusted)
and atomic writes for writers that insist on a file name (Pillow, ffmpeg)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

from qgan.atomic import fsync_dir, fsync_file


def safe_name(name: str) -> str:
    """A run's name as one plain file-name component: letters, digits, '.', '_', '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "run"


def safe_names(names: list[str]) -> list[str]:
    """`safe_name` of each, made unique (two names may map to one)."""
    out: list[str] = []
    for name in names:
        safe = safe_name(name)
        while safe in out:
            safe += "_"
        out.append(safe)
    return out


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name next to `path` (hidden, same suffix, so that a writer picks the
    format from it) to write to; on success it replaces `path` durably, on an error it is
    removed and `path` keeps its previous content."""
    path = Path(path)
    tmp = path.parent / f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
