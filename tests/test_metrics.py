"""Metrics parts: exact names, atomic/immutable parts, latest-attempt dedupe, readers without the
toolkit (pyarrow.dataset, pandas, DuckDB), bad input, failed flushes that keep the rows."""

from __future__ import annotations

import errno
import json
import logging
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from qgan import metrics as metrics_mod
from qgan import schema
from qgan.metrics import MetricsWriteError, MetricsWriter, read_table, superseded_rows


def _step_row(step: int, revision: int = 0, **values) -> dict:
    row = {"step": step, "revision": revision, "wall_time": 1000.0 + step,
           "g_loss": float(step), "d_loss": -float(step), "nonfinite": False}
    row.update(values)
    return row


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_part_names_and_numbering(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    assert writer.flush() == []  # nothing buffered: nothing written
    writer.add("steps", _step_row(0))
    writer.event(0, 0, "attempt_start", "started", data={"host": "h"})
    written = writer.flush()
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "metrics/steps/attempt=1/part-000001.parquet",
        "metrics/events/attempt=1/part-000001.parquet"]
    writer.add("steps", _step_row(1))
    writer.close()
    assert _names(tmp_path / "metrics/steps/attempt=1") == ["part-000001.parquet",
                                                            "part-000002.parquet"]
    assert not (tmp_path / "metrics/evals").exists()
    # Another writer for the same attempt folder continues the numbering; a new attempt restarts.
    again = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    again.add("steps", _step_row(2))
    assert again.flush()[0].name == "part-000003.parquet"
    second = MetricsWriter(tmp_path, attempt=2, flush_seconds=60)
    second.add("steps", _step_row(3))
    assert second.flush()[0].relative_to(tmp_path).as_posix() == \
        "metrics/steps/attempt=2/part-000001.parquet"


def test_maybe_flush_follows_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=30, clock=clock)
    writer.add("steps", _step_row(0))
    clock.now = 29.9
    assert writer.maybe_flush() is False and writer.pending() == 1
    clock.now = 30.0
    assert writer.maybe_flush() is True and writer.pending() == 0
    writer.add("steps", _step_row(1))
    clock.now = 59.0
    assert writer.maybe_flush() is False
    clock.now = 60.0
    assert writer.maybe_flush() is True
    assert len(read_table(tmp_path, "steps")) == 2


def _two_attempts_with_rollback(run: Path) -> None:
    """attempt 1 computes steps 0..9 and is killed (last checkpoint at 5); attempt 2 resumes
    at 6, and at step 12 its guard rolls back to step 9 and replays 10..12 as revision 1."""
    first = MetricsWriter(run, attempt=1, flush_seconds=60)
    for step in range(10):
        first.add("steps", _step_row(step, g_loss=1.0))
        if step % 5 == 0:
            first.add("evals", {"step": step, "revision": 0, "wall_time": 1.0, "w1_mean": 1.0})
    first.event(0, 0, "attempt_start", "first")
    first.flush()
    second = MetricsWriter(run, attempt=2, flush_seconds=60)
    second.event(6, 0, "attempt_start", "second", data={"resumed_from": 5})
    for step in range(6, 13):
        second.add("steps", _step_row(step, g_loss=2.0))
        if step == 10:
            second.add("evals", {"step": step, "revision": 0, "wall_time": 2.0, "w1_mean": 2.0})
    second.flush()
    second.event(12, 1, "rollback", "rolled back", severity="warning", data={"to_step": 9})
    for step in range(10, 13):
        second.add("steps", _step_row(step, revision=1, g_loss=3.0))
    second.add("evals", {"step": 10, "revision": 1, "wall_time": 3.0, "w1_mean": 3.0})
    second.close()


def test_latest_attempt_and_revision_win_exactly_once_per_step(tmp_path: Path) -> None:
    _two_attempts_with_rollback(tmp_path)
    steps = read_table(tmp_path, "steps")
    assert steps["step"].tolist() == list(range(13))
    assert steps["attempt"].dtype == np.int32
    expected = ([(1, 0, 1.0)] * 6 + [(2, 0, 2.0)] * 4 + [(2, 1, 3.0)] * 3)
    assert list(zip(steps["attempt"], steps["revision"], steps["g_loss"])) == expected
    lost = superseded_rows(tmp_path, "steps")
    assert list(zip(lost["step"], lost["attempt"], lost["revision"])) == (
        [(s, 1, 0) for s in range(6, 10)] + [(s, 2, 0) for s in range(10, 13)])
    evals = read_table(tmp_path, "evals")
    assert list(zip(evals["step"], evals["attempt"], evals["w1_mean"])) == [
        (0, 1, 1.0), (5, 1, 1.0), (10, 2, 3.0)]
    assert len(superseded_rows(tmp_path, "evals")) == 1
    everything = read_table(tmp_path, "steps", latest=False)
    assert len(everything) == 10 + 7 + 3
    events = read_table(tmp_path, "events")  # events: every row, latest ignored
    assert events["kind"].tolist() == ["attempt_start", "attempt_start", "rollback"]
    assert json.loads(events["data"].iloc[2]) == {"to_step": 9}
    assert superseded_rows(tmp_path, "events").empty


def test_readable_without_the_toolkit(tmp_path: Path) -> None:
    _two_attempts_with_rollback(tmp_path)
    steps_dir = tmp_path / "metrics" / "steps"
    table = ds.dataset(steps_dir, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 20
    assert {"step", "attempt", "g_loss", "d_loss"} <= set(table.column_names)
    assert table.schema.field("attempt").type == pa.int32()
    frame = pd.read_parquet(steps_dir)
    assert len(frame) == 20 and sorted(frame["attempt"].astype(int).unique()) == [1, 2]
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT step, max(attempt) FROM read_parquet('{steps_dir}/**/*.parquet', "
        "hive_partitioning = true) GROUP BY step ORDER BY step").fetchall()
    assert rows == [(s, 1) for s in range(6)] + [(s, 2) for s in range(6, 13)]
    # The file schema is exactly schema.STEPS_SCHEMA (attempt only in the folder name).
    part = next(steps_dir.glob("attempt=1/part-*.parquet"))
    assert pq.read_schema(part).remove_metadata() == schema.STEPS_SCHEMA


def test_nulls_nan_lists_and_types(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    writer.add("steps", {"step": np.int64(3), "revision": 0, "wall_time": 1.5,
                         "g_loss": float("nan"), "d_loss": np.float32(0.25),
                         "skipped": np.bool_(True)})
    writer.add("evals", {"step": 3, "revision": 0, "wall_time": 1.5, "n_modes": 8,
                         "w1_per_axis": np.array([0.5, 0.25])})
    writer.close()
    steps = read_table(tmp_path, "steps")
    row = steps.iloc[0]
    assert math.isnan(row["g_loss"]) and row["d_loss"] == 0.25 and bool(row["skipped"])
    assert pd.isna(row["gp"]) and pd.isna(row["nonfinite"])  # missing nullable -> null
    table = pq.read_table(next((tmp_path / "metrics/steps/attempt=1").glob("*.parquet")))
    assert table.column("nonfinite").null_count == 1 and table.column("g_loss").null_count == 0
    evals = read_table(tmp_path, "evals")
    assert list(evals["w1_per_axis"].iloc[0]) == [0.5, 0.25] and evals["n_modes"].iloc[0] == 8


@pytest.mark.parametrize("table,row,match", [
    ("losses", {"step": 1}, "unknown metrics table 'losses'"),
    ("steps", _step_row(1, colour="red"), r"unknown column\(s\) \['colour'\]"),
    ("steps", _step_row(1, attempt=1), "`attempt` comes from the writer"),
    ("steps", {"step": 1, "revision": 0}, r"required column\(s\) \['wall_time'\]"),
    ("steps", _step_row(1, g_loss="0.5"), "column 'g_loss'.*expected a number"),
    ("steps", _step_row(1, nonfinite=1), "column 'nonfinite'.*expected a bool"),
    ("steps", _step_row(1, revision=2**40), "column 'revision'.*out of range"),
    ("events", {"step": 1, "revision": 0, "wall_time": 1.0, "kind": "party",
                "severity": "info", "message": "", "data": "{}"}, "unknown event kind 'party'"),
    ("events", {"step": 1, "revision": 0, "wall_time": 1.0, "kind": "signal",
                "severity": "loud", "message": "", "data": "{}"}, "unknown severity 'loud'"),
])
def test_bad_input_is_a_clear_value_error(tmp_path: Path, table, row, match) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    with pytest.raises(ValueError, match=match):
        writer.add(table, row)
    assert writer.pending() == 0


def test_temporaries_are_invisible_and_cleaned_up(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    writer.add("steps", _step_row(0))
    writer.flush()
    folder = tmp_path / "metrics/steps/attempt=1"
    stale = folder / ".part-000002.parquet.4242-deadbeef.tmp"  # a writer killed mid-write
    stale.write_bytes(b"PAR1 half a file")
    assert ds.dataset(folder.parent, format="parquet", partitioning="hive").count_rows() == 1
    assert len(pd.read_parquet(folder.parent)) == 1
    assert duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{folder.parent}/**/*.parquet', "
        "hive_partitioning = true)").fetchone() == (1,)
    assert len(read_table(tmp_path, "steps")) == 1
    MetricsWriter(tmp_path, attempt=2, flush_seconds=60)  # the next attempt tidies up
    assert _names(folder) == ["part-000001.parquet"]


def test_unreadable_part_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    writer.add("steps", _step_row(0))
    writer.flush()
    writer.add("steps", _step_row(1))
    broken = writer.flush()[0]
    broken.write_bytes(broken.read_bytes()[:20])
    with caplog.at_level(logging.WARNING, logger="qgan.metrics"):
        steps = read_table(tmp_path, "steps")
    assert steps["step"].tolist() == [0]
    assert "skipping unreadable metrics part" in caplog.text and broken.name in caplog.text


def test_empty_run_reads_as_empty_frames(tmp_path: Path) -> None:
    for table in schema.TABLES:
        frame = read_table(tmp_path, table)
        assert frame.empty and list(frame.columns) == schema.SCHEMAS[table].names + ["attempt"]


def test_failed_flush_keeps_rows_buffered(tmp_path: Path, monkeypatch) -> None:
    writer = MetricsWriter(tmp_path, attempt=1, flush_seconds=60)
    writer.add("steps", _step_row(0))
    writer.event(0, 0, "attempt_start", "x")
    real_write = metrics_mod.atomic_write_bytes

    def full_for_steps(path: Path, data: bytes) -> None:
        if "steps" in path.parts:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(metrics_mod, "atomic_write_bytes", full_for_steps)
    with pytest.raises(MetricsWriteError, match="steps: OSError.*No space left.*stay buffered"):
        writer.flush()
    assert writer.pending("steps") == 1 and writer.pending("events") == 0
    monkeypatch.setattr(metrics_mod, "atomic_write_bytes", real_write)
    writer.add("steps", _step_row(1))
    writer.flush()
    assert read_table(tmp_path, "steps")["step"].tolist() == [0, 1]
    assert _names(tmp_path / "metrics/steps/attempt=1") == ["part-000001.parquet"]


def test_disk_full_flush_on_a_real_small_filesystem(small_fs: Path) -> None:
    mount_point = small_fs
    run = mount_point / "run"
    writer = MetricsWriter(run, attempt=1, flush_seconds=60)
    writer.add("steps", _step_row(0))
    writer.flush()
    filler = mount_point / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        with pytest.raises(OSError):
            while True:
                fh.write(b"\0" * 4096)
    rng = np.random.default_rng(0)
    for step in range(1, 2001):  # incompressible values: the part needs real space
        writer.add("steps", _step_row(step, g_loss=float(rng.normal())))
    with pytest.raises(MetricsWriteError, match="No space left"):
        writer.flush()
    assert writer.pending("steps") == 2000
    assert _names(run / "metrics/steps/attempt=1") == ["part-000001.parquet"]
    filler.unlink()
    writer.flush()
    assert read_table(run, "steps")["step"].tolist() == list(range(2001))


def test_samples_files_and_columns(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path, attempt=3, flush_seconds=60)
    path = writer.write_samples(250, 1, np.array([[0.5, -1.0], [2.0, 3.0]]))
    assert path.relative_to(tmp_path).as_posix() == "samples/attempt=3/step-000000250-r1.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["step", "revision", "x0", "x1"]
    assert table.schema.field("step").type == pa.int64()
    assert table.schema.field("revision").type == pa.int32()
    assert table.column("x1").to_pylist() == [-1.0, 3.0]
    real = writer.write_real_samples(np.arange(6.0).reshape(3, 2))
    assert real.relative_to(tmp_path).as_posix() == "samples/real.parquet"
    assert pd.read_parquet(real).columns.tolist() == ["x0", "x1"]
    with pytest.raises(ValueError, match="shape"):
        writer.write_samples(1, 0, np.zeros((2, 2, 2)))
