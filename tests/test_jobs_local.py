"""The preemption scenario on submitit's local executor, with the signals sent by the test:
a 3-task sweep, each task preempted twice (SIGTERM through the controller, like a scheduler)
and warned of its time limit once (USR2); every task finishes with the same numbers as an
uninterrupted run, one metrics row per step, and `qgan status` counts it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import (SCENARIO_CONFIG, assert_causes_agree, progressed, reference_runs, step_row_count,
                      steps_by_step, wait_for)
from jobs import ledger

pytestmark = pytest.mark.slow
STEPS = 200


def _qgan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_local_sweep_survives_preemptions_and_time_limit(tmp_path: Path):
    cfg = tmp_path / "scenario.toml"
    cfg.write_text(SCENARIO_CONFIG.format(steps=STEPS, step_seconds=0.1))
    t0 = time.monotonic()
    proc = _qgan("submit", str(cfg), "--executor", "local", "--parallel", "3", "--runs-root",
                 str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    exp_dir = tmp_path / "runs" / "scenario"
    exp = json.loads((exp_dir / "experiment.json").read_text())
    assert [t["run"] for t in exp["tasks"]] == ["task-000", "task-001", "task-002"]
    runs = {t["run"]: (exp_dir / t["run"], int(t["job_id"])) for t in exp["tasks"]}
    timings: list[float] = []

    def interrupt(name: str, run: Path, controller: int) -> None:
        # Each task on its own: signal it as soon as its current attempt has trained a little.
        for round_no, (sig, target) in enumerate([(signal.SIGTERM, "controller"),
                                                  (signal.SIGTERM, "controller"),
                                                  (signal.SIGUSR2, "job")]):
            wait_for(lambda: progressed(run), 240, f"{name} to train (round {round_no})")
            before = len(ledger.read_jobs(run)["episodes"])
            pid = controller if target == "controller" else ledger.read_jobs(run)["episodes"][-1]["pid"]
            sent = time.monotonic()
            os.kill(pid, sig)
            wait_for(lambda: len(ledger.read_jobs(run)["episodes"]) > before, 120,
                     f"{name} requeued after {sig.name}")
            timings.append(time.monotonic() - sent)

    with ThreadPoolExecutor(len(runs)) as pool:
        for f in [pool.submit(interrupt, n, r, c) for n, (r, c) in runs.items()]:
            f.result()

    status = wait_for(lambda: (lambda rows: all(r["state"] == "FINISHED" for r in rows) and rows)(
        json.loads(_qgan("status", str(exp_dir), "--json").stdout)), 300, "all runs finished")
    elapsed = time.monotonic() - t0
    refs = reference_runs([r for r, _ in runs.values()], tmp_path)
    for row in status:
        run = exp_dir / row["run"]
        doc = ledger.read_jobs(run)
        causes = [e["stop_cause"] for e in doc["episodes"]]
        assert causes == ["preemption", "preemption", "time_limit", "finished"], causes
        assert (row["attempts"], row["preemptions"], row["time_limits"], row["requeues"]) == (4, 2, 1, 3)
        assert row["step"] == row["total"] == STEPS
        # No lost work: each attempt resumed exactly where the previous one checkpointed.
        attempts = ledger.trainer_attempts(run)
        assert [a["resumed_from"] for a in attempts[1:]] == [a["end_step"] for a in attempts[:-1]]
        assert step_row_count(run) == STEPS  # exactly one metrics row per step
        assert steps_by_step(run) == steps_by_step(refs[row["run"]])  # bitwise identical
    # the postmortem reads the same causes from the ledger: USR2 here is the time limit
    assert assert_causes_agree(exp_dir, _qgan) == {
        n: ["preemption", "preemption", "time_limit", "finished"] for n in runs}
    print(f"\nlocal scenario: {elapsed:.0f} s to finish 3 runs x {STEPS} steps with 3 "
          f"interruptions each; signal -> next episode started: "
          f"median {sorted(timings)[len(timings) // 2]:.1f} s, max {max(timings):.1f} s")


def test_drill_passes_on_the_local_executor(tmp_path: Path):
    """`qgan drill --executor local`: a rehearsed preemption and time limit, both resumed
    without lost work; its job is cancelled at the end and every process of it ends."""
    out = _qgan("drill", "--executor", "local", "--runs-root", str(tmp_path), "--wait", "120",
                timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "VERDICT: PASS" in out.stdout
    for step in ("preemption checkpointed", "resumed after preemption",
                 "time limit checkpointed", "resumed after time limit"):
        assert f"[PASS] {step}" in out.stdout
    run = next(tmp_path.glob("drill-*/task-000"))

    def gone() -> bool:
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(tmp_path) in (proc / "cmdline").read_text():
                    return False
            except OSError:
                pass
        return True

    wait_for(gone, 120, "the drill's queue, controller and trainer to end")
    doc = ledger.read_jobs(run)
    assert [e["stop_cause"] for e in doc["episodes"]] == ["preemption", "time_limit",
                                                          "cancelled"]
    assert doc["outcome"] == "cancelled"
