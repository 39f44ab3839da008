"""Run-directory identity: the immutable config, run.json, and one file per attempt.

Attempt files are created with O_EXCL, so two processes can never claim the same attempt
number, and they exist before anything else of the attempt is written: an attempt killed with
SIGKILL still leaves its start behind (with `end_time` null), which is how lost attempts are
counted.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path

from qgan import schema
from qgan.atomic import atomic_write_json, atomic_write_text, fsync_dir
from qgan.config import Config, config_from_dict, dumps, read_toml


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("qgan-toolkit", "tensorflow-cpu", "keras", "strawberryfields", "numpy",
                "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def prepare(run_dir: Path, cfg: Config, *, allow_config_change: bool = False) -> None:
    """Create the run directory, or check that it belongs to this config.

    The config is immutable once written: a run directory created with another config is
    refused (resuming it with different settings would mix two experiments), unless the user
    says so explicitly, in which case the new config replaces it and the old one is kept.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / schema.CONFIG_FILE
    text = dumps(cfg)
    if config_path.exists():
        existing = config_from_dict(read_toml(config_path), str(config_path))
        if dumps(existing) != text:
            if not allow_config_change:
                old, new = existing.__dict__, cfg.__dict__
                diffs = [f"{sec}.{k}: {getattr(old[sec], k)!r} -> {getattr(new[sec], k)!r}"
                         for sec in old for k in vars(old[sec])
                         if getattr(old[sec], k) != getattr(new[sec], k)]
                raise RunDirError(
                    f"{run_dir} was created with another config ({'; '.join(diffs)}). Use a "
                    "new --run-dir, or pass --allow-config-change to continue this run with "
                    "the new settings.")
            stamp = time.strftime("%Y%m%dT%H%M%S")
            os.replace(config_path, run_dir / f"config.{stamp}.toml")
            atomic_write_text(config_path, text)
    else:
        atomic_write_text(config_path, text)
    run_json = run_dir / schema.RUN_FILE
    if not run_json.exists():
        atomic_write_json(run_json, {
            "name": cfg.run.name, "experiment": os.environ.get("QGAN_EXPERIMENT"),
            "array_index": _int_env("QGAN_ARRAY_INDEX"), "seed": cfg.run.seed,
            "total_steps": cfg.train.steps, "created": time.time(), "versions": _versions()})
    for sub in (schema.CHECKPOINT_DIR, schema.METRICS_DIR, schema.SAMPLES_DIR, schema.LOGS_DIR,
                schema.ATTEMPTS_DIR):
        (run_dir / sub).mkdir(exist_ok=True)


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


class Attempt:
    """One process's go at a run: claimed at start, closed with its reason at the end."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir / schema.ATTEMPTS_DIR
        self.dir.mkdir(exist_ok=True)
        existing = [int(p.stem) for p in self.dir.glob("[0-9][0-9][0-9][0-9].json")]
        number = max(existing, default=0) + 1
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

    def close(self, reason: str, exit_status: int, end_step: int, signal: str | None = None) -> None:
        self.update(end_time=time.time(), reason=reason, exit_status=exit_status,
                    end_step=end_step, signal=signal)
