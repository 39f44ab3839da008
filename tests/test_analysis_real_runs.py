"""The analysis and the report on run directories written by the REAL trainer.

tests/synthetic.py writes run directories the way the contract says; this module checks that the
analysis also reads what `qgan/trainer.py` actually writes (events' JSON `data`, step-0 events,
revisions after a rollback, a SIGKILLed attempt's null `end_time`/`end_step`, epoch-second
times) by planting faults through the config's `[faults]` section and asserting exact findings.

Two tiny classical runs (~40 s in all, most of it TensorFlow start-up and tracing):
- `guard`: NaN at steps 6-8 (a rollback to the step-4 checkpoint), SIGTERM after step 10
  (checkpoint, exit 75), resumed in-process to step 12;
- `kill`: the step-8 checkpoint damaged, SIGKILL after step 10 (a real process death, so in a
  subprocess), resumed in-process: the damaged checkpoint is rejected, the resume falls back
  to step 4, and steps 5-10 are computed twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import tomli_w

from analysis import diagnose_path
from qgan import schema
from qgan.config import config_from_dict
from qgan.trainer import train
from reports import write_report
from trainer_utils import ROOT, TINY, merge

pytestmark = pytest.mark.slow

EVIL = "<img src=x onerror=alert(1)>"  # run.name is free text and reaches the report

# A classical generator (no circuit to trace) on a target whose spread the untrained MLP
# already matches, so a 12-step run shows no mode collapse: the only findings are the planted
# faults. Checkpoints every 4 steps, evals every 6 (TINY).
BASE = {"generator.kind": "classical", "data.scale": 0.1, "data.std": 0.05}
GUARD = {**BASE, "run.name": f"guard {EVIL}", "faults.nan_at_steps": [6, 7, 8],
         "faults.sigterm_at_step": 10}
KILL = {**BASE, "run.name": "kill", "faults.corrupt_checkpoint_at_step": 8,
        "faults.sigkill_at_step": 10}


def _raw(overrides: dict) -> dict:
    return merge(TINY, overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(experiment folder, diagnosis of `kill` between its death and its resume)."""
    tmp = tmp_path_factory.mktemp("real")
    root = tmp / "exp"
    guard = config_from_dict(_raw(GUARD))
    assert train(guard, root / "guard") == schema.EXIT_RESUME
    assert train(guard, root / "guard") == schema.EXIT_OK

    cfg_file = tmp / "kill.toml"
    cfg_file.write_text(tomli_w.dumps(_raw(KILL)))
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "train", str(cfg_file),
                           "--run-dir", str(root / "kill")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    killed = diagnose_path(root / "kill").runs[0]
    assert train(config_from_dict(_raw(KILL)), root / "kill") == schema.EXIT_OK
    d = diagnose_path(root)
    return d, {r.run.path.name: r for r in d.runs}, killed


def one(rd, kind):
    found = [f for f in rd.findings if f.kind == kind]
    assert len(found) == 1, (kind, [f.summary for f in rd.findings])
    return found[0]


def test_nan_episode_rollback_and_revisions(runs):
    rd = runs[1]["guard"]
    f = one(rd, "nonfinite")
    assert (f.start_step, f.end_step, f.severity) == (6, 8, "warning")
    ev = f.evidence
    assert (ev["attempt"], ev["revision"], ev["nonfinite_steps"], ev["skipped_steps"]) == \
        (1, 0, 3, 3)
    assert (ev["rollbacks"], ev["rollback_to_step"], ev["recovered"], ev["diverged"]) == \
        (1, 4, True, False)
    # the guard halves the run's learning rate
    assert ev["g_lr_after"] == pytest.approx(rd.run.config["train.g_lr"] * 0.5, rel=1e-6)
    assert "rollback(s) to step 4" in f.summary
    # rows that count: steps 1-4 of revision 0, 5-12 replayed as revision 1
    st = rd.run.steps
    assert st["step"].tolist() == list(range(1, 13))
    assert st.set_index("step")["revision"].to_dict() == {s: int(s > 4) for s in range(1, 13)}
    old = rd.run.steps_superseded
    assert old["step"].tolist() == [5, 6, 7, 8] and set(old["revision"]) == {0}
    h = one(rd, "job_history").evidence
    assert (h["lost_steps_rollback"], h["lost_steps_restart"]) == (4, 0)
    assert rd.numbers["nonfinite_steps"] == 3


def test_signal_stop_loses_no_steps(runs):
    rd = runs[1]["guard"]
    tl = [{k: t[k] for k in ("attempt", "start_step", "end_step", "cause", "signal",
                             "exit_status", "lost_steps")} for t in rd.timeline]
    assert tl == [
        {"attempt": 1, "start_step": 1, "end_step": 10, "cause": "preemption",
         "signal": "SIGTERM", "exit_status": schema.EXIT_RESUME, "lost_steps": 0},
        {"attempt": 2, "start_step": 11, "end_step": 12, "cause": "finished", "signal": None,
         "exit_status": schema.EXIT_OK, "lost_steps": 0}]
    assert not [f for f in rd.findings if f.kind == "lost_work"]
    for t in rd.timeline:  # epoch seconds from the attempt files
        assert 1.6e9 < t["start_time"] <= t["end_time"]
    assert rd.timeline[0]["end_time"] <= rd.timeline[1]["start_time"]


def test_sigkill_loses_the_steps_after_the_last_valid_checkpoint(runs):
    rd = runs[1]["kill"]
    first, second = rd.timeline
    # attempt 1 was SIGKILLed after step 10: its file has end_time/end_step null
    assert rd.run.attempts[0]["end_time"] is None and rd.run.attempts[0]["end_step"] is None
    assert (first["cause"], first["start_step"], first["end_step"], first["exit_status"]) == \
        ("killed", 1, 10, None)
    assert first["end_time"] is not None and first["end_time"] > first["start_time"]
    # the step-8 checkpoint was damaged, so attempt 2 resumed from step 4 and redid 5-10
    assert (first["lost_steps"], first["lost_range"]) == (6, (5, 10))
    assert (second["cause"], second["start_step"], second["end_step"]) == ("finished", 5, 12)
    lost = one(rd, "lost_work")
    assert (lost.start_step, lost.end_step, lost.severity) == (5, 10, "warning")
    assert (lost.evidence["cause"], lost.evidence["lost_steps"]) == ("killed", 6)
    assert "killed without warning" in lost.advice and "rejected" in lost.advice
    superseded = rd.run.steps_superseded
    assert superseded["step"].tolist() == list(range(5, 11))
    assert set(superseded["attempt"]) == {1}
    assert rd.run.steps.set_index("step")["attempt"].to_dict() == {
        s: 1 if s <= 4 else 2 for s in range(1, 13)}
    h = one(rd, "job_history").evidence
    assert (h["attempts"], h["killed"], h["preemptions"], h["lost_steps_restart"]) == (2, 1, 0, 6)


def test_rejected_checkpoint_evidence(runs):
    f = one(runs[1]["kill"], "checkpoint_rejected")
    assert (f.start_step, f.end_step, f.severity) == (8, 8, "warning")
    ev = f.evidence
    assert (ev["attempt"], ev["checkpoint_step"], ev["resumed_from_step"], ev["steps_redone"]) \
        == (2, 8, 4, 4)
    assert ev["path"] and ev["path"] in f.summary and "sha256 mismatch" in ev["reason"]


def test_killed_last_attempt_is_unfinished_until_resumed(runs):
    rd = runs[2]
    assert rd.verdict == "unfinished", rd.verdict_reason
    t = rd.timeline[-1]
    assert (t["cause"], t["start_step"], t["end_step"]) == ("running", 1, 10)
    f = one(rd, "unfinished")
    assert (f.start_step, f.evidence["last_step"], f.evidence["total_steps"]) == (10, 10, 12)


def test_verdicts_and_no_spurious_findings(runs):
    d, by_name, _ = runs
    for rd in by_name.values():
        # 12 steps: W1 is still far from the data's 0.1-std mark, and no rule applies
        assert (rd.verdict, rd.flags) == ("improving", []), (rd.verdict_reason,
                                                             [f.summary for f in rd.findings])
        assert not [f for f in rd.findings if f.severity == "error"]
        # keep_best is on by default: the best eval's state is on disk and verifies
        assert rd.best.kept and rd.best.checkpoint.name.startswith("best-")
        assert rd.best.step == rd.numbers["best_step"]
        assert not [f for f in rd.findings if f.kind == "analysis_error"]
        assert not [f for f in rd.run.problems], [f.summary for f in rd.run.problems]
        # step 0 holds the start-up events and the first checkpoint; no step row is 0
        assert rd.run.steps["step"].min() == 1
        assert (rd.run.events["step"] == 0).any()
    assert d.hyperparameters == {r.run.name: {} for r in d.runs}  # faults.* are not swept


def test_report_of_real_runs(runs, tmp_path):
    d = runs[0]
    html = write_report(d, tmp_path / "report.html").read_text()
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("<script") == 3  # the chart data, the vendored uPlot, the glue
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    assert [r["name"] for r in data["runs"]] == [r.run.name for r in d.runs]
    assert all(r["data"]["steps"]["x"] and r["data"]["evals"]["x"] for r in data["runs"])
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert set(re.findall(r'href="#([^"]+)"', html)) <= ids
    for needle in ("checkpoint_rejected", "lost_work", "nonfinite", "killed", "preemption",
                   "run-0-timeline", "run-1-timeline", 'id="verdict-legend"', "degraded"):
        assert needle in html, needle
