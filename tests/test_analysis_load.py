"""Loading: latest (attempt, revision) per step, superseded rows kept, damage -> findings."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import NotARunError, diagnose_path, load, load_run
from qgan import schema
from synthetic import Plan, corrupt_part, write_experiment, write_run


def test_latest_row_per_step_and_superseded(tmp_path):
    run = load_run(write_run(tmp_path / "r", Plan(steps=300, kills=[137], nan=(205, 207))))
    assert run.steps["step"].tolist() == list(range(1, 301))
    # killed at 137 after the checkpoint at 100; NaN 205-207 rolled back to 200
    old = run.steps_superseded
    assert sorted(old["step"]) == list(range(101, 138)) + list(range(201, 208))
    assert (run.steps.set_index("step").loc[101:137, "attempt"] == 2).all()
    assert (run.steps.set_index("step").loc[201:207, "revision"] == 1).all()
    assert "attempt" not in pq.read_schema(next(
        (tmp_path / "r/metrics/steps/attempt=1").glob("*.parquet"))).names


def test_readable_by_duckdb(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    write_run(tmp_path / "r", Plan(steps=100, kills=[60]))
    n = duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/r/metrics/steps/**/*.parquet'"
                   ", hive_partitioning = true)").fetchall()[0][0]
    assert n == 100 + 10


def test_corrupt_part_is_a_finding(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=300, part_rows=100))
    corrupt_part(path, "steps", 1, 1)
    d = diagnose_path(path)
    rd = d.runs[0]
    assert [f.kind for f in rd.findings].count("corrupt_part") == 1
    assert len(rd.run.steps) == 200


def test_empty_and_missing_tables(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=100))
    shutil.rmtree(path / "metrics/evals")
    for p in (path / "metrics/steps").rglob("*.parquet"):
        p.unlink()
    pq.write_table(schema.empty_table("steps"), path / "metrics/steps/attempt=1/part-0.parquet")
    rd = diagnose_path(path).runs[0]
    kinds = {f.kind for f in rd.findings}
    assert {"empty_table", "missing_table"} <= kinds
    assert rd.verdict == "failed"


def test_all_nan_column_and_single_step(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=1, eval_every=1, checkpoint_every=1))
    part = next((path / "metrics/steps/attempt=1").glob("*.parquet"))
    t = pq.read_table(part)
    t = t.set_column(t.schema.get_field_index("g_loss"), "g_loss", pa.nulls(1, pa.float64()))
    pq.write_table(t, part)
    rd = diagnose_path(path).runs[0]
    assert any(f.kind == "empty_columns" for f in rd.findings)
    assert rd.verdict == "converged" and rd.numbers["last_step"] == 1


def test_missing_columns_and_extra_columns(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=50))
    part = next((path / "metrics/steps/attempt=1").glob("*.parquet"))
    t = pq.read_table(part).drop_columns(["fock_trace_min"]).append_column(
        "future", pa.array(np.zeros(50)))
    pq.write_table(t, part)
    run = load_run(path)
    assert run.steps["fock_trace_min"].isna().all() and "future" not in run.steps


def test_bad_json_files(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=50))
    (path / "run.json").write_text("{not json")
    (path / "attempts/0001.json").write_text("[1, 2]")
    rd = diagnose_path(path).runs[0]
    assert [f.kind for f in rd.findings].count("corrupt_file") == 2


def test_not_a_run(tmp_path):
    with pytest.raises(NotARunError):
        load(tmp_path)
    with pytest.raises(NotARunError):
        load(tmp_path / "missing")


def test_runs_of_a_sweep_sharing_one_name_are_named_by_folder(tmp_path):
    same = write_experiment(tmp_path / "same", [Plan(name="demo", steps=20, seed=i)
                                                for i in range(3)])
    assert [r.name for r in load(same).runs] == ["task-000", "task-001", "task-002"]
    distinct = write_experiment(tmp_path / "distinct", [Plan(name=f"r{i}", steps=20, seed=i)
                                                        for i in range(2)])
    assert [r.name for r in load(distinct).runs] == ["r0", "r1"]
