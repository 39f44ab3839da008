"""The one safe writer of user-named output files (issue 25, class 1).

`qgan report -o`, `qgan sample -o` (and every later writer of a file the user names: figures,
exports) go through `check_output` before any heavy work and `write_output` at the end:

- **Never into a run's state.** The path is resolved (links followed, so a link cannot smuggle
  it in) and refused when it lies inside a run directory's `checkpoints/`, `metrics/`,
  `attempts/`, `samples/`, `logs/` or `superseded/`, or names a contract file of a run
  (`config.toml`, `config.<time>.toml`, `run.json`, `jobs.json`, `run.lock`, the status cache)
  or of an experiment (`experiment.json`, its lock, `.submitit/`). `report -o
  RUN/checkpoints/best-000001/state.index` used to replace the kept checkpoint's index.
- **Atomic.** A temporary sibling, fsync, rename (qgan.atomic): the file is its complete new
  content or its previous one; a failure leaves nothing half-written.
- **One clear line** (`OutputRefused`, a ValueError; the CLI prints it and exits 2) for an
  existing folder given as the file, a path under a regular file, a missing folder, a
  read-only folder or file system, a full disk or quota, a name too long.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import Path

from qgan import schema
from qgan.atomic import TMP_PREFIX, TMP_SUFFIX, atomic_write_bytes

__all__ = ["OutputRefused", "check_output", "check_output_dir", "write_output"]

# folders of a run directory that only the toolkit writes (state, records, evidence)
RUN_STATE_DIRS = (schema.CHECKPOINT_DIR, schema.METRICS_DIR, schema.ATTEMPTS_DIR,
                  schema.SAMPLES_DIR, schema.LOGS_DIR, schema.SUPERSEDED_DIR,
                  schema.TENSORBOARD_DIR)
RUN_FILES = (schema.CONFIG_FILE, schema.RUN_FILE, schema.JOBS_FILE, schema.LOCK_FILE,
             schema.STATUS_CACHE_FILE, schema.PROFILE_FILE)
_OLD_CONFIG = re.compile(r"^config\..+\.toml$")  # config.<time>.toml kept by a config change
EXPERIMENT_FILES = (schema.EXPERIMENT_FILE, ".experiment.lock", ".submitit")
# any of these makes a folder a run directory (as qgan.rundir decides)
_RUN_MARKERS = (schema.CONFIG_FILE, schema.RUN_FILE, schema.LOCK_FILE, schema.ATTEMPTS_DIR,
                schema.CHECKPOINT_DIR, schema.METRICS_DIR)


class OutputRefused(ValueError):
    """An output path that must not or cannot be written; the message is one line."""


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except OSError:
        return False


def _is_run_dir(folder: Path) -> bool:
    return any(_exists(folder / m) for m in _RUN_MARKERS)


def _protected(resolved: Path) -> str | None:
    """Why `resolved` is part of a run's or an experiment's state, or None."""
    for ancestor in resolved.parents:
        rel = resolved.relative_to(ancestor).parts
        if _exists(ancestor / schema.EXPERIMENT_FILE) and rel[0] in EXPERIMENT_FILES:
            return f"it is the experiment's own {rel[0]} (in {ancestor})"
        if not _is_run_dir(ancestor):
            continue
        if rel[0] in RUN_STATE_DIRS and len(rel) > 1:
            return (f"it is inside the run's {rel[0]}/ folder ({ancestor}), which only the "
                    "trainer writes")
        if len(rel) == 1 and (rel[0] in RUN_FILES or rel[0] in RUN_STATE_DIRS
                              or _OLD_CONFIG.match(rel[0])):
            return f"it is the run's own {rel[0]} (in {ancestor})"
    return None


def _say(exc: OSError, out: Path, folder: Path) -> str:
    """One line for an OSError met while checking or writing `out`."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"-o {out}: no space left on the file system of {folder} ({exc.strerror}); "
                "nothing was written (an earlier file of that name is intact): free space "
                "or choose another -o")
    if code == errno.EROFS:
        return f"-o {out}: {folder} is on a read-only file system; choose another -o"
    if code in (errno.EACCES, errno.EPERM):
        return f"-o {out}: no permission to write in {folder}; choose another -o"
    if code == errno.ENAMETOOLONG:
        return f"-o {out}: a name in it is too long for the file system"
    if code == errno.ENOTDIR:
        return f"-o {out}: a part of the path is a regular file, not a folder"
    if code == errno.EISDIR:
        return f"-o {out}: is a folder; give a file name"
    return f"-o {out}: cannot write it ({exc.strerror or exc}); nothing was written"


def check_output(out: Path | str, *, suffix: str | None = None,
                 make_parents: bool = False, probe: bool = True) -> Path:
    """The path to write `out` to (links resolved), after every check that can be made
    before the work: not part of a run's state, not a folder, under a folder that exists (or,
    with `make_parents`, whose nearest existing ancestor is a folder; `write_output` creates
    the rest, so a command refused later has created nothing) and takes a new file (`probe`:
    a temporary file is created and removed; as root, permission bits say nothing). Raises
    OutputRefused."""
    out = Path(out)
    if suffix is not None and out.suffix != suffix:
        raise OutputRefused(f"-o {out}: the output must end in {suffix}")
    try:
        resolved = Path(os.path.realpath(out))
    except (OSError, ValueError) as exc:
        raise OutputRefused(f"-o {out}: cannot resolve it ({exc})") from None
    why = _protected(resolved)
    if why is not None:
        raise OutputRefused(f"-o {out}: refused: {why}; write the output elsewhere")
    folder = resolved.parent
    try:
        if resolved.is_dir():
            raise OutputRefused(f"-o {out}: is a folder; give a file name")
        if _exists(folder) and not folder.is_dir():
            raise OutputRefused(f"-o {out}: {folder} is a regular file, not a folder")
        existing = folder
        if not folder.is_dir():
            if not make_parents:
                raise OutputRefused(f"-o {out}: folder {folder} does not exist; create it "
                                    "first")
            while not _exists(existing):  # created at write time, not now
                existing = existing.parent
            if not existing.is_dir():
                raise OutputRefused(f"-o {out}: {existing} is a regular file, not a folder")
        if probe:
            _probe(existing)
    except OSError as exc:
        raise OutputRefused(_say(exc, out, folder)) from None
    return resolved


def check_output_dir(out: Path | str) -> Path:
    """A folder for many output files (`qgan figures -o`, `qgan export -o`), created if
    missing, after the same checks as `check_output`: not part of a run's or an experiment's
    state (links resolved), not a regular file, writable (probed). Each file written into it
    goes through `write_output` or an atomic write. Raises OutputRefused."""
    out = Path(out)
    try:
        resolved = Path(os.path.realpath(out))
    except (OSError, ValueError) as exc:
        raise OutputRefused(f"-o {out}: cannot resolve it ({exc})") from None
    why = _protected(resolved / "_")  # a file in the folder: is the folder part of a run?
    if why is not None:
        raise OutputRefused(f"-o {out}: refused: {why}; write the output elsewhere")
    try:
        if _exists(resolved) and not resolved.is_dir():
            raise OutputRefused(f"-o {out}: exists and is not a folder; give a folder")
        resolved.mkdir(parents=True, exist_ok=True)
        _probe(resolved)
    except OSError as exc:
        raise OutputRefused(_say(exc, out, resolved)) from None
    return resolved


def _probe(folder: Path) -> None:
    """Create and remove a temporary file (a name readers ignore) in `folder`."""
    tmp = folder / f"{TMP_PREFIX}probe.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def write_output(out: Path | str, data: bytes, *, suffix: str | None = None,
                 make_parents: bool = False) -> Path:
    """Check `out` (check_output, again: the folder may have changed during the work) and
    replace it atomically with `data`; returns the path written. Raises OutputRefused, and
    then nothing was written."""
    resolved = check_output(out, suffix=suffix, make_parents=make_parents, probe=False)
    try:
        if make_parents:
            resolved.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(resolved, data)
    except OSError as exc:
        raise OutputRefused(_say(exc, Path(out), resolved.parent)) from None
    return resolved
