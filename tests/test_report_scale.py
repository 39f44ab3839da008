"""A report for a 64-run x 10,000-step sweep: it is written, complete, and under 5 MB."""

from __future__ import annotations

import json
import re

import pytest

from analysis import diagnose_path
from reports import payload, write_report
from synthetic import sweep_plans, write_experiment

MAX_BYTES = 5_000_000  # issue 10: the report of a 64-run sweep stays under 5 MB


@pytest.mark.slow
def test_64_run_sweep_report(tmp_path):
    # with sample files at every eval: the samples animation is in the report too
    root = write_experiment(tmp_path / "sweep", sweep_plans(64, 10_000, samples=True))
    d = diagnose_path(root)
    assert len(d.runs) == 64 and all(len(r.run.steps) == 10_000 for r in d.runs)
    assert {r.verdict for r in d.runs} >= {"converged", "collapsed"}
    out = write_report(d, root / "report.html")
    html = out.read_text()
    assert out.stat().st_size < MAX_BYTES, out.stat().st_size
    assert html.count('<details class="run"') == 64
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    assert all(len(r["data"]["steps"]["x"]) == payload.MAX_BUCKETS for r in data["runs"])
    assert all(len(r["samples"]["frames"]) <= payload.MAX_FRAMES + 1 for r in data["runs"])
