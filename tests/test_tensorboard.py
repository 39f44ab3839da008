"""TensorBoard event files: the trainer's live mirror (metrics.tensorboard) and `qgan export
--tensorboard`, read back with TensorBoard's own reader (EventAccumulator).

A scalar reads back as float32 of the Parquet value (TensorBoard's scalar type), at the same
step and wall time; every step shows once, even after a rollback, a SIGTERM (preemption) or a
SIGKILL that left stale steps in the previous attempt's file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402

from qgan import schema, tbevents  # noqa: E402
from qgan.config import ConfigInvalid, config_from_dict  # noqa: E402
from qgan.metrics import read_table  # noqa: E402
from trainer_utils import TINY, merge, run_cli  # noqa: E402

CLASSICAL = {"generator.kind": "classical", "metrics.tensorboard": True}


def accumulate(folder: Path) -> event_accumulator.EventAccumulator:
    """What TensorBoard's Python reader shows for one run folder (every point kept)."""
    acc = event_accumulator.EventAccumulator(str(folder),
                                             size_guidance={event_accumulator.SCALARS: 0})
    return acc.Reload()


def assert_reads_back(folder: Path, run_dir: Path) -> int:
    """Every finite number of the steps and evals tables (the row that counts per step) is
    in TensorBoard once, as float32, at its step and wall time; nothing else is. Returns the
    number of points compared."""
    acc = accumulate(folder)
    compared = 0
    shown = set(acc.Tags()["scalars"])
    expected_tags = set()
    for table in tbevents.TABLES:
        rows = read_table(run_dir, table).to_dict("records")
        want: dict[str, list[tuple[int, float, float]]] = {}
        for row in rows:
            for tag, v in tbevents.scalars(table, row):
                if math.isfinite(v):
                    want.setdefault(tag, []).append((int(row["step"]), row["wall_time"], v))
        expected_tags |= set(want)
        for tag, points in want.items():
            got = [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
            assert [p[0] for p in got] == [p[0] for p in points], tag  # once per step
            assert [p[1] for p in got] == [p[1] for p in points], tag
            assert np.array_equal(np.float32([p[2] for p in got]),
                                  np.float32([p[2] for p in points])), tag
            compared += len(points)
    assert shown == expected_tags
    return compared


def raw_steps(folder: Path, tag: str) -> list[int]:
    """The steps of `tag` as written, in file order, before any purge."""
    out = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            out += [event.step for v in event.summary.value if v.tag == tag]
    return out


def test_scalars_skip_nulls_and_expand_lists():
    row = {"step": 5, "wall_time": 1.5, "w1_mean": 0.25, "w1_per_axis": [0.5, 0.75],
           "modes_covered": 3, "sample_var": None, "revision": 0}
    got = dict(tbevents.scalars("evals", row))
    assert got == {"evals/w1_mean": 0.25, "evals/w1_per_axis/0": 0.5,
                   "evals/w1_per_axis/1": 0.75, "evals/modes_covered": 3.0}
    steps = dict(tbevents.scalars("steps", {"g_loss": 1.0, "nonfinite": True, "step": 1}))
    assert steps == {"steps/g_loss": 1.0, "steps/nonfinite": 1.0}


def test_config_names_the_extra_when_tensorboard_is_missing(monkeypatch):
    monkeypatch.setattr(tbevents, "available", lambda: False)
    with pytest.raises(ConfigInvalid) as err:
        config_from_dict({"metrics": {"tensorboard": True}})
    assert "metrics.tensorboard" in str(err.value)
    assert "qgan-toolkit[tensorboard]" in str(err.value)
    with pytest.raises(ConfigInvalid):
        config_from_dict({"metrics": {"tensorboard": "yes"}})


def test_live_mirror_after_rollback_and_sigterm(tmp_path):
    from qgan.trainer import train

    # attempt 1: NaN at steps 6-7 -> rollback to the checkpoint at 4 (steps 5.. replayed with
    # revision 1), then SIGTERM after step 10 (a preemption: checkpoint, exit 75); attempt 2
    # resumes at 11
    c = config_from_dict(merge(TINY, {**CLASSICAL, "faults.nan_at_steps": [6, 7],
                                      "guard.max_bad_steps": 2, "faults.sigterm_at_step": 10}))
    assert train(c, tmp_path) == schema.EXIT_RESUME
    assert train(c, tmp_path) == schema.EXIT_OK
    folder = tmp_path / schema.TENSORBOARD_DIR
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files == [tbevents.attempt_file(folder, 1).name,
                                         tbevents.attempt_file(folder, 2).name]
    # the rolled-back steps are in the file, and TensorBoard shows only the replayed ones
    assert raw_steps(folder, "steps/g_lr") == [1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10, 11, 12]
    assert assert_reads_back(folder, tmp_path) > 12 * 10
    assert [e.step for e in accumulate(folder).Scalars("steps/g_loss")] == list(range(1, 13))


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A SIGKILL after step 10 (metrics flushed, last checkpoint at 8), then a resume: steps
    9 and 10 are in attempt 1's file and computed again by attempt 2."""
    import tomli_w

    tmp = tmp_path_factory.mktemp("killed")
    config = tmp / "tiny.toml"
    config.write_text(tomli_w.dumps(merge(TINY, {**CLASSICAL, "faults.sigkill_at_step": 10})))
    run_dir = tmp / "run"
    first = run_cli("train", str(config), "--run-dir", str(run_dir))
    assert first.returncode == -9, first.stderr[-2000:]
    second = run_cli("train", str(config), "--run-dir", str(run_dir))
    assert second.returncode == 0, second.stderr[-2000:]
    return run_dir


def test_live_mirror_after_sigkill_drops_the_stale_steps(killed_run):
    attempt2 = json.loads((killed_run / "attempts" / "0002.json").read_text())
    assert attempt2["resumed_from"] == 8
    folder = killed_run / schema.TENSORBOARD_DIR
    assert raw_steps(folder, "steps/g_lr") == list(range(1, 11)) + list(range(9, 13))
    assert assert_reads_back(folder, killed_run) > 12 * 10


@pytest.mark.slow
def test_tensorboards_data_server_shows_each_step_once(killed_run):
    """The reader `tensorboard --logdir` uses by default (the Rust data server): no purge
    events, but a step that arrives again drops the older points at and after it."""
    import re
    import subprocess
    import sys
    import time
    import urllib.request

    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir",
                               str(killed_run / schema.TENSORBOARD_DIR), "--host", "127.0.0.1",
                               "--port", "0", "--load_fast", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stderr:
            if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                port = int(m.group(1))
                break
        assert port, "TensorBoard did not start"
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=.&tag="
        got: dict[str, list] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                got = {tag: json.load(urllib.request.urlopen(url + tag, timeout=10))
                       for tag in ("steps/g_lr", "evals/w1_mean")}
                if len(got["steps/g_lr"]) >= 12:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert [p[1] for p in got["steps/g_lr"]] == list(range(1, 13))
        assert [p[1] for p in got["evals/w1_mean"]] == [6, 12]
        want = read_table(killed_run, "steps").set_index("step")["g_lr"]
        assert [p[2] for p in got["steps/g_lr"]] == [float(np.float32(want[s]))
                                                     for s in range(1, 13)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_mirror_that_cannot_open_is_recorded_and_training_goes_on(tmp_path):
    import shutil

    from qgan.trainer import train

    c = config_from_dict(merge(TINY, {**CLASSICAL, "train.steps": 4,
                                      "faults.sigterm_at_step": 2}))
    assert train(c, tmp_path) == schema.EXIT_RESUME
    folder = tmp_path / schema.TENSORBOARD_DIR
    shutil.rmtree(folder)
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)  # a planted link: never written through
    assert train(c, tmp_path) == schema.EXIT_OK
    assert list(elsewhere.iterdir()) == []
    ev = read_table(tmp_path, "events")
    failed = ev[ev.kind == "write_failed"]
    assert len(failed) == 1 and json.loads(failed["data"].iloc[0])["what"] == "tensorboard"
    assert failed["attempt"].tolist() == [2]
    assert read_table(tmp_path, "steps")["step"].tolist() == [1, 2, 3, 4]


# ---- qgan export --tensorboard ---------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from synthetic import Plan, write_experiment

    root = tmp_path_factory.mktemp("export") / "exp"
    plans = [Plan(name=f"run-{i}", steps=120, seed=i, g_lr=lr, eval_every=20,
                  checkpoint_every=30, kills=[75] if i == 1 else [],
                  config={"train.g_lr": lr, "loss.kind": loss})
             for i, (lr, loss) in enumerate([(0.001, "bce"), (0.01, "bce"), (0.01, "wgan-gp")])]
    return write_experiment(root, plans)


def _plugin_data(folder: Path, tag: str):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = event_accumulator.EventAccumulator(str(folder)).Reload()
    content = acc.SummaryMetadata(tag).plugin_data.content
    return plugin_data_pb2.HParamsPluginData.FromString(content)


def test_export_reads_back_with_the_swept_values_as_hparams(sweep, tmp_path):
    from jobs.cli import main

    out = tmp_path / "tb"
    assert main(["export", str(sweep), "--tensorboard", "-o", str(out)]) == 0
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [r.name for r in runs]
    for run in runs:
        # the killed run's superseded rows are not exported: each step once
        assert assert_reads_back(out / run.name, run) > 120 * 10
        start = _plugin_data(out / run.name, "_hparams_/session_start_info").session_start_info
        cfg = json.loads((sweep / "experiment.json").read_text())["tasks"]
        task = next(t for t in cfg if t["run"] == run.name)
        assert {k: (v.number_value if v.HasField("number_value") else v.string_value)
                for k, v in start.hparams.items()} == task["overrides"]
    experiment = _plugin_data(out, "_hparams_/experiment").experiment
    assert [h.name for h in experiment.hparam_infos] == ["loss.kind", "train.g_lr"]
    assert list(experiment.hparam_infos[1].domain_discrete.values) != []
    assert "evals/w1_mean" in [m.name.tag for m in experiment.metric_infos]


def test_export_again_gives_the_same_files(sweep, tmp_path):
    from jobs.cli import main

    out = tmp_path / "tb"
    assert main(["export", str(sweep), "--tensorboard", "-o", str(out),
                 "--runs", "task-000", "task-002"]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["export", str(sweep), "--tensorboard", "-o", str(out),
                 "--runs", "task-000", "task-002"]) == 0
    again = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == again and len(first) == 3  # two runs and the experiment's HParams


def test_export_refuses_bad_input(sweep, tmp_path, capsys):
    from jobs.cli import main

    cases = [
        (["export", str(sweep), "-o", str(tmp_path / "a")], "--tensorboard"),
        (["export", str(sweep), "--tensorboard", "-o",
          str(sweep / "task-000" / "checkpoints" / "tb")], "checkpoints/"),
        (["export", str(sweep), "--tensorboard", "-o", str(sweep / "task-001" / "metrics")],
         "metrics/"),
        (["export", str(sweep), "--tensorboard", "-o", str(tmp_path / "b"), "--runs", "nope"],
         "no run named 'nope'"),
        (["export", str(tmp_path / "missing"), "--tensorboard", "-o", str(tmp_path / "c")],
         "not a directory"),
    ]
    (tmp_path / "file").write_text("x")
    cases.append((["export", str(sweep), "--tensorboard", "-o", str(tmp_path / "file")],
                  "not a folder"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (sweep / "task-000" / "checkpoints" / "tb").exists()
