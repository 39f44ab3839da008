"""submitit executors for `qgan submit`: `local` (the embedded default) and `slurm` (a profile).

Arrays: one submitit array per chunk of at most MaxArraySize tasks (array indices start at 0
in each chunk). Local jobs run at once, one controller process each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator

from jobs import scheduler
from jobs.errors import UserError
from jobs.profiles import Profile

log = logging.getLogger(__name__)

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # the local executor has no time limit worth the name


def default_executor() -> str:
    return "slurm" if scheduler.have("sbatch") else "local"


def slurm_parameters(profile: Profile, job_name: str) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for a profile."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": profile.time,
        "cpus_per_task": profile.cpus,
        "mem": profile.mem,
        "signal_delay_s": profile.signal_delay,
        "array_parallelism": profile.array_parallelism,
        "stderr_to_stdout": True,
        "additional_parameters": profile.sbatch_options(),
    }
    if profile.partition:
        params["partition"] = profile.partition
    if profile.gpus:
        params["gpus_per_node"] = profile.gpus
    if profile.setup:
        params["setup"] = list(profile.setup)
    return params


def python_for(profile: Profile | None) -> str:
    return (profile.python if profile and profile.python else sys.executable)


def sbatch_script(profile: Profile, folder: Path, job_name: str, n_tasks: int) -> str:
    """The sbatch script submitit would write, without needing SLURM installed (--dry-run)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = " ".join([shlex.quote(python_for(profile)), "-u -m submitit.core._submit",
                        shlex.quote(str(folder / "%j"))])
    params = slurm_parameters(profile, job_name)
    return _make_sbatch_string(command=command, folder=folder / "%j",
                               map_count=n_tasks if n_tasks > 1 else None, **params)


def make_executor(kind: str, folder: Path, profile: Profile | None, job_name: str):
    import submitit

    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=10**6)
        timeout = profile.time if profile and profile.source != "(defaults)" else LOCAL_TIMEOUT_MIN
        ex.update_parameters(timeout_min=timeout,
                             signal_delay_s=profile.signal_delay if profile else 120,
                             stderr_to_stdout=True)
        return ex
    if kind == "slurm":
        if not scheduler.have("sbatch"):
            raise UserError("--executor slurm: sbatch is not on PATH (is this a SLURM login "
                            "node? for the development cluster: eval \"$(slurm/dev-cluster/up)\")")
        assert profile is not None
        ex = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=10**6,
                                    python=python_for(profile))
        ex.update_parameters(**slurm_parameters(profile, job_name))
        return ex
    raise UserError(f"--executor {kind!r}: expected local or slurm")


@contextlib.contextmanager
def detached_stdio(path: Path) -> Iterator[None]:
    """Point fds 1 and 2 at a file while local controllers are started: they inherit them,
    and a caller reading our stdout through a pipe must not wait for the runs to end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def submit(kind: str, folder: Path, profile: Profile | None, job_name: str,
           callables: list) -> list[str]:
    """Submit one job per callable (as arrays on SLURM); return the job ids in task order."""
    ex = make_executor(kind, folder, profile, job_name)
    if kind == "local":
        ids = []
        with detached_stdio(folder / "controllers.log"):
            for fn in callables:
                ids.append(ex.submit(fn).job_id)
        return ids
    chunk = scheduler.max_array_size() or 1001
    ids: list[str] = []
    for start in range(0, len(callables), chunk):
        part = callables[start:start + chunk]
        if len(part) == 1:
            ids.append(ex.submit(part[0]).job_id)
        else:
            ids.extend(job.job_id for job in ex.submit_array(part))
    return ids
