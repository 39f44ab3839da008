"""`qgan train CONFIG --run-dir DIR`: run or resume one training run in this process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qgan.errors import UserError
from qgan.sanitise import clean

NAME = "train"
HELP = ("train (or resume) one run; exit 0 finished, 2 bad input, 3 diverged, 4 run in use, "
        "5 checkpoints present but none verifies (nothing touched), 75 stopped by a signal and "
        "resumable")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="config file (TOML); `qgan config --default` "
                   "prints one")
    p.add_argument("--run-dir", type=Path, required=True, help="the run directory (created, or "
                   "resumed from its newest valid checkpoint)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted path), e.g. --set train.steps=100; "
                   "repeatable")
    p.add_argument("--allow-config-change", action="store_true",
                   help="continue a run directory that was created with another config")
    p.add_argument("--fresh", action="store_true",
                   help="start over: move the run's old state (checkpoints, metrics, samples, "
                   "attempts, logs, jobs.json) to RUN/superseded/<time>/ (nothing is deleted), "
                   "then train from step 0; e.g. after exit 5 (no checkpoint verifies)")
    p.add_argument("--lock-wait", type=float, default=0.0, metavar="S",
                   help="if another trainer holds the run directory, wait up to S seconds for "
                   "it to end before giving up with exit 4 (default 0; the jobs layer waits, "
                   "so a requeued job outlives a trainer that is still checkpointing)")


def run(args: argparse.Namespace) -> int:
    from qgan.signals import StopFlag

    with StopFlag() as flag:  # before TensorFlow is imported: no signal is lost at start-up
        return _run(args, flag)


def _run(args: argparse.Namespace, flag) -> int:
    from qgan.config import ConfigInvalid, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigInvalid as exc:
        raise UserError(str(exc)) from None
    from qgan import schema
    from qgan.atomic import UnsafePathError
    from qgan.data import DataError
    from qgan.rundir import RunDirError, RunLockedError, StorageError
    from qgan.trainer import UnverifiedCheckpointsError, train

    try:
        status = train(cfg, args.run_dir, allow_config_change=args.allow_config_change,
                       stop_flag=flag, lock_wait=args.lock_wait, fresh=args.fresh)
    except (DataError, RunDirError, UnsafePathError) as exc:
        raise UserError(str(exc)) from None
    except RunLockedError as exc:
        print(f"qgan train: refused: {clean(exc, keep_newlines=True)}", file=sys.stderr)
        return schema.EXIT_LOCKED
    except UnverifiedCheckpointsError as exc:
        print(f"qgan train: refused: {clean(exc, keep_newlines=True)}", file=sys.stderr)
        return schema.EXIT_UNVERIFIED
    except StorageError as exc:
        print(f"qgan train: stopped: {clean(exc.strerror, keep_newlines=True)}",
              file=sys.stderr)
        return schema.EXIT_RESUME
    print(f"run directory: {clean(args.run_dir)}")
    return status
