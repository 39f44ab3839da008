"""Fast checks of the jobs layer: sweep table, profiles, stop-cause rules, retry policy, CLI edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import ledger, profiles, sweep
from jobs.cli import main
from qgan.errors import UserError
from jobs.task import RunStopped, TrainJob, _crash_streak, classify

TINY = """
[generator]
cutoff = 3
[train]
steps = 20
batch_size = 4
"""


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sweep_is_grid_times_sets_plus_cli(tmp_path):
    cfg = _write(tmp_path, TINY + '[sweep]\n"run.seed" = [1, 2]\n'
                 'sets = [{"loss.kind" = "bce"}, {"loss.kind" = "wgan-gp"}]\n'
                 '[sweep.train]\ng_lr = [0.1, 0.2]\n')
    tasks, configs = sweep.build_tasks(cfg, ["eval.n_samples=16,32"],
                                       ["train.steps=7", "eval.save_samples=0"])
    assert len(tasks) == 2 * 2 * 2 * 2
    assert {t.overrides["loss.kind"] for t in tasks} == {"bce", "wgan-gp"}
    assert all(c.train.steps == 7 for c in configs)
    assert {(c.run.seed, c.train.g_lr, c.eval.n_samples) for c in configs} == {
        (s, lr, n) for s in (1, 2) for lr in (0.1, 0.2) for n in (16, 32)}
    assert [t.run for t in tasks][:2] == ["task-000", "task-001"]


def test_no_sweep_is_one_task(tmp_path):
    tasks, _ = sweep.build_tasks(_write(tmp_path, TINY), [], [])
    assert [(t.index, t.overrides) for t in tasks] == [(0, {})]


def test_bad_sweep_lists_every_problem(tmp_path):
    cfg = _write(tmp_path, TINY + '[sweep]\n"train.steps" = [0, 5]\n"loss.kind" = ["bce", "nope"]\n'
                 '"bogus.key" = [1]\n')
    with pytest.raises(UserError) as exc:
        sweep.build_tasks(cfg, [], [])
    text = str(exc.value)
    assert "train.steps" in text and "loss.kind" in text and "bogus" in text
    assert "nothing was submitted" in text


def test_profile_validation_lists_all_problems(tmp_path):
    p = _write(tmp_path, '[slurm]\ntime = 0\ncpus = "two"\nmem = "lots"\nwhat = 1\n'
               'extra_sbatch = ["--signal=USR1@9", "account=x"]\n', "p.toml")
    with pytest.raises(UserError) as exc:
        profiles.load(str(p))
    text = str(exc.value)
    for key in ("slurm.time", "slurm.cpus", "slurm.mem", "slurm.what", "--signal", "account=x"):
        assert key in text


def test_shipped_profiles_are_valid():
    dev = profiles.load("dev")
    assert dev.partition == "low" and dev.preempt_partition == "high"
    ex = profiles.load(str(profiles.PROFILE_DIRS[0] / "example.toml"))
    assert ex.sbatch_options() == {"account": "my-project", "qos": "normal", "requeue": True}


@pytest.mark.parametrize("status,signals,at,deadline,trainer_sig,want", [
    (0, [], None, None, None, "finished"),
    (2, [], None, None, None, "bad_input"),
    (3, [], None, None, None, "diverged"),
    (1, [], None, None, None, "crash"),
    (-9, [], None, None, None, "crash"),
    (75, ["SIGUSR2", "SIGTERM"], 1000.0, 5000.0, "SIGUSR2", "preemption"),  # far from limit
    (75, ["SIGUSR2"], 4950.0, 5000.0, "SIGUSR2", "time_limit"),  # near the limit
    (75, ["SIGUSR2"], 1000.0, 5000.0, "SIGUSR2", "requested"),  # scancel --signal by hand
    (75, ["SIGUSR2"], 1000.0, None, "SIGUSR2", "time_limit"),  # no deadline known
    (75, [], None, None, "SIGTERM", "preemption"),  # faults.sigterm_at_step rehearsal
    (75, ["SIGINT"], 1000.0, None, "SIGTERM", "cancelled"),
])
def test_stop_cause(status, signals, at, deadline, trainer_sig, want):
    assert classify(status, signals, at, deadline, 60.0, trainer_sig) == want


def test_crash_streak():
    eps = [{"stop_cause": "preemption", "end_step": 3}, {"stop_cause": "crash", "end_step": 5},
           {"stop_cause": "crash", "end_step": 9}, {"stop_cause": "crash", "end_step": 9}]
    assert _crash_streak(eps) == (2, 3)
    assert _crash_streak(eps[:1]) == (0, 0)


def test_repeated_crash_at_same_step_is_given_up_and_recorded(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "attempts").mkdir(parents=True)
    job = TrainJob(str(run), "exp", 0, {"max_requeues": 3, "max_failures": 2, "signal_delay": 60})

    def fake_trainer(self, run_dir, episode):
        n = episode["n"]
        (run_dir / "attempts" / f"{n:04d}.json").write_text(json.dumps(
            {"attempt": n, "end_step": 12, "reason": "crash", "signal": None}))
        episode["trainer_exit"] = 1
        return 1

    monkeypatch.setattr(TrainJob, "_run_trainer", fake_trainer)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert job()["outcome"] == "interrupted"  # first crash: would be requeued
    with pytest.raises(RunStopped, match="crashed 2 time"):
        job()
    doc = ledger.read_jobs(run)
    assert doc["outcome"] == "gave_up" and [e["stop_cause"] for e in doc["episodes"]] == ["crash"] * 2
    with pytest.raises(RunStopped, match="stopped for good"):
        job()  # never again, even if a scheduler reruns the pickle
    assert len(ledger.read_jobs(run)["episodes"]) == 2


def test_finished_run_is_not_rerun(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "attempts").mkdir(parents=True)
    (run / "attempts" / "0001.json").write_text(json.dumps({"attempt": 1, "reason": "finished",
                                                            "end_step": 20}))
    monkeypatch.setattr(TrainJob, "_run_trainer", lambda *a: pytest.fail("trainer started"))
    out = TrainJob(str(run), "exp", 0, {"max_requeues": 1, "max_failures": 1})()
    assert out == {"run": str(run), "outcome": "finished", "rerun": False}


def test_dry_run_prints_script_and_submits_nothing(tmp_path, capsys):
    cfg = _write(tmp_path, TINY + '[sweep]\n"run.seed" = [1, 2, 3]\n')
    rc = main(["submit", str(cfg), "--executor", "slurm", "--profile", "dev", "--runs-root",
               str(tmp_path / "runs"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "#SBATCH --array=0-2%3" in out and "#SBATCH --requeue" in out
    assert "#SBATCH --signal=USR2@60" in out and "#SBATCH --partition=low" in out
    assert "task-002" in out and "run.seed=3" in out
    assert not (tmp_path / "runs").exists()


def test_bad_config_is_refused_before_submitting(tmp_path, capsys):
    cfg = _write(tmp_path, '[train]\nsteps = -1\nbatch_size = 1\n[sweep]\n"loss.kind" = ["x"]\n')
    rc = main(["submit", str(cfg), "--executor", "local", "--runs-root", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "train.steps" in err and "train.batch_size" in err and "loss.kind" in err
    assert not (tmp_path / "r").exists()


def test_bad_profile_is_refused(tmp_path, capsys):
    prof = _write(tmp_path, "[slurm]\ntime = 1\nsignal_delay = 300\n", "p.toml")
    rc = main(["submit", str(_write(tmp_path, TINY)), "--executor", "slurm", "--profile",
               str(prof), "--runs-root", str(tmp_path / "r"), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2
    assert ("slurm.signal_delay: got 300 s with time = 1 min; the warning must leave at least "
            "60 s of run time: raise time to at least 6") in err


def test_profile_names_the_largest_signal_delay_that_fits(tmp_path):
    prof = _write(tmp_path, "[slurm]\ntime = 5\nsignal_delay = 250\n", "p.toml")
    with pytest.raises(UserError, match="lower signal_delay to at most 240 or raise time to "
                                        "at least 6"):
        profiles.load(str(prof))
    prof.write_text("[slurm]\ntime = 5\nsignal_delay = 240\n")
    assert profiles.load(str(prof)).signal_delay == 240


def test_status_of_unknown_path_is_a_user_error(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "neither an experiment" in capsys.readouterr().err


def test_submitit_sbatch_renderer_is_what_we_call(tmp_path, monkeypatch):
    """`--dry-run` renders the script with submitit's private `_make_sbatch_string` (submitit
    has no public way without srun on PATH): it must print exactly what SlurmExecutor itself
    would submit for the same parameters. Fails when a submitit release changes either."""
    import submitit
    from submitit.slurm import slurm as submitit_slurm

    from jobs.schedulers.slurm import python_for, sbatch_script, slurm_parameters

    profile = profiles.load("dev")
    folder = tmp_path / ".submitit"
    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    ex = submitit.SlurmExecutor(folder=folder / "%j", python=python_for(profile))
    ex.update_parameters(**slurm_parameters(profile, "qgan-x"))
    ex.parameters["map_count"] = 3  # what submit_array sets
    assert (ex._make_submission_file_text(ex._submitit_command_str, "uid")
            == sbatch_script(profile, folder, "qgan-x", 3))


def test_schedulers_by_name():
    from jobs import schedulers

    assert schedulers.NAMES == ("local", "slurm")
    assert [schedulers.get(n).name for n in ("local", "slurm", "none", "pbs", None, 3)] == [
        "local", "slurm", "none", "none", "none", "none"]
    assert schedulers.get("pbs").cancel_jobs({}, {"task-000": "7"}) == [
        "task-000: executor 'none' has no jobs to cancel"]


def _experiment(tmp_path: Path) -> Path:
    """A submitted-looking experiment with one run that never started (nothing runs)."""
    from qgan.config import config_from_dict, dumps, read_toml

    exp = tmp_path / "exp"
    (exp / "task-000").mkdir(parents=True)
    cfg = config_from_dict(read_toml(_write(tmp_path, TINY)), "tiny")
    (exp / "task-000" / "config.toml").write_text(dumps(cfg))
    (exp / "experiment.json").write_text(json.dumps({
        "name": "exp", "executor": "local", "job_ids": [],
        "tasks": [{"index": 0, "run": "task-000", "overrides": {"run.seed": 1}, "job_id": None}]}))
    return exp


@pytest.mark.parametrize("argv,phrase", [
    (["resubmit", "{exp}", "--state", "done"],
     "--state 'done': expected a comma-separated subset of cancelled, failed, pruned, unfinished"),
    (["resubmit", "{exp}", "--runs", "task-009"], "--runs 'task-009': task-009 not in this"),
    (["resubmit", "{exp}", "--parallel", "0"], "--parallel 0: must be at least 1"),
    (["extend", "{exp}"], "nothing to extend: pass --set KEY=VALUE"),
    (["extend", "{exp}", "--set", "train.steps=-1"], "train.steps: got -1"),
    (["extend", "{exp}", "--sweep", "run.seed"], "--sweep 'run.seed': expected KEY=V1,V2"),
    (["submit", "{cfg}", "--executor", "local", "--parallel", "0"],
     "--parallel 0: must be at least 1"),
])
def test_sweep_operations_refuse_bad_input_in_one_line(tmp_path, capsys, argv, phrase):
    exp = _experiment(tmp_path)
    before = (exp / "experiment.json").read_text()
    rc = main([a.format(exp=exp, cfg=_write(tmp_path, TINY)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and phrase in err, err
    assert (exp / "experiment.json").read_text() == before  # nothing changed or submitted
    assert sorted(p.name for p in exp.iterdir()) == ["experiment.json", "task-000"]


def test_status_reads_each_runs_parquet_once_until_its_parts_change(tmp_path, monkeypatch):
    """`qgan status` keeps what it decoded from a run's metrics in the run's own
    .status-cache.json under the parts' signature (names, sizes, mtimes, ctimes, inodes): a
    refresh decodes only runs whose parts changed; a damaged, forged or foreign cache (one
    copied from another run, one planted in the experiment folder) is ignored."""
    import shutil

    from jobs import progress
    from qgan import schema
    from synthetic import Plan, write_experiment

    root = write_experiment(tmp_path / "exp", [Plan(name=f"r{i}", steps=100, seed=i,
                                                    samples=False) for i in range(3)])
    exp = json.loads((root / "experiment.json").read_text())
    runs = [t["run"] for t in exp["tasks"]]
    decoded: list[str] = []
    real = progress._steps_info
    monkeypatch.setattr(progress, "_steps_info",
                        lambda d: decoded.append(d.name) or real(d))

    def rows() -> list[dict]:
        return [{k: v for k, v in r.items() if k != "checkpoint_age_s"}
                for r in progress.experiment_rows(root, exp, runs)]

    def cache(run: str):
        return root / run / schema.STATUS_CACHE_FILE

    first = rows()
    assert sorted(decoded) == runs and all(cache(r).is_file() for r in runs)
    assert not (root / schema.STATUS_CACHE_FILE).exists()  # nothing outside the runs
    assert [r["step"] for r in first] == [100, 100, 100]
    decoded.clear()
    assert rows() == first and decoded == []  # nothing changed: nothing decoded
    # a new part in one run: only that run is read again, and its new rows count
    part = next((root / runs[1] / "metrics" / "steps").rglob("*.parquet"))
    shutil.copy(part, part.with_name("part-99999.parquet"))
    again = rows()
    assert decoded == [runs[1]] and again[1]["metric_rows"] == 2 * first[1]["metric_rows"]
    # forged entries (wrong types) and a damaged file are never trusted
    doc = json.loads(cache(runs[0]).read_text())
    doc["steps"]["metrics_step"] = "10**9"
    cache(runs[0]).write_text(json.dumps(doc))
    decoded.clear()
    assert rows() == again and decoded == [runs[0]]
    cache(runs[2]).write_text("{not json")
    # a cache copied from another run names another folder: ignored
    shutil.copy(cache(runs[1]), cache(runs[0]))
    decoded.clear()
    assert rows() == again and sorted(decoded) == [runs[0], runs[2]]


def test_a_controllers_identity_is_taken_after_exec():
    """Right after fork /proc shows the parent's command line; an identity recorded then never
    matches the running controller again and `qgan status` showed it ENDED while it ran."""
    import subprocess
    import sys

    from jobs.schedulers.local import is_our_process, settled_identity

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "qgan-identity-marker"])
    try:
        who = settled_identity(proc.pid, "qgan-identity-marker")
        assert who is not None and who["cmdline"].endswith("qgan-identity-marker")
        assert is_our_process(str(proc.pid), who)
    finally:
        proc.kill()
        proc.wait()
    assert settled_identity(proc.pid, "qgan-identity-marker") is None  # gone: no identity


def test_a_local_experiment_records_no_profile_without_a_warning():
    """`qgan submit --executor local` writes "profile": null (it needs none); the record's
    schema takes it, so status and the postmortem do not warn on every read (they did)."""
    from qgan import records

    doc, problems = records.check({"name": "x", "profile": None}, records.SPECS["experiment"],
                                  "experiment.json")
    assert (doc, problems) == ({"name": "x", "profile": None}, [])
    doc, problems = records.check({"name": "x", "profile": 3}, records.SPECS["experiment"],
                                  "experiment.json")
    assert (doc, problems) == ({"name": "x"}, [
        "experiment.json: profile is an integer (3), expected an object or null"])


def test_status_takes_state_and_step_from_one_read_of_the_attempts(tmp_path, monkeypatch):
    """A trainer that closes its attempt while `qgan status` reads the run (a real race,
    seen in CI: 'FINISHED' at step 30 of 40): the state and the step come from the same read
    of the attempt records, so the row says either 'still running at 100' or 'finished at
    120', never 'finished at 100'."""
    from jobs import progress
    from synthetic import Plan, write_experiment

    root = write_experiment(tmp_path / "exp", [Plan(name="r0", steps=100, seed=1,
                                                    samples=False)])
    run = root / "task-000"
    last = max((run / "attempts").glob("*.json"))
    record = json.loads(last.read_text())
    record.update(end_time=None, end_step=None, reason=None)  # the trainer is still at it
    last.write_text(json.dumps(record))
    real = ledger.trainer_attempts
    reads: list[int] = []

    def read_then_trainer_closes(run_dir):
        out = real(run_dir)
        if not reads:  # right after status's first read, the trainer ends the run
            last.write_text(json.dumps({**record, "end_time": record["start_time"] + 60,
                                        "end_step": 120, "reason": "finished"}))
        reads.append(1)
        return out

    monkeypatch.setattr(ledger, "trainer_attempts", read_then_trainer_closes)
    row = progress.run_row(run, None, history=[])
    assert (row["state"], row["step"]) == ("RUNNING?", 100)
    again = progress.run_row(run, None, history=[])
    assert (again["state"], again["step"]) == ("FINISHED", 120)


def test_watch_waits_for_the_ledger_to_record_the_last_episode(tmp_path, monkeypatch, capsys):
    """`qgan status --watch` (and so `qgan submit --wait`) returns when every run has ended
    and the job layer has recorded each run's last episode in jobs.json, not at the
    trainer's exit, seconds before; a ledger that never records it (a job killed outright)
    is waited for only LEDGER_GRACE_S."""
    import threading
    import time

    from jobs.commands import status
    from synthetic import Plan, write_experiment

    root = write_experiment(tmp_path / "exp", [Plan(steps=100, seed=1, samples=False)])
    jobs_file = root / "task-000" / "jobs.json"
    doc = json.loads(jobs_file.read_text())
    assert doc["episodes"][-1]["end_time"] is not None
    ended = doc["episodes"][-1]["end_time"]
    doc["episodes"][-1]["end_time"] = None  # the trainer has exited; its job has not yet
    jobs_file.write_text(json.dumps(doc))
    written: list[float] = []

    def job_layer_records_the_end():
        time.sleep(0.6)
        doc["episodes"][-1]["end_time"] = ended
        jobs_file.write_text(json.dumps(doc))
        written.append(time.monotonic())

    threading.Thread(target=job_layer_records_the_end, daemon=True).start()
    assert status.watch(root, interval=0.05) == 0
    assert written and time.monotonic() >= written[0]
    doc["episodes"][-1]["end_time"] = None  # never recorded: the grace bounds the wait
    jobs_file.write_text(json.dumps(doc))
    monkeypatch.setattr(status, "LEDGER_GRACE_S", 0.3)
    started = time.monotonic()
    assert status.watch(root, interval=0.05) == 0
    assert 0.3 < time.monotonic() - started < 5
