"""The development cluster itself: accounting works, and `high` preempts `low` with requeue."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def _run(env: dict, *cmd: str) -> str:
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def _wait(predicate, timeout: float, what: str, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _job_field(env: dict, job: str, name: str) -> str:
    out = _run(env, "scontrol", "show", "job", job, "-o")
    for token in out.split():
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return ""


def _sacct_states(env: dict, job: str) -> list[str]:
    out = _run(env, "sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "State")
    return [s.split()[0] for s in out.splitlines() if s]


def test_job_completes_and_is_accounted(slurm_cluster, tmp_path: Path):
    env = slurm_cluster
    job = _run(env, "sbatch", "--parsable", "-o", str(tmp_path / "out.txt"), "--wrap", "echo hello")
    _wait(lambda: _sacct_states(env, job) == ["COMPLETED"], 30, f"job {job} COMPLETED in sacct")
    assert (tmp_path / "out.txt").read_text().strip() == "hello"


def test_high_job_preempts_low_job_which_is_requeued(slurm_cluster, tmp_path: Path):
    env = slurm_cluster
    log = tmp_path / "low.txt"
    script = tmp_path / "low.sh"
    script.write_text(
        "#!/bin/bash\n"
        'echo "start ${SLURM_RESTART_COUNT:-0}"\n'
        "trap 'echo got-USR2' USR2\n"
        "trap 'echo got-TERM; exit 143' TERM\n"
        "for i in $(seq 1200); do sleep 0.1; done\n")
    cpus = _run(env, "sinfo", "-h", "-p", "high", "-o", "%c").split()[0]
    low = _run(env, "sbatch", "--parsable", "--requeue", "--open-mode=append",
               "--signal=B:USR2@60", "-p", "low", "-c", cpus, "-o", str(log), str(script))
    _wait(lambda: "start 0" in (log.read_text() if log.exists() else ""), 30, "low job start")
    high = _run(env, "sbatch", "--parsable", "-p", "high", "-c", cpus, "-o", "/dev/null",
                "--wrap", "sleep 1")
    try:
        _wait(lambda: _job_field(env, low, "JobState") == "PENDING", 30, "low job requeued")
        assert _job_field(env, low, "Restarts") == "1"
        assert _job_field(env, low, "Reason") in ("BeginTime", "Priority", "Resources")
        text = log.read_text()
        assert "got-TERM" in text and "got-USR2" in text  # preempt_send_user_signal
        assert "DUE TO PREEMPTION" in text
        # Wait for `high` to finish, then release the 121 s BeginTime hold.
        _wait(lambda: _sacct_states(env, high) == ["COMPLETED"], 30, "high job done")
        _run(env, "scontrol", "update", f"jobid={low}", "StartTime=now")
        _wait(lambda: "start 1" in log.read_text(), 30, "low job second attempt")
        assert _sacct_states(env, low)[0] == "PREEMPTED"
    finally:
        subprocess.run(["scancel", low, high], env=env, check=False)
