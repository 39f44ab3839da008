"""Shared fixtures. `slurm_cluster` starts the development SLURM cluster (slurm/dev-cluster/up).

A test that needs SLURM fails in CI (CI=true) when the cluster cannot be started, and is skipped
elsewhere: a missing cluster must never pass silently in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UP = ROOT / "slurm" / "dev-cluster" / "up"
DOWN = ROOT / "slurm" / "dev-cluster" / "down"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"SLURM development cluster unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"SLURM development cluster unavailable: {reason}")


def _wait_empty_queue(env: dict[str, str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                              text=True).stdout.strip():
            return
        time.sleep(0.5)
    raise AssertionError("jobs left by an earlier session did not leave the dev cluster's queue")


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Start (or reuse) the development cluster; yield the environment pointing at it."""
    if shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists():
        _unavailable("slurm-wlm is not installed (apt-get install slurm-wlm slurmdbd munge "
                     "mariadb-server)")
    if os.geteuid() != 0:
        _unavailable("slurm/dev-cluster/up needs root")
    # A cluster that was running before the tests (a developer's) is left running; one the
    # tests started is stopped when they end (QGAN_KEEP_CLUSTER=1 keeps it for the next run).
    already = subprocess.run(["pgrep", "-f", "qgan-slurm"], capture_output=True).returncode == 0
    try:
        proc = subprocess.run([str(UP)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        _unavailable("slurm/dev-cluster/up did not finish within 300 s")
    if proc.returncode != 0:
        _unavailable(f"slurm/dev-cluster/up exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    conf = line.split("=", 1)[1]
    env = dict(os.environ, SLURM_CONF=conf)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    os.environ["SLURM_CONF"] = conf  # the jobs layer under test calls sbatch/sacct in-process
    if not already:
        # slurmctld recovers its saved queue on start: jobs an interrupted earlier session left
        # there would take the CPUs the scenarios count on. Ours alone use this cluster.
        leftover = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                                  text=True).stdout.split()
        if leftover:
            subprocess.run(["scancel", *leftover], env=env, capture_output=True)
            _wait_empty_queue(env)
    yield env
    if not already and not os.environ.get("QGAN_KEEP_CLUSTER"):
        subprocess.run([str(DOWN)], capture_output=True, timeout=180)


@contextlib.contextmanager
def tmpfs_at(mount_point: Path, size: str):
    """Mount a real tmpfs of `size` (e.g. "2m") at `mount_point`; always unmounted after.
    Mounting needs root: fails in CI without it, skips elsewhere."""
    mount_point.mkdir(exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        _unavailable_fs("mounting a tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
    if proc.returncode != 0:
        _unavailable_fs(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)])


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 2 MiB tmpfs to fill up (disk-full tests)."""
    with tmpfs_at(tmp_path / "small", "2m") as mount_point:
        yield mount_point


def _unavailable_fs(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"small filesystem unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# ---- helpers for the jobs scenario tests (test_jobs_local.py, test_jobs_slurm.py) -------------
SCENARIO_CONFIG = """
[run]
seed = 11
[generator]
backend = "compiled"
cutoff = 3
[loss]
n_critic = 1
[data]
n_train = 64
n_holdout = 16
[train]
steps = {steps}
batch_size = 4
log_every = 50
[eval]
every_steps = 25
n_samples = 16
save_samples = 0
[checkpoint]
every_steps = 10
[faults]
step_seconds = {step_seconds}
[monitor]
stop_on_critical = false
collapse_action = "none"
[sweep]
"run.seed" = [11, 12, 13]
"""


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5, tick=None, explain=None):
    """Poll until predicate() is truthy; `tick()` runs every poll (e.g. release held jobs);
    `explain()` says, on timeout, what the state was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if tick is not None:
            tick()
        time.sleep(poll)
    detail = f": {explain()}" if explain is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


def steps_by_step(run_dir: Path) -> dict[int, tuple]:
    """{step: the numbers that define the trajectory} from the steps table, latest attempt."""
    import pyarrow.dataset as ds

    cols = ["step", "revision", "g_loss", "d_loss", "g_grad_norm", "d_grad_norm",
            "g_param_norm", "d_param_norm"]
    t = ds.dataset(run_dir / "metrics" / "steps", format="parquet",
                   partitioning="hive").to_table(columns=cols + ["attempt"]).to_pylist()
    out: dict[int, tuple] = {}
    for row in sorted(t, key=lambda r: (r["step"], r["attempt"], r["revision"])):
        out[row["step"]] = tuple(row[c] for c in cols[2:])
    return out


def step_row_count(run_dir: Path) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(run_dir / "metrics" / "steps", format="parquet",
                      partitioning="hive").count_rows()


def reference_runs(run_dirs: list[Path], out_root: Path) -> dict[str, Path]:
    """Uninterrupted `qgan train` runs of the same configs, run side by side."""
    import sys

    procs, refs = [], {}
    for run in run_dirs:
        ref = out_root / f"ref-{run.name}"
        refs[run.name] = ref
        # The rehearsal's per-step sleep does not change the numbers; the reference skips it.
        procs.append(subprocess.Popen([sys.executable, "-m", "jobs.cli", "train",
                                       str(run / "config.toml"), "--run-dir", str(ref),
                                       "--set", "faults.step_seconds=0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        assert p.wait(timeout=600) == 0
    return refs


def assert_causes_agree(exp_dir: Path, qgan) -> dict[str, list[str]]:
    """`qgan status`, `qgan diagnose --json` and the report say the same about why each
    attempt of each run stopped: what the job ledger (jobs.json) recorded. `qgan` runs the CLI
    (args...) -> CompletedProcess. Returns {run: causes of its attempts}."""
    import json
    import re

    from jobs import ledger

    rows = {r["run"]: r for r in json.loads(qgan("status", str(exp_dir), "--json").stdout)}
    diag = json.loads(qgan("diagnose", str(exp_dir), "--json").stdout)
    out = {}
    for run in diag["runs"]:
        name = Path(run["path"]).name
        episodes = ledger.read_jobs(exp_dir / name)["episodes"]
        recorded: dict[int, str] = {}
        for e in episodes:
            if e.get("trainer_attempt") is not None and e.get("stop_cause"):
                recorded.setdefault(e["trainer_attempt"], e["stop_cause"])
        causes = {a["attempt"]: a["cause"] for a in run["attempts"]}
        assert {a: causes[a] for a in recorded} == recorded, (name, causes, recorded)
        listed = [causes[a] for a in sorted(causes)]
        # an episode whose callable was killed before it recorded a cause leaves it to the
        # trainer's own record; status counts such preemptions too (from sacct on SLURM)
        assert (sum(c == "preemption" for c in recorded.values()) <= listed.count("preemption")
                <= rows[name]["preemptions"]), (listed, recorded, rows[name])
        assert listed.count("time_limit") == rows[name]["time_limits"], (listed, rows[name])
        out[name] = listed
    report = Path(qgan("report", str(exp_dir)).stdout.strip().splitlines()[-1])
    html = report.read_text()
    for cause in ("preemption", "time_limit"):
        shown = len(re.findall(rf"<td>{cause}</td>", html))
        assert shown == sum(c.count(cause) for c in out.values()), (cause, shown, out)
    return out


def progressed(run: Path, min_steps: int = 10) -> bool:
    """The run's current episode has a trainer that trained `min_steps` past its start.

    The trainer attempt is matched to the episode by start time, not by counting: an episode
    whose job was killed before its trainer started leaves no attempt behind."""
    from jobs import ledger

    eps = ledger.read_jobs(run)["episodes"]
    if not eps or eps[-1]["stop_cause"]:
        return False
    mine = [a for a in ledger.trainer_attempts(run)
            if a.get("start_time", 0) >= eps[-1]["start_time"] and a.get("end_time") is None]
    if not mine or mine[-1].get("start_step") is None:
        return False
    start = mine[-1]["start_step"] - 1
    return (ledger.newest_checkpoint_step(run) or 0) >= start + min_steps
