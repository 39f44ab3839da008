"""`qgan submit/status/cancel/drill` on the real development cluster (slurm/dev-cluster).

The scenario: a 3-task array in `low`; `high` jobs asking for every CPU preempt every task at
least twice, and one task's time limit is lowered so that SLURM itself sends the time-limit
signal. Every task
finishes, identical to an uninterrupted run, one metrics row per step, and `qgan status`
agrees with sacct. The 121 s BeginTime hold after a requeue is released by the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (SCENARIO_CONFIG, UP, assert_causes_agree, progressed, reference_runs, step_row_count,
                      steps_by_step, wait_for)
from jobs import ledger, slurmctl

pytestmark = pytest.mark.slurm
STEPS = 1500
PREEMPTIONS = 2  # by `high` jobs, per task
MAX_ROUNDS = 8


def _qgan(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _job(exp_dir: Path, run: str) -> str:
    exp = json.loads((exp_dir / "experiment.json").read_text())
    return ledger.task_job_ids(exp)[run]


_HELD: dict[str, float] = {}


def _release(job_ids: list[str]) -> None:
    """Let requeued jobs start soon instead of after the ~121 s BeginTime hold."""
    for jid in job_ids:
        slurmctl.release_held(jid, _HELD)


def _state(jid: str) -> str:
    return (slurmctl.show_job(jid) or {}).get("JobState", "")


def _preempt(env: dict) -> str:
    cpus = slurmctl.run("sinfo", "-h", "-p", "high", "-o", "%c").split()[0]
    return subprocess.run(["sbatch", "--parsable", "-p", "high", "-c", cpus, "-o", "/dev/null",
                           "-J", "test-preemptor", "--wrap", "sleep 2"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_slurm_sweep_survives_preemptions_and_time_limit(slurm_cluster, tmp_path: Path):
    env = slurm_cluster
    cfg = tmp_path / "scenario.toml"
    cfg.write_text(SCENARIO_CONFIG.format(steps=STEPS, step_seconds=0.04))
    t0 = time.monotonic()
    proc = _qgan(env, "submit", str(cfg), "--executor", "slurm", "--profile", "dev",
                 "--runs-root", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    exp_dir = tmp_path / "runs" / "scenario"
    names = ["task-000", "task-001", "task-002"]
    jobs = {n: _job(exp_dir, n) for n in names}
    assert len({j.split("_")[0] for j in jobs.values()}) == 1  # one array

    # Time limit: one task waits for a CPU; give it a 2-minute limit, so that SLURM sends the
    # time-limit signal (USR2, 60 s before the limit) a minute after it starts. Not 1 minute:
    # a warning due at the start can land before submitit handles USR2 and kill the job.
    def one_waiting() -> list[str]:
        states = {n: _state(jobs[n]) for n in names}
        if sorted(states.values()) != ["PENDING", "RUNNING", "RUNNING"]:
            return []
        return [n for n in names if states[n] == "PENDING"]

    victim = wait_for(one_waiting, 60, "two tasks running and one waiting for a CPU")[0]
    tl_job = jobs[victim]
    slurmctl.run_status("scontrol", "update", f"jobid={tl_job}", "TimeLimit=2")
    restored = []

    def tick() -> None:
        if not restored and any(e.get("stop_cause") == "time_limit"
                                for e in ledger.read_jobs(exp_dir / victim)["episodes"]):
            if slurmctl.run_status("scontrol", "update", f"jobid={tl_job}",
                                    "TimeLimit=30")[0] == 0:
                restored.append(time.monotonic())
        # Never while a preempting job waits: released tasks would start first, and be
        # preempted a second time by the same job.
        if not (slurmctl.run("squeue", "-h", "-n", "test-preemptor", "-o", "%i") or "").strip():
            _release(list(jobs.values()))

    preempted_expected: dict[str, int] = {n: 0 for n in names}
    round_trips = []

    def running() -> list[str]:
        return [n for n in names if _state(jobs[n]) == "RUNNING"]

    def preemptible() -> list[str]:
        """Every unfinished task that can run is running (two, or the last one), each inside
        its trainer attempt and 10 steps past its resume point, and one of them still owes a
        preemption: a `high` job asking for every CPU then hits them all."""
        now = running()
        unfinished = [n for n in names if not ledger.finished(exp_dir / n)]
        if len(now) < min(2, len(unfinished)):
            return []
        if not all(progressed(exp_dir / n, 10) for n in now):
            return []
        if victim in now and not restored:
            return []  # its time-limit warning is due first
        if all(preempted_expected[n] >= PREEMPTIONS for n in now):
            return []
        return now

    def why() -> str:
        return "; ".join(
            f"{n}: {_state(jobs[n]) or '-'}, progressed={progressed(exp_dir / n, 10)}, "
            f"preempted={preempted_expected[n]}, finished={ledger.finished(exp_dir / n)}"
            for n in names) + f"; time limit restored={bool(restored)}"

    # Rounds until every task has been preempted PREEMPTIONS times by a real `high` job.
    round_no = 0
    while any(preempted_expected[n] < PREEMPTIONS for n in names):
        assert round_no < MAX_ROUNDS, f"{MAX_ROUNDS} rounds did not preempt every task: {why()}"
        victims = wait_for(preemptible, 300, f"tasks training (round {round_no})", tick=tick,
                           explain=why)
        before = {n: len(ledger.read_jobs(exp_dir / n)["episodes"]) for n in victims}
        sent = time.monotonic()
        high = _preempt(env)
        for n in victims:
            ep = wait_for(lambda: ledger.read_jobs(exp_dir / n)["episodes"][before[n] - 1]
                          .get("stop_cause") and ledger.read_jobs(exp_dir / n)["episodes"][
                              before[n] - 1], 120, f"{n} checkpointed after preemption",
                          explain=why)
            assert ep["stop_cause"] in ("preemption", "finished"), ep
            if ep["stop_cause"] == "preemption":
                assert ep["trainer_exit"] == 75, ep
                preempted_expected[n] += 1
        wait_for(lambda: _state(high) in ("COMPLETED", ""), 60, "the preempting job to end")
        # Only two CPUs: the task that waited takes one, so not every victim restarts now.
        wait_for(lambda: any(len(ledger.read_jobs(exp_dir / n)["episodes"]) > before[n]
                             for n in victims) or all(ledger.finished(exp_dir / n)
                                                      for n in victims), 180,
                 "a preempted task to restart", tick=tick, explain=why)
        round_trips.append(time.monotonic() - sent)
        round_no += 1

    def all_finished():
        rows = json.loads(_qgan(env, "status", str(exp_dir), "--json").stdout)
        return rows if all(r["state"] == "FINISHED" for r in rows) else None

    rows = wait_for(all_finished, 600, "every task to finish", poll=2, tick=tick)
    elapsed_total = time.monotonic() - t0
    # The dependent report job (afterany on the array) ran once every task had ended for good:
    # not at a preemption or a time-limit requeue.
    report = _report_written(exp_dir)
    last_end = max(e["end_time"] for n in names for e in ledger.read_jobs(exp_dir / n)["episodes"])
    assert report["started"] >= last_end - 1, (report, last_end)
    refs = reference_runs([exp_dir / n for n in names], tmp_path)
    acct = slurmctl.accounting(list(jobs.values()))
    for row in rows:
        run = exp_dir / row["run"]
        causes = [e["stop_cause"] for e in ledger.read_jobs(run)["episodes"]]
        want_tl = 1 if row["run"] == victim else 0
        states = acct[jobs[row["run"]]]  # SLURM's own record of the requeue episodes
        assert causes.count("preemption") >= preempted_expected[row["run"]], causes
        # status counts every preemption SLURM made, including one that struck before the
        # job's callable could record it
        assert row["preemptions"] == states.count("PREEMPTED") >= causes.count("preemption")
        assert causes.count("time_limit") == row["time_limits"] == want_tl, causes
        assert states.count("REQUEUED") == want_tl, states
        assert causes[-1] == "finished" and states[-1] == "COMPLETED", (causes, states)
        assert len(causes) == 1 + row["requeues"]
        attempts = ledger.trainer_attempts(run)
        assert row["attempts"] == len(attempts)
        assert [a["resumed_from"] for a in attempts[1:]] == [a["end_step"] for a in attempts[:-1]]
        restarts = [a["slurm_restart_count"] or 0 for a in attempts]
        assert restarts == sorted(set(restarts)) and restarts[0] == 0
        assert step_row_count(run) == STEPS
        assert steps_by_step(run) == steps_by_step(refs[row["run"]])
    assert all(v >= PREEMPTIONS for v in preempted_expected.values()), preempted_expected
    # With preempt_send_user_signal a preemption reaches the trainer as USR2 then TERM: only
    # the ledger tells it from the time limit, and the postmortem must follow the ledger.
    causes = assert_causes_agree(exp_dir, lambda *a: _qgan(env, *a))
    assert all(c.count("preemption") >= PREEMPTIONS for c in causes.values()), causes
    assert causes[victim].count("time_limit") == 1, causes
    print(f"\nslurm scenario: {elapsed_total:.0f} s for 3 runs x {STEPS} steps; {round_no} "
          f"preemption rounds, round trips (high job submitted -> a victim running again): "
          f"{', '.join(f'{t:.1f}' for t in round_trips)} s")


def _report_written(exp_dir: Path) -> dict:
    """Wait for the report job; return experiment.json's record of it (checked: written)."""
    def ended():
        rep = json.loads((exp_dir / "experiment.json").read_text()).get("report") or {}
        return rep if rep.get("state") in ("written", "failed") else None

    rep = wait_for(ended, 300, "the report job", poll=1)
    assert rep["state"] == "written" and rep["exit"] == 0, rep
    assert rep["path"] == str(exp_dir / "report.html")
    html = (exp_dir / "report.html").read_text()
    assert all(n in html for n in ("task-000", "task-001", "task-002"))
    return rep


@pytest.mark.slow
def test_report_job_waits_for_split_arrays(slurm_cluster, tmp_path: Path):
    """MaxArraySize = 2 splits a 3-task sweep into an array of 2 and a single job; one report
    job depends on both (afterany), waits while any task has not ended, then writes
    report.html, and `qgan status` says so."""
    env = slurm_cluster
    cfg = tmp_path / "split.toml"
    cfg.write_text(SCENARIO_CONFIG.format(steps=30, step_seconds=0.2))
    submit = ("submit", str(cfg), "--executor", "slurm", "--profile", "dev", "--runs-root",
              str(tmp_path / "runs"))
    try:
        subprocess.run([str(UP)], env=dict(env, QGAN_SLURM_MAX_ARRAY_SIZE="2"), check=True,
                       capture_output=True, timeout=120)
        assert slurmctl.max_array_size() == 2
        dry = _qgan(env, *submit, "--dry-run")
        assert "3 task(s) in 2 submission(s) of 2, 1 (MaxArraySize 2)" in dry.stdout, dry.stdout
        proc = _qgan(env, *submit)
        assert proc.returncode == 0, proc.stderr
        exp_dir = tmp_path / "runs" / "split"
        exp = json.loads((exp_dir / "experiment.json").read_text())
        ids = ledger.task_job_ids(exp)
        arrays = sorted({j.split("_")[0] for j in ids.values()})
        assert len(arrays) == 2 and ids["task-002"] == arrays[1]  # the split
        rep = exp["report"]
        assert rep["state"] == "waiting" and sorted(rep["depends_on"]) == arrays
        info = slurmctl.show_job(rep["job_id"]) or {}
        assert info.get("JobState") == "PENDING" and info.get("Reason") == "Dependency", info
        assert f"report: job {rep['job_id']} waits for every run to end" in _qgan(
            env, "status", str(exp_dir)).stdout
        rep = _report_written(exp_dir)
        last_end = max(e["end_time"] for n in ids for e in
                       ledger.read_jobs(exp_dir / n)["episodes"])
        assert rep["started"] >= last_end - 1, (rep, last_end)
        assert f"report: {exp_dir / 'report.html'} (written" in _qgan(
            env, "status", str(exp_dir)).stdout
    finally:
        subprocess.run([str(UP)], env={k: v for k, v in env.items()
                                       if k != "QGAN_SLURM_MAX_ARRAY_SIZE"},
                       check=True, capture_output=True, timeout=120)


def test_slurm_single_run_and_cancel(slurm_cluster, tmp_path: Path):
    env = slurm_cluster
    cfg = tmp_path / "one.toml"
    cfg.write_text(SCENARIO_CONFIG.format(steps=30, step_seconds=0).split("[sweep]")[0])
    assert _qgan(env, "submit", str(cfg), "--executor", "slurm", "--profile", "dev",
                 "--runs-root", str(tmp_path), "--name", "one", "--wait").returncode == 0
    row = json.loads(_qgan(env, "status", str(tmp_path / "one"), "--json").stdout)[0]
    assert (row["state"], row["step"], row["attempts"], row["preemptions"]) == ("FINISHED", 30, 1, 0)

    cfg.write_text(SCENARIO_CONFIG.format(steps=100000, step_seconds=0).split("[sweep]")[0])
    assert _qgan(env, "submit", str(cfg), "--executor", "slurm", "--profile", "dev",
                 "--runs-root", str(tmp_path), "--name", "long").returncode == 0
    run = tmp_path / "long" / "task-000"
    wait_for(lambda: ledger.trainer_attempts(run), 120, "the long run to start")
    out = _qgan(env, "cancel", str(run))
    assert out.returncode == 0 and "cancelled task-000" in out.stdout
    jid = _job(tmp_path / "long", "task-000")
    wait_for(lambda: slurmctl.accounting([jid]).get(jid, [""])[-1] == "CANCELLED", 60,
             "sacct CANCELLED")
    time.sleep(3)
    row = json.loads(_qgan(env, "status", str(tmp_path / "long"), "--json").stdout)[0]
    assert row["state"] == "CANCELLED"
    assert _state(jid) in ("", "CANCELLED", "COMPLETING")  # not requeued by the callable


@pytest.mark.slow
def test_drill_passes_on_dev_cluster(slurm_cluster, tmp_path: Path):
    out = _qgan(slurm_cluster, "drill", "--profile", "dev", "--runs-root", str(tmp_path),
                "--wait", "120")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "VERDICT: PASS" in out.stdout
    for step in ("preemption checkpointed", "resumed after preemption",
                 "time limit checkpointed", "resumed after time limit"):
        assert f"[PASS] {step}" in out.stdout


@pytest.mark.slow
def test_drill_fails_with_advice_without_requeue(slurm_cluster, tmp_path: Path):
    env = slurm_cluster
    profile = tmp_path / "norequeue.toml"
    dev = (Path(__file__).resolve().parents[1] / "slurm" / "profiles" / "dev.toml").read_text()
    profile.write_text(dev.replace("requeue = true", "requeue = false"))
    try:
        subprocess.run([str(UP)], env=dict(env, QGAN_SLURM_JOB_REQUEUE="0"), check=True,
                       capture_output=True, timeout=120)
        assert "JobRequeue              = 0" in slurmctl.run("scontrol", "show", "config")
        out = _qgan(env, "drill", "--profile", str(profile), "--runs-root", str(tmp_path),
                    "--wait", "45")
    finally:
        subprocess.run([str(UP)], env={k: v for k, v in env.items()
                                       if k != "QGAN_SLURM_JOB_REQUEUE"},
                       check=True, capture_output=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "VERDICT: FAIL" in out.stdout
    assert "[FAIL] requeue allowed" in out.stdout
    assert "[FAIL] requeued after preemption" in out.stdout
    assert "requeue = true" in out.stdout  # the fix is named


@pytest.mark.slow
def test_sbatch_example_survives_time_limit_and_preemption(slurm_cluster, tmp_path: Path,
                                                           request):
    """slurm/examples/train.sbatch, submitted by hand: a real time-limit warning (B:USR2 to the
    batch shell), then a real preemption; the run finishes equal to an uninterrupted one."""
    steps = 600
    env = dict(slurm_cluster, PATH=f"{Path(sys.executable).parent}:{slurm_cluster['PATH']}")
    cfg = tmp_path / "one.toml"
    cfg.write_text(SCENARIO_CONFIG.format(steps=steps, step_seconds=0.05).split("[sweep]")[0])
    run, log = tmp_path / "run", tmp_path / "job.out"
    script = Path(__file__).resolve().parents[1] / "slurm" / "examples" / "train.sbatch"
    # A 1-minute limit with the warning 50 s before it: SLURM sends it at its next timer tick.
    jid = subprocess.run(["sbatch", "--parsable", "-p", "low", "-c", "1", "-t", "1",
                          "--signal=B:USR2@50", f"--output={log}", str(script), str(cfg),
                          str(run)], env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    # a failure must not leave the job queued for the tests after this one
    request.addfinalizer(lambda: subprocess.run(["scancel", jid], env=env, capture_output=True))
    attempts = lambda: ledger.trainer_attempts(run)  # noqa: E731
    wait_for(lambda: len(attempts()) == 1 and attempts()[0]["end_time"], 180,
             "the time-limit warning to stop the first attempt")
    assert attempts()[0]["signal"] == "SIGUSR2" and attempts()[0]["exit_status"] == 75
    # The requeued job keeps the 1-minute limit: give it room, and skip the BeginTime hold.
    wait_for(lambda: _state(jid) == "PENDING", 60, "the job to be requeued")
    assert slurmctl.run_status("scontrol", "update", f"jobid={jid}", "TimeLimit=10")[0] == 0

    def second_attempt_trained() -> bool:  # no jobs.json here: judge by the attempt files
        now = attempts()
        return len(now) == 2 and now[1]["start_step"] is not None and (
            ledger.newest_checkpoint_step(run) or 0) >= now[1]["start_step"] + 10

    wait_for(second_attempt_trained, 180, "the second attempt to train",
             tick=lambda: _release([jid]))
    _preempt(env)
    wait_for(lambda: ledger.finished(run), 300, "the run to finish",
             tick=lambda: _release([jid]))
    wait_for(lambda: _state(jid) in ("COMPLETED", ""), 60, "the job to complete")

    got = attempts()
    assert [a["reason"] for a in got] == ["signal", "signal", "finished"]
    # With preempt_send_user_signal a preemption sends the --signal (USR2) first, then TERM:
    # inside the job both stops look alike, SLURM's accounting tells them apart.
    assert got[0]["signal"] == "SIGUSR2" and got[1]["signal"] in ("SIGUSR2", "SIGTERM")
    assert [a["resumed_from"] for a in got[1:]] == [a["end_step"] for a in got[:-1]]
    assert slurmctl.accounting([jid])[jid] == ["REQUEUED", "PREEMPTED", "COMPLETED"]
    text = log.read_text()
    assert "got USR2" in text and "DUE TO PREEMPTION" in text and "run finished" in text
    assert re.findall(rf"^attempt (\d) of job {jid} ", text, re.M) == ["0", "1", "2"]
    ref = reference_runs([run], tmp_path)[run.name]
    assert step_row_count(run) == steps
    assert steps_by_step(run) == steps_by_step(ref)


@pytest.mark.slow
def test_slurm_prunes_a_leaking_run_and_gives_its_slot_to_the_next_task(slurm_cluster,
                                                                         tmp_path: Path):
    """`qgan submit --prune --parallel 1` on the dev cluster: an array of 2 with one slot
    (%1). Task 0 (cutoff 3 without trace penalty: leaks from step 1; 3,000 steps, so that it
    cannot finish before the grace, 10 % of them, on a quiet machine) is pruned by the
    watcher in its own batch step; its job ends COMPLETED, not requeued; task 1 (healthy) starts in
    the freed slot only then and finishes. The ledger and `qgan status` say pruned."""
    from test_live import CONFIG  # the local pruning test's pair

    env = slurm_cluster
    cfg = tmp_path / "pair.toml"
    cfg.write_text(CONFIG.format(target="ring8", cutoff=3, penalty=0.0, samples=128) +
                   '[sweep]\nsets = [{"generator.cutoff" = 3, "train.steps" = 3000}, '
                   '{"generator.cutoff" = 10, '
                   '"loss.trace_penalty" = 50.0, "data.target" = "bimodal", '
                   '"eval.n_samples" = 512}]\n')
    proc = _qgan(env, "submit", str(cfg), "--executor", "slurm", "--profile", "dev",
                 "--parallel", "1", "--prune", "--no-report", "--runs-root",
                 str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    exp_dir = tmp_path / "runs" / "pair"
    leak, ok = exp_dir / "task-000", exp_dir / "task-001"
    jobs = {n: _job(exp_dir, n) for n in ("task-000", "task-001")}
    array = jobs["task-000"].split("_")[0]
    assert jobs == {"task-000": f"{array}_0", "task-001": f"{array}_1"}
    assert "%1" in slurmctl.run("scontrol", "show", "job", array)  # ArrayTaskThrottle=1
    wait_for(lambda: ledger.read_jobs(ok)["outcome"] is not None, 900, "both runs to end")

    doc = ledger.read_jobs(leak)
    assert doc["outcome"] == "pruned" and len(doc["episodes"]) == 1
    episode = doc["episodes"][0]
    assert (episode["executor"], episode["job_id"], episode["stop_cause"],
            episode["action"]) == ("slurm", jobs["task-000"], "pruned", "stop")
    assert episode["pruned"]["verdict"] == "leaking"
    assert episode["pruned"]["finding"]["kind"] == "fock_leakage"
    assert 300 <= episode["pruned"]["step"] < 3000 and episode["trainer_exit"] == 75
    assert episode["cpu"]["judgements"] >= 1 and episode["cpu"]["trainer_s"] > 0
    assert doc["reason"].startswith(f"pruned at step {episode['pruned']['step']} ")
    done = ledger.read_jobs(ok)
    assert done["outcome"] == "finished" and len(done["episodes"]) == 1
    assert done["episodes"][0]["job_id"] == jobs["task-001"]
    assert done["episodes"][0]["cpu"]["judgements"] == 0  # inside its cutoff: never judged
    # the slot: task 1 started only once task 0's job had ended
    assert done["episodes"][0]["start_time"] >= episode["end_time"] - 1
    wait_for(lambda: _state(jobs["task-001"]) in ("COMPLETED", ""), 60, "the array to end")
    acct = slurmctl.accounting(list(jobs.values()))
    assert acct == {jobs["task-000"]: ["COMPLETED"], jobs["task-001"]: ["COMPLETED"]}, acct
    rows = json.loads(_qgan(env, "status", str(exp_dir), "--json").stdout)
    assert [(r["run"], r["state"]) for r in rows] == [("task-000", "PRUNED"),
                                                       ("task-001", "FINISHED")]
