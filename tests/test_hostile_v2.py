"""Hostile inputs, v2 (issue 25): one real-process test per class, each with cases beyond
the issue's own examples. Every test runs `python -m jobs.cli ...` on real files and asserts
the exit status, the message, and that nothing changed on disk (`Snapshot`: every entry of
the run or experiment, its type, mode and content hash, links not followed), or, for readers
that go on, that nothing outside was touched (inotify, `Outside` of tests/test_hostile.py).

Classes: 0 data loss on resume, 1 output paths, 2 confined reads, 3 terminal text,
4 record schemas, 5 bounded reads, 6 state outside the run, 7 command-line edge cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tmpfs_at, wait_for
from qgan import schema
from test_hostile import CONFIG, Outside, copy_run, events, qgan, qgan_bg, refused
from test_hostile import base_run, outside  # noqa: F401 - fixtures, used through `base`, `out`

ROOT = Path(__file__).resolve().parents[1]
ESC_NAME = "evil\x1b[2J\x07\u202eeman\nERROR  forged_finding  planted"


@pytest.fixture(scope="module")
def base(request) -> Path:
    """test_hostile's base run: stopped by SIGTERM after step 8, checkpoints at 0, 4, 8."""
    return request.getfixturevalue("base_run")


@pytest.fixture
def out(request) -> Outside:
    """test_hostile's watched folder outside the runs (inotify) and sentinel process."""
    return request.getfixturevalue("outside")


# ---- what "nothing changed" means ----------------------------------------------------------
class Snapshot:
    """Every entry below `root` (links not followed): kind, mode, size and sha256 for files,
    the target for links. Equal snapshots: byte for byte the same tree."""

    def __init__(self, root: Path, skip: tuple[str, ...] = ()) -> None:
        self.root = root
        self.skip = skip
        self.entries: dict[str, tuple] = {}
        for parent, dirs, files in os.walk(root, followlinks=False):
            for name in dirs + files:
                path = Path(parent) / name
                rel = str(path.relative_to(root))
                if rel.startswith(skip):
                    continue
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.entries[rel] = ("link", os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    self.entries[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size,
                                         _sha256(path))
                else:
                    self.entries[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))

    def assert_same(self, other_root: Path | None = None) -> None:
        after = Snapshot(other_root or self.root, self.skip)
        added = sorted(set(after.entries) - set(self.entries))
        removed = sorted(set(self.entries) - set(after.entries))
        changed = sorted(k for k in set(self.entries) & set(after.entries)
                         if self.entries[k] != after.entries[k])
        assert (added, removed, changed) == ([], [], []), (added, removed, changed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def clean_output(proc: subprocess.CompletedProcess) -> None:
    """No control character but newline and tab, no bidi control, no traceback."""
    for stream in (proc.stdout, proc.stderr):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", stream), \
            stream[-2000:]
        assert "Traceback" not in stream, stream[-3000:]


def damage_all_checkpoints(run: Path) -> None:
    for data in run.glob("checkpoints/*/state.data-*"):
        with open(data, "r+b") as fh:
            fh.seek(20)
            fh.write(b"XXXXXXXX")


# ---- class 0: a refused or damaged run is never wiped -----------------------------------
def test_no_verifiable_checkpoint_stops_with_exit_5_and_touches_nothing(base, tmp_path):
    """Every checkpoint's data damaged (the issue's case), then two more: only the best
    checkpoint left, and checkpoints that nothing describes any more (manifest and every
    checksums.json gone)."""
    cases = {"damaged": damage_all_checkpoints}

    def only_best(run: Path) -> None:
        for folder in run.glob("checkpoints/ckpt-*"):
            shutil.rmtree(folder)

    def undescribed(run: Path) -> None:
        (run / "checkpoints" / "manifest.json").unlink()
        for f in run.glob("checkpoints/*/checksums.json"):
            f.unlink()

    cases.update(only_best=only_best, undescribed=undescribed)
    for label, damage in cases.items():
        run = copy_run(base, tmp_path / label)
        damage(run)
        before = Snapshot(run)
        proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run))
        refused(proc, schema.EXIT_UNVERIFIED, "qgan train: refused:",
                f"{run / 'checkpoints'} holds", "and none verifies",
                "Nothing was changed or deleted", "run again with --fresh")
        if label == "damaged":
            assert "sha256 mismatch for state.data" in proc.stderr
        if label == "only_best":
            assert "holds 1 checkpoint folder(s) (best-000002)" in proc.stderr
        before.assert_same()


def test_fresh_moves_the_old_state_aside_and_deletes_nothing(base, tmp_path):
    run = copy_run(base, tmp_path / "run")
    damage_all_checkpoints(run)
    old = {name: Snapshot(run / name) for name in ("checkpoints", "metrics", "attempts",
                                                   "samples")}
    config_before = (run / "config.toml").read_bytes()
    proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run), "--fresh")
    # the run's own fault (SIGTERM after step 8 on attempt 1) fires again: attempt 1 anew
    assert proc.returncode == schema.EXIT_RESUME, proc.stderr[-2000:]
    assert "nothing was deleted" in proc.stderr
    (moved,) = list((run / "superseded").iterdir())
    for name, snap in old.items():
        snap.assert_same(moved / name)  # the old state, byte for byte, beside the new one
    assert sorted(p.name for p in (run / "attempts").iterdir()) == ["0001.json"]
    assert (run / "config.toml").read_bytes() == config_before


def test_a_refused_command_leaves_the_run_byte_for_byte(base, tmp_path):
    """The issue's case (a config change whose checkpoints do not fit), and two more: an
    allowed change on a run whose checkpoints do not verify, and a change refused because
    --allow-config-change is missing."""
    cases = [
        ("modes", ["--set", "generator.modes=3", "--allow-config-change"], 2,
         "do not fit the models of this config"),
        ("steps_damaged", ["--set", "train.steps=20", "--allow-config-change"],
         schema.EXIT_UNVERIFIED, "none verifies"),
        ("no_flag", ["--set", "train.steps=20"], 2, "was created with another config"),
    ]
    for label, extra, status, phrase in cases:
        run = copy_run(base, tmp_path / label)
        if label == "steps_damaged":
            damage_all_checkpoints(run)
        before = Snapshot(run)
        proc = qgan("train", str(run / "config.toml"), "--run-dir", str(run), *extra)
        refused(proc, status, phrase)
        before.assert_same()
    # and the original command still works afterwards
    proc = qgan("train", str(tmp_path / "modes" / "config.toml"), "--run-dir",
                str(tmp_path / "modes"))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_job_layer_does_not_requeue_unverified_checkpoints_forever(tmp_path):
    from jobs import ledger
    from jobs.task import RunStopped, TrainJob, classify
    from qgan.vocabulary import StopCause

    assert classify(schema.EXIT_UNVERIFIED, [], None, None, 60.0, None) == StopCause.UNVERIFIED
    run = tmp_path / "run"
    run.mkdir()
    job = TrainJob(str(run), "exp", 0, {"max_requeues": 3, "max_failures": 2,
                                        "signal_delay": 60})
    doc = {"episodes": [], "outcome": None}
    for n in (1, 2):
        episode = {"n": n, "executor": "none", "stop_cause": StopCause.UNVERIFIED,
                   "end_step": 8}
        doc["episodes"].append(episode)
        if n == 1:  # once more: an I/O error while verifying may pass
            assert job._decide(run, doc, episode, StopCause.UNVERIFIED)["outcome"] == \
                "interrupted"
        else:
            with pytest.raises(RunStopped, match="no checkpoint of .* verified in 2"):
                job._decide(run, doc, episode, StopCause.UNVERIFIED)
    assert ledger.read_jobs(run)["outcome"] == "gave_up"
    assert "--fresh" in ledger.read_jobs(run)["reason"]


# ---- class 1: an output path can never destroy a run -------------------------------------
def test_outputs_never_land_in_a_run_or_an_experiment(base, tmp_path):
    run = copy_run(base, tmp_path / "run")
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "experiment.json").write_text('{"name": "e", "executor": "local", "tasks": []}')
    (tmp_path / "mine").mkdir()
    link = tmp_path / "mine" / "r.html"  # an innocent-looking name that leads into the run
    link.symlink_to(run / "checkpoints" / "manifest.json")
    before, exp_before = Snapshot(run), Snapshot(exp)
    inside = "refused: it is inside the run's"
    cases = [
        (["report", run, "-o", run / "checkpoints/best-000002/state.index"],
         f"{inside} checkpoints/ folder"),  # the case
        (["report", run, "-o", link], f"{inside} checkpoints/ folder"),
        (["report", run, "-o", run / "config.toml"], "refused: it is the run's own config.toml"),
        (["report", run, "-o", run / "jobs.json"], "refused: it is the run's own jobs.json"),
        (["report", run, "-o", run / "metrics/steps/attempt=1/r.html"],
         f"{inside} metrics/ folder"),
        (["report", run, "-o", exp / "experiment.json"],
         "refused: it is the experiment's own experiment.json"),
        (["sample", run, "-n", "5", "-o", run / "samples/real.parquet"],
         f"{inside} samples/ folder"),
        (["sample", run, "-n", "5", "-o", run / "attempts/0001.parquet"],
         f"{inside} attempts/ folder"),
        (["report", run, "-o", tmp_path / "mine"], "is a folder; give a file name"),
        (["report", run, "-o", run / "config.toml" / "r.html"],
         f"{run / 'config.toml'} is a regular file, not a folder"),
        (["sample", run, "-n", "5", "-o", tmp_path / "nowhere" / "s.parquet"],
         f"folder {tmp_path / 'nowhere'} does not exist"),
    ]
    for args, phrase in cases:
        proc = qgan(*map(str, args), timeout=120)
        refused(proc, 2, phrase)
        assert "oneDNN" not in proc.stderr  # refused before TensorFlow started
    before.assert_same()
    exp_before.assert_same()
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_outputs_on_a_full_or_read_only_file_system_are_one_line(base, tmp_path):
    from test_hostile import fill

    run = copy_run(base, tmp_path / "run")
    before = Snapshot(run)
    with tmpfs_at(tmp_path / "fs", "1m") as fs:
        (fs / "r.html").write_text("the previous report")
        filler = fill(fs)
        proc = qgan("report", str(run), "-o", str(fs / "r.html"), timeout=120)
        refused(proc, 2, "no space left on the file system", "nothing was written",
                "an earlier file of that name is intact")
        assert (fs / "r.html").read_text() == "the previous report"
        assert sorted(p.name for p in fs.iterdir()) == ["filler.bin", "r.html"]  # no temp left
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        for args in (["report", str(run), "-o", str(fs / "new.html")],
                     ["sample", str(run), "-n", "5", "-o", str(fs / "s.parquet")],
                     ["report", str(run), "-o", str(fs / "sub" / "new.html")]):
            refused(qgan(*args, timeout=120), 2, "is on a read-only file system")
        assert sorted(p.name for p in fs.iterdir()) == ["r.html"]
    before.assert_same()


# ---- class 2: no reader follows a link out of the run ------------------------------------
def test_readers_never_follow_a_link_out_of_the_run(base, tmp_path, out):
    """The issue's case (config.toml, run.json and samples/real.parquet linked to a file
    holding a token), and more: attempts/, jobs.json, the manifest, a whole metrics table and
    checkpoints/ linked out. diagnose, report and status read around them (findings), never
    through them."""
    run = copy_run(base, tmp_path / "run")
    token = "TOKEN-4f1c9e"
    planted = out.root / "token.toml"
    planted.write_text(f'name = "{token}"\n')
    elsewhere = out.root / "elsewhere"
    for name in ("config.toml", "run.json", "jobs.json", "samples/real.parquet",
                 "checkpoints/manifest.json"):
        target = run / name
        if target.exists():
            target.unlink()
        target.symlink_to(planted)
    for folder in ("attempts", "metrics/events", "checkpoints"):
        (elsewhere / folder).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(run / folder, elsewhere / folder)
        (run / folder).symlink_to(elsewhere / folder)
    before = Snapshot(run, skip=(schema.STATUS_CACHE_FILE,))
    out.watch(elsewhere, *[p for p in elsewhere.rglob("*") if p.is_dir()])
    diag = qgan("diagnose", str(run), "--json", timeout=120)
    assert diag.returncode == 0, diag.stderr[-2000:]
    found = {f["summary"] for f in json.loads(diag.stdout)["findings"]}
    for name in ("config.toml", "run.json", "jobs.json", "attempts/"):
        assert any(s.startswith(name.rstrip("/")) or f"{name} not read" in s for s in found), \
            (name, found)
    assert any("metrics/events" in s and "symbolic link" in s for s in found), found
    report = qgan("report", str(run), "-o", str(tmp_path / "r.html"), timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert token not in (tmp_path / "r.html").read_text()
    status = qgan("status", str(run), "--json", timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert token not in diag.stdout + status.stdout + status.stderr + report.stderr
    out.assert_untouched()
    before.assert_same()
    sample = qgan("sample", str(run), "-n", "5", "-o", str(tmp_path / "s.parquet"))
    refused(sample, 2, "config.toml is a symbolic link")


# ---- class 3: untrusted text never reaches the terminal raw ------------------------------
def test_untrusted_names_never_reach_the_terminal_raw(base, tmp_path):
    """A run name with ESC, BEL, a right-to-left override and a newline that forges a
    finding (the issue's case), and more: such a folder name in an experiment, the same in a
    path on the command line (an error line), and in a log line (a damaged ledger's warning
    names the folder)."""
    exp = tmp_path / "exp"
    evil_dir = "task\x1b[31m-001\nERROR  forged_finding  planted"
    good = copy_run(base, exp / "task-000")
    evil = copy_run(base, exp / evil_dir)
    info = json.loads((good / "run.json").read_text())
    (good / "run.json").write_text(json.dumps({**info, "name": ESC_NAME}))
    (evil / "jobs.json").write_text('{"episodes": "junk"}')
    (exp / "experiment.json").write_text(json.dumps({
        "name": "exp\x1b]0;pwned\x07", "executor": "local",
        "tasks": [{"index": 0, "run": "task-000"}, {"index": 1, "run": evil_dir}]}))
    runs = [("diagnose", str(exp)), ("diagnose", str(exp), "--json"), ("status", str(exp)),
            ("status", str(exp), "--json"), ("report", str(exp), "-o", str(tmp_path / "r.html")),
            ("diagnose", str(tmp_path / "nope\x1b]0;pwned\x07\nERROR  forged"))]
    for args in runs:
        proc = qgan(*args, timeout=300)
        assert proc.returncode == (2 if "nope" in args[1] else 0), proc.stderr[-2000:]
        clean_output(proc)
        assert not re.search(r"^ERROR\s+forged", proc.stdout + proc.stderr, re.M), proc.stdout
        if "--json" not in args and args[0] != "report":
            assert "\\x1b" in proc.stdout + proc.stderr  # shown, escaped, not hidden
    status = qgan("status", str(exp), timeout=120)
    assert "jobs.json: episodes is text ('junk'), expected a list" in status.stderr
    assert "task\\x1b[31m-001\\n" in status.stdout


# ---- class 4: records of the wrong shape -------------------------------------------------
def test_records_of_the_wrong_shape_are_findings_not_tracebacks(base, tmp_path):
    """Episodes a string or a list of numbers (the issue's cases), a step written as text in
    the manifest, an attempt number as text; and more: total_steps as text in run.json,
    signals a string, a stop cause a number, an outcome a list."""
    variants = {
        "string": {"episodes": "abc"},
        "numbers": {"episodes": [1, 2, 3], "outcome": ["x"]},
        "items": {"episodes": [{"n": "1", "signals": "SIGTERM", "stop_cause": 7,
                                "trainer_attempt": 1, "end_time": "late"}]},
    }
    for label, jobs in variants.items():
        run = copy_run(base, tmp_path / label)
        (run / "jobs.json").write_text(json.dumps(jobs))
        attempt = json.loads((run / "attempts/0001.json").read_text())
        (run / "attempts/0001.json").write_text(json.dumps({**attempt, "attempt": "1",
                                                            "end_step": "8"}))
        manifest = json.loads((run / "checkpoints/manifest.json").read_text())
        manifest["checkpoints"][-1]["step"] = "8"
        (run / "checkpoints/manifest.json").write_text(json.dumps(manifest))
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**info, "total_steps": "12"}))
        before = Snapshot(run, skip=(schema.STATUS_CACHE_FILE,))
        diag = qgan("diagnose", str(run), "--json", timeout=120)
        assert diag.returncode == 0, diag.stderr[-2000:]
        found = " | ".join(f["summary"] for f in json.loads(diag.stdout)["findings"])
        assert "0001.json: attempt is text ('1'), expected an integer" in found, found
        assert "run.json: total_steps is text ('12'), expected an integer" in found, found
        assert "jobs.json: episodes" in found, found
        for args in (("status", str(run)), ("status", str(run), "--json"),
                     ("report", str(run), "-o", str(tmp_path / f"{label}.html"))):
            proc = qgan(*args, timeout=300)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            if args[0] == "status":  # what it dropped, one line each
                assert "manifest.json: checkpoints[2].step is text ('8')" in proc.stderr
                assert "0001.json: attempt is text ('1')" in proc.stderr
        before.assert_same()


def test_command_line_records_of_the_wrong_shape_are_one_line(base, tmp_path):
    """A --thresholds file of the wrong shape (the issue's case) and more: a value of the
    wrong type, a FIFO; an experiment record with a mistyped or missing field given to
    resubmit and extend (the issue's class 7 case)."""
    run = copy_run(base, tmp_path / "run")
    for text, phrase in (("thresholds = 5\n", "[thresholds] must be a table"),
                         ("[thresholds]\nleak_trace = 'x'\n", "must be a number"),
                         ("leak_trace = [1]\n", "must be a number"),
                         ("leak_trace = \n", "not valid TOML")):
        (tmp_path / "t.toml").write_text(text)
        for command in ("diagnose", "report"):
            refused(qgan(command, str(run), "--thresholds", str(tmp_path / "t.toml"),
                         timeout=120), 2, f"--thresholds {tmp_path / 't.toml'}: ", phrase)
    os.mkfifo(tmp_path / "fifo.toml")
    refused(qgan("diagnose", str(run), "--thresholds", str(tmp_path / "fifo.toml"),
                 timeout=60), 2, "is a FIFO (named pipe)")
    assert not (run / "report.html").exists()
    exp = tmp_path / "exp"
    copy_run(base, exp / "task-000")
    good = {"name": "exp", "executor": "local", "tasks": [
        {"index": 0, "run": "task-000", "overrides": {}, "job_id": None}], "job_ids": []}
    for change, phrase in (({"tasks": [{"index": "0", "run": "task-000"}]},
                            "tasks[0].index is text ('0'), expected an integer"),
                           ({"name": None}, "name is missing"),
                           ({"tasks": [{"run": "task-000"}]}, "has no index"),
                           ({"profile": "dev"}, "profile is text ('dev'), expected an object"),
                           ({"cancelled": {"runs": []}}, "cancelled is an object")):
        text = json.dumps({**good, **change})
        (exp / "experiment.json").write_text(text)
        before = Snapshot(exp)
        for args in (("resubmit", str(exp)), ("extend", str(exp), "--set", "train.steps=20")):
            refused(qgan(*args, timeout=120), 2, phrase, "restore the file (nothing was "
                    "submitted or changed)")
        before.assert_same()
