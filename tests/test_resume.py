"""Resume equivalence and kill safety with real `qgan train` processes and real signals.

A run stopped by SIGTERM (at a random instant, from outside) and resumed must end with the
same parameters and metric rows, bit for bit, as an uninterrupted run; SIGKILL at random
instants (during steps, evals, checkpoint and metric writes) must never leave an unloadable
newest checkpoint or an unreadable committed part, and must not change the result either.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys

import pytest

from trainer_utils import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import chaos  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("reference")
    config = chaos.write_config(work / "chaos.toml", "compiled")
    chaos.reference_run(config, work / "run")
    return config, work / "run"


def _wait_for_step(proc: subprocess.Popen, step: int) -> None:
    """Read the trainer's log until it reports `step`, then return (process still running)."""
    for line in proc.stderr:
        if f"step {step}/" in line:
            return
    raise AssertionError(f"trainer exited before step {step}: {proc.wait()}")


def test_sigterm_mid_run_resumes_bit_identical(reference, tmp_path):
    config, ref = reference
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "train", str(config),
                             "--run-dir", str(run_dir)], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=chaos._env())
    _wait_for_step(proc, 60)
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    assert proc.wait(timeout=120) == 75
    first = json.loads((run_dir / "attempts" / "0001.json").read_text())
    assert first["reason"] == "signal" and first["signal"] == "SIGTERM"
    stopped_at = first["end_step"]
    assert 60 <= stopped_at < 200
    result = run_cli("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    second = json.loads((run_dir / "attempts" / "0002.json").read_text())
    # lost work on a SIGTERM: none; the next attempt starts right after the signalled step
    assert (second["start_step"], second["resumed_from"]) == (stopped_at + 1, stopped_at)
    r = chaos.TrialResult()
    chaos.compare(run_dir, ref, r)
    assert r.identical_rows and r.identical_params and r.identical_best
    steps = chaos.latest_rows(run_dir, "steps")
    assert steps["step"].tolist() == list(range(1, 201))
    from qgan.metrics import read_table, superseded_rows
    assert superseded_rows(run_dir, "steps").empty
    ev = read_table(run_dir, "events")
    sig = ev[ev.kind == "signal"]
    assert sig["step"].tolist() == [stopped_at]
    assert json.loads(sig["data"].iloc[0]) == {"at_step": stopped_at, "signal": "SIGTERM"}


def test_random_sigkill_and_sigterm_never_break_the_run(reference, tmp_path):
    config, ref = reference
    rng = random.Random(20261121)
    r = chaos.run_trial(config, tmp_path / "run", rng, max_stops=4, window=(0.0, 1.0),
                        startup_share=0.0,
                        signals=[signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM])
    chaos.compare(tmp_path / "run", ref, r)
    assert len(r.stops) == 4
    assert [s["signal"] for s in r.stops] == ["SIGKILL", "SIGTERM", "SIGKILL", "SIGTERM"]
    assert r.unloadable_checkpoints == 0 and r.unreadable_parts == 0
    assert r.identical_rows and r.identical_params and r.identical_best
    for stop in r.stops:
        if stop["signal"] == "SIGTERM":
            assert stop["lost_steps"] == 0 and stop["exit"] == 75
        else:
            assert stop["exit"] == -9
            assert stop["lost_steps"] <= 10  # at most one checkpoint interval
