"""Hostile inputs: every file in a run directory, and every path on the command line, is
untrusted (issue 12). Real `qgan` processes on real files, a real tmpfs filled up (root).

Each test asserts the exit status, the class of the message (one line, no traceback) and,
with `Outside`, that nothing outside the run directory was opened, read, written or deleted
(inotify on a sibling folder holding the link targets) or signalled (a sentinel process).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import steps_by_step, tmpfs_at, wait_for
from qgan import schema
from qgan.vocabulary import StopCause
from qgan.metrics import MetricsWriter

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[run]
name = "hostile"
seed = 7
[data]
n_train = 128
n_holdout = 64
[generator]
backend = "compiled"
cutoff = 4
layers = 1
[train]
steps = 12
batch_size = 8
log_every = 4
[loss]
n_critic = 1
[eval]
every_steps = 4
n_samples = 32
save_samples = 16
[checkpoint]
every_steps = 4
every_seconds = 0.0
keep = 3
[metrics]
flush_seconds = 0.5
"""


def qgan(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def qgan_bg(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def refused(proc: subprocess.CompletedProcess, status: int, *phrases: str) -> None:
    """Exit `status` with one message line naming the problem; never a traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("qgan ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    message = proc.stderr[proc.stderr.index(lines[0]):]  # (cancel lists one run a line)
    for phrase in phrases:
        assert phrase in message, (phrase, message)


# ---- what lies outside the run directory -------------------------------------------------
_IN_ALL_EVENTS = 0xFFF  # access, modify, attrib, close, open, move, create, delete


class Outside:
    """A folder next to the run directories holding what links point at, watched with inotify
    (open/read/write/create/delete of anything in it, the folder itself included), and a
    sentinel process that must never receive a signal."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.secret = root / "secret.txt"
        self.secret.write_text("not yours\n")
        self.sentinel = subprocess.Popen(["sleep", "600"])
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self._fd = -1
        self._watched: list[Path] = []

    def watch(self, *extra: Path) -> None:
        """Start watching (after the test's own setup touched these folders)."""
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        assert self._fd >= 0
        for folder in (self.root, *extra):
            wd = self._libc.inotify_add_watch(self._fd, str(folder).encode(), _IN_ALL_EVENTS)
            assert wd >= 0, ctypes.get_errno()
            self._watched.append(folder)

    def events(self) -> list[tuple[int, str]]:
        out = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
                out.append((mask, name))
                offset += 16 + length

    def assert_untouched(self) -> None:
        assert self._fd >= 0, "watch() was never called"
        assert self.events() == [], "something outside the run directory was touched"
        assert self.sentinel.poll() is None, "the sentinel process was signalled"
        assert self.secret.read_text() == "not yours\n"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self.sentinel.kill()
        self.sentinel.wait()


@pytest.fixture
def outside(tmp_path: Path):
    o = Outside(tmp_path / "outside")
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A run stopped by SIGTERM after step 8 (checkpoints at steps 0, 4, 8): resumable with
    its own config.toml (the fault is armed on attempt 1 only)."""
    root = tmp_path_factory.mktemp("base")
    (root / "tiny.toml").write_text(CONFIG)
    proc = qgan("train", str(root / "tiny.toml"), "--run-dir", str(root / "run"),
                "--set", "faults.sigterm_at_step=8")
    assert proc.returncode == schema.EXIT_RESUME, proc.stderr[-2000:]
    return root / "run"


def copy_run(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True)
    return dest


def events(run: Path, kind: str) -> list[dict]:
    t = ds.dataset(run / "metrics" / "events", format="parquet", partitioning="hive").to_table()
    return [json.loads(r["data"]) for r in t.to_pylist() if r["kind"] == kind]


def resumed_from(run: Path) -> list[int]:
    return [e["step"] for e in events(run, "checkpoint_restored") if "from_step" not in e]


# ---- qgan cancel ---------------------------------------------------------------------------
def _experiment(tmp_path: Path, tasks: list[dict], executor: str = "local") -> Path:
    exp = tmp_path / "exp"
    for t in tasks:
        if "/" not in t["run"] and ".." not in t["run"]:
            (exp / t["run"]).mkdir(parents=True)
            (exp / t["run"] / "config.toml").write_text(CONFIG)
    exp.mkdir(exist_ok=True)
    (exp / "experiment.json").write_text(json.dumps(
        {"name": "exp", "executor": executor, "tasks": tasks, "job_ids": []}))
    return exp


def test_cancel_refuses_a_pid_that_is_not_the_controller_it_started(tmp_path, outside):
    from jobs.schedulers.local import process_identity

    true_identity = process_identity(outside.sentinel.pid)
    assert true_identity["cmdline"] == "sleep 600"
    forged = {"start": true_identity["start"] + 1, "cmdline": "python -m submitit.core._submit"}
    exp = _experiment(tmp_path, [
        {"index": 0, "run": "task-000", "job_id": str(outside.sentinel.pid), "process": forged},
        {"index": 1, "run": "task-001", "job_id": str(outside.sentinel.pid)},  # older/edited
    ])
    outside.watch()
    proc = qgan("cancel", str(exp), timeout=60)
    refused(proc, 2, "not cancelled")
    assert proc.stderr.count("is not the job controller `qgan submit` started") == 2
    outside.assert_untouched()
    # The cancellation record names no run: nothing was cancelled.
    doc = json.loads((exp / "experiment.json").read_text())
    assert doc["cancelled"][-1]["runs"] == []


def test_cancel_signals_the_recorded_controller(tmp_path):
    """The other side: with the identity recorded at submit, the controller gets SIGTERM
    (which submitit's controller forwards to the job, then waits for it)."""
    from jobs.schedulers.local import process_identity

    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        wait_for(lambda: process_identity(target.pid) is not None and "time.sleep" in
                 process_identity(target.pid)["cmdline"], 10, "the controller to start")
        exp = _experiment(tmp_path, [{"index": 0, "run": "task-000", "job_id": str(target.pid),
                                      "process": process_identity(target.pid)}])
        proc = qgan("cancel", str(exp), timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"cancelled task-000 (job {target.pid})" in proc.stdout
        assert target.wait(timeout=10) == -signal.SIGTERM
    finally:
        target.kill()


@pytest.mark.parametrize("task,executor,phrase", [
    ({"index": 0, "run": "../../etc", "job_id": "1"}, "local", "is not a plain file name"),
    ({"index": 0, "run": "task-000", "job_id": "--user=root"}, "slurm",
     "is not a SLURM job id"),
])
def test_cancel_and_status_refuse_an_edited_ledger(tmp_path, outside, task, executor, phrase):
    exp = _experiment(tmp_path, [task], executor)
    outside.watch()
    for command in ("cancel", "status"):
        proc = qgan(command, str(exp), timeout=60)
        if command == "status" and executor == "slurm":
            assert proc.returncode == 0, proc.stderr  # a status is harmless: it only reads
            continue
        refused(proc, 2, phrase)
    outside.assert_untouched()


@pytest.mark.parametrize("doc", [
    {"executor": "local", "tasks": [{"run": "task-000", "job_id": {"a": 1}, "process": "x"}],
     "cancelled": "oops"},
    {"executor": "local", "tasks": "x"},
    {"executor": "local", "tasks": [{"run": 5}]},
    {"executor": "local", "tasks": [{"run": "task-000", "job_id": "SENTINEL"}],
     "cancelled": [1, {"runs": "abc"}]},
    [1, 2],
])
def test_damaged_experiment_json_never_gives_a_traceback(tmp_path, outside, doc):
    exp = _experiment(tmp_path, [{"index": 0, "run": "task-000"}])
    text = json.dumps(doc).replace("SENTINEL", str(outside.sentinel.pid))
    (exp / "experiment.json").write_text(text)
    outside.watch()
    for command in ("status", "cancel"):
        proc = qgan(command, str(exp), timeout=60)
        assert proc.returncode in (0, 2), proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        if proc.returncode == 2:
            refused(proc, 2)
    outside.assert_untouched()


# ---- paths taken from run-directory files ---------------------------------------------------
def _add_file_to_checkpoint(entry: dict, target: Path) -> None:
    data = target.read_bytes()
    entry["files"]["../../../outside/secret.txt"] = {
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("also_checksums", [False, True])
def test_manifest_file_name_leading_outside_is_never_opened(base_run, tmp_path, outside,
                                                            also_checksums):
    run = copy_run(base_run, tmp_path / "run")
    manifest_path = run / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    newest = manifest["checkpoints"][-1]
    assert newest["folder"] == "ckpt-000003" and newest["step"] == 8
    _add_file_to_checkpoint(newest, outside.secret)
    manifest_path.write_text(json.dumps(manifest))
    if also_checksums:  # the attacker edits the folder's own checksums too
        own = run / "checkpoints" / "ckpt-000003" / "checksums.json"
        doc = json.loads(own.read_text())
        _add_file_to_checkpoint(doc, outside.secret)
        own.write_text(json.dumps(doc))
    outside.watch()
    proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "'../../../outside/secret.txt' is not a plain file name" in proc.stderr
    if also_checksums:  # rejected, and the previous checkpoint restored
        rejected = events(run, "checkpoint_rejected")
        assert [e["path"] for e in rejected] == ["ckpt-000003"]
        assert "not a plain file name" in rejected[0]["reason"]
        assert resumed_from(run) == [4]
    else:  # the folder's own checksums describe it: the newest restores, nothing followed
        assert events(run, "checkpoint_rejected") == []
        assert resumed_from(run) == [8]
    outside.assert_untouched()


def test_checkpoints_folder_that_is_a_link_is_refused_not_cleaned(base_run, tmp_path, config,
                                                                  outside):
    run = copy_run(base_run, tmp_path / "run")
    elsewhere = outside.root / "ckpts"
    shutil.move(run / "checkpoints", elsewhere)
    (run / "checkpoints").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    outside.watch(elsewhere)
    proc = qgan("train", str(config), "--run-dir", str(run))
    refused(proc, 2, "checkpoints is a symbolic link", "replace the link by a real folder")
    outside.assert_untouched()
    assert sorted(p.name for p in elsewhere.iterdir()) == before


@pytest.mark.parametrize("where", ["metrics/steps/attempt=2", "samples", "logs/job-0001.log",
                                   "checkpoints/ckpt-000009", "attempts/0002.json"])
def test_links_anywhere_in_the_run_directory_are_refused(base_run, tmp_path, config, outside,
                                                          where):
    run = copy_run(base_run, tmp_path / "run")
    link = run / where
    if link.exists():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside.secret if where.endswith((".log", ".json")) else outside.root)
    outside.watch()
    proc = qgan("train", str(config), "--run-dir", str(run))
    refused(proc, 2, f"{where} is a symbolic link")
    outside.assert_untouched()
    assert not list(run.glob("attempts/0002.json")) or where == "attempts/0002.json"


# ---- two trainers, one run directory -------------------------------------------------------
def test_second_trainer_is_refused_while_the_first_holds_the_lock(tmp_path, config, outside):
    run = tmp_path / "run"
    first = qgan_bg("train", str(config), "--run-dir", str(run),
                    "--set", "faults.step_seconds=0.4")
    try:
        wait_for(lambda: (run / "attempts" / "0001.json").exists(), 120, "the first attempt")
        outside.watch()
        second = qgan("train", str(config), "--run-dir", str(run), timeout=120)
        refused(second, schema.EXIT_LOCKED, "is in use by another trainer",
                f"pid {first.pid} on")
        assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    finally:
        first.kill()
    outside.assert_untouched()
    assert sorted(p.name for p in (run / "attempts").iterdir()) == ["0001.json"]
    assert ds.dataset(run / "metrics/steps", partitioning="hive").count_rows() == 12
    assert len(events(run, "attempt_start")) == 1 and events(run, "checkpoint_failed") == []


def test_a_killed_trainer_leaves_no_lock_behind(tmp_path, config):
    run = tmp_path / "run"
    first = qgan_bg("train", str(config), "--run-dir", str(run),
                    "--set", "faults.step_seconds=0.4")
    try:
        wait_for(lambda: (run / "checkpoints" / "ckpt-000002").is_dir(), 120,
                 "a checkpoint at step 4")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        first.kill()
    assert (run / "run.lock").exists()  # the file stays; the kernel dropped the flock
    proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert resumed_from(run)[-1] >= 4


def retried_then_given_up(tmp_path: Path, cause: StopCause, gave_up: str) -> dict:
    """Two episodes stopped by `cause` under max_failures = 2: the first is requeued, the
    second gives up with a reason matching `gave_up`; returns the ledger written."""
    from jobs import ledger
    from jobs.task import RunStopped, TrainJob

    run = tmp_path / "run"
    run.mkdir()
    job = TrainJob(str(run), "exp", 0, {"max_requeues": 3, "max_failures": 2,
                                        "signal_delay": 60})
    doc = {"episodes": [], "outcome": None}
    for n in (1, 2):
        episode = {"n": n, "executor": "none", "stop_cause": cause, "end_step": 8}
        doc["episodes"].append(episode)
        if n == 1:
            assert job._decide(run, doc, episode, cause)["outcome"] == "interrupted"
        else:
            with pytest.raises(RunStopped, match=gave_up):
                job._decide(run, doc, episode, cause)
    return ledger.read_jobs(run)


def test_jobs_layer_retries_a_locked_run_only_max_failures_times(tmp_path):
    from jobs.task import classify

    assert classify(schema.EXIT_LOCKED, [], None, None, 60.0, None) == StopCause.LOCKED
    assert classify(schema.EXIT_RESUME, [], None, None, 60.0, None) == StopCause.WRITE_FAILED
    doc = retried_then_given_up(tmp_path, StopCause.LOCKED, "another trainer held")
    assert doc["outcome"] == "gave_up"


# ---- a full disk ---------------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path: Path):
    """A real 8 MiB tmpfs (room for a tiny run), unmounted in a finalizer."""
    with tmpfs_at(tmp_path / "fs", "8m") as mount_point:
        yield mount_point


def fill(folder: Path) -> Path:
    """Write until the filesystem says ENOSPC; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_disk_full_during_evals_and_samples_stops_resumably(tmpfs, tmp_path, config):
    run = tmpfs / "run"
    trainer = qgan_bg("train", str(config), "--run-dir", str(run),
                      "--set", "faults.step_seconds=0.3", "--set", "eval.every_steps=2")
    try:
        manifest = run / "checkpoints" / "manifest.json"
        wait_for(lambda: manifest.exists() and json.loads(manifest.read_text())
                 ["checkpoints"][-1]["step"] >= 4, 120, "the checkpoint at step 4")
        filler = fill(tmpfs)
        status = trainer.wait(timeout=300)
        err = trainer.stderr.read()
    finally:
        trainer.kill()
    assert status == schema.EXIT_RESUME, err[-3000:]
    assert "Traceback" not in err
    assert "write_failed: writing the samples of step" in err  # an eval's samples
    assert "No space left on device" in err
    assert "checkpoint_failed" in err  # the checkpoints after the disk filled
    assert "the final checkpoint at step 12 could not be written" in err
    newest = json.loads(manifest.read_text())["checkpoints"][-1]["step"]
    assert 4 <= newest < 12
    attempt = json.loads((run / "attempts" / "0001.json").read_text())
    assert attempt["reason"] in ("write_failed", None)  # None: even this file could not be
    # A full disk at start-up: one line, exit 75, nothing half-written.
    second = qgan("train", str(config), "--run-dir", str(tmpfs / "run2"))
    refused(second, schema.EXIT_RESUME, "No space left on device", "run again")
    assert not (tmpfs / "run2" / "config.toml").exists()
    # Room again: the run resumes from its newest good checkpoint and matches, bitwise, an
    # uninterrupted run.
    filler.unlink()
    resumed = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed_from(run) == [newest]
    reference = qgan("train", str(config), "--run-dir", str(tmp_path / "ref"),
                     "--set", "eval.every_steps=2")
    assert reference.returncode == 0
    assert steps_by_step(run) == steps_by_step(tmp_path / "ref")
    assert len(steps_by_step(run)) == 12


# ---- data files ----------------------------------------------------------------------------
def test_a_value_beyond_float32_is_refused_with_row_and_column(tmp_path, config):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=64), "b": rng.normal(size=64)})
    frame.loc[40, "b"] = 1e39  # finite in float64, inf in float32
    frame.to_csv(tmp_path / "d.csv", index=False)
    proc = qgan("train", str(config), "--run-dir", str(tmp_path / "run"),
                "--set", "data.target='file'", "--set", f"data.path='{tmp_path / 'd.csv'}'")
    refused(proc, 2, "row 40", "column 'b'", "1e+39 is beyond float32")
    assert not (tmp_path / "run").exists()


def test_a_huge_data_file_is_refused_with_its_size_and_the_limit(tmp_path, config):
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:  # sparse: 3 GiB on paper, nothing on disk
        fh.write(b"a,b\n")
        fh.truncate(3 * 2**30)
    started = time.monotonic()
    proc = qgan("train", str(config), "--run-dir", str(tmp_path / "run"),
                "--set", "data.target='file'", "--set", f"data.path='{big}'")
    refused(proc, 2, "is 3072 MiB, over the limit data.max_file_mb = 1024 MiB")
    assert time.monotonic() - started < 60  # refused before reading a byte of it
    assert not (tmp_path / "run").exists()


# ---- the run directory itself --------------------------------------------------------------
def _under_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "run"


def _dangling(tmp: Path) -> Path:
    (tmp / "run").symlink_to(tmp / "nowhere")
    return tmp / "run"


def _damaged_config(tmp: Path) -> Path:
    (tmp / "run").mkdir()
    (tmp / "run" / "config.toml").write_text("garbage [[[")
    return tmp / "run"


def _config_is_a_folder(tmp: Path) -> Path:
    (tmp / "run" / "config.toml").mkdir(parents=True)
    return tmp / "run"


def _not_a_run(tmp: Path) -> Path:
    (tmp / "project").mkdir()
    (tmp / "project" / "notes.txt").write_text("mine")
    return tmp / "project"


def _lock_is_a_link(tmp: Path) -> Path:
    (tmp / "run").mkdir()
    (tmp / "run" / "run.lock").symlink_to(tmp / "outside" / "secret.txt")
    return tmp / "run"


@pytest.mark.parametrize("make,phrase", [
    (_under_file, "Not a directory"),
    (_dangling, "is a dangling symbolic link"),
    (_damaged_config, "config.toml, the record of this run's settings, is damaged"),
    (_config_is_a_folder, "config.toml should be a regular file"),
    (_not_a_run, "is a non-empty folder that is not a run directory"),
    (_lock_is_a_link, "run.lock is a symbolic link"),
])
def test_unusable_run_directories_exit_2(tmp_path, config, outside, make, phrase):
    run = make(tmp_path)
    outside.watch()
    proc = qgan("train", str(config), "--run-dir", str(run))
    refused(proc, 2, phrase)
    outside.assert_untouched()
    if make in (_under_file, _dangling):
        for command in ("diagnose", "report", "status"):
            refused(qgan(command, str(run), timeout=120), 2, str(run))
    if make is _not_a_run:
        assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


# ---- metrics and ledgers -------------------------------------------------------------------
def test_metric_parts_with_a_wrong_schema_are_findings(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "run")
    folder = run / "metrics" / "steps" / "attempt=1"
    good = pq.read_table(sorted(folder.glob("part-*.parquet"))[0])
    n = good.num_rows
    pq.write_table(good.append_column("extra", pa.array(np.zeros(n))),
                   folder / "part-000901.parquet")
    pq.write_table(good.drop_columns(["d_loss"]), folder / "part-000902.parquet")
    fractional = good.set_column(0, "step", pa.array(np.arange(n) + 0.5))
    pq.write_table(fractional, folder / "part-000903.parquet")
    proc = qgan("diagnose", str(run), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    findings = [f for f in json.loads(proc.stdout)["findings"] if f["kind"] == "part_schema"]
    by_part = {f["evidence"]["part"]: f["summary"] for f in findings}
    assert sorted(by_part) == [f"metrics/steps/attempt=1/part-00090{i}.parquet" for i in (1, 2, 3)]
    assert "extra column(s) extra (ignored)" in by_part["metrics/steps/attempt=1/part-000901.parquet"]
    assert "missing column(s) d_loss" in by_part["metrics/steps/attempt=1/part-000902.parquet"]
    assert "column step is double" in by_part["metrics/steps/attempt=1/part-000903.parquet"]
    assert "its rows are left out" in by_part["metrics/steps/attempt=1/part-000903.parquet"]
    report = qgan("report", str(run), "-o", str(tmp_path / "r.html"), timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "part-000903.parquet" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("damage", ["absurd_sizes", "not_utf8"])
def test_a_damaged_manifest_falls_back_to_the_folders_own_checksums(base_run, tmp_path, damage):
    run = copy_run(base_run, tmp_path / "run")
    manifest = run / "checkpoints" / "manifest.json"
    if damage == "absurd_sizes":
        text = manifest.read_text()
        doc = json.loads(text)
        for entry in doc["checkpoints"]:
            for meta in entry["files"].values():
                meta["bytes"] = 10**400  # written as a 401-digit number; reads as int
        text = json.dumps(doc).replace('"step": 8', '"step": 1e400')  # and an inf step
        manifest.write_text(text)
    else:
        manifest.write_bytes(b"\xff\xfe{\"checkpoints\": []}")
    proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert resumed_from(run) == [8] and events(run, "checkpoint_rejected") == []


def test_a_huge_attempt_number_keeps_numbering_and_readers_right(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "run")
    shutil.copy(run / "attempts" / "0001.json", run / "attempts" / "9999.json")
    proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "attempts" / "10000.json").exists()
    assert (run / "metrics" / "steps" / "attempt=10000").is_dir()
    # The documented reader recipe orders attempt 10000 after 1 (pandas' default would not).
    latest = latest_steps_pandas(run / "metrics" / "steps")
    assert latest["step"].tolist() == list(range(1, 13))
    assert latest.set_index("step")["attempt"].to_dict() == {
        **{s: 1 for s in range(1, 9)}, **{s: 10000 for s in range(9, 13)}}
    status = qgan("status", str(run), "--json", timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)[0]["state"] == "FINISHED"


# ---- readers outside the toolkit (the recipes in docs/run-directory.md) ----------------------
PARTITIONING = ds.partitioning(pa.schema([("attempt", pa.int32())]), flavor="hive")


def latest_steps_pandas(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path, partitioning=PARTITIONING)
    return (frame.sort_values(["step", "attempt", "revision"])
            .drop_duplicates("step", keep="last").reset_index(drop=True))


def _two_attempts(tmp_path: Path) -> Path:
    """Attempt 9 computed steps 1-10 and was killed; attempt 10 redid 6-15."""
    run = tmp_path / "run"
    for attempt, steps in ((9, range(1, 11)), (10, range(6, 16))):
        w = MetricsWriter(run, attempt, flush_seconds=0)
        for s in steps:
            w.add("steps", {"step": s, "revision": 0, "wall_time": float(s),
                            "g_loss": float(attempt)})
        w.flush()
    return run / "metrics" / "steps"


def _expected() -> dict[int, int]:
    return {s: 9 if s <= 5 else 10 for s in range(1, 16)}


def test_pandas_default_read_is_the_trap_the_recipe_avoids(tmp_path):
    frame = pd.read_parquet(_two_attempts(tmp_path))
    assert isinstance(frame["attempt"].dtype, pd.CategoricalDtype)
    # Categories in the order the folders were listed (attempt=10 before attempt=9), so a
    # sort by attempt puts 10 first and "keep the last" keeps attempt 9's stale rows.
    assert list(frame["attempt"].cat.categories) == [10, 9]
    naive = frame.sort_values(["step", "attempt"]).drop_duplicates("step", keep="last")
    assert naive.set_index("step")["attempt"].tolist()[5:10] == [9] * 5  # wrong: should be 10


def test_reader_recipe_pandas(tmp_path):
    latest = latest_steps_pandas(_two_attempts(tmp_path))
    assert latest["attempt"].dtype == np.int32
    assert dict(zip(latest["step"], latest["attempt"])) == _expected()


def test_reader_recipe_pyarrow(tmp_path):
    t = ds.dataset(_two_attempts(tmp_path), format="parquet",
                   partitioning=PARTITIONING).to_table()
    t = t.sort_by([("step", "ascending"), ("attempt", "descending"),
                   ("revision", "descending")])
    steps = t["step"].to_numpy()
    latest = t.take(np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]]))  # first per step
    assert latest.schema.field("attempt").type == pa.int32()
    assert dict(zip(latest["step"].to_pylist(), latest["attempt"].to_pylist())) == _expected()


def test_reader_recipe_duckdb(tmp_path):
    path = _two_attempts(tmp_path)
    rows = duckdb.sql(f"""
        SELECT step, attempt FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true,
                                               hive_types = {{'attempt': INTEGER}})
        QUALIFY row_number() OVER (PARTITION BY step ORDER BY attempt DESC,
                                   revision DESC) = 1
        ORDER BY step""").fetchall()
    assert dict(rows) == _expected()


def test_reader_recipe_polars(tmp_path):
    pl = pytest.importorskip("polars", reason="polars is an optional reader (test extra)")
    path = _two_attempts(tmp_path)
    frame = (pl.read_parquet(f"{path}/**/*.parquet", hive_partitioning=True,
                             hive_schema={"attempt": pl.Int32})
             .sort(["step", "attempt", "revision"])
             .unique(subset="step", keep="last", maintain_order=True))
    assert frame.schema["attempt"] == pl.Int32
    assert dict(zip(frame["step"].to_list(), frame["attempt"].to_list())) == _expected()


def test_streamed_batches_name_the_global_row(tmp_path):
    """The loader streams row groups; the row named is counted over the whole file."""
    from qgan.config import DataConfig
    from qgan.data import DataError, load_dataset

    values = np.arange(200, dtype=np.float64)
    values[137] = -1e39
    pq.write_table(pa.table({"x": values, "label": ["a"] * 200}), tmp_path / "d.parquet",
                   row_group_size=16)
    cfg = DataConfig(target="file", path=str(tmp_path / "d.parquet"))
    with pytest.raises(DataError, match=r"at row 137 .* column 'x': -1e\+39 is beyond float32"):
        load_dataset(cfg, seed=1)
    values[137] = 0.0
    pq.write_table(pa.table({"x": values, "label": ["a"] * 200}), tmp_path / "d.parquet",
                   row_group_size=16)
    data = load_dataset(cfg, seed=1)  # the string column is left out, the rest streamed
    assert data.dim == 1 and sorted(np.concatenate([data.train, data.holdout])[:, 0]) == \
        sorted(values.astype(np.float32))
