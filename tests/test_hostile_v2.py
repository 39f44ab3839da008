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
from test_hostile import (CONFIG, Outside, copy_run, events, qgan, qgan_bg, refused,
                          retried_then_given_up)
from test_hostile import base_run, outside  # noqa: F401 - fixtures, used through `base`, `out`

ROOT = Path(__file__).resolve().parents[1]
ESC_NAME = "evil\x1b[2J\x07\u202eeman\nERROR  forged_finding  planted"


@pytest.fixture(scope="module")
def base(request) -> Path:
    """test_hostile's base run: stopped by SIGTERM after step 8, checkpoints at 0, 4, 8."""
    return request.getfixturevalue("base_run")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The tiny config of test_hostile (the base run's, without its SIGTERM fault)."""
    (tmp_path / "tiny.toml").write_text(CONFIG)
    return tmp_path / "tiny.toml"


@pytest.fixture
def out(request) -> Outside:
    """test_hostile's watched folder outside the runs (inotify) and sentinel process."""
    return request.getfixturevalue("outside")


# ---- what "nothing changed" means ----------------------------------------------------------
# The readers' own caches, written beside what they read by design (`qgan status`, the
# diagnosis cache of `qgan report` / `diagnose`): never part of "the run did not change".
READER_CACHES = (schema.STATUS_CACHE_FILE, schema.DIAGNOSIS_CACHE_FILE)


class Snapshot:
    """Every entry below `root` (links not followed) but the readers' caches: kind, mode, size
    and sha256 for files, the target for links. Equal snapshots: byte for byte the same
    tree."""

    def __init__(self, root: Path, skip: tuple[str, ...] = ()) -> None:
        self.root = root
        self.skip = skip
        self.entries: dict[str, tuple] = {}
        for parent, dirs, files in os.walk(root, followlinks=False):
            for name in dirs + files:
                path = Path(parent) / name
                rel = str(path.relative_to(root))
                if rel.startswith(skip) or name in READER_CACHES:
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
    """Exit 5 is requeued (an I/O error while verifying may pass), at most max_failures
    times in a row; the reason then names the way out."""
    from jobs.task import classify
    from qgan.vocabulary import StopCause

    assert classify(schema.EXIT_UNVERIFIED, [], None, None, 60.0, None) == StopCause.UNVERIFIED
    doc = retried_then_given_up(tmp_path, StopCause.UNVERIFIED,
                                "no checkpoint of .* verified in 2")
    assert doc["outcome"] == "gave_up" and "--fresh" in doc["reason"]


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
    before = Snapshot(run)
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
        before = Snapshot(run)
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


# ---- class 5: reads are bounded: no FIFO blocks, no huge file is read --------------------
def test_fifos_in_place_of_records_never_block_a_reader(base, tmp_path):
    """A FIFO as jobs.json or experiment.json (the issue's cases), and more: as an attempt
    record, a metric part, samples/real.parquet and the status cache."""
    exp = tmp_path / "exp"
    run = copy_run(base, exp / "task-000")
    (exp / "experiment.json").write_text(json.dumps(
        {"name": "exp", "executor": "local", "tasks": [{"index": 0, "run": "task-000"}]}))
    for rel in ("jobs.json", "attempts/0002.json", "metrics/steps/attempt=1/part-999999.parquet",
                "samples/real.parquet", schema.STATUS_CACHE_FILE):
        (run / rel).unlink(missing_ok=True)
        os.mkfifo(run / rel)
    before = Snapshot(exp)
    started = time.monotonic()
    status = qgan("status", str(exp), timeout=60)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr[-2000:]
    assert "jobs.json should be a regular file but is a FIFO (named pipe)" in status.stderr
    diag = qgan("diagnose", str(exp), "--json", timeout=60)
    assert diag.returncode == 0, diag.stderr[-2000:]
    found = " | ".join(f["summary"] for f in json.loads(diag.stdout)["findings"])
    for rel in ("jobs.json", "part-999999.parquet"):
        assert rel in found and "is a FIFO (named pipe)" in found, (rel, found)
    report = qgan("report", str(exp), "-o", str(tmp_path / "r.html"), timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    assert time.monotonic() - started < 150  # nothing waited for a writer
    before.assert_same()
    (exp / "experiment.json").unlink()
    os.mkfifo(exp / "experiment.json")
    for command in ("status", "cancel", "resubmit"):
        refused(qgan(command, str(exp), timeout=60), 2,
                "experiment.json should be a regular file but is a FIFO (named pipe)")


def test_a_fifo_manifest_neither_hangs_the_trainer_nor_makes_it_deaf(base, tmp_path):
    """The issue's case: a FIFO as checkpoints/manifest.json blocked `qgan train` while it
    held the run lock, deaf to SIGTERM. Now the manifest is passed over (each checkpoint's
    own checksums.json describes it), the run resumes from step 8, and a SIGTERM is honoured
    (checkpoint, exit 75)."""
    run = copy_run(base, tmp_path / "run")
    manifest = run / "checkpoints" / "manifest.json"
    manifest.unlink()
    os.mkfifo(manifest)
    trainer = qgan_bg("train", str(run / "config.toml"), "--run-dir", str(run),
                      "--set", "faults.step_seconds=0.5", "--set", "train.steps=40",
                      "--allow-config-change")
    try:
        wait_for(lambda: (run / "attempts" / "0002.json").exists(), 120, "the second attempt")
        time.sleep(2.0)
        trainer.send_signal(signal.SIGTERM)
        status = trainer.wait(timeout=60)
        err = trainer.stderr.read()
    finally:
        trainer.kill()
    assert status == schema.EXIT_RESUME, err[-3000:]
    assert "should be a regular file but is a FIFO" in err and "Traceback" not in err
    assert [e["step"] for e in events(run, "checkpoint_restored")] == [8]
    assert manifest.is_file() and not manifest.is_symlink()  # rewritten at the checkpoint


def test_oversized_records_are_refused_unread(base, tmp_path, config):
    """A 256 MiB attempts/NNNN.json (the issue's case: diagnose's RSS went 167 -> 675 MiB),
    and more: a 64 MiB jobs.json for status, a 2 MiB config.toml for train and diagnose.
    All sparse: the size is on paper, the refusal comes before a byte is read."""
    probe = ("import resource, sys\nfrom jobs.cli import main\nrc = main(sys.argv[1:])\n"
             "sys.stderr.write(f'MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')\n"
             "sys.exit(rc)\n")

    def diagnose_rss(run: Path) -> tuple[subprocess.CompletedProcess, int]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-c", probe, "diagnose", str(run), "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        return proc, int(re.search(r"MAXRSS (\d+)", proc.stderr).group(1))  # KiB

    clean_run = copy_run(base, tmp_path / "clean")
    _, baseline = diagnose_rss(clean_run)
    run = copy_run(base, tmp_path / "run")
    with open(run / "attempts" / "0002.json", "wb") as fh:
        fh.truncate(256 << 20)
    with open(run / "jobs.json", "wb") as fh:
        fh.truncate(64 << 20)
    before = Snapshot(run)
    proc, rss = diagnose_rss(run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = " | ".join(f["summary"] for f in json.loads(proc.stdout)["findings"])
    assert "0002.json is 256 MiB, over the 1 MiB limit for an attempt record" in found, found
    assert "jobs.json is 64 MiB, over the 16 MiB limit for a job ledger" in found, found
    assert rss - baseline < 64 * 1024, (rss, baseline)  # KiB: nothing of the file was read
    status = qgan("status", str(run), timeout=60)
    assert status.returncode == 0, status.stderr[-2000:]
    assert "jobs.json is 64 MiB, over the 16 MiB limit" in status.stderr
    before.assert_same()
    with open(clean_run / "config.toml", "ab") as fh:
        fh.truncate(2 << 20)
    before = Snapshot(clean_run)
    proc = qgan("diagnose", str(clean_run), "--json", timeout=120)
    assert "config.toml not read" in proc.stdout and "over the 1 MiB limit" in proc.stdout
    refused(qgan("train", str(config), "--run-dir", str(clean_run), timeout=120), 2,
            "config.toml is 2 MiB, over the 1 MiB limit for a run config")
    before.assert_same()


# ---- class 6: no state outside the run, no cache above the data ---------------------------
def _old_signature(run: Path) -> str:
    """The signature the old experiment-level cache used (names, sizes, mtimes)."""
    parts = []
    for table in ("steps", "events"):
        for d in sorted((run / "metrics" / table).iterdir()):
            for f in sorted(d.iterdir()):
                st = f.stat()
                parts.append(f"{table}/{d.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def test_status_keeps_its_cache_inside_the_run_and_below_the_data(base, tmp_path, out):
    """A bare run's status wrote .status-cache.json into the run's parent and trusted an
    entry planted there (the issue's case: a leaking run shown healthy at 4242 steps/s). Now
    nothing is written outside the run, the parent's file is never read, and inside the run
    a forged, copied, linked or FIFO cache is treated as absent."""
    parent = tmp_path / "parent"
    run = copy_run(base, parent / "run")
    (run / schema.STATUS_CACHE_FILE).unlink(missing_ok=True)
    truth = json.loads(qgan("status", str(copy_run(base, tmp_path / "twin")), "--json",
                            timeout=60).stdout)[0]
    assert truth["health"] == {"leak": 1} and truth["steps_per_s"] < 1000

    def row() -> dict:
        proc = qgan("status", str(run), "--json", timeout=60)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        return json.loads(proc.stdout)[0]

    def same_as_truth(r: dict) -> None:
        keep = ("state", "step", "total", "steps_per_s", "metric_rows", "health")
        assert {k: r[k] for k in keep} == {k: truth[k] for k in keep}

    forged = {"sig": _old_signature(run), "steps": {"metrics_step": 8, "rows": 8,
                                                    "unique_steps": 8, "steps_per_s": 4242.0},
              "health": {}}
    (parent / ".status-cache.json").write_text(json.dumps({"run": forged}))
    parent_before = Snapshot(parent, skip=("run",))
    same_as_truth(row())
    parent_before.assert_same()  # nothing written beside the run
    cache = run / schema.STATUS_CACHE_FILE
    assert cache.is_file()
    doc = json.loads(cache.read_text())
    doc["steps"]["steps_per_s"], doc["health"] = 4242.0, {}
    doc["sig"] = hashlib.sha256(b"forged").hexdigest()
    cache.write_text(json.dumps(doc))
    same_as_truth(row())  # a signature that is not the parts' own: ignored
    shutil.copy(tmp_path / "twin" / schema.STATUS_CACHE_FILE, cache)
    same_as_truth(row())  # another run's cache (another folder): ignored
    cache.unlink()
    cache.symlink_to(out.secret)
    out.watch()
    same_as_truth(row())  # a link: never read, replaced by the run's own file
    out.assert_untouched()
    assert cache.is_file() and not cache.is_symlink()
    cache.unlink()
    os.mkfifo(cache)
    same_as_truth(row())  # a FIFO: passed over at once


# ---- class 7: command-line edge cases ----------------------------------------------------
def test_a_reader_that_goes_away_ends_the_command_quietly(base, tmp_path):
    """`qgan diagnose RUN --json | head` (the issue's case), and more: the text table,
    status, the default config, a report's path; stdout closed before the first write."""
    run = copy_run(base, tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    piped = subprocess.run(f"{sys.executable} -m jobs.cli diagnose {run} --json | head -1",
                           shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert piped.stdout == "{\n" and "Traceback" not in piped.stderr, piped.stderr
    assert "BrokenPipe" not in piped.stderr and "Exception ignored" not in piped.stderr
    for args in (["diagnose", str(run), "--json"], ["diagnose", str(run)],
                 ["status", str(run), "--json"], ["config", "--default"],
                 ["report", str(run), "-o", str(tmp_path / "r.html")]):
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141, (args, err[-2000:])
        assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]


def test_names_too_long_and_names_not_utf8(base, tmp_path, config):
    """A path longer than the file system allows (the issue's cases: diagnose, status) for
    every command that takes one; a non-UTF-8 folder name in an experiment (the issue's case:
    report) and more: diagnose and a status of that run, a non-UTF-8 -o."""
    long = tmp_path / ("x" * 300)
    for args in (["diagnose", long], ["status", long], ["report", long], ["cancel", long],
                 ["resubmit", long], ["extend", long, "--set", "train.steps=20"],
                 ["sample", long, "-n", "1", "-o", tmp_path / "s.parquet"],
                 ["report", base, "-o", tmp_path / ("y" * 300 + ".html")],
                 ["train", config, "--run-dir", long]):
        refused(qgan(*map(str, args), timeout=120), 2, "too long")
    exp = os.fsencode(tmp_path / "exp")
    odd = exp + b"/task-\xff\xfe"
    shutil.copytree(os.fsencode(base), odd, symlinks=True)
    copy_run(base, tmp_path / "exp" / "task-000")
    for args in (["diagnose", os.fsdecode(exp)], ["status", os.fsdecode(odd)],
                 ["report", os.fsdecode(exp), "-o", os.fsdecode(exp + b"/r-\xff.html")]):
        proc = subprocess.run([sys.executable.encode(), b"-m", b"jobs.cli",
                               *[os.fsencode(a) for a in args]], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                              timeout=300)
        text = subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(), proc.stderr.decode())
        assert proc.returncode == 0, text.stderr[-2000:]
        clean_output(text)
        if args[0] != "report":
            assert "task-\\xff\\xfe" in text.stdout, text.stdout
    assert b"task-\\udcff\\udcfe" in open(exp + b"/r-\xff.html", "rb").read()


def test_sample_arguments_are_checked_before_any_work(base, tmp_path):
    """`--seed -1` (the issue's case: a traceback after TensorFlow's start-up and the
    restore), and more: a fractional or huge seed, -n 0, a --checkpoint outside the run, a
    bad -o: each refused before TensorFlow starts."""
    run = copy_run(base, tmp_path / "run")
    before = Snapshot(run)
    for extra, phrase in ((["--seed", "-1"], "argument --seed: -1 is out of range"),
                          (["--seed", "1.5"], "argument --seed: '1.5' is not a whole number"),
                          (["--seed", str(2**130)], "is out of range"),
                          (["-n", "0"], "argument -n: 0 is out of range"),
                          (["--checkpoint", "../../../etc"], "not a checkpoint folder of this"),
                          (["-o", str(tmp_path / "s.csv")], "the output must end in .parquet")):
        args = ["sample", str(run), "-n", "5", "-o", str(tmp_path / "s.parquet"), *extra]
        started = time.monotonic()
        proc = qgan(*args, timeout=120)
        assert proc.returncode == 2 and phrase in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and "oneDNN" not in proc.stderr
        assert time.monotonic() - started < 30
    assert not list(tmp_path.glob("s.*"))
    before.assert_same()


def test_duplicate_sweep_values_make_one_task(tmp_path, config):
    """`--sweep train.g_lr=0.01,1e-2` (the issue's case) and more: 1 and 1.0 for an integer
    key, a [sweep] table's sets that repeat, and `qgan extend` with a value already there."""
    def dry(*extra: str) -> subprocess.CompletedProcess:
        proc = qgan("submit", str(config), "--executor", "local", "--dry-run",
                    "--runs-root", str(tmp_path / "runs"), *extra, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        return proc

    proc = dry("--sweep", "train.g_lr=0.01,1e-2")
    assert "1 task(s)" in proc.stdout and "repeats an earlier task" in proc.stderr
    proc = dry("--sweep", "run.seed=1,1.0,2", "--sweep", "train.g_lr=0.01,0.010")
    assert "2 task(s)" in proc.stdout and proc.stderr.count("repeats an earlier task") == 4
    sets = tmp_path / "sets.toml"
    sets.write_text(CONFIG + '\n[sweep]\nsets = [{"train.g_lr" = 0.01}, {"train.g_lr" = 1e-2},'
                    ' {"train.g_lr" = 0.02}]\n')
    proc = qgan("submit", str(sets), "--executor", "local", "--dry-run", "--runs-root",
                str(tmp_path / "runs"), timeout=120)
    assert "2 task(s)" in proc.stdout and "repeats an earlier task" in proc.stderr
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
    from jobs.sweep import combo_key
    assert combo_key({"a": 0.01, "b": 1}) == combo_key({"b": 1.0, "a": 1e-2})
    assert combo_key({"a": True}) != combo_key({"a": 1})
