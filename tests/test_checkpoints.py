"""Checkpoints: bitwise round trip (Keras 3 Adam slots included), layout, manifest, keep-N,
damaged-checkpoint fallback, and a full disk that leaves the previous checkpoint intact."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from qgan import atomic  # noqa: E402
from qgan.checkpoints import (CHECKSUM_FILE, CheckpointManager,  # noqa: E402
                              CheckpointMismatchError, CheckpointWriteError, damage_checkpoint)

EXPECTED_FILES = {"state.index", "state.data-00000-of-00001", "extra.json", "checksums.json"}


def _model_and_adam(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(model.trainable_variables)  # slots must exist before restoring
    return model, optimizer


def _train(model, optimizer, steps: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = tf.constant(rng.normal(size=(8, 3)), dtype=tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))


def _bits(variables) -> list[bytes]:
    return [np.asarray(v.numpy()).tobytes() for v in variables]


def _state(model, optimizer, *variables) -> list[bytes]:
    return _bits(model.variables) + _bits(optimizer.variables) + _bits(variables)


def _manager(directory: Path, keep: int = 3, value: float = 0.0):
    model, optimizer = _model_and_adam()
    counter = tf.Variable(np.int64(0))
    weights = tf.Variable(np.full(4, value, dtype=np.float64))
    trackables = {"model": model, "optimizer": optimizer, "counter": counter, "w": weights}
    return CheckpointManager(directory, trackables, keep=keep), model, optimizer, counter, weights


def test_keras_adam_and_variables_round_trip_bitwise(tmp_path: Path) -> None:
    manager, model, optimizer, counter, weights = _manager(tmp_path / "ck")
    _train(model, optimizer, steps=4)
    counter.assign(41)
    weights.assign([np.pi, -0.0, 1e-300, np.nan])
    extra = {"step": 4, "g_lr": 0.01, "best": float("inf"), "guard": {"bad": [1, 2]}}
    info = manager.save(4, extra)
    before = _state(model, optimizer, counter, weights)
    assert int(optimizer.iterations.numpy()) == 4

    fresh, fresh_model, fresh_opt, fresh_counter, fresh_weights = _manager(tmp_path / "ck")
    assert _state(fresh_model, fresh_opt, fresh_counter, fresh_weights) != before
    result = fresh.restore_latest()
    assert result is not None and result.rejected == []
    assert result.info == info
    assert result.extra == extra
    assert _state(fresh_model, fresh_opt, fresh_counter, fresh_weights) == before
    assert int(fresh_opt.iterations.numpy()) == 4
    slot_paths = [v.path for v in fresh_opt.variables]
    assert any("momentum" in p for p in slot_paths) and any("velocity" in p for p in slot_paths)
    # Training continues identically from the restored state.
    _train(model, optimizer, steps=2, seed=7)
    _train(fresh_model, fresh_opt, steps=2, seed=7)
    assert _state(fresh_model, fresh_opt) == _state(model, optimizer)


def test_unbuilt_optimizer_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    manager, model, optimizer, *_ = _manager(tmp_path / "ck")
    _train(model, optimizer, steps=2)
    manager.save(2, {"step": 2})
    model2 = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"),
                               keras.layers.Dense(1)])
    unbuilt = keras.optimizers.Adam(learning_rate=1e-2)  # no optimizer.build(...)
    trackables = {"model": model2, "optimizer": unbuilt, "counter": tf.Variable(np.int64(0)),
                  "w": tf.Variable(np.zeros(4))}
    with pytest.raises(CheckpointMismatchError, match="optimizer.build"):
        CheckpointManager(tmp_path / "ck", trackables, keep=3).restore_latest()


def test_layout_manifest_keep_n_and_load_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, model, optimizer, counter, _ = _manager(directory, keep=3)
    for step in (10, 20, 30, 40, 50):
        counter.assign(step)
        manager.save(step, {"step": step})
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["ckpt-000003", "ckpt-000004", "ckpt-000005", "manifest.json"]
    for name in names[:-1]:
        assert {p.name for p in (directory / name).iterdir()} == EXPECTED_FILES
    manifest = json.loads((directory / "manifest.json").read_text())
    entries = manifest["checkpoints"]
    assert [(e["seq"], e["step"], e["folder"]) for e in entries] == [
        (3, 30, "ckpt-000003"), (4, 40, "ckpt-000004"), (5, 50, "ckpt-000005")]
    for entry in entries:
        assert set(entry["files"]) == EXPECTED_FILES
        for name, meta in entry["files"].items():
            data = (directory / entry["folder"] / name).read_bytes()
            assert meta["sha256"] == hashlib.sha256(data).hexdigest()
            assert meta["bytes"] == len(data)
        assert entry["wall_time"] > 1e9
    # A user opens any checkpoint with plain TensorFlow.
    reader = tf.train.load_checkpoint(str(directory / "ckpt-000004" / "state"))
    assert reader.get_tensor("counter/.ATTRIBUTES/VARIABLE_VALUE") == 40
    assert manager.latest().name == "ckpt-000005"
    assert [i.step for i in manager.list()] == [30, 40, 50]


def test_rollback_resaves_earlier_step_under_new_seq(tmp_path: Path) -> None:
    manager, _, _, counter, weights = _manager(tmp_path / "ck", keep=5)
    weights.assign([1.0, 2.0, 3.0, 4.0])
    good = manager.save(100, {"step": 100})
    weights.assign([9.0, 9.0, 9.0, 9.0])
    manager.save(110, {"step": 110})
    result = manager.restore(good)  # the guard's rollback
    assert result.extra == {"step": 100}
    assert weights.numpy().tolist() == [1.0, 2.0, 3.0, 4.0]
    again = manager.save(100, {"step": 100, "revision": 1})
    assert (again.seq, again.step, again.name) == (3, 100, "ckpt-000003")
    assert manager.latest() == again
    assert manager.restore_latest().extra == {"step": 100, "revision": 1}


def test_damaged_newest_is_rejected_and_previous_restored(tmp_path: Path) -> None:
    manager, _, _, counter, _ = _manager(tmp_path / "ck")
    counter.assign(1)
    first = manager.save(1, {"step": 1})
    counter.assign(2)
    manager.save(2, {"step": 2})
    damaged = manager.corrupt_latest_for_testing()
    counter.assign(99)
    result = manager.restore_latest()
    assert result.info == first and int(counter.numpy()) == 1
    assert len(result.rejected) == 1
    rejected_info, reason = result.rejected[0]
    assert rejected_info == damaged and "sha256 mismatch for state.data" in reason
    assert manager.last_rejected == result.rejected


def test_recovers_without_manifest_and_rejects_damage_via_folder_checksums(
        tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, _, _, counter, _ = _manager(directory)
    for step in (1, 2, 3):
        counter.assign(step)
        manager.save(step, {"step": step})
    damage_checkpoint(manager.latest())
    (directory / "manifest.json").write_text("{ this is not json")
    fresh, _, _, fresh_counter, _ = _manager(directory)
    result = fresh.restore_latest()
    assert result.info.step == 2 and int(fresh_counter.numpy()) == 2
    assert result.info.source == CHECKSUM_FILE
    assert "sha256 mismatch" in result.rejected[0][1]
    (directory / "manifest.json").unlink()
    assert _manager(directory)[0].restore_latest().info.step == 2
    # The next save rewrites a valid manifest from what is on disk.
    fresh.save(4, {"step": 4})
    entries = json.loads((directory / "manifest.json").read_text())["checkpoints"]
    assert [e["seq"] for e in entries] == [2, 3, 4]


def test_tensorflow_crc_catches_damage_the_checksums_missed(tmp_path: Path) -> None:
    """If the checksum files were rewritten after the damage, TF's own CRC32C still rejects."""
    directory = tmp_path / "ck"
    manager, _, _, counter, _ = _manager(directory)
    counter.assign(1)
    manager.save(1, {"step": 1})
    counter.assign(2)
    newest = manager.save(2, {"step": 2})
    damage_checkpoint(newest)
    doc = json.loads((newest.path / CHECKSUM_FILE).read_text())
    for name in doc["files"]:
        doc["files"][name]["sha256"] = hashlib.sha256((newest.path / name).read_bytes()).hexdigest()
    (newest.path / CHECKSUM_FILE).write_text(json.dumps(doc))
    (directory / "manifest.json").unlink()
    result = manager.restore_latest()
    assert result.info.step == 1 and int(counter.numpy()) == 1
    assert "TensorFlow could not read it" in result.rejected[0][1]


def test_folder_committed_before_manifest_update_is_used(tmp_path: Path) -> None:
    """A kill between the folder rename and the manifest write loses nothing."""
    directory = tmp_path / "ck"
    manager, _, _, counter, _ = _manager(directory)
    counter.assign(1)
    manager.save(1, {"step": 1})
    saved_manifest = (directory / "manifest.json").read_bytes()
    counter.assign(2)
    manager.save(2, {"step": 2})
    (directory / "manifest.json").write_bytes(saved_manifest)  # as if killed before the update
    fresh, _, _, fresh_counter, _ = _manager(directory)
    result = fresh.restore_latest()
    assert (result.info.step, result.info.source) == (2, CHECKSUM_FILE)
    assert int(fresh_counter.numpy()) == 2
    assert fresh.save(3, {"step": 3}).seq == 3


def test_stale_temporaries_are_removed_and_never_listed(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, *_ = _manager(directory)
    manager.save(1, {"step": 1})
    stale = directory / ".ckpt-000002.4242-deadbeef.tmp"
    stale.mkdir()
    (stale / "state.index").write_bytes(b"partial")
    (directory / ".manifest.json.4242-deadbeef.tmp").write_text("{")
    assert [i.name for i in manager.list()] == ["ckpt-000001"]
    _manager(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["ckpt-000001", "manifest.json"]


def test_no_usable_checkpoint_returns_none_with_reasons(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, *_ = _manager(directory)
    assert manager.restore_latest() is None and manager.last_rejected == []
    manager.save(1, {"step": 1})
    manager.corrupt_latest_for_testing()
    (directory / "ckpt-000007").mkdir()  # a folder nothing describes
    assert manager.restore_latest() is None
    assert [r[0] if isinstance(r[0], str) else r[0].name for r in manager.last_rejected] == [
        "ckpt-000007", "ckpt-000001"]


def test_bad_extra_and_keep_are_value_errors(tmp_path: Path) -> None:
    manager, *_ = _manager(tmp_path / "ck")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        manager.save(1, {"rng": object()})
    assert manager.list() == []
    with pytest.raises(ValueError, match="keep"):
        CheckpointManager(tmp_path / "x", {"v": tf.Variable(1.0)}, keep=0)


def test_failed_manifest_write_undoes_the_commit(tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "ck"
    manager, _, _, counter, _ = _manager(directory)
    counter.assign(1)
    manager.save(1, {"step": 1})
    manifest_before = (directory / "manifest.json").read_bytes()

    def no_space(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", no_space)
    counter.assign(2)
    with pytest.raises(CheckpointWriteError, match="manifest.json.*ckpt-000001, step 1.*intact"):
        manager.save(2, {"step": 2})
    assert sorted(p.name for p in directory.iterdir()) == ["ckpt-000001", "manifest.json"]
    assert (directory / "manifest.json").read_bytes() == manifest_before


def _fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the filesystem of `folder` until about `leave_bytes` remain free."""
    filler = folder / "filler.bin"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


def test_disk_full_keeps_previous_checkpoint_intact(small_fs: Path) -> None:
    directory = small_fs / "ck"
    weights = tf.Variable(np.arange(50_000, dtype=np.float32))  # ~200 kB per checkpoint
    manager = CheckpointManager(directory, {"w": weights}, keep=2)
    first = manager.save(1, {"step": 1})
    manifest_before = (directory / "manifest.json").read_bytes()
    filler = _fill(small_fs, leave_bytes=64 * 1024)
    weights.assign(weights + 1.0)
    with pytest.raises(CheckpointWriteError) as caught:
        manager.save(2, {"step": 2})
    message = str(caught.value)
    assert "ckpt-000002 (step 2) failed" in message
    assert "previous checkpoint (ckpt-000001, step 1) is intact" in message
    assert sorted(p.name for p in directory.iterdir()) == ["ckpt-000001", "manifest.json"]
    assert (directory / "manifest.json").read_bytes() == manifest_before
    result = manager.restore_latest()
    assert result.info == first and result.rejected == []
    assert weights.numpy()[:3].tolist() == [0.0, 1.0, 2.0]
    filler.unlink()  # space again: the next save works and continues the numbering
    assert manager.save(2, {"step": 2}).name == "ckpt-000002"


def test_best_checkpoint_survives_keep_n_and_is_named_by_the_manifest(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, model, optimizer, counter, weights = _manager(directory, keep=1)
    counter.assign(2)
    best = manager.save_best(2, {"step": 2}, metric="w1_mean", mode="min", value=0.25)
    best_state = _state(model, optimizer, counter, weights)
    assert best.name == "best-000001" and best.step == 2
    for step in range(3, 8):  # keep = 1: every rotation deletes the previous ckpt-*
        counter.assign(step)
        manager.save(step, {"step": step})
    assert sorted(p.name for p in directory.iterdir()) == ["best-000001", "ckpt-000005",
                                                           "manifest.json"]
    doc = json.loads((directory / "manifest.json").read_text())
    assert [c["folder"] for c in doc["checkpoints"]] == ["ckpt-000005"]
    assert {k: doc["best"][k] for k in ("folder", "step", "metric", "mode", "value")} == {
        "folder": "best-000001", "step": 2, "metric": "w1_mean", "mode": "min", "value": 0.25}
    assert set(doc["best"]["files"]) == EXPECTED_FILES
    # the rotation never lists it; restore_latest never picks it; restore(best()) does
    assert [i.name for i in manager.list()] == ["ckpt-000005"]
    fresh, f_model, f_opt, f_counter, f_weights = _manager(directory, keep=1)
    assert fresh.restore_latest().info.step == 7
    info = fresh.best()
    assert (info.name, info.step, info.source) == ("best-000001", 2, "manifest")
    assert fresh.restore(info).extra == {"step": 2}
    assert _state(f_model, f_opt, f_counter, f_weights) == best_state


def test_a_new_best_replaces_the_old_one_atomically(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager, _, _, counter, _ = _manager(directory)
    manager.save(1, {"step": 1})
    manager.save_best(1, {"step": 1}, metric="w1_mean", mode="min", value=0.5)
    second = manager.save_best(4, {"step": 4}, metric="w1_mean", mode="min", value=0.3)
    assert second.name == "best-000002"
    assert sorted(p.name for p in directory.iterdir()) == ["best-000002", "ckpt-000001",
                                                           "manifest.json"]
    # a kill between the rename and the manifest: two best folders, the manifest names the
    # old one, which is still complete; the next save_best cleans both up
    (directory / "best-000003").mkdir()
    assert manager.best().name == "best-000002"
    manager.save_best(6, {"step": 6}, metric="w1_mean", mode="min", value=0.2)
    assert sorted(p.name for p in directory.iterdir()) == ["best-000004", "ckpt-000001",
                                                           "manifest.json"]
    # a lost manifest: best() falls back to the newest best-* folder's own checksums
    (directory / "manifest.json").unlink()
    fresh = _manager(directory)[0]
    info = fresh.best()
    assert (info.name, info.step, info.source) == ("best-000004", 6, CHECKSUM_FILE)
    fresh.verify(info)


def test_failed_best_write_keeps_the_previous_best(tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "ck"
    manager = _manager(directory)[0]
    manager.save(1, {"step": 1})
    manager.save_best(1, {"step": 1}, metric="w1_mean", mode="min", value=0.5)
    manifest_before = (directory / "manifest.json").read_bytes()

    def no_space(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", no_space)
    with pytest.raises(CheckpointWriteError, match="previous best checkpoint .best-000001, "
                                                   "step 1. is intact"):
        manager.save_best(2, {"step": 2}, metric="w1_mean", mode="min", value=0.1)
    assert sorted(p.name for p in directory.iterdir()) == ["best-000001", "ckpt-000001",
                                                           "manifest.json"]
    assert (directory / "manifest.json").read_bytes() == manifest_before
    assert manager.best().name == "best-000001"


def test_read_only_manager_creates_and_deletes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    manager = _manager(directory)[0]
    manager.save(1, {"step": 1})
    stale = directory / atomic.temp_name("ckpt-000002")  # a live writer's temporary
    stale.mkdir()
    model, optimizer = _model_and_adam()
    reader = CheckpointManager(directory, {"model": model, "optimizer": optimizer,
                                           "counter": tf.Variable(np.int64(0)),
                                           "w": tf.Variable(np.zeros(4))}, keep=1,
                               read_only=True)
    assert stale.exists() and reader.latest().name == "ckpt-000001"
    CheckpointManager(tmp_path / "absent", {"model": model}, keep=1, read_only=True)
    assert not (tmp_path / "absent").exists()
