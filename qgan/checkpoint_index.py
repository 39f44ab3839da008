"""The one reader of a run's checkpoints/ folder: which checkpoints exist, what each holds,
and whether its files are intact. TensorFlow-free, so the trainer (qgan/checkpoints.py, which
writes and restores), the postmortem (analysis/best.py) and `qgan status` (jobs/ledger.py)
read the folder the same way.

Layout (docs/run-directory.md): `ckpt-<seq>/` (the keep-N rotation) and `best-<seq>/` (the
best eval so far), each holding TensorFlow's `state.*` files, `extra.json` and
`checksums.json` (seq, step, wall time, sha256 and size of every file); `manifest.json`
lists the committed ones, newest last, plus the "best" entry.

Every file here is untrusted input: records are read through the confined, bounded,
schema-checked reader (qgan.records) confined below the run directory (so never through a
link, checkpoints/ itself included), file names must be plain names, folder names must match
the contract's patterns, and hashes are read without following links. What is wrong is
collected in plain words (`Listing.problems`), for the caller to log or show.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgan import records, saferead
from qgan.atomic import UnsafePathError, plain_name
from qgan.schema import BEST_PREFIX, CHECKPOINT_PREFIX, CHECKSUM_FILE, MANIFEST_FILE

STATE_PREFIX = "state"  # TensorFlow's files: tf.train.load_checkpoint("<folder>/state")
EXTRA_FILE = "extra.json"  # the trainer's JSON state beside TensorFlow's
MANIFEST_FORMAT = 1
_NAME_RE = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d{{6,}})$")
_BEST_RE = re.compile(rf"^{re.escape(BEST_PREFIX)}(\d{{6,}})$")
_ENTRY_ERRORS = (OSError, ValueError, KeyError, TypeError, OverflowError, AttributeError)


class CheckpointError(Exception):
    """Base class of checkpoint errors."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint failed verification or could not be read (it is rejected, not fatal)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One committed checkpoint folder, as its record describes it (not yet verified)."""

    seq: int
    step: int
    wall_time: float
    name: str  # folder name, e.g. "ckpt-000007"
    path: Path  # the folder
    files: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    bytes: int = field(default=0, compare=False)
    source: str = field(default="manifest", compare=False)  # where `files` came from

    @property
    def prefix(self) -> str:
        """The TensorFlow checkpoint prefix (for tf.train.load_checkpoint / Checkpoint.read)."""
        return str(self.path / STATE_PREFIX)


@dataclass
class Listing:
    """What checkpoints/ holds: the describable rotation checkpoints (oldest first), the
    folders that cannot be described (name, why) and what else was wrong, in plain words."""

    infos: list[CheckpointInfo]
    unlisted: list[tuple[str, str]]
    problems: list[str]


def seq_of(name: str) -> int | None:
    """The sequence number of a rotation folder name (`ckpt-000007` -> 7), else None."""
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def is_checkpoint_name(name: str) -> bool:
    """A folder name of the contract: `ckpt-<seq>` or `best-<seq>`."""
    return bool(_NAME_RE.match(name) or _BEST_RE.match(name))


def sha256(path: Path) -> str:
    """sha256 of a file of a checkpoint folder, read through the confined reader: never
    through a link (in the folder or as the file), regular files only, time-bounded."""
    return saferead.sha256_file(path, "checkpoint", root=path.parent.parent.parent)


def read_record(path: Path, kind: str, root: Path, problems: list[str] | None = None
                ) -> dict[str, Any]:
    """A JSON record of checkpoints/ (kind "manifest" or "checksums"), confined below `root`,
    bounded and schema-checked; ValueError (one line) if it is unusable, FileNotFoundError if
    absent. A partly usable record is returned with the rest dropped and said in `problems`."""
    loaded = records.load(path, kind, root=root)
    if loaded.missing:
        raise FileNotFoundError(path)
    if problems is not None:
        problems.extend(loaded.problems)
    if loaded.doc is None:
        raise ValueError(loaded.problems[0] if loaded.problems else f"{path} is unusable")
    return loaded.doc


def read_manifest(directory: Path, problems: list[str]) -> dict[str, Any] | None:
    """The manifest, or None if it is missing or unusable (said in `problems`)."""
    path = directory / MANIFEST_FILE
    try:
        return read_record(path, "manifest", directory.parent, problems)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"checkpoint manifest {path} is unreadable ({exc}); using the "
                        "per-folder checksum files")
        return None


def info_from_entry(path: Path, entry: dict[str, Any], source: str) -> CheckpointInfo:
    """A record (a manifest entry or a checksums.json) as a CheckpointInfo; raises one of
    KeyError, TypeError, ValueError... when the record is unusable."""
    files = {plain_name(name, "checkpoint file"): str(meta["sha256"])
             for name, meta in entry["files"].items()}
    total = sum(int(meta.get("bytes", 0)) for meta in entry["files"].values())
    return CheckpointInfo(seq=int(entry["seq"]), step=int(entry["step"]),
                          wall_time=float(entry["wall_time"]), name=path.name, path=path,
                          files=files, bytes=total, source=source)


def list_checkpoints(directory: Path) -> Listing:
    """The rotation checkpoints present on disk, oldest first (not verified): described by the
    manifest when it lists them, else by their own checksums.json. Never through a link."""
    problems: list[str] = []
    if directory.is_symlink() or not directory.is_dir():
        return Listing([], [], problems)
    doc = read_manifest(directory, problems)
    manifest = {entry["folder"]: entry for entry in (doc or {}).get("checkpoints", [])}
    infos: list[CheckpointInfo] = []
    unlisted: list[tuple[str, str]] = []
    for entry_path in directory.iterdir():
        seq = seq_of(entry_path.name)
        if seq is None or not entry_path.is_dir():
            continue
        if entry_path.is_symlink():
            unlisted.append((entry_path.name, "is a symbolic link (to "
                             f"{os.readlink(entry_path)}); not followed"))
            continue
        # The manifest's entry first, else (absent or unusable: an edited manifest) the
        # folder's own checksums.json.
        sources = ([("manifest", manifest[entry_path.name])] if entry_path.name in manifest
                   else []) + [(CHECKSUM_FILE, None)]
        error: Exception | None = None
        for source, entry in sources:
            try:
                if entry is None:
                    entry = read_record(entry_path / CHECKSUM_FILE, "checksums",
                                        directory.parent, problems)
                info = info_from_entry(entry_path, entry, source)
                if info.seq != seq:
                    raise ValueError(f"seq {info.seq} does not match the folder name")
                infos.append(info)
                break
            except _ENTRY_ERRORS as exc:
                problems.append(f"checkpoint {entry_path.name}: its {source} entry is "
                                f"unusable: {exc}")
                error = exc
        else:
            unlisted.append((entry_path.name, f"cannot describe checkpoint: {error}"))
    for name in manifest:
        if not (directory / name).is_dir():
            problems.append(f"manifest lists {name} but the folder is missing")
    return Listing(sorted(infos, key=lambda info: info.seq), sorted(unlisted), problems)


def best_folders(directory: Path) -> list[tuple[int, Path]]:
    """The `best-<seq>` folders on disk, by seq (never through a link)."""
    if directory.is_symlink() or not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        m = _BEST_RE.match(p.name)
        if m and p.is_dir() and not p.is_symlink():
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_best_entry(directory: Path, *, require_folder: bool = True) -> dict[str, Any] | None:
    """The manifest's "best" entry if it names a `best-*` folder (that exists, unless
    `require_folder` is false: a reader reporting a lost folder), else None (no manifest, a
    damaged one, or none written yet: `describe_best` falls back to the folders)."""
    try:
        entry = read_record(directory / MANIFEST_FILE, "manifest",
                            directory.parent).get("best")
        name = str(entry["folder"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not _BEST_RE.match(name):
        return None
    return entry if not require_folder or (directory / name).is_dir() else None


def describe_best(directory: Path, entry: dict[str, Any] | None, problems: list[str]
                  ) -> CheckpointInfo | None:
    """The best checkpoint (not verified): the manifest's "best" `entry`, or else (manifest
    lost, or written before the folder) the newest `best-*` folder's own checksums.json."""
    try:
        if entry is not None:
            return info_from_entry(directory / str(entry["folder"]), entry, "manifest")
        for _, path in reversed(best_folders(directory)):
            doc = read_record(path / CHECKSUM_FILE, "checksums", directory.parent, problems)
            return info_from_entry(path, doc, CHECKSUM_FILE)
    except _ENTRY_ERRORS as exc:
        problems.append(f"the best checkpoint cannot be described: {exc}")
    return None


def verify(info: CheckpointInfo) -> dict[str, Any]:
    """Check every file's sha256 against its record; returns the extra state (extra.json).
    Raises CheckpointCorruptError saying what is wrong."""
    if not info.files:
        raise CheckpointCorruptError("no checksums recorded")
    if info.path.is_symlink() or not info.path.is_dir():
        raise CheckpointCorruptError("the folder is missing")
    links = sorted(p.name for p in info.path.iterdir() if p.is_symlink())
    if links:  # TensorFlow would read through them
        raise CheckpointCorruptError(f"symbolic link(s) {links} in the checkpoint folder")
    for name, expected in sorted(info.files.items()):
        try:
            path = info.path / plain_name(name, "checkpoint file")
        except UnsafePathError as exc:
            raise CheckpointCorruptError(str(exc)) from exc
        try:
            actual = sha256(path)
        except (OSError, ValueError) as exc:  # ValueError: refused (a FIFO, too large)
            raise CheckpointCorruptError(f"{name} unreadable: {exc}") from exc
        if actual != expected:
            raise CheckpointCorruptError(
                f"sha256 mismatch for {name} (expected {expected[:12]}..., got "
                f"{actual[:12]}...)")
    if EXTRA_FILE not in info.files or not any(n.startswith(f"{STATE_PREFIX}.index")
                                               for n in info.files):
        raise CheckpointCorruptError(f"incomplete file list: {sorted(info.files)}")
    try:
        extra = saferead.read_json(info.path / EXTRA_FILE, "extra", root=info.path.parent.parent)
    except (OSError, ValueError) as exc:
        raise CheckpointCorruptError(f"{EXTRA_FILE} unreadable: {exc}") from exc
    if not isinstance(extra, dict):
        raise CheckpointCorruptError(f"{EXTRA_FILE} is not a JSON object")
    return extra


def problem(info: CheckpointInfo) -> str | None:
    """None if the checkpoint verifies, else what is wrong (for readers that only report)."""
    try:
        verify(info)
    except CheckpointCorruptError as exc:
        return str(exc)
    return None
