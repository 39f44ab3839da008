"""The one confined, bounded reader of run-directory and experiment files (issue 25).

Every file a run or an experiment holds is untrusted input (docs/run-directory.md). Every
reader of one of them (config.toml, run.json, jobs.json, experiment.json, attempts/*.json,
the checkpoint manifest and checksums, metric parts, samples, the status cache) opens it
here, which gives four guarantees at once:

- **Confined**: with `root` (the run or experiment directory), the path must lie below it and
  is opened component by component with O_NOFOLLOW (`openat`), so no symbolic link anywhere
  below `root` is followed, not even one swapped in after a check; `root` itself may be a link
  (/scratch -> /lustre/...). Without `root`, the file itself must not be a link. User-named
  files (a config on the command line, `--thresholds`, a profile) pass `follow=True`.
- **Regular files only**: opened with O_NONBLOCK, then fstat: a FIFO, a socket or a device
  in place of a file is refused at once instead of blocking the reader (a FIFO as
  `checkpoints/manifest.json` used to hang `qgan train` while it held the run lock, deaf to
  SIGTERM).
- **Size-bounded**, per kind of file (`LIMITS`): checked on the open file before a byte is
  read, and again while reading (a file that grows).
- **Time-bounded**: a read is done in chunks and given up after `TIME_LIMIT_S` (a dying disk,
  a stalled network file system). A single system call the kernel never returns from (a hard
  NFS mount) cannot be interrupted from Python; the chunked read bounds everything else.

Refusals raise `ReadRefused` (a ValueError) with one line saying what and why; a missing file
raises FileNotFoundError; other I/O errors stay OSError. TF-free: analysis, reports and jobs
import it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["LIMITS", "TIME_LIMIT_S", "ReadRefused", "open_regular", "read_bytes", "read_text",
           "tail_lines", "read_json", "read_parquet", "read_parquet_schema", "sha256_file",
           "check_input_path"]

MiB = 1 << 20
# kind -> (what it is, in words; the largest size read)
LIMITS: dict[str, tuple[str, int]] = {
    "config": ("a run config (config.toml)", 1 * MiB),
    "run": ("a run record (run.json)", 1 * MiB),
    "attempt": ("an attempt record (attempts/NNNN.json)", 1 * MiB),
    "jobs": ("a job ledger (jobs.json)", 16 * MiB),
    "experiment": ("an experiment record (experiment.json)", 64 * MiB),
    "manifest": ("a checkpoint manifest (manifest.json)", 16 * MiB),
    "checksums": ("a checkpoint's checksums.json", 1 * MiB),
    "extra": ("a checkpoint's extra.json", 16 * MiB),
    "checkpoint": ("a checkpoint file", 64 * 1024 * MiB),
    "lock": ("a run lock note (run.lock)", 4096),
    "data_profile": ("a data profile (data_profile.json)", 16 * MiB),
    "status_cache": ("a status cache (.status-cache.json)", 16 * MiB),
    "diagnosis_cache": ("a diagnosis cache (.diagnosis-cache.json)", 16 * MiB),
    "part": ("a metrics part (metrics/*/attempt=N/part-*.parquet)", 256 * MiB),
    "samples": ("a samples file (samples/*.parquet)", 512 * MiB),
    "log": ("a log file", 64 * MiB),
    "thresholds": ("a thresholds file (--thresholds)", 1 * MiB),
    "profile": ("a cluster profile", 1 * MiB),
    "user_config": ("a config file", 16 * MiB),
}
TIME_LIMIT_S = 30.0
_CHUNK = 1 * MiB
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class ReadRefused(ValueError):
    """A file was not read: a link out of the directory, not a regular file, over its size
    limit, too slow. `problem` says which ("link", "outside", "not_regular", "too_large",
    "too_slow", "bad_name"); the message is one line naming the file."""

    def __init__(self, path: Path | str, problem: str, message: str) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.problem = problem


def _limit(kind: str) -> tuple[str, int]:
    if kind not in LIMITS:
        raise KeyError(f"unknown kind of file {kind!r}; known: {', '.join(LIMITS)}")
    return LIMITS[kind]


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def _link_refused(path: Path) -> ReadRefused:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return ReadRefused(path, "link", f"{path} is a symbolic link{target}; a run directory must "
                       "hold its own files, so it is not read: replace the link by the file")


def _open_below(root: Path, path: Path, flags: int) -> int:
    """Open `path` (below `root`) with openat, one component at a time, none followed."""
    try:
        rel = Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        raise ReadRefused(path, "outside", f"{path} is not inside {root}; not read") from None
    parts = rel.parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise ReadRefused(path, "outside", f"{path} leads out of {root}; not read")
    fd = os.open(root, _DIR_FLAGS)  # the root itself may be a link
    try:
        here = Path(root)
        for part in parts[:-1]:
            here = here / part
            try:
                nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and here.is_symlink():
                    raise _link_refused(here) from None
                raise
            os.close(fd)
            fd = nxt
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_refused(path) from None
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_regular(path: Path | str, kind: str, *, root: Path | str | None = None,
                 follow: bool = False) -> Iterator[BinaryIO]:
    """The file, opened for reading, after the checks of the module docstring (but the time
    bound, which `read_bytes` adds). Raises ReadRefused, FileNotFoundError, OSError."""
    what, limit = _limit(kind)
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if root is not None:
            fd = _open_below(Path(root), path, flags)
        else:
            fd = os.open(path, flags | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise _link_refused(path) from None
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO's open refused
            raise ReadRefused(path, "not_regular", f"{path} is not a regular file (a socket "
                              "or a device); not read") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise ReadRefused(path, "bad_name", f"{path}: the name is too long for the file "
                              "system") from None
        if exc.errno == errno.ENOENT:  # (openat names only the last component)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path)) \
                from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind_word = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a folder"
                         if stat.S_ISDIR(st.st_mode) else "a device or socket")
            raise ReadRefused(path, "not_regular", f"{path} should be a regular file but is "
                              f"{kind_word}; not read: replace it by the real file")
        if st.st_size > limit:
            raise ReadRefused(path, "too_large", f"{path} is {_mib(st.st_size)}, over the "
                              f"{_mib(limit)} limit for {what}; not read (it is not one the "
                              "toolkit wrote)")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def _read_bounded(fh: BinaryIO, path: Path, kind: str, limit_s: float) -> bytes:
    what, limit = _limit(kind)
    deadline = time.monotonic() + limit_s
    buf = io.BytesIO()
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            return buf.getvalue()
        buf.write(chunk)
        if buf.tell() > limit:
            raise ReadRefused(path, "too_large", f"{path} grew past the {_mib(limit)} limit "
                              f"for {what} while it was read; not read")
        if time.monotonic() > deadline:
            raise ReadRefused(path, "too_slow", f"{path} took longer than {limit_s:.0f} s to "
                              "read (a failing disk or a stalled file system?); not read")


def read_bytes(path: Path | str, kind: str, *, root: Path | str | None = None,
               follow: bool = False, limit_s: float = TIME_LIMIT_S) -> bytes:
    """The whole file, confined, regular, size- and time-bounded (see module docstring)."""
    with open_regular(path, kind, root=root, follow=follow) as fh:
        return _read_bounded(fh, Path(path), kind, limit_s)


def read_text(path: Path | str, kind: str, *, root: Path | str | None = None,
              follow: bool = False) -> str:
    """`read_bytes` decoded as UTF-8 (UnicodeDecodeError, a ValueError, if it is not)."""
    return read_bytes(path, kind, root=root, follow=follow).decode("utf-8")


def tail_lines(path: Path | str, n: int, *, root: Path | str | None = None) -> list[str]:
    """The last `n` non-blank lines of a log file (kind "log"), undecodable bytes replaced;
    [] if it is missing, refused or unreadable (a log tail is a courtesy, never an error)."""
    try:
        text = read_bytes(path, "log", root=root).decode("utf-8", "replace")
    except (OSError, ValueError):
        return []
    return [line for line in text.splitlines() if line.strip()][-n:]


def read_json(path: Path | str, kind: str, *, root: Path | str | None = None) -> Any:
    """A JSON document (ValueError if it is not JSON; RecursionError is turned into one)."""
    text = read_text(path, kind, root=root)
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a record of ours") from None


def read_parquet(path: Path | str, kind: str = "part", *, root: Path | str | None = None,
                 columns: list[str] | None = None):
    """A Parquet file as a pyarrow Table (only `columns` if given): its bytes are read by
    `read_bytes` (every check and bound) and parsed from memory (`ParquetFile`: no dataset
    machinery for one small file)."""
    data = pa.BufferReader(read_bytes(path, kind, root=root))
    return pq.ParquetFile(data).read(columns=columns, use_threads=False)


def read_parquet_schema(path: Path | str, kind: str = "samples", *,
                        root: Path | str | None = None):
    """The schema of a Parquet file, through `open_regular`."""
    with open_regular(path, kind, root=root) as fh:
        return pq.read_schema(fh)


def sha256_file(path: Path | str, kind: str = "checkpoint", *, root: Path | str | None = None,
                limit_s: float = 600.0) -> str:
    """sha256 of a file, read in chunks through `open_regular` (time bound `limit_s`)."""
    digest = hashlib.sha256()
    deadline = time.monotonic() + limit_s
    with open_regular(path, kind, root=root) as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
            if time.monotonic() > deadline:
                raise ReadRefused(path, "too_slow", f"{path} took longer than {limit_s:.0f} s "
                                  "to read; not read")
    return digest.hexdigest()


def check_input_path(path: Path | str, what: str) -> Path:
    """A path given on the command line, checked before any work: it must exist (a link to
    an existing folder is fine) and be nameable (not too long, not under a regular file).
    Raises ReadRefused with one line."""
    path = Path(path)
    try:
        os.lstat(path)
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ReadRefused(path, "bad_name", f"{what} {path}: a name in it is too long for "
                              "the file system") from None
        if exc.errno == errno.ENOTDIR:
            raise ReadRefused(path, "bad_name", f"{what} {path}: Not a directory (a part of "
                              "it is a regular file)") from None
        if exc.errno == errno.ELOOP:
            raise ReadRefused(path, "link", f"{what} {path}: too many levels of symbolic "
                              "links") from None
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise ReadRefused(path, "link", f"{what} {path} is a dangling symbolic link (to "
                              f"{os.readlink(path)})") from None
        if exc.errno == errno.ENOENT:
            raise ReadRefused(path, "missing", f"{what} {path} does not exist") from None
        raise ReadRefused(path, "bad_name", f"{what} {path}: {exc.strerror}") from None
    return path
