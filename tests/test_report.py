"""The HTML report: self-contained, escaped, atomic; and the `qgan diagnose/report` CLI."""

from __future__ import annotations

import json
import re

import pytest

from analysis import diagnose_path
from jobs.cli import main
from reports import write_report
from synthetic import Plan, write_checkpoints, write_experiment, write_run

EVIL = '<script>alert("pwned")</script>'


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep") / "exp"
    plans = [Plan(name=f"{EVIL}-{i}" if i == 0 else f"run-{i}", steps=400, seed=i, g_lr=lr,
                  final_w1=0.02 + lr, message=f" {EVIL}",
                  collapse=(250, None) if lr > 0.1 else None, kills=[130] if i == 1 else [],
                  nan=(220, 223) if i == 2 else None,
                  config={"train.g_lr": lr, "data.path": f"{EVIL}.csv"})
             for i, lr in enumerate([0.001, 0.01, 0.05, 0.2])]
    return write_experiment(root, plans)


@pytest.fixture(scope="module")
def html(sweep):
    out = write_report(diagnose_path(sweep), sweep / "report.html", workers=1)
    return out.read_text()


def test_untrusted_strings_are_escaped(html):
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the sorting code


def test_self_contained(html):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "@import" not in html and "url(" not in html
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    # every in-page link has a target
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert {h for h in re.findall(r'href="#([^"]+)"', html)} <= ids


def test_sections(html):
    for needle in ("Verdicts", "Findings", "sweep-table", "run-0-training", "run-0-evals",
                   "run-0-samples", "run-1-timeline", "mode_collapse", "lost_work"):
        assert needle in html, needle


def test_verdict_legend_lists_every_rule(html):
    from analysis.verdict import LEGEND

    legend = html[html.index('id="verdict-legend"'):]
    legend = legend[:legend.index("</details>")]
    for verdict, meaning in LEGEND:
        assert f'class="v-{verdict}">{verdict}</td>' in legend, verdict
    assert "degraded" in legend and "error-severity" in legend


def test_written_atomically(sweep, monkeypatch):
    from reports import render

    target = sweep / "atomic.html"
    target.write_text("old")
    monkeypatch.setattr(render, "render_html", lambda d, w=None: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(diagnose_path(sweep), target)
    assert target.read_text() == "old"
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]


def test_cli_report(sweep, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(sweep), "-o", str(out), "--workers", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.stat().st_size > 10_000


def test_cli_report_default_path(tmp_path, capsys):
    run = write_run(tmp_path / "one", Plan(steps=60))
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    assert (run / "report.html").is_file()


def test_cli_diagnose_table_json_and_fail_on(sweep, capsys):
    assert main(["diagnose", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "collapsed" in out and "mode_collapse" in out
    assert main(["diagnose", str(sweep), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["verdict"] for r in data["runs"]} >= {"collapsed", "converged"}
    assert main(["diagnose", str(sweep), "--fail-on", "error"]) == 1
    capsys.readouterr()


def test_cli_fail_on_passes_for_healthy(tmp_path, capsys):
    run = write_run(tmp_path / "ok", Plan(steps=300))
    write_checkpoints(run, [250, 300], best=(300, 0.06))  # the best checkpoint is kept
    assert main(["diagnose", str(run), "--fail-on", "warning"]) == 0


def test_cli_bad_path(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "t.toml").write_text("bogus = 1\n")
    run = write_run(tmp_path / "ok", Plan(steps=30))
    assert main(["diagnose", str(run), "--thresholds", str(tmp_path / "t.toml")]) == 2
    assert "unknown threshold" in capsys.readouterr().err
