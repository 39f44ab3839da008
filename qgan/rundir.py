"""Run-directory identity: the immutable config, run.json, and one file per attempt.

Attempt files are created with O_EXCL, so two processes can never claim the same attempt
number, and they exist before anything else of the attempt is written: an attempt killed with
SIGKILL still leaves its start behind (with `end_time` null), which is how lost attempts are
counted.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import platform
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from qgan import __version__, records, schema
from qgan.atomic import (UnsafePathError, atomic_write_json, atomic_write_text, confined,
                         fsync_dir)
from qgan.config import (Config, ConfigInvalid, config_from_dict, dumps, read_toml,
                         resolve_auto)
from qgan.vocabulary import AttemptEnd

# Folders and files the trainer writes into, reads back or deletes from: none may be a link.
_SUBDIRS = (schema.CHECKPOINT_DIR, schema.METRICS_DIR, schema.SAMPLES_DIR, schema.LOGS_DIR,
            schema.ATTEMPTS_DIR)
_FILES = (schema.CONFIG_FILE, schema.RUN_FILE, schema.LOCK_FILE, schema.JOBS_FILE,
          schema.PROFILE_FILE)
# A folder holding any of these is a run directory; any other non-empty folder is refused.
_MARKERS = (schema.CONFIG_FILE, schema.RUN_FILE, schema.LOCK_FILE, schema.ATTEMPTS_DIR,
            schema.CHECKPOINT_DIR, schema.METRICS_DIR)
_FULL = (errno.ENOSPC, errno.EDQUOT)
log = logging.getLogger(__name__)


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class StorageError(OSError):
    """The run directory cannot be written now (disk full, quota); nothing was lost: run
    again when there is room (exit EXIT_RESUME)."""


def storage_error(exc: OSError, doing: str) -> OSError | RunDirError:
    """A full disk becomes StorageError (transient); any other OSError a RunDirError."""
    if exc.errno in _FULL:
        return StorageError(exc.errno, f"{doing} failed: {exc.strerror}; free space (or raise "
                            "the quota), then run again: the run resumes from its newest "
                            "checkpoint")
    return RunDirError(f"{doing} failed: {exc.strerror or exc}"
                       + (f": {exc.filename}" if exc.filename else "")
                       + "; check the path and its permissions")


def open_run_dir(run_dir: Path) -> Path:
    """Create the run directory, or check that an existing one can be used safely.

    Refused (RunDirError): a path under a regular file, a dangling link, a non-empty folder
    that is not a run directory, and links or wrong file types inside the run directory (a
    `checkpoints/` link would make keep-N cleanup delete files elsewhere).
    """
    run_dir = Path(run_dir)
    try:
        if run_dir.is_symlink() and not run_dir.exists():
            raise RunDirError(f"--run-dir {run_dir} is a dangling symbolic link (to "
                              f"{os.readlink(run_dir)}); remove it or give another --run-dir")
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"--run-dir {run_dir} exists and is not a folder; give another "
                              "--run-dir")
    except OSError as exc:  # a name too long, a loop of links
        raise storage_error(exc, f"opening the run directory {run_dir}") from None
    try:
        existed = run_dir.is_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        entries = {p.name for p in run_dir.iterdir()}
    except OSError as exc:
        raise storage_error(exc, f"creating the run directory {run_dir}") from None
    if existed and entries and not entries & set(_MARKERS):
        raise RunDirError(f"--run-dir {run_dir} is a non-empty folder that is not a run "
                          f"directory (it holds {', '.join(sorted(entries)[:5])}...); give a "
                          "new or empty folder")
    for name in _SUBDIRS + _FILES:
        path = run_dir / name
        try:
            confined(run_dir, path)
        except UnsafePathError as exc:
            raise RunDirError(str(exc)) from None
        if name in _SUBDIRS and path.exists() and not path.is_dir():
            raise RunDirError(f"{path} should be a folder but is not; move it away")
        if name in _FILES and path.exists() and not path.is_file():
            raise RunDirError(f"{path} should be a regular file but is not; move it away")
    for sub in _SUBDIRS:
        link = _first_link(run_dir / sub)
        if link is not None:
            raise RunDirError(f"{link} is a symbolic link (to {os.readlink(link)}); a run "
                              "directory must hold its own files (the trainer writes, reads "
                              "back and deletes there): replace the link by a real folder or "
                              "file")
    return run_dir


def _first_link(folder: Path) -> Path | None:
    """The first symbolic link anywhere under `folder` (not followed), or None."""
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(parent, name)):
                return Path(parent) / name
    return None


def _versions() -> dict:
    # the toolkit's own version from the code that runs (an installed package's metadata
    # could be another copy's)
    out = {"python": platform.python_version(), "qgan-toolkit": __version__}
    for pkg in ("tensorflow-cpu", "keras", "strawberryfields", "numpy",
                "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass(frozen=True)
class ConfigPlan:
    """What `apply_config` will write: decided by `plan_config` without writing anything, so
    that a command refused later (checkpoints that do not fit the new config, none that
    verifies) leaves the run directory exactly as it was."""

    text: str  # the resolved config as TOML
    write: bool  # config.toml is new or changes
    keep_old: bool  # an allowed change: the old config.toml is kept as config.<time>.toml
    cfg: Config  # the config with its "auto" settings resolved (config.resolve_auto)


def plan_config(run_dir: Path, cfg: Config, allow_config_change: bool = False) -> ConfigPlan:
    """Check that the run directory belongs to this config (reads only).

    The config is immutable once written: a run directory created with another config is
    refused (resuming it with different settings would mix two experiments), unless the user
    says so explicitly (`--allow-config-change`). "auto" settings are resolved to what the
    run's own config says, so a new default never changes a running run.
    """
    config_path = run_dir / schema.CONFIG_FILE
    try:
        present = config_path.exists()
    except OSError as exc:
        raise storage_error(exc, f"reading {config_path}") from None
    if not present:
        cfg = resolve_auto(cfg)
        return ConfigPlan(dumps(cfg), write=True, keep_old=False, cfg=cfg)
    try:
        existing = config_from_dict(read_toml(config_path, root=run_dir), str(config_path))
    except ConfigInvalid as exc:
        raise RunDirError(f"{config_path}, the record of this run's settings, is damaged "
                          f"({' '.join(str(exc).split())}); restore it, or use a new "
                          "--run-dir") from None
    recorded = dumps(existing)
    # a config written before its "auto" settings were resolved (by the job layer at
    # submission, or by an older version) is resolved, not counted as a change
    existing = resolve_auto(existing)
    cfg = resolve_auto(cfg, existing)
    text = dumps(cfg)
    if dumps(existing) == text:
        return ConfigPlan(text, write=recorded != text, keep_old=False, cfg=cfg)
    if not allow_config_change:
        old, new = existing.__dict__, cfg.__dict__
        diffs = [f"{sec}.{k}: {getattr(old[sec], k)!r} -> {getattr(new[sec], k)!r}"
                 for sec in old for k in vars(old[sec])
                 if getattr(old[sec], k) != getattr(new[sec], k)]
        raise RunDirError(
            f"{run_dir} was created with another config ({'; '.join(diffs)}). Use a "
            "new --run-dir, or pass --allow-config-change to continue this run with "
            "the new settings.")
    return ConfigPlan(text, write=True, keep_old=True, cfg=cfg)


def apply_config(run_dir: Path, cfg: Config, plan: ConfigPlan) -> None:
    """Write what `plan_config` decided (only once every check has passed): the config
    (the old one kept as config.<time>.toml), run.json, and the run's folders."""
    try:
        config_path = run_dir / schema.CONFIG_FILE
        if plan.keep_old:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            os.replace(config_path, run_dir / f"config.{stamp}.toml")
        if plan.write:
            atomic_write_text(config_path, plan.text)
        if plan.keep_old:
            _update_total_steps(run_dir / schema.RUN_FILE, cfg.train.steps)
        run_json = run_dir / schema.RUN_FILE
        if not run_json.exists():
            atomic_write_json(run_json, {
                "name": cfg.run.name, "experiment": os.environ.get("QGAN_EXPERIMENT"),
                "array_index": _int_env("QGAN_ARRAY_INDEX"), "seed": cfg.run.seed,
                "total_steps": cfg.train.steps, "created": time.time(),
                "versions": _versions()})
        for sub in _SUBDIRS:
            (run_dir / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"writing the run directory {run_dir}") from None


def prepare(run_dir: Path, cfg: Config, *, allow_config_change: bool = False) -> Config:
    """Create the run directory, or check that it belongs to this config, and write its
    record (`plan_config` then `apply_config`; the trainer runs its checkpoint checks in
    between). Returns the config with its "auto" settings resolved, as written."""
    open_run_dir(run_dir)
    plan = plan_config(run_dir, cfg, allow_config_change)
    apply_config(run_dir, plan.cfg, plan)
    return plan.cfg


# What `--fresh` moves aside: everything an attempt or the job layer wrote; the checkpoints
# last, so that a kill midway leaves them in place and the next plain start still refuses.
_STATE = (schema.LOGS_DIR, schema.SAMPLES_DIR, schema.METRICS_DIR, schema.ATTEMPTS_DIR,
          schema.JOBS_FILE, schema.STATUS_CACHE_FILE, schema.PROFILE_FILE,
          schema.CHECKPOINT_DIR)


def move_aside(run_dir: Path) -> Path | None:
    """Start over without deleting anything: move the run's state (checkpoints, metrics,
    samples, attempts, logs, the job ledger) into `superseded/<time>/` inside the run
    directory; config.toml and run.json stay. Returns that folder, or None when there was
    nothing to move. Caller holds the run lock."""
    present = [n for n in _STATE if os.path.lexists(run_dir / n)]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = run_dir / schema.SUPERSEDED_DIR / stamp
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = run_dir / schema.SUPERSEDED_DIR / f"{stamp}-{n}"
    try:
        confined(run_dir, dest)
        dest.mkdir(parents=True)
        for name in present:
            os.rename(run_dir / name, dest / name)
        fsync_dir(dest)
        fsync_dir(run_dir)
    except UnsafePathError as exc:
        raise RunDirError(str(exc)) from None
    except OSError as exc:
        raise storage_error(exc, f"moving the old state of {run_dir} aside") from None
    log.warning("--fresh: the old state of %s (%s) was moved to %s; nothing was deleted",
                run_dir, ", ".join(present), dest)
    return dest


def _update_total_steps(run_json: Path, steps: int) -> None:
    """A run extended with more steps (`qgan extend`): run.json says what it is now for."""
    info = records.load(run_json, "run", root=run_json.parent).doc
    if info is None:
        return  # missing or damaged: written anew below, or left for the loader to report
    if info.get("total_steps") != steps:
        atomic_write_json(run_json, {**info, "total_steps": steps})


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


class Attempt:
    """One process's go at a run: claimed at start, closed with its reason at the end."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir / schema.ATTEMPTS_DIR
        self.dir.mkdir(exist_ok=True)
        number = max(schema.attempt_numbers(run_dir), default=0) + 1
        while True:
            path = self.dir / f"{number:04d}.json"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                number += 1
        self.number = number
        self.path = path
        self.record = {
            "attempt": number, "start_time": time.time(), "end_time": None, "start_step": None,
            "end_step": None, "resumed_from": None, "reason": None, "signal": None,
            "exit_status": None, "host": socket.gethostname(), "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
            "slurm_array_task_id": _int_env("SLURM_ARRAY_TASK_ID"),
            "slurm_restart_count": _int_env("SLURM_RESTART_COUNT"),
        }
        with os.fdopen(fd, "w") as fh:
            json.dump(self.record, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.dir)

    def update(self, **fields: object) -> None:
        self.record.update(fields)
        atomic_write_json(self.path, self.record)

    def close(self, reason: AttemptEnd, exit_status: int, end_step: int, signal: str | None = None) -> None:
        self.update(end_time=time.time(), reason=reason, exit_status=exit_status,
                    end_step=end_step, signal=signal)


class RunLockedError(RuntimeError):
    """Another live process holds the run directory's lock (exit EXIT_LOCKED)."""


class RunLock:
    """An exclusive `flock` on `<run>/run.lock`, held for the trainer's lifetime.

    The kernel releases it when the process dies, however it dies (SIGKILL included), so a
    stale lock file never blocks a resume; the pid/host/time written into it only serve the
    refusal message. Two trainers on one run directory would interleave checkpoints and
    parts; the second is refused before it touches anything. On NFS, flock works only with
    lockd (NFSv3 without `nolock`/`local_lock=all`, or NFSv4): see docs/run-directory.md.
    """


    def __init__(self, run_dir: Path, wait_seconds: float = 0.0) -> None:
        self.path = Path(run_dir) / schema.LOCK_FILE
        self.wait_seconds = float(wait_seconds)
        self._fd: int | None = None

    def _holder(self) -> str:
        info = records.load(self.path, "lock", root=self.path.parent).doc
        if info is None:
            return "holder unknown"
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        except (ValueError, OverflowError, OSError):
            when = "an unknown time"
        return f"pid {info['pid']} on {str(info.get('host'))[:64]}, since {when}"

    def __enter__(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            raise storage_error(exc, f"opening the lock file {self.path}") from None
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder()
                    os.close(fd)
                    raise RunLockedError(
                        f"{self.path.parent} is in use by another trainer ({holder}); one run "
                        "directory takes one trainer at a time: wait for it to end, or stop it "
                        "(SIGTERM checkpoints and exits)") from None
                time.sleep(0.5)
        self._fd = fd
        return self

    def note(self) -> None:
        """Write who holds the lock into it (for a second trainer's refusal message). Done
        once the run's checks have passed: a refused command leaves run.lock as it was."""
        if self._fd is None:
            return
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.time()}).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, info, 0)
        except OSError:
            pass  # the lock holds without its note (e.g. a full disk)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
