"""`qgan figures`: the report's charts, sample grids, animations and the latent interpolation
as files, from synthetic run directories (no TensorFlow)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("matplotlib")
from PIL import Image, ImageSequence  # noqa: E402

from analysis import diagnose_path  # noqa: E402
from analysis.rundata import sample_files  # noqa: E402
from jobs.cli import main  # noqa: E402
from reports import payload  # noqa: E402
from reports.figures import charts  # noqa: E402
from synthetic import Plan, write_experiment, write_run  # noqa: E402

EVIL = 'a$x^2$<script>alert("x")</script>'
WIDTH_PT = 252  # 3.5 in


def _interpolation(run: Path, n: int = 48) -> None:
    t = np.linspace(0, 1, n)
    x = np.column_stack([np.cos(np.pi * t), np.sin(np.pi * t)])
    pq.write_table(pa.table({"t": t[::-1].copy(), "z0": t, "z1": t, "x0": x[::-1, 0].copy(),
                             "x1": x[::-1, 1].copy(), "trace": 1 - 0.05 * t,
                             "step": np.full(n, 300)}),
                   run / "samples" / "best-interpolation.parquet")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures") / "exp"
    plans = [Plan(name=EVIL if i == 0 else f"run-{i}", steps=300, seed=i, g_lr=lr,
                  final_w1=0.02 + lr, collapse=(200, None) if lr > 0.1 else None,
                  kills=[130] if i == 1 else [], config={"train.g_lr": lr})
             for i, lr in enumerate([0.001, 0.01, 0.2])]
    write_experiment(root, plans)
    for run in root.iterdir():
        if run.is_dir():
            _interpolation(run)
    return root


def figures(*argv: str) -> int:
    """`qgan figures ...`'s exit status (argparse's own errors included)."""
    try:
        return main(["figures", *map(str, argv)])
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def made(sweep, tmp_path_factory):
    """Every format, for the whole sweep (the run to keep gets the per-run files)."""
    out = {}
    for fmt in ("pdf", "svg", "png"):
        out[fmt] = tmp_path_factory.mktemp(fmt)
        assert figures(sweep, "-o", out[fmt], "--format", fmt) == 0
    return out


@pytest.fixture(scope="module")
def pdfs(made):
    return made["pdf"]


def expected_charts(sweep: Path) -> list[str]:
    return [c.id for c in charts.charts(diagnose_path(sweep).thresholds)]


def test_every_panel_of_the_report_is_a_figure(sweep, pdfs):
    ids = expected_charts(sweep)
    # every panel, then the overlay metrics no panel draws (the critic gap)
    assert ids[:len(payload.CHARTS)] == [p.id for p in payload.CHARTS]
    assert "d_gap" in ids and "w1" in ids
    kept = diagnose_path(sweep).keep
    assert kept == EVIL  # the lowest learning rate: its per-run files are the default
    names = {p.name for p in pdfs.iterdir()}
    assert names == {f"{i}.pdf" for i in ids} | {
        "samples-task-000.pdf", "samples-task-000.gif", "interpolation-task-000.pdf"} | (
        {"samples-task-000.mp4"} if shutil.which("ffmpeg") else set())


def test_pdfs_are_valid_one_column_and_embed_truetype(pdfs, tmp_path):
    for pdf in pdfs.glob("*.pdf"):
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF"), pdf
        assert re.search(rb"/MediaBox \[ ?0 0 252 \d+(\.\d+)? ?\]", data), pdf
        assert b"/FontFile2" in data and b"/Type3" not in data, pdf  # Type 42 fonts
        assert b"CreationDate" not in data  # reproducible
        if shutil.which("pdftoppm"):  # a real PDF reader renders it
            subprocess.run(["pdftoppm", "-r", "20", "-png", "-singlefile", str(pdf),
                            str(tmp_path / pdf.stem)], check=True, capture_output=True)


def test_svg_is_valid_and_untrusted_names_are_text(made):
    ns = "{http://www.w3.org/2000/svg}"
    svgs = list(made["svg"].glob("*.svg"))
    assert len(svgs) > len(payload.CHARTS)
    for svg in svgs:
        root = ET.parse(svg).getroot()  # well-formed XML
        assert root.tag == f"{ns}svg" and root.get("width") == f"{WIDTH_PT}pt", svg
        assert not list(root.iter(f"{ns}script")) and "Date" not in svg.read_text()
    # the run's name is shown literally (no mathtext, no markup) in the sample grid's title
    texts = "".join(t.text or "" for t in ET.parse(made["svg"] / "samples-task-000.svg").iter())
    assert EVIL in texts


def test_png_is_valid_at_300_dpi(made):
    pngs = sorted(made["png"].glob("*.png"))
    assert len(pngs) > len(payload.CHARTS)
    for png in pngs:
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] == 1050, png  # 3.5 in at 300 dpi
            assert round(im.info["dpi"][0]) == 300


def test_gif_has_one_frame_per_saved_eval(sweep, pdfs):
    run = diagnose_path(sweep).runs[0].run
    saved = sorted(sample_files(run))
    with Image.open(pdfs / "samples-task-000.gif") as gif:
        frames = list(ImageSequence.Iterator(gif))
        assert gif.n_frames == len(saved) == len(frames) == 12
        assert gif.info["duration"] == 400 and gif.info["loop"] == 0
        assert gif.size[0] == 480 and gif.size[1] % 2 == 0


def test_mp4_has_one_frame_per_saved_eval(pdfs):
    if not shutil.which("ffprobe"):  # CI installs ffmpeg (.ci/run): there it must be tested
        from conftest import _in_ci

        (pytest.fail if _in_ci() else pytest.skip)("ffmpeg is not installed")
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames,codec_name",
                            "-of", "csv=p=0", str(pdfs / "samples-task-000.mp4")],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "h264,12"


def test_without_ffmpeg_it_says_so(sweep, tmp_path, monkeypatch, capsys):
    import reports.figures.build as build

    monkeypatch.setattr(build, "ffmpeg_available", lambda: False)
    assert figures(sweep, "-o", tmp_path, "--runs", "run-1") == 0
    assert "MP4 not written: ffmpeg is not installed" in capsys.readouterr().err
    assert (tmp_path / "samples-task-001.gif").is_file()
    assert not list(tmp_path.glob("*.mp4"))


def test_identical_input_gives_identical_files(sweep, made, tmp_path):
    for fmt, first in made.items():
        again = tmp_path / fmt
        assert figures(sweep, "-o", again, "--format", fmt) == 0
        files = sorted(p.name for p in first.iterdir())
        assert files == sorted(p.name for p in again.iterdir()) and len(files) > 10
        for name in files:
            assert (first / name).read_bytes() == (again / name).read_bytes(), name
        assert not [p for p in again.iterdir() if p.name.startswith(".")]  # no temporaries


def test_charts_draw_the_reports_reduced_numbers(tmp_path):
    """A 10,000-step run: each line is the report's bucketed series (at most MAX_BUCKETS
    points, max per bucket for gradient norms), smoothed as the report's slider does."""
    exp = write_experiment(tmp_path / "long", [Plan(name="long", steps=10_000, eval_every=500,
                                                    checkpoint_every=1000, samples=False)])
    d = diagnose_path(exp)
    rd = d.runs[0]
    data = payload.run_series(rd.run.steps, rd.run.evals)
    line = charts.RunLine(rd.run.name, "#000000", [], False, data)
    chart = next(c for c in charts.charts(d.thresholds) if c.id == "grads")
    from reports.figures.style import style

    with style():
        fig = charts.draw(chart, [line], smooth=0.6, key=None, legend=[], width=3.5,
                          title=True)
    drawn = fig.axes[0].lines[0]
    x, y = drawn.get_xdata(), drawn.get_ydata()
    assert len(x) == payload.MAX_BUCKETS
    assert list(x) == data["steps"]["x"]
    assert np.allclose(y, payload.ema(data["steps"]["g_grad_norm"], 0.6))


def test_ema_is_the_reports():
    assert payload.ema([1.0, None, 3.0], 0) == [1.0, None, 3.0]
    got = payload.ema([1.0, None, 3.0, 5.0], 0.5)
    # debiased: the first value is kept; a gap stays a gap and is not counted
    assert got[0] == 1.0 and got[1] is None
    assert got[2] == pytest.approx((0.5 * 0.5 + 0.5 * 3.0) / (1 - 0.25))
    assert got[3] == pytest.approx(((0.5 * 0.5 + 0.5 * 3.0) * 0.5 + 0.5 * 5.0) / (1 - 0.125))


def test_a_panel_added_to_the_report_appears(sweep, monkeypatch):
    extra = payload.ChartSpec("new_panel", "w1", "A panel another issue adds", "ratio",
                              (payload.Series("evals", "mode_balance", "balance"),))
    monkeypatch.setattr(payload, "CHARTS", payload.CHARTS + (extra,))
    d = diagnose_path(sweep)
    chart = next(c for c in charts.charts(d.thresholds) if c.id == "new_panel")
    rd = d.runs[0]
    line = charts.RunLine(rd.run.name, "#000000", [], False,
                          payload.run_series(rd.run.steps, rd.run.evals))
    from reports.figures.style import style

    with style():
        fig = charts.draw(chart, [line], smooth=0, key=None, legend=[], width=3.5, title=True)
    assert fig.axes[0].get_ylabel() == "ratio"
    assert list(fig.axes[0].lines[0].get_xdata()) == line.data["evals"]["x"]


@pytest.mark.parametrize("argv, needle", [
    (["--evals", "25,999"], "saved no samples at step(s) 999"),
    (["--runs", "nope"], "no run named 'nope'"),
    (["--format", "jpg"], "invalid choice"),
    (["--smooth", "1.5"], "[0, 1)"),
])
def test_bad_options_exit_2_before_writing(sweep, tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert figures(sweep, "-o", out, *argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir())


def test_refuses_to_write_into_a_runs_checkpoints(sweep, capsys):
    target = sweep / "task-000" / "checkpoints" / "figs"
    assert figures(sweep, "-o", target) == 2
    assert "checkpoints/" in capsys.readouterr().err and not target.exists()


def test_missing_matplotlib_names_the_extra(sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert figures(sweep, "-o", tmp_path) == 2
    err = capsys.readouterr().err
    assert "pip install 'qgan-toolkit[figures]'" in err and err.count("\n") == 1


def test_one_dimensional_data_as_histograms(tmp_path):
    """mixture1d-like runs: sample grids and frames are histograms, the line is drawn on x."""
    run = write_run(tmp_path / "one", Plan(name="one", steps=100, eval_every=25))
    for f in list((run / "samples").rglob("*.parquet")):
        t = pq.read_table(f)
        pq.write_table(t.drop_columns([c for c in t.column_names if c == "x1"]), f)
    _interpolation(run)
    line = pq.read_table(run / "samples" / "best-interpolation.parquet")
    pq.write_table(line.drop_columns(["x1", "z1"]), run / "samples" / "best-interpolation.parquet")
    out = tmp_path / "figs"
    assert figures(run, "-o", out, "--format", "svg") == 0
    with Image.open(out / "samples-one.gif") as gif:
        assert gif.n_frames == len(sample_files(diagnose_path(run).runs[0].run)) == 4
    for name in ("samples-one.svg", "interpolation-one.svg"):
        ET.parse(out / name)
    assert "density" in (out / "samples-one.svg").read_text()


def test_a_run_without_data_is_an_error(tmp_path, capsys):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "run.json").write_text('{"name": "empty"}')
    assert figures(run, "-o", tmp_path / "figs") == 2
    err = capsys.readouterr().err
    assert "w1: no data" in err and err.strip().endswith("has no metrics or samples yet")
