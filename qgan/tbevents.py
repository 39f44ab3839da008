"""TensorBoard event files from metric rows: one format for the trainer's live mirror
(`metrics.tensorboard = true`) and for `qgan export --tensorboard` (reports/tensorboard.py).

Each row of the `steps` and `evals` tables becomes one Event at the row's step and wall time,
with one scalar per numeric column of the table's schema, tagged `<table>/<column>`
(booleans as 0/1, list columns as `<table>/<column>/<i>`; nulls, NaN and infinities left
out): a column added to the schema appears in TensorBoard without a change here. TensorBoard stores a scalar as a 32-bit float
(its data server refuses others), so a value reads back as float32 of the Parquet value.

Resume safety (the live mirror): a killed attempt may have written steps that the next attempt
computes again (from its last checkpoint), and a rollback replays steps with new numbers. Two
things keep TensorBoard from showing those stale rows twice, one for each of its readers:
- one file per attempt, named so that attempts sort in order
  (`events.out.tfevents.<attempt, 10 digits>.<host>.qgan`): TensorBoard reads a run's files
  in name order, and its data server (the default reader) drops, per tag, every point at or
  after a step that arrives again ("preemption", tensorboard/data/server/reservoir.rs);
- a `SessionLog.START` event at the first step of every attempt and after every rollback:
  the Python reader (EventAccumulator, `--load_fast=false`) purges every point at or after
  that step (its `purge_orphaned_data`), as TensorFlow's own Supervisor restarts did and as
  PyTorch's `SummaryWriter(purge_step=...)` does.
A step is never written ahead of time: rows reach the file in the order they were made, in
one write per metrics flush (at each checkpoint and on the flush timer), so a step costs one
list append and no I/O.

Needs the `tensorboard` package (the `[tensorboard]` extra), imported only when used.
"""

from __future__ import annotations

import io
import importlib.util
import math
import re
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import pyarrow as pa

from qgan import schema
from qgan.atomic import confined

TABLES = ("steps", "evals")  # events are not numbers
KEY_COLUMNS = ("step", "revision", "wall_time")
EXTRA = "pip install 'qgan-toolkit[tensorboard]'"


class MissingTensorBoard(ImportError):
    """The tensorboard package is not installed; the message names the extra."""


def available() -> bool:
    """Whether the tensorboard package can be imported (without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def protos():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2  # lazy: the optional tensorboard extra
        from tensorboard.summary.writer.record_writer import RecordWriter  # lazy: the optional tensorboard extra
    except ImportError as exc:
        raise MissingTensorBoard(f"TensorBoard event files need the tensorboard package: "
                                 f"{EXTRA} ({exc})") from None
    return event_pb2, summary_pb2, RecordWriter


def _columns(table: str) -> list[tuple[str, str]]:
    """(column, kind) of the numeric columns of `table`: kind is num or list."""
    def numeric(t: pa.DataType) -> bool:
        return pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)

    out = []
    for f in schema.SCHEMAS[table]:
        if f.name in KEY_COLUMNS:
            continue
        if numeric(f.type):
            out.append((f.name, "num"))
        elif pa.types.is_list(f.type) and numeric(f.type.value_type):
            out.append((f.name, "list"))
    return out


_COLUMNS = {table: _columns(table) for table in TABLES}


def scalars(table: str, row: dict[str, Any]) -> list[tuple[str, float]]:
    """(tag, value) of every finite number of one row, in schema order. Nulls, NaN and
    infinities are left out: TensorBoard cannot draw them (`steps/nonfinite` = 1 marks a
    step whose loss or gradient was not finite)."""
    out = []
    for name, kind in _COLUMNS[table]:
        v = row.get(name)
        if v is None:
            continue
        items = enumerate(v) if kind == "list" else [(None, v)]
        for i, x in items:
            if x is not None and math.isfinite(x := float(x)):
                out.append((f"{table}/{name}" if i is None else f"{table}/{name}/{i}", x))
    return out


class EventStream:
    """Events kept in the order they happen and written to `out` (a binary file) on flush.

    Rows are stored as given and turned into protobufs only at flush time, so adding one is
    a list append (the trainer adds one per step)."""

    def __init__(self, out: BinaryIO, wall_time: float) -> None:
        self._event_pb2, self._summary_pb2, self._record_writer = protos()
        self._out = out
        self._pending: list[tuple] = [("version", wall_time)]

    def add(self, table: str, row: dict[str, Any]) -> None:
        if table in TABLES:
            self._pending.append(("row", table, row))

    def restart(self, step: int, wall_time: float | None = None) -> None:
        """Everything at or after `step` that an earlier attempt (or revision) wrote is
        stale: a SessionLog.START there makes TensorBoard drop it."""
        self._pending.append(("start", int(step), time.time() if wall_time is None
                              else wall_time))

    def summary(self, step: int, wall_time: float, summary: Any) -> None:
        """A ready-made Summary proto (e.g. HParams) at `step`."""
        self._pending.append(("summary", int(step), wall_time, summary))

    def _event(self, item: tuple):
        e, s = self._event_pb2, self._summary_pb2
        kind = item[0]
        if kind == "row":
            _, table, row = item
            values = [s.Summary.Value(tag=tag, simple_value=v) for tag, v in scalars(table, row)]
            return e.Event(step=int(row["step"]), wall_time=float(row["wall_time"]),
                           summary=s.Summary(value=values))
        if kind == "start":
            return e.Event(step=item[1], wall_time=item[2],
                           session_log=e.SessionLog(status=e.SessionLog.START))
        if kind == "summary":
            return e.Event(step=item[1], wall_time=item[2], summary=item[3])
        return e.Event(wall_time=item[1], file_version="brain.Event:2")

    def _write(self, records: list[bytes]) -> None:
        """Frame the records (TFRecord: length, data, masked CRC32Cs) in one write."""
        buf = io.BytesIO()
        framing = self._record_writer(buf)
        for record in records:
            framing.write(record)
        self._out.write(buf.getvalue())
        self._out.flush()

    def flush(self) -> int:
        """Write every pending event; returns how many. On an error they stay pending (and
        are written with the next flush)."""
        if not self._pending:
            return 0
        self._write([self._event(item).SerializeToString() for item in self._pending])
        n = len(self._pending)
        self._pending = []
        return n


def encode(items: Iterable[tuple[str, dict[str, Any]]], wall_time: float,
           summaries: Iterable[tuple[int, float, Any]] = ()) -> bytes:
    """A whole event file in memory: the file version, `summaries` (step, wall_time, proto),
    then one event per (table, row)."""
    out = io.BytesIO()
    stream = EventStream(out, wall_time)
    for step, wt, summary in summaries:
        stream.summary(step, wt, summary)
    for table, row in items:
        stream.add(table, row)
    stream.flush()
    return out.getvalue()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"


def attempt_file(folder: Path, attempt: int) -> Path:
    """The live mirror's file of one attempt: names sort in attempt order."""
    return folder / f"events.out.tfevents.{int(attempt):010d}.{_host()}.qgan"


class LiveMirror(EventStream):
    """The trainer's TensorBoard mirror of one attempt (metrics.tensorboard = true): the
    MetricsWriter hands it every row it buffers and flushes it with every metrics flush.

    Records are framed by TensorFlow's TFRecordWriter (the trainer has TensorFlow loaded):
    its CRC32C is native, ~1.7 us a record against ~75 us for the tensorboard package's
    pure-Python one (benchmarks/tensorboard_cost.py)."""

    def __init__(self, run_dir: Path, attempt: int, start_step: int) -> None:
        from qgan.tflib import tf  # lazy: TensorFlow, for the live mirror only

        folder = confined(Path(run_dir), Path(run_dir) / schema.TENSORBOARD_DIR)
        folder.mkdir(exist_ok=True)
        self.path = confined(Path(run_dir), attempt_file(folder, attempt))
        if self.path.exists():  # attempt numbers are unique; never write over a file
            raise FileExistsError(f"{self.path} exists")
        self._records = tf.io.TFRecordWriter(str(self.path))
        super().__init__(io.BytesIO(), time.time())
        self.restart(start_step)

    def _write(self, records: list[bytes]) -> None:
        for record in records:
            self._records.write(record)
        self._records.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._records.close()
