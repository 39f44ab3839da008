"""Full-state checkpoints that are complete or absent, checksummed, and keep-N.

Layout (inside `<run>/checkpoints/`):

    ckpt-000007/                  one checkpoint, named by a sequence number (not by step: a
      state.index                 guard rollback re-saves an earlier step under a new number)
      state.data-00000-of-00001   TensorFlow files: tf.train.load_checkpoint("<folder>/state")
      extra.json                  JSON extra state (step, guard/monitor state, learning rates...)
      checksums.json              seq, step, wall_time and sha256 of the three files above
    manifest.json                 the committed checkpoints, newest last, with sha256 per file

Why each step:
- TensorFlow writes its files without fsync (FACTS.md), so we write everything into a temporary
  folder (`.ckpt-000007.<pid>-<rand>.tmp`, ignored by everyone), fsync every file and the
  folder, rename it to `ckpt-000007` (the commit point) and fsync the parent. A SIGKILL or a
  full disk at any instant leaves either the complete new folder or none.
- The manifest is replaced atomically after the rename. It is an index for humans and a second
  copy of the checksums; the per-folder `checksums.json` means a checkpoint committed just
  before a kill (renamed, manifest not yet updated) or a lost/damaged manifest still restores.
- Restoring verifies sha256 of every file first, so a damaged file is rejected before any
  variable is touched, and the next older checkpoint is tried.
- Restoring uses `assert_consumed()`: Keras 3 optimizers create their slot variables
  (momentum/velocity) lazily, and TensorFlow silently *drops* checkpoint values for variables
  that do not exist yet (FACTS.md, TF #52346/#27937). **Callers must build every model and call
  `optimizer.build(model.trainable_variables)` before restoring.** A checkpoint whose checksums
  verify but whose structure does not match the trackables raises `CheckpointMismatchError`
  (a code/config mismatch, not damage: falling back to older checkpoints would not help and
  would silently restart training).

No pickle: TensorFlow's own format plus JSON.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgan import checkpoint_index as index
from qgan.atomic import (UnsafePathError, atomic_write_json, dumps_json, fsync_dir,
                         fsync_file, remove_stale_temps, temp_name)
from qgan.checkpoint_index import (EXTRA_FILE, MANIFEST_FORMAT, STATE_PREFIX,  # noqa: F401
                                   CheckpointCorruptError, CheckpointError, CheckpointInfo)
from qgan.schema import BEST_PREFIX, CHECKPOINT_PREFIX, CHECKSUM_FILE, MANIFEST_FILE

log = logging.getLogger(__name__)



class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written; the previous checkpoints and manifest are intact."""


class CheckpointMismatchError(CheckpointError):
    """An intact checkpoint does not fit the trackables (different model/optimizer structure,
    or an optimizer that was not built before restoring). Fatal: older ones would not fit
    either."""


@dataclass
class RestoreResult:
    """What `restore_latest` / `restore` restored, and which newer checkpoints were rejected."""

    info: CheckpointInfo
    extra: dict[str, Any]
    rejected: list[tuple[CheckpointInfo | str, str]] = field(default_factory=list)


def _remove_tree(path: Path) -> None:
    """Delete a folder so that a kill midway never leaves a half-deleted `ckpt-*` folder:
    first rename it to a temporary (ignored) name, then delete."""
    if path.is_symlink():  # never delete through a link; unlink the link itself
        raise UnsafePathError(f"{path} is a symbolic link; not deleting through it")
    doomed = path.parent / temp_name(path.name)
    os.rename(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def damage_checkpoint(info: CheckpointInfo, nbytes: int = 16) -> Path:
    """Flip bytes in the middle of the checkpoint's .data file in place (fault injection).

    Used by `faults.corrupt_checkpoint_at_step` and the tests; returns the damaged file.
    """
    data_files = sorted(info.path.glob(f"{STATE_PREFIX}.data-*"))
    if not data_files:
        raise FileNotFoundError(f"no .data file in {info.path}")
    target = data_files[0]
    with open(target, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            raise ValueError(f"{target} is empty; nothing to damage")
        start = max(0, size // 2 - nbytes // 2)
        fh.seek(start)
        chunk = fh.read(min(nbytes, size - start))
        fh.seek(start)
        fh.write(bytes(b ^ 0xFF for b in chunk))
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("fault injection: damaged %s (%d bytes at offset %d)", target, len(chunk), start)
    return target


class CheckpointManager:
    """Writes, lists, verifies and restores checkpoints of `trackables` in `directory`.

    trackables: name -> TF trackable (Keras 3 model/optimizer, tf.Variable), given to one
    `tf.train.Checkpoint(**trackables)`. Build optimizers before `restore*` (see module doc).
    keep: how many checkpoints to keep (>= 1); older ones are deleted after a new one commits.
    strict: restore with `assert_consumed()` (True) or `assert_existing_objects_matched()`.
    read_only: for readers such as `qgan sample`: create nothing and delete nothing (a trainer
    may be writing into the folder at the same time).

    Besides the rotation, `save_best` keeps one `best-<seq>/` folder (the best eval so far),
    which the rotation never touches; the manifest's "best" entry names it.
    """

    def __init__(self, directory: Path, trackables: dict[str, object], keep: int,
                 *, strict: bool = True, read_only: bool = False) -> None:
        from qgan.tflib import tf  # lazy: TensorFlow; listing checkpoints needs none

        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if not trackables:
            raise ValueError("trackables is empty: nothing to checkpoint")
        self.directory = Path(directory)
        if self.directory.is_symlink():  # keep-N cleanup would delete files elsewhere
            raise UnsafePathError(f"{self.directory} is a symbolic link (to "
                                  f"{os.readlink(self.directory)}); checkpoints must live in "
                                  "the run directory: replace the link by a folder")
        self.keep = keep
        self.strict = strict
        self._tf = tf
        self._checkpoint = tf.train.Checkpoint(**trackables)
        if not read_only:
            self.open_for_writing()
        self._best_entry = index.read_best_entry(self.directory)
        self.last_rejected: list[tuple[CheckpointInfo | str, str]] = []
        self.unlisted: list[tuple[str, str]] = []  # ckpt-* folders that cannot be described
        infos = self.list()
        seqs = [info.seq for info in infos] + [index.seq_of(name) or 0 for name, _ in self.unlisted]
        self._next_seq = max(seqs, default=0) + 1

    def open_for_writing(self) -> None:
        """Create the folder and remove the temporaries of a killed writer. A trainer calls it
        only once its restore has succeeded (it opens read-only until then), so a refused
        start changes nothing."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temps(self.directory):
            log.info("removed a stale temporary left by a killed writer: %s", stale.name)

    def present(self) -> list[str]:
        """The names of every checkpoint folder on disk (ckpt-* and best-*, describable or
        not): what a fresh start would lose. OSError if the folder cannot be listed."""
        if not os.path.lexists(self.directory):
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if index.is_checkpoint_name(p.name))

    # ---- listing -------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE

    def list(self) -> list[CheckpointInfo]:
        """Committed checkpoints present on disk, oldest first (not verified), by the one
        reader (qgan/checkpoint_index.py). Folders that cannot be described end up in
        `self.unlisted` (name, reason)."""
        listing = index.list_checkpoints(self.directory)
        for problem in listing.problems:
            log.warning("%s", problem)
        self.unlisted = listing.unlisted
        return listing.infos

    def latest(self) -> CheckpointInfo | None:
        """The newest committed checkpoint (not verified), or None."""
        infos = self.list()
        return infos[-1] if infos else None

    # ---- saving --------------------------------------------------------------------------------
    def _write_manifest(self, infos: list[CheckpointInfo]) -> None:
        entries = []
        for info in infos:
            entries.append({
                "seq": info.seq, "step": info.step, "wall_time": info.wall_time,
                "folder": info.name,
                "files": {name: {"sha256": digest,
                                 "bytes": (info.path / name).stat().st_size}
                          for name, digest in sorted(info.files.items())},
            })
        doc: dict[str, Any] = {"format": MANIFEST_FORMAT, "checkpoints": entries}
        if self._best_entry is not None:
            doc["best"] = self._best_entry
        atomic_write_json(self.manifest_path, doc)

    def _commit_folder(self, name: str, seq: int, step: int, extra_text: str,
                       prev_text: str) -> tuple[dict[str, str], float]:
        """Write the trackables and `extra_text` into `<directory>/<name>/` so that it is
        complete or absent (temporary folder, fsync, rename); returns (sha256 per file, wall
        time). Raises CheckpointWriteError, saying what is intact (`prev_text`)."""
        final = self.directory / name
        tmp = self.directory / temp_name(name)
        wall_time = time.time()
        stage = "creating the temporary folder"
        try:
            tmp.mkdir()
            stage = "writing the TensorFlow files"
            self._checkpoint.write(str(tmp / STATE_PREFIX))
            stage = f"writing {EXTRA_FILE}"
            (tmp / EXTRA_FILE).write_text(extra_text, encoding="utf-8")
            stage = "computing checksums"
            files = {p.name: index.sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            sizes = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
            stage = f"writing {CHECKSUM_FILE}"
            (tmp / CHECKSUM_FILE).write_text(dumps_json({
                "seq": seq, "step": int(step), "wall_time": wall_time,
                "files": {n: {"sha256": d, "bytes": sizes[n]} for n, d in files.items()},
            }), encoding="utf-8")
            files[CHECKSUM_FILE] = index.sha256(tmp / CHECKSUM_FILE)
            stage = "fsyncing the files"
            for path in tmp.iterdir():
                fsync_file(path)
            fsync_dir(tmp)
            stage = "renaming the folder into place"
            os.rename(tmp, final)
            fsync_dir(self.directory)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointWriteError(
                f"writing checkpoint {name} (step {step}) failed while {stage}: "
                f"{type(exc).__name__}: {exc}; {prev_text}") from exc
        return files, wall_time

    def save(self, step: int, extra: dict[str, Any]) -> CheckpointInfo:
        """Commit a new checkpoint of the trackables plus `extra` (JSON) for `step`.

        Raises CheckpointWriteError (previous checkpoints and manifest untouched) if anything
        fails, e.g. a full disk; ValueError if `extra` is not JSON-serialisable.
        """
        try:
            extra_text = dumps_json(extra)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint extra state is not JSON-serialisable: {exc}") from exc
        started = time.monotonic()
        previous = self.list()
        seq = max([self._next_seq] + [info.seq + 1 for info in previous])
        name = f"{CHECKPOINT_PREFIX}{seq:06d}"
        final = self.directory / name
        prev_text = (f"the previous checkpoint ({previous[-1].name}, step {previous[-1].step}) "
                     "is intact" if previous else "there was no previous checkpoint")
        files, wall_time = self._commit_folder(name, seq, step, extra_text, prev_text)

        info = CheckpointInfo(seq=seq, step=int(step), wall_time=wall_time, name=name,
                              path=final, files=files,
                              bytes=sum(p.stat().st_size for p in final.iterdir()),
                              source="manifest")
        committed = previous + [info]
        kept, doomed = committed[-self.keep:], committed[:-self.keep]
        try:
            self._write_manifest(kept)
        except Exception as exc:
            # Undo the commit so that disk and manifest stay as they were.
            with contextlib.suppress(OSError):
                _remove_tree(final)
            raise CheckpointWriteError(
                f"writing checkpoint {name} (step {step}) failed while writing "
                f"{MANIFEST_FILE}: {type(exc).__name__}: {exc}; {prev_text}") from exc
        self._next_seq = seq + 1
        for old in doomed:
            try:
                _remove_tree(old.path)
            except OSError as exc:  # committed already; an extra old folder is harmless
                log.warning("could not delete old checkpoint %s: %s", old.name, exc)
        log.info("checkpoint %s written (step %d, %d bytes, %.3f s)", name, step, info.bytes,
                 time.monotonic() - started)
        return info

    # ---- the best checkpoint (outside the rotation) ------------------------------------------
    def best(self) -> CheckpointInfo | None:
        """The best checkpoint (not verified): the manifest's "best" entry, or else the newest
        `best-*` folder's own checksums.json."""
        problems: list[str] = []
        info = index.describe_best(self.directory, self._best_entry, problems)
        for problem in problems:
            log.warning("%s", problem)
        return info

    def save_best(self, step: int, extra: dict[str, Any], *, metric: str, mode: str,
                  value: float) -> CheckpointInfo:
        """Commit the trackables as the new best checkpoint `best-<seq>/`, name it in the
        manifest, then delete the previous best folder(s). Never touches the `ckpt-*`
        rotation. Raises CheckpointWriteError with the previous best intact."""
        try:
            extra_text = dumps_json(extra)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint extra state is not JSON-serialisable: {exc}") from exc
        old = index.best_folders(self.directory)
        seq = max((s for s, _ in old), default=0) + 1
        name = f"{BEST_PREFIX}{seq:06d}"
        final = self.directory / name
        prev = self._best_entry
        prev_text = (f"the previous best checkpoint ({prev['folder']}, step {prev['step']}) is "
                     "intact" if prev else "there was no previous best checkpoint")
        files, wall_time = self._commit_folder(name, seq, step, extra_text, prev_text)
        self._best_entry = {
            "seq": seq, "step": int(step), "wall_time": wall_time, "folder": name,
            "metric": metric, "mode": mode, "value": float(value),
            "files": {n: {"sha256": d, "bytes": (final / n).stat().st_size}
                      for n, d in sorted(files.items())}}
        try:
            self._write_manifest(self.list())
        except Exception as exc:
            self._best_entry = prev
            with contextlib.suppress(OSError):
                _remove_tree(final)
            raise CheckpointWriteError(
                f"writing best checkpoint {name} (step {step}) failed while writing "
                f"{MANIFEST_FILE}: {type(exc).__name__}: {exc}; {prev_text}") from exc
        for _, path in old:
            try:
                _remove_tree(path)
            except OSError as exc:  # committed already; an extra old folder is harmless
                log.warning("could not delete old best checkpoint %s: %s", path.name, exc)
        info = self.best()
        assert info is not None and info.name == name
        return info

    # ---- restoring -----------------------------------------------------------------------------
    def verify(self, info: CheckpointInfo) -> dict[str, Any]:
        """Check every file's sha256; returns the extra state. Raises CheckpointCorruptError."""
        return index.verify(info)

    def restore(self, info: CheckpointInfo) -> RestoreResult:
        """Verify and restore one checkpoint into the trackables (e.g. a guard rollback).

        Raises CheckpointCorruptError if it is damaged (nothing has been assigned if the
        checksums fail), CheckpointMismatchError if it does not fit the trackables.
        """
        extra = self.verify(info)
        tf = self._tf
        try:
            status = self._checkpoint.read(info.prefix)
        except (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OpError) as exc:
            raise CheckpointCorruptError(f"TensorFlow could not read it: {exc}") from exc
        except ValueError as exc:  # shape/dtype mismatch
            raise CheckpointMismatchError(
                f"checkpoint {info.name} does not fit the model/optimizer: {exc}") from exc
        try:
            if self.strict:
                status.assert_consumed()
            else:
                status.assert_existing_objects_matched()
        except AssertionError as exc:
            raise CheckpointMismatchError(
                f"checkpoint {info.name} does not match the trackables (was every optimizer "
                f"built with optimizer.build(variables) before restoring?): {exc}") from exc
        log.info("restored checkpoint %s (step %d)", info.name, info.step)
        return RestoreResult(info=info, extra=extra, rejected=[])

    def restore_latest(self) -> RestoreResult | None:
        """Restore the newest checkpoint that verifies, trying older ones after a rejection.

        Rejections (newest first) are in the result's `rejected` and in `self.last_rejected`
        (also when None is returned because no checkpoint is usable).
        """
        infos = self.list()
        rejected: list[tuple[CheckpointInfo | str, str]] = []
        candidates: list[tuple[int, CheckpointInfo | str]] = [(i.seq, i) for i in infos]
        reasons = dict(self.unlisted)
        candidates += [(index.seq_of(name) or 0, name) for name in reasons]
        for _, candidate in sorted(candidates, key=lambda c: c[0], reverse=True):
            if isinstance(candidate, str):
                rejected.append((candidate, reasons[candidate]))
                log.warning("rejected checkpoint %s: %s", candidate, reasons[candidate])
                continue
            try:
                result = self.restore(candidate)
            except CheckpointCorruptError as exc:
                rejected.append((candidate, str(exc)))
                log.warning("rejected checkpoint %s (step %d): %s", candidate.name,
                            candidate.step, exc)
                continue
            result.rejected = rejected
            self.last_rejected = rejected
            return result
        self.last_rejected = rejected
        return None

    def corrupt_latest_for_testing(self) -> CheckpointInfo:
        """Damage the newest checkpoint's .data file (fault injection); returns its info."""
        info = self.latest()
        if info is None:
            raise CheckpointError("no checkpoint to corrupt")
        damage_checkpoint(info)
        return info
