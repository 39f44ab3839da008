"""The HTML report: self-contained, escaped, atomic, compact; and the `qgan diagnose/report` CLI.

What the page does in a browser is tested in test_report_browser.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from analysis import diagnose_path
from jobs.cli import main
from reports import payload, write_report
from reports.colors import DASHES, color_key, run_colors, run_dashes
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
    out = write_report(diagnose_path(sweep), sweep / "report.html")
    return out.read_text()


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_untrusted_strings_are_escaped(html):
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html  # in the HTML
    assert '\\u003cscript\\u003ealert(\\"pwned\\")\\u003c/script\\u003e-0' in html  # in JSON
    # the data, our glue and the vendored library: nothing else runs
    assert len(re.findall(r"<script\b", html)) == 3
    assert _data(html)["runs"][0]["name"] == f"{EVIL}-0"


def test_script_json_is_safe_inside_script():
    s = payload.script_json({"a": "</script><!-- & \u2028\u2029 >"})
    assert not set(s) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(s) == {"a": "</script><!-- & \u2028\u2029 >"}
    with pytest.raises(ValueError):
        payload.script_json({"a": float("nan")})


def test_self_contained(html):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "@import" not in html and "url(" not in html
    assert "<img" not in html  # charts are data drawn in the page, not pictures
    assert "/*! https://github.com/leeoniya/uPlot (v1.6.32) */" in html  # inlined, pinned
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert {h for h in re.findall(r'href="#([^"]+)"', html)} <= ids


def test_sections_appear_once(html, sweep):
    for needle in ('id="keep-card"', 'id="sweep-table"', 'id="overlay-0"', 'id="run-0-w1"',
                   'id="run-0-samples"', 'id="run-1-timeline"', 'id="filter"',
                   'id="problems-only"', 'id="smoothing"', 'id="verdict-legend"'):
        assert html.count(needle) == 1, needle
    # one findings table per run section, none repeated at the top
    runs = diagnose_path(sweep).runs
    assert html.count('<table class="findings">') == sum(bool(r.findings) for r in runs) > 0
    assert html.count('<details class="run"') == len(runs)


def test_comparison_table_carries_swept_values(html):
    table = html[html.index('id="sweep-table"'):]
    table = table[:table.index("</table>")]
    assert "<th>train.g_lr</th>" in table and "<th>data.path</th>" in table
    for lr in ("0.001", "0.01", "0.05", "0.2"):
        assert f'data-v="{lr}">{lr}</td>' in table


def test_card_names_the_best_run(html):
    card = html[html.index('id="keep-card"'):]
    card = card[:card.index("</section>")]
    # lr 0.001 has the lowest final W1 (0.021)
    assert 'id="keep-name">&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;-0</a>' in card
    assert "train.g_lr=0.001" in card
    assert card.count("<li data-run=") == 3  # every other run, one line each
    # no run kept its best checkpoint: the card says so instead of naming a path
    assert 'id="keep-checkpoint-missing"' in card and "is not on disk" in card
    assert "keep-checkpoint-path" not in card
    assert "not available: the run wrote no samples/best-interpolation.parquet" in html
    assert card.count("worse than the kept 0.0") == 3  # every other run, against the kept one
    assert 'data-verdict="collapsed">collapsed: 1</button>' in card


def test_report_readable_like_any_new_file(sweep):
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    mode = stat.S_IMODE((sweep / "report.html").stat().st_mode)
    assert mode == 0o666 & ~mask


def test_interpolation_payload_follows_the_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analysis.rundata import load_run
    from qgan import schema

    run = write_run(tmp_path / "r", Plan(steps=50))
    t = np.array([1.0, 0.0, 0.5])  # rows out of order
    pq.write_table(pa.table({"t": t, "z0": t, "x0": t, "x1": -t, "trace": [0.99, 0.97, 0.98]}),
                   run / schema.SAMPLES_DIR / schema.INTERPOLATION_FILE)
    p = payload.interpolation_payload(load_run(run))
    xs = p["line"][0::2]
    assert p["dim"] == 2 and xs == sorted(xs) and len(xs) == 3 and p["trace_min"] == 0.97
    (run / schema.SAMPLES_DIR / schema.INTERPOLATION_FILE).write_bytes(b"not parquet")
    assert payload.interpolation_payload(load_run(run)) is None


def test_charts_data(html, sweep):
    d = _data(html)
    assert [r["name"] for r in d["runs"]] == [f"{EVIL}-0", "run-1", "run-2", "run-3"]
    r0 = d["runs"][0]["data"]
    # buckets of 2 steps, each drawn at its last step
    assert r0["steps"]["x"][0] == 2 and r0["steps"]["x"][-1] == 400
    assert len(r0["steps"]["x"]) == payload.MAX_BUCKETS == len(r0["steps"]["g_loss"])
    assert r0["evals"]["x"][:2] == [25, 50] and len(r0["evals"]["w1_mean"]) == 16
    # colours by the swept g_lr: 4 distinct values, 4 distinct colours
    assert len({r["color"] for r in d["runs"]}) == 4
    assert {o["id"] for o in d["overlays"]} >= {"w1", "g_loss", "d_loss", "fock_trace_min",
                                               "modes_covered"}
    # the collapsed run's collapse is shaded on its modes panel
    assert [250, 400] in d["runs"][3]["shade"]["modes"]
    s = d["runs"][0]["samples"]
    assert s["dim"] == 2 and s["steps"][-1] == 400 and len(s["frames"]) == len(s["steps"])
    assert all(0 <= v <= payload.QUANT for f in s["frames"] for v in f)


def test_reduce_keeps_spikes_and_dips():
    y = np.ones(10_000)
    y[5_001] = 1e4  # a gradient spike
    y[7_003] = np.nan
    starts = payload.bucket_edges(len(y))
    assert len(starts) == payload.MAX_BUCKETS
    assert np.nanmax(payload.reduce(y, starts, "max")) == 1e4
    assert np.nanmax(payload.reduce(y, starts, "mean")) == pytest.approx(1 + (1e4 - 1) / 50)
    t = np.ones(10_000)
    t[9_999] = 0.3  # a leak in the very last step
    assert payload.reduce(t, starts, "min")[-1] == 0.3
    assert np.isnan(payload.reduce(np.full(100, np.nan), payload.bucket_edges(100, 10),
                                   "mean")).all()
    assert payload.rounded(np.array([1 / 3, np.inf, np.nan, 12345.678])) == \
        [0.3333, None, None, 12350.0]


def test_long_run_is_bucketed(tmp_path):
    run = write_run(tmp_path / "long", Plan(steps=5_000, eval_every=50, samples=False))
    d = diagnose_path(run)
    p = payload.run_series(d.runs[0].run.steps, d.runs[0].run.evals)
    assert len(p["steps"]["x"]) == payload.MAX_BUCKETS and p["steps"]["x"][-1] == 5_000
    assert len(p["evals"]["x"]) == 100  # evals are few: kept as they are


def test_frame_steps_keep_the_best_eval():
    have = list(range(25, 2501, 25))
    got = payload.frame_steps(have, [1_225])
    assert got[0] == 25 and got[-1] == 2500 and 1_225 in got
    assert len(got) <= payload.MAX_FRAMES + 1
    assert payload.frame_steps([25, 50], [50]) == [25, 50]


def test_samples_payload_one_dimensional(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    files = {}
    for step in (10, 20, 30):
        files[step] = tmp_path / f"s{step}.parquet"
        pq.write_table(pa.table({"x0": rng.normal(step / 10, 0.1, 64)}), files[step])
    p = payload.samples_payload(files, rng.normal(3, 0.1, (256, 1)), [20])
    assert p["dim"] == 1 and p["steps"] == [10, 20, 30] and p["bins"] == payload.HIST_BINS
    assert all(len(f) == payload.HIST_BINS and max(f) == payload.QUANT for f in p["frames"])
    # the histograms move right over the evals, towards the real data (mean 3)
    peaks = [int(np.argmax(f)) for f in p["frames"]]
    assert peaks == sorted(peaks) and abs(peaks[-1] - int(np.argmax(p["real"]))) <= 1


def test_pvalues_never_print_zero():
    from reports.render import _pvalue

    assert _pvalue(0.0) == "< 0.00025" and _pvalue(0.3333) == "0.33" and _pvalue(None) == "–"


def test_colors_by_swept_value():
    hp = {f"r{i}": {"run.seed": i % 2, "train.g_lr": lr, "loss.kind": k}
          for i, (lr, k) in enumerate([(0.001, "bce"), (0.1, "bce"), (0.001, "w"), (0.1, "w")])}
    assert color_key(hp, []) in ("train.g_lr", "loss.kind")
    assert color_key(hp, ["loss.kind"]) == "loss.kind"
    assert color_key({"a": {"run.seed": 1}, "b": {"run.seed": 2}}, []) == "run.seed"
    colors, legend = run_colors([0.001, 0.1, 0.001, 0.01])
    assert colors[0] == colors[2] and len(set(colors)) == 3
    assert [t for t, _ in legend] == ["0.001", "0.01", "0.1"]
    assert run_dashes(colors) == [DASHES[0], DASHES[0], DASHES[1], DASHES[0]]
    colors, legend = run_colors(["bce", "wgan-gp", "bce"])
    assert colors[0] == colors[2] != colors[1] and [t for t, _ in legend] == ["bce", "wgan-gp"]


def test_single_run_titled_by_folder(tmp_path):
    run = write_run(tmp_path / "task-007", Plan(name="demo-sweep", steps=120, nan=(60, 62)))
    html = write_report(diagnose_path(run), tmp_path / "r.html").read_text()
    assert "<title>qgan postmortem: task-007 (demo-sweep)</title>" in html
    assert "<h1 id=\"overview\">Postmortem: task-007 (demo-sweep)</h1>" in html
    assert html.count('<details class="run"') == 1 and 'id="run-0" data-run="0" open' in html
    assert 'id="sweep-table"' not in html and 'id="filter"' not in html
    # every panel id that advice or findings can point at has its anchor in a run section
    from analysis.panels import PANELS

    for panel in PANELS:
        if panel != "sweep":  # the sweep panel is the sweep section (the card in a single run)
            assert f'id="run-0-{panel}"' in html, panel


def test_verdict_legend_lists_every_rule(html):
    from analysis.verdict import LEGEND

    legend = html[html.index('id="verdict-legend"'):]
    legend = legend[:legend.index("</details>")]
    for verdict, meaning in LEGEND:
        assert f'class="v v-{verdict}">{verdict}</td>' in legend, verdict


def test_written_atomically(sweep, monkeypatch):
    from reports import render

    target = sweep / "atomic.html"
    target.write_text("old")
    monkeypatch.setattr(render, "render_html", lambda d: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(diagnose_path(sweep), target)
    assert target.read_text() == "old"
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]


def test_cli_report(sweep, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(sweep), "-o", str(out)]) == 0
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
    assert f"PATH {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()  # the default output's folder is not created
    (tmp_path / "t.toml").write_text("bogus = 1\n")
    run = write_run(tmp_path / "ok", Plan(steps=30))
    assert main(["diagnose", str(run), "--thresholds", str(tmp_path / "t.toml")]) == 2
    assert "unknown threshold" in capsys.readouterr().err


def _cache_inodes(root) -> dict[str, int]:
    from qgan import schema
    return {p.name: (p / schema.DIAGNOSIS_CACHE_FILE).stat().st_ino
            for p in sorted(root.iterdir()) if (p / schema.DIAGNOSIS_CACHE_FILE).is_file()}


def _page(html: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "T", html)


def test_report_from_cached_parts_equals_a_full_load_and_reloads_only_changed_runs(
        tmp_path, monkeypatch):
    """Issue 24: each run's report part (series, sample frames, events) is cached beside its
    diagnosis; a second report loads no run, and after one run gains a part only that run is
    loaded again (its cache file is rewritten, the others keep their inode). The page is the
    same as one drawn from every run loaded afresh, each time."""
    from analysis import cache, summarise_path
    from reports import render_html
    from reports.runpart import RUN_PART
    from synthetic import sweep_plans

    monkeypatch.setenv(cache.KEY_ENV, str(tmp_path / "key"))
    cache._mac_key.cache_clear()
    root = write_experiment(tmp_path / "exp", sweep_plans(6, 300, samples=True))
    fresh = _page(render_html(diagnose_path(root, cache=False)))
    cold = summarise_path(root, extras=(RUN_PART,))  # 6 runs: loaded in 2 worker processes
    assert [rd.run.loaded for rd in cold.runs] == [False] * 6
    assert _page(render_html(cold)) == fresh
    before = _cache_inodes(root)
    assert len(before) == 6
    assert _page(render_html(summarise_path(root, extras=(RUN_PART,)))) == fresh
    assert _cache_inodes(root) == before  # nothing loaded, nothing rewritten
    changed = sorted(root.iterdir())[1]
    parts = sorted((changed / "metrics" / "steps").rglob("part-*.parquet"))
    parts[-1].with_name("part-999999.parquet").write_bytes(parts[0].read_bytes())
    warm = _page(render_html(summarise_path(root, extras=(RUN_PART,))))
    after = _cache_inodes(root)
    assert [n for n in after if after[n] != before[n]] == [changed.name]
    assert warm == _page(render_html(diagnose_path(root, cache=False)))
    # a part cached by other code (a new payload) is computed again, the diagnosis reused
    stale = cache.Extra(RUN_PART.name, RUN_PART.compute, RUN_PART.check, "other code")
    summarise_path(root, extras=(stale,))
    assert all(after[n] != i for n, i in _cache_inodes(root).items())
    # an edited report part (its MAC no longer verifies) is refused and computed again
    summarise_path(root, extras=(RUN_PART,))
    from qgan import schema
    path = changed / schema.DIAGNOSIS_CACHE_FILE
    head, diagnosis, part = path.read_text().splitlines()
    doc = json.loads(part)
    doc["report"]["doc"]["events"] = [{"attempt": 0, "step": 1, "kind": "forged",
                                       "severity": "error", "message": "<b>forged</b>"}]
    path.write_text("\n".join([head, diagnosis, json.dumps(doc)]) + "\n")
    page = _page(render_html(summarise_path(root, extras=(RUN_PART,))))
    assert "forged" not in page and page == warm


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["series"]["steps"].update(g_loss=["<script>"] * len(d["series"]["steps"]["x"])),
     "the column 'g_loss'"),
    (lambda d: d["series"]["evals"]["x"].append(1.5), "a table's steps"),
    (lambda d: d["events"].append({"attempt": 0, "step": 1, "kind": "x", "severity": "info",
                                   "message": "m", "extra": 1}), "an event's fields"),
    (lambda d: d["samples"]["frames"][0].append("x"), "a frame"),
    (lambda d: d.update(html="<b>"), "its fields"),
])
def test_cached_report_part_is_read_strictly(tmp_path, damage, message):
    """A cached report part is untrusted input: anything `compute` could not have written is
    refused by name (and the run is then loaded and its part computed again)."""
    from analysis import load_run
    from analysis.rundiagnose import diagnose_run
    from reports import runpart
    from synthetic import sweep_plans

    root = write_experiment(tmp_path / "exp", sweep_plans(1, 200, samples=True))
    run = load_run(next(p for p in root.iterdir() if p.is_dir()))
    part = json.loads(json.dumps(runpart.compute(run, diagnose_run(run))))
    runpart.check(part)  # what compute writes, through JSON, passes
    assert part["samples"] is not None and part["events"]
    damage(part)
    with pytest.raises(ValueError, match=re.escape(message)):
        runpart.check(part)
