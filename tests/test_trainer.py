"""The trainer in-process on tiny problems: guard, rollback, fallback, run-directory rules."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qgan import schema
from qgan.config import config_from_dict
from qgan.data import DataError
from qgan.metrics import read_table, superseded_rows
from qgan.rundir import RunDirError
from qgan.trainer import train
from trainer_utils import ROOT, TINY, merge


def cfg(**overrides):
    return config_from_dict(merge(TINY, {k.replace("__", "."): v for k, v in overrides.items()}))


def events(run_dir):
    return read_table(run_dir, "events")


def test_nan_steps_are_skipped_recorded_and_roll_back_with_smaller_lr(tmp_path):
    c = cfg(generator__kind="classical", faults__nan_at_steps=[6, 7, 8], train__steps=10,
            guard__max_bad_steps=3, guard__rollback_lr_scale=0.5)
    assert train(c, tmp_path) == schema.EXIT_OK
    steps = read_table(tmp_path, "steps")
    assert steps["step"].tolist() == list(range(1, 11))
    # the replayed steps 5..10 carry revision 1; the skipped rows are superseded evidence
    assert steps.set_index("step")["revision"].to_dict() == {**{s: 0 for s in range(1, 5)},
                                                              **{s: 1 for s in range(5, 11)}}
    assert not steps["skipped"].any()
    old = superseded_rows(tmp_path, "steps")
    assert old["step"].tolist() == [5, 6, 7, 8]
    assert old["skipped"].tolist() == [False, True, True, True]
    assert np.isnan(old.loc[old.step == 6, "g_loss"]).all()
    ev = events(tmp_path)
    assert ev.loc[ev.kind == "nonfinite_step", "step"].tolist() == [6, 7, 8]
    assert ev.loc[ev.kind == "fault_injected", "step"].tolist() == [6, 7, 8]
    assert ev.loc[ev.kind == "rollback", "step"].tolist() == [8]
    restored = ev[(ev.kind == "checkpoint_restored")]
    assert json.loads(restored["data"].iloc[0])["from_step"] == 8
    assert json.loads(restored["data"].iloc[0])["step"] == 4
    assert steps.loc[steps.step == 10, "g_lr"].item() == pytest.approx(c.train.g_lr * 0.5)
    assert steps.loc[steps.step == 10, "d_lr"].item() == pytest.approx(c.train.d_lr * 0.5)


def test_too_many_rollbacks_stop_the_run_as_diverged(tmp_path):
    c = cfg(generator__kind="classical", faults__nan_at_steps=[2, 3], train__steps=10,
            guard__max_bad_steps=2, guard__max_rollbacks=0)
    assert train(c, tmp_path) == schema.EXIT_DIVERGED
    ev = events(tmp_path)
    assert ev.loc[ev.kind == "diverged", "step"].tolist() == [3]
    attempt = json.loads((tmp_path / "attempts" / "0001.json").read_text())
    assert (attempt["reason"], attempt["exit_status"], attempt["end_step"]) == ("diverged", 3, 3)
    # a diverged run is not re-run: a second call returns at once with the same status
    assert train(c, tmp_path) == schema.EXIT_DIVERGED
    assert sorted(p.name for p in (tmp_path / "attempts").iterdir()) == ["0001.json"]


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    c = cfg(generator__kind="classical", train__steps=12, faults__corrupt_checkpoint_at_step=8,
            faults__sigterm_at_step=8)
    assert train(c, tmp_path) == schema.EXIT_RESUME
    assert train(c, tmp_path) == schema.EXIT_OK
    ev = events(tmp_path)
    rejected = ev[ev.kind == "checkpoint_rejected"]
    assert len(rejected) == 1 and json.loads(rejected["data"].iloc[0])["step"] == 8
    assert "checksum" in rejected["message"].iloc[0] or "sha256" in rejected["message"].iloc[0]
    restored = ev[(ev.kind == "checkpoint_restored") & (ev.attempt == 2)]
    assert json.loads(restored["data"].iloc[0])["step"] == 4
    steps = read_table(tmp_path, "steps")
    assert steps["step"].tolist() == list(range(1, 13))
    assert steps.loc[steps.step.between(5, 12), "attempt"].unique().tolist() == [2]
    assert superseded_rows(tmp_path, "steps")["step"].tolist() == [5, 6, 7, 8]


def test_finished_run_is_not_rerun_and_other_config_is_refused(tmp_path):
    c = cfg(generator__kind="classical", train__steps=4)
    assert train(c, tmp_path) == schema.EXIT_OK
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert train(c, tmp_path) == schema.EXIT_OK
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with pytest.raises(RunDirError, match=r"train.steps: 4 -> 8.*--allow-config-change"):
        train(cfg(generator__kind="classical", train__steps=8), tmp_path)
    assert train(cfg(generator__kind="classical", train__steps=8), tmp_path,
                 allow_config_change=True) == schema.EXIT_OK
    assert read_table(tmp_path, "steps")["step"].tolist() == list(range(1, 9))
    # the run is now 8 steps long for everyone who reads run.json (status, the report)
    assert json.loads((tmp_path / "run.json").read_text())["total_steps"] == 8


def test_run_directory_contents_and_tables(tmp_path):
    c = cfg(train__steps=6)
    assert train(c, tmp_path) == schema.EXIT_OK
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["name"], run["seed"], run["total_steps"]) == ("tiny", 7, 6)
    assert run["versions"]["strawberryfields"] == "0.23.0"
    steps = read_table(tmp_path, "steps")
    assert steps.columns.tolist() == [f.name for f in schema.STEPS_SCHEMA] + ["attempt"]
    assert steps["fock_trace_min"].between(0.5, 1.0 + 1e-5).all()
    assert (steps["g_grad_live"] > 0.5).all() and (steps["d_grad_live"] > 0.5).all()
    evals = read_table(tmp_path, "evals")
    assert evals["step"].tolist() == [6]
    assert evals["n_modes"].tolist() == [2]
    samples = pd.read_parquet(tmp_path / "samples" / "attempt=1" / "step-000000006-r0.parquet")
    assert samples.shape == (16, 4) and samples.columns.tolist() == ["step", "revision", "x0", "x1"]
    kinds = events(tmp_path)["kind"].tolist()
    assert kinds[0] == "attempt_start" and kinds[-1] == "attempt_end"
    # every checkpoint is a TensorFlow checkpoint a user can open without the toolkit
    manifest = json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())
    newest = manifest["checkpoints"][-1]
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / newest["folder"] / "state"))
    assert any("generator" in name for name in reader.get_variable_to_shape_map())
    assert newest["step"] == 6


def test_user_data_files(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 2)).astype(np.float32)
    pd.DataFrame(data, columns=["a", "b"]).assign(label="x").to_csv(tmp_path / "d.csv",
                                                                    index=False)
    np.save(tmp_path / "d.npy", data)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 40, dtype=object), allow_pickle=True)
    base = dict(generator__kind="classical", train__steps=2, data__target="file")
    assert train(cfg(data__path=str(tmp_path / "d.csv"), **base), tmp_path / "r1") == 0
    assert train(cfg(data__path=str(tmp_path / "d.npy"), **base), tmp_path / "r2") == 0
    with pytest.raises(DataError, match="cannot read as numeric data"):
        train(cfg(data__path=str(tmp_path / "obj.npy"), **base), tmp_path / "r3")
    with pytest.raises(DataError, match=r"columns \['c'\] not found"):
        train(cfg(data__path=str(tmp_path / "d.csv"), data__columns=["c"], **base),
              tmp_path / "r4")
    with pytest.raises(DataError, match="no such file"):
        train(cfg(data__path=str(tmp_path / "none.csv"), **base), tmp_path / "r5")
    assert not (tmp_path / "r3").exists() and not (tmp_path / "r5").exists()


@pytest.mark.slow
def test_xla_compiled_step_resumes_bit_identical(tmp_path):
    base = dict(train__steps=6, train__xla=True, eval__every_steps=3)
    assert train(cfg(**base), tmp_path / "a") == schema.EXIT_OK
    assert train(cfg(faults__sigterm_at_step=2, **base), tmp_path / "b") == schema.EXIT_RESUME
    assert train(cfg(faults__sigterm_at_step=2, **base), tmp_path / "b") == schema.EXIT_OK
    drop = ["wall_time", "step_seconds", "attempt"]
    for table in ("steps", "evals"):
        a = read_table(tmp_path / "a", table).drop(columns=drop, errors="ignore")
        b = read_table(tmp_path / "b", table).drop(columns=drop, errors="ignore")
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert read_table(tmp_path / "b", "steps")["attempt"].astype(int).tolist() == [1, 1, 2, 2, 2, 2]


EXPRESSIVE = dict(generator__reupload=True, generator__readout="xpn",
                  generator__readout_init="data", train__g_ema=0.9)


def _resumes_bit_identical(tmp_path, overrides: dict) -> dict:
    """Train `overrides` uninterrupted (ref/) and stopped by a rehearsed SIGTERM at step 5 and
    resumed (run/); assert the same rows and parameters; return the parameters."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import chaos

    assert train(cfg(**overrides), tmp_path / "ref") == schema.EXIT_OK
    stopped = cfg(**overrides, faults__sigterm_at_step=5)
    assert train(stopped, tmp_path / "run") == schema.EXIT_RESUME
    assert train(stopped, tmp_path / "run") == schema.EXIT_OK
    r = chaos.TrialResult()
    chaos.compare(tmp_path / "run", tmp_path / "ref", r)
    assert r.identical_rows
    # every variable bit for bit; not the object-graph proto, which records Keras' per-process
    # layer-name counters (three runs in one process; `qgan train` processes agree on it too)
    params, resumed = (chaos.final_params(tmp_path / d) for d in ("ref", "run"))
    graph = "_CHECKPOINTABLE_OBJECT_GRAPH"
    assert params.keys() == resumed.keys()
    assert all(np.array_equal(params[k], resumed[k]) for k in params if k != graph)
    return params


def test_expressive_generator_with_ema_resumes_bit_identical(tmp_path):
    """Re-uploading, the xpn readout, the data-fitted readout and the EMA generator, stopped by
    a rehearsed SIGTERM and resumed: same parameters (the average included) and same rows."""
    params = _resumes_bit_identical(tmp_path, EXPRESSIVE)
    ema = sorted(k for k in params if k.startswith("generator_ema/"))
    assert len(ema) == 10 + 2  # 9 layer weights, the phase encoding's, readout matrix, bias
    # the average lags the trained weights: it is a separate, real state
    key = "generator{}/readout_matrix/.ATTRIBUTES/VARIABLE_VALUE"
    assert params[key.format("_ema")].shape == params[key.format("")].shape == (6, 2)
    assert not np.array_equal(params[key.format("_ema")], params[key.format("")])


def test_evals_sample_the_moving_average(tmp_path):
    from qgan.data import load_dataset
    from qgan.models import Generators

    c = cfg(**EXPRESSIVE)
    data = load_dataset(c.data, c.run.seed)
    gens = Generators(c, data.dim)
    gens.init_readout(c, data.train)
    # readout_init = 'data': the fixed latent batch maps onto the data's mean and std
    rng = np.random.default_rng([c.run.seed, 0x1D17])
    z = rng.uniform(-0.5, 0.5, size=(512, 2)).astype(np.float32)
    y = gens.train(tf.constant(z))[0].numpy()
    np.testing.assert_allclose(y.mean(0), data.train.mean(0), atol=1e-4)
    np.testing.assert_allclose(y.std(0), data.train.std(0), rtol=1e-3)
    assert gens.sampling is gens.ema and set(gens.trackables()) == {"generator",
                                                                     "generator_ema"}
    before = [v.numpy().copy() for v in gens.ema.weights]
    for v in gens.train.weights:
        v.assign_add(tf.ones_like(v))
    gens.update_ema()
    for b, e in zip(before, gens.ema.weights):
        np.testing.assert_allclose(e.numpy(), b + 0.1, rtol=1e-5, atol=1e-5)
    plain = Generators(cfg(train__g_ema=0.0), data.dim)
    assert plain.sampling is plain.train and set(plain.trackables()) == {"generator"}


def test_total_truncation_trains_and_resumes_bit_identical(tmp_path):
    """generator.truncation = 'total' (qgan/circuits/total.py) at 3 modes, cutoff 4 (20 basis
    states instead of 64): stopped by a rehearsed SIGTERM and resumed, the same rows and
    parameters as an uninterrupted run."""
    from qgan.circuits.total import TotalBackend
    from qgan.models import build_models

    total = dict(EXPRESSIVE, generator__truncation="total", generator__modes=3)
    assert isinstance(build_models(cfg(**total), 2).generator.backend, TotalBackend)
    _resumes_bit_identical(tmp_path, total)
    traces = read_table(tmp_path / "ref", "steps")["fock_trace_min"]
    assert traces.between(0.5, 1.0).all()
    # the checkpoint restores (strictly) into a per-mode model too: the same variables
    from qgan.checkpoints import CheckpointManager

    weights = {}
    for truncation in ("total", "mode"):
        models = build_models(cfg(**dict(total, generator__truncation=truncation)), 2)
        start = [v.numpy() for v in models.generator.weights]
        manager = CheckpointManager(tmp_path / "ref" / schema.CHECKPOINT_DIR,
                                    models.trackables(), keep=3, read_only=True)
        assert manager.restore_latest().info.step == 12
        weights[truncation] = [v.numpy() for v in models.generator.weights]
        assert not all(np.array_equal(a, b) for a, b in zip(start, weights[truncation]))
    assert all(np.array_equal(a, b) for a, b in zip(weights["total"], weights["mode"]))
