"""Pruning (`qgan submit --prune`): stop a run whose live verdict is terminal.

Where it runs: in the job's own callable (jobs/task.py), as a thread beside the trainer
subprocess it already supervises, on the node that runs the job. Each time the run's evals
table gains a part, the thread diagnoses the run (analysis/live.py: the postmortem's rules,
with the end-of-run rules held back and a grace for the noisy start) and, on a terminal
verdict (diverged, leaking with no recovery, never fit), asks the trainer to stop through the
path every stop takes: a signal (SIGUSR1) that the trainer turns into a checkpoint and exit 75.
The callable then records the stop cause `pruned` with the verdict, the finding and the step
in `<run>/jobs.json` and does not requeue; the job ends, so its slot goes to the next queued
task by the scheduler's own means (the local queue's `--parallel`, SLURM's array `%N`).

Why there and not elsewhere: the callable already runs wherever the run runs (locally and on
SLURM alike), already reads the run directory and signals the trainer, and ends the job; a
controller-side watcher would need a long-lived process on the login node and `scancel`
(which the job layer reads as a cancel), and a watcher job would hold a slot of its own. The
trainer itself may not import analysis (layers point down), so it cannot apply the rules.

Stopped runs keep their checkpoints: `qgan resubmit --include-pruned` resumes them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from qgan import schema

log = logging.getLogger(__name__)

POLL_S = 2.0


def enabled(policy: dict[str, Any]) -> bool:
    return bool(policy.get("prune"))


def _evals_signature(run_dir: Path) -> tuple:
    out = []
    for attempt, part in schema.metric_parts(run_dir, "evals"):
        try:
            st = part.lstat()
        except OSError:
            continue
        out.append((attempt, part.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def judge(run_dir: Path) -> dict[str, Any] | None:
    """The run's live verdict as the pruner sees it: a decision dict when it is terminal,
    else None. The run is named and keyed as the report names it (its experiment's other
    runs decide whether run.json names are unique), so the report reuses the cache."""
    from analysis.live import experiment_verdicts  # lazy: the analysis layer only with --prune
    from analysis.rundirs import find_runs  # lazy: as above
    from jobs import ledger, verdicts  # lazy: as above

    exp = ledger.read_experiment(run_dir.parent) or {}
    siblings = find_runs(run_dir.parent) if exp else [run_dir]
    v = experiment_verdicts([run_dir], {run_dir.name: True}, verdicts.overrides(exp),
                            n_workers=1, name_dirs=siblings)[run_dir.name]
    if not v.terminal:
        log.debug("prune watch %s: %s (%s)", run_dir, v.verdict, v.reason)
        return None
    return {"verdict": v.verdict, "reason": v.reason, "step": v.step, "evals": v.evals,
            "finding": v.worst, "time": time.time()}


class Watcher(threading.Thread):
    """Polls the run's evals parts; on a new one, judges the run; on a terminal verdict,
    stores the decision in `episode["pruned"]` and calls `request_stop` once."""

    def __init__(self, run_dir: Path, episode: dict, request_stop: Callable[[], None],
                 poll_s: float = POLL_S) -> None:
        super().__init__(name=f"prune-{run_dir.name}", daemon=True)
        self.run_dir, self.episode, self.request_stop = run_dir, episode, request_stop
        self.poll_s = poll_s
        self._done = threading.Event()

    def run(self) -> None:
        seen: tuple = _evals_signature(self.run_dir)
        while not self._done.wait(self.poll_s):
            sig = _evals_signature(self.run_dir)
            if sig == seen:
                continue
            seen = sig
            try:
                decision = judge(self.run_dir)
            except Exception:  # noqa: BLE001 - a broken judge must never stop a run
                log.exception("prune watch of %s failed; the run goes on", self.run_dir)
                continue
            if decision is not None:
                log.warning("pruning %s at step %s: %s (%s)", self.run_dir, decision["step"],
                            decision["verdict"], decision["reason"])
                self.episode["pruned"] = decision
                self.request_stop()
                return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


def start(run_dir: Path, policy: dict[str, Any], episode: dict,
          request_stop: Callable[[], None]) -> Watcher | None:
    """A running watcher when the submission asked for pruning, else None."""
    if not enabled(policy):
        return None
    w = Watcher(run_dir, episode, request_stop, float(policy.get("prune_poll_s", POLL_S)))
    w.start()
    return w


def reason(decision: dict[str, Any]) -> str:
    """The ledger's one-line reason for a pruned run."""
    f = decision.get("finding") or {}
    return (f"pruned at step {decision.get('step')} ({decision.get('evals')} evals): "
            f"{decision.get('verdict')}: {decision.get('reason')}"
            + (f" [{f.get('kind')} {f.get('steps')}]" if f else ""))
