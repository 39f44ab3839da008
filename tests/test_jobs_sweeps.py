"""Sweep operations on the local executor with real processes: bounded parallelism (a queue
that starts at most N trainers at a time, the rest PENDING), resubmitting the runs of an
experiment that did not finish, and the report written when the last run ends."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import SCENARIO_CONFIG, reference_runs, step_row_count, steps_by_step, wait_for
from jobs import ledger

pytestmark = pytest.mark.slow


def _config(steps: int, step_seconds: float) -> str:
    """The scenario config without its sweep table."""
    return SCENARIO_CONFIG.format(steps=steps, step_seconds=step_seconds).split("[sweep]")[0]


def _qgan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _status(exp_dir: Path) -> dict[str, dict]:
    proc = _qgan("status", str(exp_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return {r["run"]: r for r in json.loads(proc.stdout)}


def _trainers(exp_dir: Path) -> set[int]:
    """Pids of live `qgan train` processes of this experiment, read from /proc."""
    out = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "-m qgan train" in cmd and str(exp_dir) in cmd and state != "Z":
            out.add(int(proc.name))
    return out


class Sampler(threading.Thread):
    """Counts this experiment's live trainers every 50 ms until stopped."""

    def __init__(self, exp_dir: Path):
        super().__init__(daemon=True)
        self.exp_dir, self.most, self.seen, self.samples = exp_dir, 0, set(), 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            now = _trainers(self.exp_dir)
            self.most = max(self.most, len(now))
            self.seen |= now
            self.samples += 1
            self.halt.wait(0.05)


def _queue_ended(exp_dir: Path) -> bool:
    return not any("local_queue" in p for p in _cmdlines() if str(exp_dir) in p)


def _cmdlines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return out


def test_parallel_2_runs_at_most_two_trainers_and_requeues(tmp_path: Path):
    cfg = tmp_path / "six.toml"
    sets = ", ".join(['{"run.seed" = 1, "faults.sigterm_at_step" = 15}']
                     + [f'{{"run.seed" = {s}}}' for s in range(2, 7)])
    cfg.write_text(_config(40, 0.05) + f"[sweep]\nsets = [{sets}]\n")
    exp_dir = tmp_path / "runs" / "six"
    sampler = Sampler(exp_dir)
    sampler.start()
    try:
        proc = _qgan("submit", str(cfg), "--executor", "local", "--parallel", "2",
                     "--runs-root", str(tmp_path / "runs"))
        assert proc.returncode == 0, proc.stderr
        assert "at most 2 at a time" in proc.stdout and "4 run(s) queued" in proc.stdout
        first = _status(exp_dir)
        assert [first[f"task-00{i}"]["state"] for i in range(6)] == [
            "RUNNING", "RUNNING", "PENDING", "PENDING", "PENDING", "PENDING"]
        assert first["task-005"]["reason"] == "queued: 2 run(s) at a time"
        rows = wait_for(lambda: (lambda r: all(x["state"] == "FINISHED" for x in r.values())
                                 and r)(_status(exp_dir)), 600, "all six runs to finish", poll=1)
        wait_for(lambda: _queue_ended(exp_dir), 60, "the queue process to end")
    finally:
        sampler.halt.set()
        sampler.join()
    assert sampler.most == 2, sampler.most  # never more than 2, and 2 were used
    assert len(sampler.seen) == 7  # six trainers, plus the one that resumed after its SIGTERM
    assert {n: (r["step"], r["total"]) for n, r in rows.items()} == {
        f"task-00{i}": (40, 40) for i in range(6)}
    causes = {n: [e["stop_cause"] for e in ledger.read_jobs(exp_dir / n)["episodes"]]
              for n in rows}
    assert causes == {"task-000": ["preemption", "finished"],
                      **{f"task-00{i}": ["finished"] for i in range(1, 6)}}
    attempts = ledger.trainer_attempts(exp_dir / "task-000")
    assert attempts[1]["resumed_from"] == attempts[0]["end_step"] == 15
    assert step_row_count(exp_dir / "task-000") == 40


def test_resubmit_after_cancel_finishes_bitwise_equal(tmp_path: Path):
    """Cancel a sweep mid-run, resubmit it: the cancelled runs resume from their checkpoint
    and end bit-identical to uninterrupted runs; the finished one is never run again; each
    run's job ids over time are in the ledger and in `qgan status`."""
    cfg = tmp_path / "three.toml"
    cfg.write_text(_config(80, 0.1) + '[sweep]\nsets = [{"run.seed" = 1}, {"run.seed" = 2}, '
                   '{"run.seed" = 3, "train.steps" = 5}]\n')
    exp_dir = tmp_path / "runs" / "three"
    proc = _qgan("submit", str(cfg), "--executor", "local", "--parallel", "3",
                 "--runs-root", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    runs = ["task-000", "task-001"]
    wait_for(lambda: ledger.finished(exp_dir / "task-002")
             and all((ledger.newest_checkpoint_step(exp_dir / r) or 0) >= 20 for r in runs),
             300, "two runs training and the short one finished")
    first_jobs = {n: r["jobs"] for n, r in _status(exp_dir).items()}
    out = _qgan("cancel", str(exp_dir))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not _trainers(exp_dir), 60, "the trainers to exit")
    rows = wait_for(lambda: (lambda r: [r[n]["state"] for n in sorted(r)] == [
        "CANCELLED", "CANCELLED", "FINISHED"] and r)(_status(exp_dir)), 120, "the cancel")
    stopped = {n: rows[n]["step"] for n in runs}
    assert all(20 <= s < 80 for s in stopped.values()), stopped

    out = _qgan("resubmit", str(exp_dir), "--parallel", "1")
    assert out.returncode == 0, out.stderr
    assert "skipped task-002: finished (never run again)" in out.stdout
    assert "resubmitted task-000 (job " in out.stdout and "resubmitted task-001 (queued)" in out.stdout
    now = _status(exp_dir)
    assert [now[n]["state"] for n in ("task-000", "task-001", "task-002")] == [
        "RUNNING", "PENDING", "FINISHED"]
    rows = wait_for(lambda: (lambda r: all(x["state"] == "FINISHED" for x in r.values())
                             and r)(_status(exp_dir)), 300, "the resubmitted runs", poll=1)
    # the trainer says finished a moment before its job records the episode
    wait_for(lambda: all(ledger.read_jobs(exp_dir / n)["outcome"] == "finished" for n in runs),
             60, "the jobs to record their last episode")
    for n in runs:
        assert len(rows[n]["jobs"]) == 2 and rows[n]["jobs"][0] == first_jobs[n][0]
        assert rows[n]["jobs"][0] != rows[n]["jobs"][1]
        causes = [e["stop_cause"] for e in ledger.read_jobs(exp_dir / n)["episodes"]]
        assert causes == ["cancelled", "finished"], causes
        attempts = ledger.trainer_attempts(exp_dir / n)
        assert attempts[1]["resumed_from"] == attempts[0]["end_step"] == stopped[n]
        assert step_row_count(exp_dir / n) == 80
    assert rows["task-002"]["jobs"] == first_jobs["task-002"]
    assert len(ledger.trainer_attempts(exp_dir / "task-002")) == 1
    history = ledger.job_history(json.loads((exp_dir / "experiment.json").read_text()))
    assert [h["by"] for h in history["task-000"]] == ["submit", "resubmit"]
    refs = reference_runs([exp_dir / n for n in runs], tmp_path)
    for n in runs:
        assert steps_by_step(exp_dir / n) == steps_by_step(refs[n])  # bitwise identical

    again = _qgan("resubmit", str(exp_dir))
    assert again.returncode == 0 and "nothing to resubmit" in again.stdout
    assert ledger.job_history(json.loads((exp_dir / "experiment.json").read_text())) == history


def test_extend_adds_steps_and_a_seed_and_the_report_ranks_all(tmp_path: Path):
    """A finished 2-seed sweep is extended: both runs train on from their last checkpoint to
    the new step count (the change recorded in each run), a third seed is added as a new run
    of the same experiment, and the postmortem ranks all three."""
    cfg = tmp_path / "ext.toml"
    cfg.write_text(_config(20, 0) + '[sweep]\n"run.seed" = [1, 2]\n')
    exp_dir = tmp_path / "runs" / "ext"
    proc = _qgan("submit", str(cfg), "--executor", "local", "--parallel", "2", "--runs-root",
                 str(tmp_path / "runs"), "--wait", timeout=600)
    assert proc.returncode == 0, proc.stderr
    # --wait stays until the queue has written the report after the last run
    assert f"report: {exp_dir / 'report.html'} (written " in proc.stdout, proc.stdout
    assert "task-001" in (exp_dir / "report.html").read_text()
    runs = ["task-000", "task-001"]
    assert all(ledger.read_jobs(exp_dir / n)["outcome"] == "finished" for n in runs)

    out = _qgan("extend", str(exp_dir), "--set", "train.steps=40", "--sweep", "run.seed=3",
                "--parallel", "3")
    assert out.returncode == 0, out.stderr
    assert "extended task-000 (train.steps=40): job " in out.stdout
    assert "added task-002 (run.seed=3): job " in out.stdout
    names = runs + ["task-002"]
    wait_for(lambda: all(ledger.read_jobs(exp_dir / n)["outcome"] == "finished"
                         and ledger.finished(exp_dir / n) for n in names), 300, "the extension")
    wait_for(lambda: _queue_ended(exp_dir), 60, "the queue process to end")
    rows = _status(exp_dir)
    assert {n: (r["state"], r["step"], r["total"]) for n, r in rows.items()} == {
        n: ("FINISHED", 40, 40) for n in names}
    for n in runs:
        attempts = ledger.trainer_attempts(exp_dir / n)
        assert [(a["resumed_from"], a["end_step"]) for a in attempts] == [(None, 20), (20, 40)]
        assert step_row_count(exp_dir / n) == 40
        kept = list((exp_dir / n).glob("config.*.toml"))  # the change, recorded in the run
        assert len(kept) == 1 and "steps = 20" in kept[0].read_text()
        assert "steps = 40" in (exp_dir / n / "config.toml").read_text()
        assert [e["stop_cause"] for e in ledger.read_jobs(exp_dir / n)["episodes"]] == [
            "finished", "finished"]
    exp = json.loads((exp_dir / "experiment.json").read_text())
    assert [t["overrides"] for t in exp["tasks"]] == [{"run.seed": 1}, {"run.seed": 2},
                                                      {"run.seed": 3}]
    history = ledger.job_history(exp)
    assert [(h["by"], h.get("set")) for h in history["task-000"]] == [
        ("submit", None), ("extend", ["train.steps=40"])]
    assert len(ledger.trainer_attempts(exp_dir / "task-002")) == 1
    diag = json.loads(_qgan("diagnose", str(exp_dir), "--json").stdout)
    assert sorted(r["name"] for r in diag["runs"]) == names  # old and new, ranked together
    assert sorted(r["rank"] for r in diag["runs"]) == [1, 2, 3] and diag["keep"] in names
    again = _qgan("extend", str(exp_dir), "--set", "train.steps=40", "--sweep", "run.seed=3")
    assert again.returncode == 0 and "nothing to extend" in again.stdout
