"""SIGKILL at random instants while checkpoints and metric parts are being written.

A "zygote" subprocess imports TensorFlow once (~4 s) and forks one writer child per trial, so
20 trials fit in a few seconds each. A child restores the newest checkpoint, reports what it
restored, then loops: train one step, buffer rows, flush metric parts, save a checkpoint. The
test kills it with SIGKILL after a random delay and checks, with the toolkit's readers *and*
without them (pyarrow.dataset, pandas, DuckDB), that every committed part is readable, no
temporary file is visible, the newest committed checkpoint restores (by the next child) and
rows stay exactly-once per step. A final child runs to the end and must match, bitwise, an
uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from qgan.metrics import read_table, superseded_rows

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
TRIALS = int(os.environ.get("QGAN_KILL_TRIALS", "20"))
SEED = int(os.environ.get("QGAN_KILL_SEED", "20240601"))  # vary to explore
MAX_DELAY = 0.45  # seconds after "ready"; one loop iteration takes a few tens of ms

ZYGOTE = r'''
import hashlib, json, logging, math, os, sys, time
from pathlib import Path
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
import keras
from qgan.checkpoints import CheckpointManager
from qgan.metrics import MetricsWriter
logging.basicConfig(level=logging.WARNING)


def send(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())


def value(step):
    return math.sin(step)


def child(run_dir, attempt, stop_step, every):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    counter = tf.Variable(np.int64(0))
    big = tf.Variable(np.zeros(20_000))  # ~160 kB: a write takes long enough to be hit
    manager = CheckpointManager(run_dir / "checkpoints", {
        "model": model, "optimizer": optimizer, "counter": counter, "big": big}, keep=2)
    result = manager.restore_latest()
    step = 0 if result is None else int(result.extra["step"])
    state_ok = result is None or (
        int(counter.numpy()) == step and bool(np.all(big.numpy() == step))
        and int(optimizer.iterations.numpy()) == step)
    writer = MetricsWriter(run_dir, attempt, flush_seconds=0.0)
    writer.event(step, 0, "attempt_start", "start", data={"resumed_from": step})
    send({"ready": True, "pid": os.getpid(), "step": step, "state_ok": state_ok,
          "restored": None if result is None else result.info.name,
          "rejected": [] if result is None else [[str(r[0]), r[1]] for r in result.rejected]})
    while step < stop_step:
        step += 1
        rng = np.random.default_rng(step)  # randomness from the step: resumable
        x = tf.constant(rng.normal(size=(16, 3)), tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - 1.0))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        counter.assign(step)
        big.assign(np.full(20_000, float(step)))
        writer.add("steps", {"step": step, "revision": 0, "wall_time": time.time(),
                             "g_loss": value(step), "d_loss": -value(step)})
        if step % 5 == 0:
            writer.add("evals", {"step": step, "revision": 0, "wall_time": time.time(),
                                 "w1_mean": value(step), "w1_per_axis": [1.0, 2.0]})
            writer.write_samples(step, 0, np.full((4, 2), float(step)))
        if step % every == 0 or step == stop_step:
            writer.flush()  # metrics first, then the checkpoint (as the trainer does)
            info = manager.save(step, {"step": step})
            writer.event(step, 0, "checkpoint_written", info.name, data={"step": step})
        # a new best every step, outside the rotation (a kill often lands inside save_best)
        manager.save_best(step, {"step": step}, metric="w1_mean", mode="min", value=-float(step))
    writer.close()
    digest = hashlib.sha256()
    for var in list(model.variables) + list(optimizer.variables):
        digest.update(np.asarray(var.numpy()).tobytes())
    send({"done": True, "pid": os.getpid(), "step": step, "digest": digest.hexdigest()})


send({"zygote": True})
for line in sys.stdin:
    cmd = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child(Path(cmd["run_dir"]), cmd["attempt"], cmd["stop_step"], cmd["every"])
        except BaseException as exc:
            send({"error": repr(exc)})
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    send({"exit": pid, "status": status})
'''


class Zygote:
    """The forking helper process and its message stream (one JSON object per line)."""

    def __init__(self, tmp_path: Path) -> None:
        script = tmp_path / "zygote.py"
        script.write_text(ZYGOTE)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        self.stderr = open(tmp_path / "zygote.stderr", "wb")
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env,
                                     cwd=str(tmp_path))
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.child_pid: int | None = None
        assert self.receive(60).get("zygote")

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.messages.put(json.loads(line))
        self.messages.put({"eof": True})

    def receive(self, timeout: float = 30) -> dict:
        message = self.messages.get(timeout=timeout)
        assert "error" not in message and "eof" not in message, message
        return message

    def start(self, run_dir: Path, attempt: int, stop_step: int, every: int = 1) -> dict:
        self.proc.stdin.write((json.dumps({"run_dir": str(run_dir), "attempt": attempt,
                                           "stop_step": stop_step, "every": every})
                               + "\n").encode())
        self.proc.stdin.flush()
        ready = self.receive()
        assert ready.get("ready"), ready
        self.child_pid = ready["pid"]
        return ready

    def finish(self) -> dict:
        done = self.receive(60)
        assert done.get("done"), done
        assert self.receive().get("status") == 0
        self.child_pid = None
        return done

    def kill_child(self) -> int:
        os.kill(self.child_pid, signal.SIGKILL)
        message = self.receive()
        while "exit" not in message:  # a child that finished its loop first says "done"
            message = self.receive()
        self.child_pid = None
        return message["status"]

    def close(self) -> None:
        if self.child_pid is not None:
            try:
                os.kill(self.child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _temporaries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.startswith(".")]


def _committed_checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*") if p.is_dir())


def _check_best(run_dir: Path, best: dict | None) -> int:
    """Every best-* folder is complete (renamed into place only when whole: its own
    checksums.json verifies), the one the manifest names (if any) matches the manifest's
    sha256s, and at most two exist (a kill between a new one's rename and the manifest update,
    or before the old one's deletion). Returns 1 if there was any to check."""
    import hashlib

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    folders = sorted((run_dir / "checkpoints").glob("best-*"))
    assert len(folders) <= 2, folders
    for folder in folders:
        doc = json.loads((folder / "checksums.json").read_text())
        assert all(sha(folder / n) == m["sha256"] for n, m in doc["files"].items()), folder
    if best is not None:
        folder = run_dir / "checkpoints" / best["folder"]
        assert all(sha(folder / n) == m["sha256"] for n, m in best["files"].items()), folder
    return int(bool(folders))


def _check_readers(run_dir: Path) -> int:
    """Every committed part reads; no reader sees a temporary; returns the newest step."""
    for table in ("steps", "evals", "events"):
        folder = run_dir / "metrics" / table
        if not any(folder.glob("attempt=*/part-*.parquet")):
            continue  # killed before its first part committed (DuckDB's glob would error)
        for part in folder.glob("attempt=*/part-*.parquet"):
            pq.read_table(part)  # every committed part is complete
        dataset = ds.dataset(folder, format="parquet", partitioning="hive")
        assert not any(Path(f).name.startswith(".") for f in dataset.files)
        n = dataset.to_table().num_rows
        assert len(pd.read_parquet(folder)) == n
        files = duckdb.connect().execute(
            f"SELECT DISTINCT filename FROM read_parquet('{folder}/**/*.parquet', "
            "hive_partitioning = true, filename = true)").fetchall()
        assert not any(Path(f).name.startswith(".") for (f,) in files)
        assert duckdb.connect().execute(
            f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet', "
            "hive_partitioning = true)").fetchone() == (n,)
    for sample in (run_dir / "samples").glob("attempt=*/step-*.parquet"):
        pq.read_table(sample)
    steps = read_table(run_dir, "steps")
    assert steps["step"].tolist() == list(range(1, len(steps) + 1))  # exactly once, no gaps
    return int(steps["step"].max()) if len(steps) else 0


def test_sigkill_at_random_instants(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    run_dir = tmp_path / "run"
    zygote = Zygote(tmp_path)
    try:
        newest: str | None = None
        newest_step = 0
        temporaries_seen = 0
        best_seen = 0
        for trial in range(TRIALS):
            ready = zygote.start(run_dir, attempt=trial + 1, stop_step=10_000)
            # The newest committed checkpoint after the previous kill restored, untouched.
            assert ready["rejected"] == [], ready
            assert ready["restored"] == newest and ready["state_ok"], (ready, newest)
            assert ready["step"] == newest_step
            time.sleep(rng.uniform(0.0, MAX_DELAY))
            status = zygote.kill_child()
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            temporaries_seen += bool(_temporaries(run_dir))
            committed = _committed_checkpoints(run_dir)
            manifest_path = run_dir / "checkpoints" / "manifest.json"
            if manifest_path.exists():  # replaced atomically: always complete JSON
                manifest = json.loads(manifest_path.read_text())
                assert all(e["folder"] in committed for e in manifest["checkpoints"])
                best_seen += _check_best(run_dir, manifest.get("best"))
            if committed:
                newest = committed[-1]
                newest_step = json.loads(
                    (run_dir / "checkpoints" / newest / "extra.json").read_text())["step"]
            assert _check_readers(run_dir) >= newest_step  # metrics never behind a checkpoint
        kill_seconds = time.monotonic() - started

        final_step = newest_step + 12
        ready = zygote.start(run_dir, attempt=TRIALS + 1, stop_step=final_step)
        assert ready["restored"] == newest and ready["rejected"] == [] and ready["state_ok"]
        done = zygote.finish()
        reference = tmp_path / "reference"
        zygote.start(reference, attempt=1, stop_step=final_step, every=10_000)
        uninterrupted = zygote.finish()
    finally:
        zygote.close()

    # Resumed across 20 SIGKILLs == never interrupted (model weights and Adam state, bitwise).
    assert done["digest"] == uninterrupted["digest"]
    assert _check_readers(run_dir) == final_step
    steps = read_table(run_dir, "steps")
    everything = read_table(run_dir, "steps", latest=False)
    assert steps["step"].tolist() == list(range(1, final_step + 1))
    assert steps["g_loss"].tolist() == [math.sin(s) for s in range(1, final_step + 1)]
    latest_attempt = everything.groupby("step")["attempt"].max()
    assert steps.set_index("step")["attempt"].equals(latest_attempt)
    assert len(superseded_rows(run_dir, "steps")) == len(everything) - final_step
    evals = read_table(run_dir, "evals")
    assert evals["step"].tolist() == list(range(5, final_step + 1, 5))
    events = read_table(run_dir, "events")
    # Buffered rows of a killed attempt are lost until its first flush; every attempt that
    # flushed anything has its start event (the first row it buffered), exactly once.
    starts = events[events["kind"] == "attempt_start"]["attempt"].tolist()
    flushed = sorted(int(p.name.split("=")[1]) for p in (run_dir / "metrics/events").iterdir()
                     if any(p.glob("part-*.parquet")))  # a folder killed before its first part
    assert sorted(starts) == flushed and flushed[-1] == TRIALS + 1
    final_best = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())["best"]
    assert final_best["step"] == final_step
    base = int(newest[5:]) if newest else 0  # on a loaded machine every kill may come early
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(
        [f"ckpt-{base + 11:06d}", f"ckpt-{base + 12:06d}", final_best["folder"],
         "manifest.json"])
    _check_best(run_dir, final_best)
    assert _temporaries(run_dir) == []  # the last writers tidied up after the killed ones
    log.info("%d kills in %.1f s; %d left a temporary behind; final step %d; best-* "
             "folders checked after %d kills", TRIALS, kill_seconds, temporaries_seen, final_step,
             best_seen)
