"""A report for a 64-run x 10,000-step sweep: it is written, complete, and of sane size."""

from __future__ import annotations

import re

import pytest

from analysis import diagnose_path
from reports import write_report
from synthetic import sweep_plans, write_experiment


@pytest.mark.slow
def test_64_run_sweep_report(tmp_path):
    root = write_experiment(tmp_path / "sweep", sweep_plans(64, 10_000))
    d = diagnose_path(root)
    assert len(d.runs) == 64 and all(len(r.run.steps) == 10_000 for r in d.runs)
    assert {r.verdict for r in d.runs} >= {"converged", "collapsed"}
    html = write_report(d, root / "report.html").read_text()
    assert html.count('id="run-') >= 64
    assert len(re.findall(r'<img [^>]*src="data:image/png', html)) >= 64 * 3
    assert len(html) < 40_000_000
