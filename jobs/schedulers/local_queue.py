"""The local queue: one detached process per local submission that starts its runs on this
machine at most `parallel` at a time, each under its own submitit controller (the pid is the
job id), and records each start in experiment.json under the experiment's lock.

Queued runs have no job id yet: `qgan status` shows them PENDING while the queue process
lives. A run cancelled while queued, or submitted again since, is skipped. A requeue (a
preemption, a time limit) happens inside the run's controller and keeps its slot. When the last
run ends the queue writes `<experiment>/report.html` (jobs/report_job.py), as the dependent
report job does on SLURM.

    python -m jobs.schedulers.local_queue SPEC.json    (started by `LocalScheduler.submit`,
                                                       through `local.start_queue`)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from jobs import ledger, report_job
from jobs.schedulers.local import CONTROLLER_MODULE, LocalScheduler, settled_identity
from jobs.task import TrainJob
from qgan.sanitise import install_safe_logging

log = logging.getLogger(__name__)

POLL_S = 0.5


class Queue:
    def __init__(self, spec: dict):
        self.spec = spec
        self.exp_dir = Path(spec["exp_dir"])
        self.pending = list(spec["runs"])  # [{"run", "index"}] in task order
        self.running: dict[str, object] = {}
        self.ex = LocalScheduler().executor(self.exp_dir / ledger.SUBMITIT_DIR,
                                          spec["timeout_min"], spec["signal_delay"])

    def _still_ours(self, exp: dict, run: str) -> bool:
        """The run's newest submission is the one this queue serves, and is not cancelled."""
        jobs = ledger.job_history(exp).get(run, [])
        newest = jobs[-1] if jobs else {}
        return (newest.get("job_id") is None and newest.get("submitted") == self.spec["submitted"]
                and run not in ledger.cancelled_runs(exp))

    def start_one(self, item: dict) -> None:
        run = item["run"]

        def change(exp: dict) -> None:
            if not self._still_ours(exp, run):
                log.info("%s: cancelled or submitted again since; not started", run)
                return
            job = self.ex.submit(TrainJob(str(self.exp_dir / run), self.spec["name"],
                                          int(item["index"]), self.spec["policy"],
                                          self.spec["submitted"], item.get("overrides")))
            self.running[run] = job
            ledger.record_job(exp, run, job.job_id,
                              {"process": settled_identity(int(job.job_id),
                                                           CONTROLLER_MODULE)})
            log.info("%s: started (job %s)", run, job.job_id)

        ledger.update_experiment(self.exp_dir, change)

    def run(self) -> None:
        parallel = max(1, int(self.spec["parallel"]))
        while self.pending or self.running:
            for run, job in list(self.running.items()):
                if job.done():  # the controller exited (after any requeues)
                    del self.running[run]
            while self.pending and len(self.running) < parallel:
                self.start_one(self.pending.pop(0))
            time.sleep(POLL_S)
        log.info("queue %s: every run has ended", self.spec["submitted"])
        if self.spec.get("report"):
            report_job.write(self.exp_dir, self.exp_dir / ledger.SUBMITIT_DIR / "report.log")


def main(argv: list[str]) -> int:
    install_safe_logging(logging.INFO, "%(asctime)s queue %(process)d %(levelname)s: "
                         "%(message)s", "%H:%M:%S")
    spec = json.loads(Path(argv[0]).read_text())
    Queue(spec).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
