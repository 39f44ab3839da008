"""Buffered metric rows -> immutable, atomically written Parquet parts (and the reader).

Files (see qgan/schema.py and docs/run-directory.md):

    metrics/<table>/attempt=<n>/part-<seq:06d>.parquet     one part per table per flush
    samples/attempt=<n>/step-<step:09d>-r<revision>.parquet
    samples/real.parquet

Why this shape:
- A part is never appended to or rewritten, so a reader (or a SIGKILL) never meets half a file:
  each part is written to a temporary sibling (`.part-000003.parquet.<pid>-<rand>.tmp`: the
  leading dot hides it from pyarrow.dataset and pandas, the `.tmp` end from DuckDB's
  `**/*.parquet` glob), fsynced and renamed (qgan.atomic).
- `attempt` lives only in the Hive partition folder; every row has `step` and `revision`.
  Readers keep, per step, the row with the largest (attempt, revision); the other rows are
  evidence of lost work / rolled-back steps (`superseded_rows`), not garbage.
- A failed flush (disk full) raises and keeps the rows buffered, so the trainer can record a
  `checkpoint_failed`-style event and try again later without losing rows.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from qgan import schema
from qgan.atomic import UnsafePathError, atomic_write_bytes, confined, remove_stale_temps

log = logging.getLogger(__name__)

_PART_RE = re.compile(r"^part-(\d{6,})\.parquet$")
_DEDUPED_TABLES = ("steps", "evals")  # events keep every row


class MetricsWriteError(OSError):
    """Writing a metrics part failed; the rows are still buffered."""


def _check_table(table: str) -> pa.Schema:
    if table not in schema.SCHEMAS:
        raise ValueError(f"unknown metrics table {table!r}; known tables: "
                         f"{', '.join(schema.TABLES)}")
    return schema.SCHEMAS[table]


_F64 = pa.float64()
_INT_RANGES = {pa.int32(): (-(2**31), 2**31 - 1), pa.int64(): (-(2**63), 2**63 - 1)}


def _coerce(type_: pa.DataType, value: Any) -> Any:
    """Check one value against its Arrow type and turn it into a plain Python value.

    Done per row in `add` (cheap isinstance checks, ~10x faster than building a one-row Arrow
    batch), so that the Arrow conversion at flush time cannot fail on a bad row.
    """
    if value is None:
        return None
    kind = type(value)
    if kind is float and type_ == _F64:  # fast path: the common case
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    is_bool = isinstance(value, (bool, np.bool_))
    if pa.types.is_boolean(type_):
        if not is_bool:
            raise TypeError("expected a bool")
        return bool(value)
    if pa.types.is_integer(type_):
        if is_bool or not isinstance(value, (int, np.integer)):
            raise TypeError("expected an integer")
        low, high = _INT_RANGES.get(type_, (-(2**63), 2**63 - 1))
        if not low <= int(value) <= high:
            raise OverflowError("out of range")
        return int(value)
    if pa.types.is_floating(type_):
        if is_bool or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError("expected a number")
        return float(value)
    if pa.types.is_string(type_):
        if not isinstance(value, str):
            raise TypeError("expected a str")
        return value
    if pa.types.is_list(type_):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError("expected a sequence")
        return [_coerce(type_.value_type, item) for item in value]
    pa.scalar(value, type=type_)  # anything else: let Arrow judge
    return value


# table -> (column names, [(name, type, nullable)]): Field attribute access is slow per row.
_FIELDS = {table: (set(sch.names), [(f.name, f.type, f.nullable) for f in sch])
           for table, sch in schema.SCHEMAS.items()}


def _table_bytes(table: pa.Table) -> bytes:
    """Serialise to Parquet in memory (then one atomic write of the bytes)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def parquet_bytes(columns: dict[str, np.ndarray], metadata: dict[str, str] | None = None
                  ) -> bytes:
    """One Parquet file's bytes from named columns; `metadata` goes into the schema's
    key-value metadata (strings). (User-named outputs are then written by
    qgan.safewrite.write_output, the run's own files by write_parquet.)"""
    table = pa.table({k: pa.array(np.asarray(v)) for k, v in columns.items()})
    if metadata:
        table = table.replace_schema_metadata({k: str(v) for k, v in metadata.items()})
    return _table_bytes(table)


def write_parquet(path: Path, columns: dict[str, np.ndarray],
                  metadata: dict[str, str] | None = None) -> Path:
    """One Parquet file of the run directory from named columns, replaced atomically
    (complete or absent)."""
    atomic_write_bytes(Path(path), parquet_bytes(columns, metadata))
    return Path(path)


def part_dir(run_dir: Path, table: str, attempt: int) -> Path:
    """`<run>/metrics/<table>/attempt=<n>`."""
    return Path(run_dir) / schema.METRICS_DIR / table / f"attempt={int(attempt)}"


class MetricsWriter:
    """Buffers rows of the `steps`/`evals`/`events` tables for one attempt and writes parts.

    Rows are validated against the file schema when added (a bad row fails where it is made,
    not at a later flush, where it would block every other row).
    """

    def __init__(self, run_dir: Path, attempt: int, flush_seconds: float,
                 clock: Callable[[], float] = time.monotonic, mirror: Any = None) -> None:
        """`mirror`: an object with add(table, row) and flush() (qgan.tbevents.LiveMirror)
        that gets every row as it is buffered and is flushed with every flush; its errors
        are logged, never raised (it is a copy for watching, not the record)."""
        if int(attempt) < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        self.run_dir = Path(run_dir)
        self.attempt = int(attempt)
        self.flush_seconds = float(flush_seconds)
        self._clock = clock
        self._last_flush = clock()
        self._buffers: dict[str, list[dict[str, Any]]] = {t: [] for t in schema.TABLES}
        self._next_seq: dict[str, int] = {}
        self.parts_written: list[Path] = []
        self.mirror = mirror
        # Temporaries of a killed writer: invisible to readers, but tidy up (one writer per
        # run directory, see DESIGN.md, so nobody else is writing them).
        run = Path(run_dir)
        folders = [run / schema.SAMPLES_DIR, *(run / schema.SAMPLES_DIR).glob("attempt=*")]
        for table in schema.TABLES:
            folders += (run / schema.METRICS_DIR / table).glob("attempt=*")
        for folder in folders:
            if not folder.is_symlink():  # never delete through a link
                remove_stale_temps(folder)

    # ---- rows ----------------------------------------------------------------------------------
    def add(self, table: str, row: dict[str, Any]) -> None:
        """Buffer one row of `table` (file-schema columns; missing nullable ones become null).

        ValueError for an unknown table, unknown or missing required columns, a value of the
        wrong type, or (events) an unknown kind/severity. An events `data` dict is JSON-encoded.
        """
        file_schema = _check_table(table)
        names, fields = _FIELDS[table]
        if not names.issuperset(row):
            unknown = sorted(set(row) - names)
            hint = " (`attempt` comes from the writer)" if "attempt" in unknown else ""
            raise ValueError(f"unknown column(s) {unknown} for table {table!r}{hint}; "
                             f"allowed: {file_schema.names}")
        missing = [name for name, _, nullable in fields
                   if not nullable and row.get(name) is None]
        if missing:
            raise ValueError(f"table {table!r}: required column(s) {missing} missing or null")
        if table == "events":
            row = dict(row)
            if row["kind"] not in schema.EVENT_KINDS:
                raise ValueError(f"unknown event kind {row['kind']!r}; known: "
                                 f"{sorted(schema.EVENT_KINDS)}")
            if row["severity"] not in schema.SEVERITIES:
                raise ValueError(f"unknown severity {row['severity']!r}; known: "
                                 f"{list(schema.SEVERITIES)}")
            if not isinstance(row["data"], str):
                row["data"] = json.dumps(row["data"], sort_keys=True, default=str)
        clean = {}
        for name, type_, _ in fields:
            try:
                clean[name] = _coerce(type_, row.get(name))
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"table {table!r}, column {name!r} ({type_}): bad value "
                                 f"{row.get(name)!r}: {exc}") from exc
        self._buffers[table].append(clean)
        if self.mirror is not None:
            self.mirror.add(table, clean)

    def event(self, step: int, revision: int, kind: str, message: str, *,
              severity: str = "info", data: dict[str, Any] | None = None,
              wall_time: float | None = None) -> None:
        """Convenience for `add("events", ...)` (wall_time defaults to now)."""
        self.add("events", {"step": step, "revision": revision,
                            "wall_time": time.time() if wall_time is None else wall_time,
                            "kind": kind, "severity": severity, "message": message,
                            "data": data or {}})

    def pending(self, table: str | None = None) -> int:
        """Rows buffered (for one table or all)."""
        tables = schema.TABLES if table is None else (table,)
        return sum(len(self._buffers[t]) for t in tables)

    # ---- flushing ------------------------------------------------------------------------------
    def due(self) -> bool:
        """`flush_seconds` have passed since the last flush (or failed flush)."""
        return self._clock() - self._last_flush >= self.flush_seconds

    def maybe_flush(self) -> bool:
        """Flush if `flush_seconds` have passed since the last flush; True if it flushed."""
        if not self.due():
            return False
        self.flush()
        return True

    def _seq_for(self, folder: Path, table: str) -> int:
        if table not in self._next_seq:
            existing = [int(m.group(1)) for p in folder.glob("part-*.parquet")
                        if (m := _PART_RE.match(p.name))]
            self._next_seq[table] = max(existing, default=0) + 1
        return self._next_seq[table]

    def flush(self) -> list[Path]:
        """Write one part per table with buffered rows; returns the parts written.

        On failure the rows of the failed table(s) stay buffered and MetricsWriteError is
        raised (after trying the other tables).
        """
        written: list[Path] = []
        errors: list[str] = []
        first_exc: BaseException | None = None
        for table in schema.TABLES:
            batches = self._buffers[table]
            if not batches:
                continue
            folder = part_dir(self.run_dir, table, self.attempt)
            try:
                confined(self.run_dir, folder)
                folder.mkdir(parents=True, exist_ok=True)
                seq = self._seq_for(folder, table)
                path = folder / f"part-{seq:06d}.parquet"
                while path.exists():  # parts are immutable: never replace one
                    seq += 1
                    path = folder / f"part-{seq:06d}.parquet"
                data = _table_bytes(pa.Table.from_pylist(batches, schema=_check_table(table)))
                atomic_write_bytes(path, data)
            except (OSError, UnsafePathError) as exc:
                errors.append(f"{table}: {type(exc).__name__}: {exc}")
                first_exc = first_exc or exc
                continue
            self._next_seq[table] = seq + 1
            self._buffers[table] = []
            written.append(path)
        self.parts_written.extend(written)
        self._last_flush = self._clock()  # also after a failure: retry at the next interval
        self._flush_mirror()
        if errors:
            raise MetricsWriteError(f"metrics flush failed ({'; '.join(errors)}); the rows stay "
                                    "buffered") from first_exc
        return written

    def _flush_mirror(self) -> None:
        if self.mirror is None:
            return
        try:
            self.mirror.flush()
        except Exception as exc:  # noqa: BLE001 - a view, never fatal (TF raises its own
            # errors, not OSError); the events stay pending for the next flush
            log.warning("TensorBoard mirror: flush failed (%s); retried at the next flush", exc)

    def close(self) -> None:
        """Flush what is buffered."""
        self.flush()

    # ---- samples -------------------------------------------------------------------------------
    def write_samples(self, step: int, revision: int, array: np.ndarray) -> Path:
        """Generated samples of one eval: columns step, revision, x0..x{d-1}; written now."""
        path = (Path(self.run_dir) / schema.SAMPLES_DIR / f"attempt={self.attempt}"
                / f"step-{int(step):09d}-r{int(revision)}.parquet")
        confined(self.run_dir, path)
        values = _as_2d(array)
        n = values.shape[0]
        columns = {"step": pa.array(np.full(n, step, dtype=np.int64)),
                   "revision": pa.array(np.full(n, revision, dtype=np.int32))}
        columns.update({f"x{i}": pa.array(values[:, i]) for i in range(values.shape[1])})
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, _table_bytes(pa.table(columns)))
        return path

    def write_real_samples(self, array: np.ndarray) -> Path:
        """The held-out real data, once per run: samples/real.parquet, columns x0..x{d-1}."""
        path = Path(self.run_dir) / schema.SAMPLES_DIR / "real.parquet"
        confined(self.run_dir, path.parent)
        values = _as_2d(array)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, _table_bytes(pa.table(
            {f"x{i}": pa.array(values[:, i]) for i in range(values.shape[1])})))
        return path


def _as_2d(array: np.ndarray) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"samples must be (n, d) or (n,), got shape {values.shape}")
    return values


# ---- reading -----------------------------------------------------------------------------------
def dataset_schema(table: str) -> pa.Schema:
    """File schema of `table` plus the `attempt` partition column (int32)."""
    file_schema = _check_table(table)
    return file_schema.append(schema.PARTITIONING.field("attempt"))


def _read_all(run_dir: Path, table: str) -> pa.Table:
    """Every readable row of `table` (all attempts); unreadable parts are skipped with a
    warning: one damaged file must not hide the rest of a run."""
    full_schema = dataset_schema(table)
    root = Path(run_dir) / schema.METRICS_DIR / table
    if not root.is_dir():
        return full_schema.empty_table()
    dataset = ds.dataset(root, format="parquet", schema=full_schema,
                         partitioning=ds.partitioning(schema.PARTITIONING, flavor="hive"))
    tables = []
    for fragment in dataset.get_fragments():
        try:
            tables.append(fragment.to_table(schema=full_schema))
        except (pa.ArrowException, OSError) as exc:
            log.warning("skipping unreadable metrics part %s: %s", fragment.path, exc)
    if not tables:
        return full_schema.empty_table()
    return pa.concat_tables(tables)


def _split_latest(frame: pd.DataFrame, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, superseded): per step the row with the largest (attempt, revision) is kept."""
    frame = frame.sort_values(["step", "attempt", "revision", "wall_time"], kind="stable")
    if table not in _DEDUPED_TABLES:
        return frame.reset_index(drop=True), frame.iloc[0:0].reset_index(drop=True)
    is_latest = ~frame.duplicated(subset=["step"], keep="last")
    return (frame[is_latest].reset_index(drop=True),
            frame[~is_latest].reset_index(drop=True))


def read_table(run_dir: Path, table: str, *, latest: bool = True) -> pd.DataFrame:
    """Read a metrics table (all attempts) sorted by step, with `attempt` (int32).

    latest=True keeps, per step, the row with the largest (attempt, revision) for `steps` and
    `evals`; `events` always returns every row.
    """
    frame = _read_all(run_dir, table).to_pandas()
    if not latest:
        return frame.sort_values(["step", "attempt", "revision", "wall_time"],
                                 kind="stable").reset_index(drop=True)
    return _split_latest(frame, table)[0]


def superseded_rows(run_dir: Path, table: str) -> pd.DataFrame:
    """The rows `read_table(latest=True)` drops: recomputed after a kill or a rollback."""
    return _split_latest(_read_all(run_dir, table).to_pandas(), table)[1]
