"""Eval metrics: the papers' HQ / captured-mode / reverse-KL protocol pinned on hand-made samples,
next to the toolkit's looser occupancy; run directories written before the new columns load."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq

from analysis import load_run
from qgan.evals import eval_metrics, paper_mode_metrics
from synthetic import Plan, write_run

# four modes on the axes, std 0.1: HQ radius 0.3 (papers), 0.3 * sqrt(2) = 0.424 (loose)
CENTERS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
SAMPLES = np.array([
    [1.0, 0.0], [1.0, 0.0], [1.0, 0.0],  # on mode 0
    [1.25, 0.0],  # 0.25 from mode 0: HQ
    [0.0, 1.29],  # 0.29 from mode 1: HQ
    [0.0, 1.35],  # 0.35 from mode 1: not HQ for the papers, inside the loose radius
    [0.0, 0.0],  # 1.0 from every mode: neither
    [0.5, 0.5],  # 0.71 from modes 0 and 1: neither
])


def test_paper_protocol_on_hand_made_samples():
    hq, captured, rkl = paper_mode_metrics(SAMPLES, CENTERS, 0.1)
    assert hq == 5 / 8
    assert captured == 2  # modes 2 and 3 have no HQ sample
    # HQ histogram over the 4 modes: [4, 1, 0, 0] / 5 against uniform 1/4
    assert math.isclose(rkl, 0.8 * math.log(4 * 0.8) + 0.2 * math.log(4 * 0.2), rel_tol=1e-12)


def test_reverse_kl_extremes():
    even = np.repeat(CENTERS, 3, axis=0)
    assert paper_mode_metrics(even, CENTERS, 0.1) == (1.0, 4, 0.0)
    one = np.repeat(CENTERS[:1], 5, axis=0)
    hq, captured, rkl = paper_mode_metrics(one, CENTERS, 0.1)
    assert (hq, captured) == (1.0, 1) and math.isclose(rkl, math.log(4))
    hq, captured, rkl = paper_mode_metrics(np.zeros((3, 2)), CENTERS, 0.1)
    assert (hq, captured) == (0.0, 0) and math.isnan(rkl)


def test_eval_row_holds_both_definitions():
    real = np.repeat(CENTERS, 4, axis=0)
    row = eval_metrics(SAMPLES, real, CENTERS, 0.1)
    assert row["paper_hq_frac"] == 5 / 8 and row["paper_modes_captured"] == 2
    assert row["high_quality_frac"] == 6 / 8  # the loose radius also takes (0, 1.35)
    assert row["modes_covered"] == 2  # >= 8 / (4 * 4) = 0.5 samples: modes 0 and 1
    plain = eval_metrics(SAMPLES, real, None, 0.0)
    assert plain["paper_modes_captured"] == 0 and math.isnan(plain["paper_hq_frac"])
    assert math.isnan(plain["paper_reverse_kl"])


def test_old_run_directory_without_paper_columns_loads(tmp_path):
    path = write_run(tmp_path / "r", Plan(steps=100))
    paper = ["paper_hq_frac", "paper_modes_captured", "paper_reverse_kl"]
    assert load_run(path).evals["paper_modes_captured"].notna().all()
    parts = list((path / "metrics/evals").rglob("*.parquet"))
    assert parts
    for part in parts:  # rewrite as a run from before the papers' columns existed
        pq.write_table(pq.read_table(part).drop_columns(paper), part)
    run = load_run(path)
    assert len(run.evals) > 0 and not set(paper) & set(pq.read_schema(parts[0]).names)
    for name in paper:
        assert run.evals[name].isna().all()
    assert run.evals["high_quality_frac"].notna().all()


def test_parts_written_before_the_later_columns_are_not_schema_findings(tmp_path):
    """An upgrade must not flood an old run's postmortem: the contract's additions
    (schema.LATER_COLUMNS) missing from a part read as null without a finding; any other
    missing column is still one."""
    from qgan import schema

    path = write_run(tmp_path / "r", Plan(steps=100))
    parts = sorted((path / "metrics/evals").rglob("*.parquet"))
    later = sorted(schema.LATER_COLUMNS["evals"])
    for part in parts:
        pq.write_table(pq.read_table(part).drop_columns(later), part)
    assert schema.LATER_COLUMNS["steps"] == {"g_nll"}
    for part in (path / "metrics/steps").rglob("*.parquet"):
        pq.write_table(pq.read_table(part).drop_columns(["g_nll"]), part)
    run = load_run(path)
    assert not [f for f in run.problems if f.kind == "part_schema"]
    assert all(run.evals[name].isna().all() for name in later)
    assert len(run.steps) == 100 and run.steps["g_nll"].isna().all()
    pq.write_table(pq.read_table(parts[0]).drop_columns(["sample_var"]), parts[0])
    found = [f for f in load_run(path).problems if f.kind == "part_schema"]
    assert len(found) == 1 and "missing column(s) sample_var" in found[0].summary
