"""The best checkpoint (checkpoint.keep_best) and `qgan sample`, on real tiny trainer runs.

One quantum run (2 modes, cutoff 4, 12 steps, evals every 3, keep = 1 so the rotation keeps
only the newest checkpoint) is trained once per module; the tests read its best checkpoint
back through the same model construction the trainer uses.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from qgan import schema
from qgan.checkpoints import damage_checkpoint
from qgan.config import config_from_dict
from qgan.data import load_dataset
from qgan.evals import eval_metrics
from qgan.metrics import read_table
from qgan.models import generate, latent_line, latent_uniform
from qgan.sampling import load_generator
from qgan.trainer import train
from trainer_utils import TINY, merge

RUN = {"eval.every_steps": 3, "checkpoint.keep": 1}


def cfg(**overrides):
    return config_from_dict(merge(TINY, {**RUN, **overrides}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("best") / "run"
    assert train(cfg(), run_dir) == schema.EXIT_OK
    return run_dir


def manifest(run_dir):
    return json.loads((run_dir / "checkpoints" / "manifest.json").read_text())


def test_best_is_kept_outside_the_rotation_and_named_by_the_manifest(run):
    m = manifest(run)
    evals = read_table(run, "evals")
    w1 = evals.set_index("step")["w1_mean"]
    # strict improvement, like Keras' save_best_only: the first minimum
    best_step = int(w1.idxmin())
    assert (m["best"]["step"], m["best"]["metric"], m["best"]["mode"]) == (best_step, "w1_mean",
                                                                          "min")
    assert m["best"]["value"] == w1[best_step]  # the eval's value, bit for bit
    # keep = 1: the rotation holds only the newest; the best folder is outside it
    assert [c["step"] for c in m["checkpoints"]] == [12]
    folders = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert folders == sorted([m["checkpoints"][0]["folder"], m["best"]["folder"]])
    # one best_checkpoint event per improvement, each a strict improvement on the last
    ev = read_table(run, "events")
    kept = [json.loads(d) for d in ev[ev.kind == "best_checkpoint"]["data"]]
    values = [k["value"] for k in kept]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert kept[-1]["step"] == best_step and kept[-1]["folder"] == m["best"]["folder"]
    improving = [s for i, s in enumerate(w1.index) if w1.iloc[i] < w1.iloc[:i].min()
                 or i == 0]
    assert [k["step"] for k in kept] == improving


def test_the_best_checkpoint_holds_the_evaluated_state(run):
    # rebuilt through the trainer's own construction, restored after checksums verify, the
    # generator reproduces the eval that made it the best
    loaded = load_generator(run, "best")
    c = loaded.cfg
    assert loaded.step == manifest(run)["best"]["step"]
    z = latent_uniform(c, c.eval.n_samples, [c.run.seed, 0xE7A1])
    x, _ = generate(loaded.models.sampling, z)
    data = load_dataset(c.data, c.run.seed)
    row = eval_metrics(x, data.holdout, data.centers, data.std)
    assert row["w1_mean"] == manifest(run)["best"]["value"]


def test_interpolation_file_maps_the_latent_diagonal(run):
    t = pq.read_table(run / "samples" / schema.INTERPOLATION_FILE)
    meta = t.schema.metadata
    best = manifest(run)["best"]
    assert meta[b"qgan.checkpoint"].decode() == best["folder"]
    assert int(meta[b"qgan.step"]) == best["step"]
    df = t.to_pandas()
    assert list(df.columns) == ["t", "z0", "z1", "x0", "x1", "trace", "step"]
    assert len(df) == 64 and df["t"].iloc[0] == 0.0 and df["t"].iloc[-1] == 1.0
    assert np.allclose(df["z0"], df["z1"]) and df["z0"].iloc[0] == -0.5
    assert (df["trace"] > 0.9).all() and (df["step"] == best["step"]).all()
    loaded = load_generator(run, "best")
    _, z = latent_line(loaded.cfg, 64)
    x, _ = generate(loaded.models.sampling, z)
    assert np.array_equal(df[["x0", "x1"]].to_numpy(), x.astype(np.float64))


def test_sample_cli_writes_parquet_with_metadata(run, tmp_path, capsys):
    out = tmp_path / "s.parquet"
    assert main(["sample", str(run), "-n", "300", "-o", str(out), "--seed", "5"]) == 0
    best = manifest(run)["best"]
    assert capsys.readouterr().out.strip().endswith(f"{best['folder']} (step {best['step']})")
    t = pq.read_table(out)
    assert t.column_names == ["step", "x0", "x1"] and t.num_rows == 300
    meta = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
    assert meta["qgan.checkpoint"] == best["folder"] and meta["qgan.seed"] == "5"
    assert meta["qgan.kind"] == "samples" and meta["qgan.step"] == str(best["step"])
    again = tmp_path / "again.parquet"
    assert main(["sample", str(run), "-n", "300", "-o", str(again), "--seed", "5"]) == 0
    assert pq.read_table(again).equals(t)  # same seed, same samples
    other = tmp_path / "other.parquet"
    assert main(["sample", str(run), "-n", "300", "-o", str(other), "--seed", "6"]) == 0
    assert not np.array_equal(pq.read_table(other)["x0"], t["x0"])
    # latest, and an explicit folder, are both the rotation's step-12 checkpoint
    newest = run / "checkpoints" / manifest(run)["checkpoints"][-1]["folder"]
    for which in ("latest", str(newest), newest.name):
        assert main(["sample", str(run), "--checkpoint", which, "-n", "4", "-o",
                     str(tmp_path / "l.parquet")]) == 0
        assert pq.read_table(tmp_path / "l.parquet")["step"].to_pylist() == [12] * 4
    capsys.readouterr()


def test_sample_interpolate_mode(run, tmp_path, capsys):
    out = tmp_path / "i.parquet"
    assert main(["sample", str(run), "--interpolate", "-n", "64", "-o", str(out)]) == 0
    mine = pq.read_table(out).to_pandas()
    trainer = pq.read_table(run / "samples" / schema.INTERPOLATION_FILE).to_pandas()
    assert mine.equals(trainer)
    capsys.readouterr()


@pytest.mark.parametrize("n, message", [("0", "0 is out of range: give 1 to 10000000"),
                                        ("ten", "'ten' is not a whole number")])
def test_sample_bad_count(run, tmp_path, capsys, n, message):
    out = tmp_path / "x.parquet"
    with pytest.raises(SystemExit) as exit_info:  # argparse's own exit for a bad option
        main(["sample", str(run), "-n", n, "-o", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument -n: {message}" in err
    assert not out.exists()


@pytest.mark.parametrize("which, message", [
    ("/etc", "--checkpoint /etc: not a checkpoint folder of this run"),
    ("{run}/checkpoints/../config.toml", "not a checkpoint folder of this run"),
    ("{run}/checkpoints", "not a checkpoint folder of this run"),
    ("{run}/checkpoints/ckpt-999999", "not a committed checkpoint"),
    ("ckpt-999999", "not a committed checkpoint"),
])
def test_sample_bad_checkpoint_path(run, tmp_path, capsys, which, message):
    out = tmp_path / "x.parquet"
    assert main(["sample", str(run), "--checkpoint", which.format(run=run), "-n", "5",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("qgan sample: error: ") and message in last, err
    assert "Traceback" not in err
    assert not out.exists()


def test_sample_bad_paths(run, tmp_path, capsys):
    cases = [
        ([str(tmp_path / "nowhere"), "-n", "5", "-o", str(tmp_path / "a.parquet")],
         f"RUN {tmp_path / 'nowhere'} does not exist"),
        ([str(tmp_path), "-n", "5", "-o", str(tmp_path / "a.parquet")],
         "is not a run directory (no config.toml)"),
        ([str(run), "-n", "5", "-o", str(tmp_path / "missing" / "a.parquet")],
         "folder " + str(tmp_path / "missing") + " does not exist"),
        ([str(run), "-n", "5", "-o", str(tmp_path / "a.csv")], "must end in .parquet"),
        ([str(run), "-n", "5", "-o", str(run / "checkpoints" / "a.parquet")],
         "it is inside the run's checkpoints/ folder"),
        ([str(run), "-n", "5", "-o", "/proc/a.parquet"], "cannot write it"),
    ]
    for args, message in cases:
        assert main(["sample", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "a.parquet").exists() and not list(tmp_path.glob(".*tmp"))


def test_damaged_or_missing_checkpoints(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = manifest(copy)["best"]
    from qgan.checkpoints import CheckpointInfo
    damage_checkpoint(CheckpointInfo(best["seq"], best["step"], 0.0, best["folder"],
                                     copy / "checkpoints" / best["folder"]))
    out = tmp_path / "s.parquet"
    assert main(["sample", str(copy), "-n", "5", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {copy / 'checkpoints' / best['folder']} is damaged" in err
    assert "sha256 mismatch" in err and not out.exists()
    shutil.rmtree(copy / "checkpoints")
    assert main(["sample", str(copy), "-n", "5", "-o", str(out)]) == 2
    assert "has no checkpoints/ yet" in capsys.readouterr().err and not out.exists()


def test_keep_best_off_writes_no_best_and_sample_falls_back(tmp_path, capsys, caplog):
    run_dir = tmp_path / "run"
    assert train(cfg(**{"checkpoint.keep_best": False, "train.steps": 6}), run_dir) == 0
    assert "best" not in manifest(run_dir)
    assert not list((run_dir / "checkpoints").glob("best-*"))
    assert not (run_dir / "samples" / schema.INTERPOLATION_FILE).exists()
    out = tmp_path / "s.parquet"
    assert main(["sample", str(run_dir), "-n", "5", "-o", str(out)]) == 0
    assert pq.read_table(out)["step"].to_pylist() == [6] * 5
    assert "has no best checkpoint" in caplog.text


def test_best_tracking_survives_a_rollback_and_a_failed_best_write(tmp_path, monkeypatch):
    # classical, NaN at steps 6-8 (rollback to the step-4 checkpoint), evals every 3; the best
    # write at step 9 fails (disk full): recorded, training goes on, the previous best stays
    from qgan.checkpoints import CheckpointManager, CheckpointWriteError

    real = CheckpointManager.save_best

    def flaky(self, step, extra, **kw):
        if step == 9:
            raise CheckpointWriteError("writing best checkpoint failed: ENOSPC; the previous "
                                       "best checkpoint is intact")
        return real(self, step, extra, **kw)

    monkeypatch.setattr(CheckpointManager, "save_best", flaky)
    c = cfg(**{"generator.kind": "classical", "faults.nan_at_steps": [6, 7, 8],
               "guard.max_bad_steps": 3, "train.steps": 12})
    run_dir = tmp_path / "run"
    assert train(c, run_dir) == schema.EXIT_OK
    ev = read_table(run_dir, "events")
    assert (ev.kind == "rollback").sum() == 1
    failed = [json.loads(d) for d in ev[ev.kind == "checkpoint_failed"]["data"]]
    assert [f.get("best") for f in failed] == [True]
    kept = [json.loads(d) for d in ev[ev.kind == "best_checkpoint"]["data"]]
    m = manifest(run_dir)
    assert 9 not in [k["step"] for k in kept]
    assert (m["best"]["step"], m["best"]["folder"]) == (kept[-1]["step"], kept[-1]["folder"])
    # the tracker in the last checkpoint's extra.json is the manifest's best
    last = run_dir / "checkpoints" / m["checkpoints"][-1]["folder"] / "extra.json"
    tracker = json.loads(last.read_text())["best"]
    assert {k: tracker[k] for k in ("step", "value", "folder", "metric", "mode")} == {
        k: m["best"][k] for k in ("step", "value", "folder", "metric", "mode")}
    assert load_generator(run_dir, "best").step == m["best"]["step"]
