"""Pruning (`qgan submit --prune`): stop a run whose live verdict is terminal.

Where it runs: in the job's own callable (jobs/task.py), as a thread beside the trainer
subprocess it already supervises, on the node that runs the job (locally and on SLURM alike:
the batch step runs the callable, the callable runs the trainer and this thread). On a
terminal verdict (leaking with no recovery, deep enough: `prune_leak_trace`; never fit,
opt-in, see below) the thread asks the
trainer to stop through the path every stop takes: a signal (SIGUSR1) that the trainer turns
into a checkpoint and exit 75. The callable then records the stop cause `pruned` with the
verdict, the finding and the step in `<run>/jobs.json` and does not requeue; the job ends, so
its slot goes to the next queued task by the scheduler's own means (the local queue's
`--parallel`, SLURM's array `%N`). A diverged run needs no pruner: the trainer's guard stops
it (exit 3, stop cause `diverged`).

Why there and not elsewhere: the callable already runs wherever the run runs, already reads
the run directory and signals the trainer, and ends the job. A controller-side watcher would
need a long-lived process on the login node (`qgan submit` returns at once on SLURM) and
`scancel`, which the job layer reads as a cancel and which skips the trainer's checkpoint; a
watcher job would hold a slot (and its CPUs) of its own for the whole sweep. The trainer
itself may not import analysis (layers point down), so it cannot apply the rules.

What it costs: the thread is asleep between polls (every `prune_poll_s`, 2 s: one listdir
and an lstat per evals part). It reads each new evals part once (a part is never rewritten
under its name), and runs the postmortem's rules (analysis/live.py, a full diagnosis of the
run, ~0.2 s of CPU at 600 steps and growing with the run) only when all of these hold:
  1. a new eval step arrived since the last judgement (at most one judgement per eval);
  2. the grace has passed (`live_grace_evals` evals and `live_grace_frac` of train.steps;
     for never fit also `prune_never_fit_frac` of train.steps);
  3. a terminal verdict is possible on the evals alone: some eval among the newest
     `leak_end_evals` has a Fock trace below `prune_leak_trace` (the terminal leak rule needs
     the median of exactly those below it), or never-fit pruning is on and the watched distance
     has not improved by `never_fit_rel` on the first eval (or no mode is covered after the
     first eval), or an eval was rewritten by a rollback (then the cheap view is not trusted).
These are necessary conditions of the rules, so the gate never hides a terminal verdict; a
healthy run inside its cutoff is never diagnosed by its watcher.

Never fit (`qgan submit --prune-never-fit`, or the threshold `prune_never_fit` = 1): a run
whose live verdict is never_fit is stopped only after `prune_never_fit_frac` (a quarter) of
train.steps, and only when another run of the same experiment did clearly better at equal
steps: by this run's newest step, that run's best value of the watched metric beats this
run's best by `never_fit_rel` (10 %), that run had itself improved by `never_fit_rel` on its
first eval, its newest eval up to that step is inside the cutoff (Fock trace at least
`leak_trace_error`), and the job layer has not stopped it (failed, diverged, pruned,
cancelled). The run to keep is the best trustworthy run (analysis/keep.py): a never-fit run is
stopped only while a trustworthy run is clearly ahead of it at the same budget; in a sweep
where every run is weak it goes on. Measured (benchmarks/prune_sweep.py, BENCHMARKS.md "Live
postmortem"): without a sibling, never-fit pruning pruned the run that was kept; comparing
with a sibling's best over its whole run, it pruned a healthy run that had improved 5 % by
step 160 (another had finished at a better W1).

Stopped runs keep their checkpoints: `qgan resubmit --include-pruned` resumes them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

from qgan import saferead, schema

log = logging.getLogger(__name__)

POLL_S = 2.0
_COLUMNS = ("step", "revision", "fock_trace_min", "modes_covered", "n_modes", "w1_mean",
            "sliced_w1", "sliced_w1_floor")
_STOPPED = ("diverged", "gave_up", "bad_input", "pruned", "cancelled")  # not trustworthy


def enabled(policy: dict[str, Any]) -> bool:
    return bool(policy.get("prune"))


class EvalView:
    """The evals table of one run as the watcher needs it, read incrementally: each part once
    (a part whose size or mtime changed is read again, one that went away is dropped). A part
    that cannot be read makes the view `unreadable` (the full diagnosis then decides)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._parts: dict[tuple[int, str], tuple[tuple[int, int], list[dict]]] = {}
        self.unreadable = False
        self.reads = 0  # parts read, for the tests

    def refresh(self) -> bool:
        """Read what changed; True when something did."""
        seen, changed, unreadable = set(), False, False
        for attempt, part in schema.metric_parts(self.run_dir, "evals"):
            key = (attempt, part.name)
            seen.add(key)
            try:
                st = part.lstat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            old = self._parts.get(key)
            if old is not None and old[0] == sig:
                continue
            changed = True
            try:
                table = saferead.read_parquet(part, "part", root=self.run_dir)
                self.reads += 1
                cols = {c: table.column(c).to_pylist() for c in _COLUMNS
                        if c in table.column_names}
                n = table.num_rows
                rows = [{c: v[i] for c, v in cols.items()} for i in range(n)]
                self._parts[key] = (sig, rows)
            except Exception as exc:  # noqa: BLE001 - a damaged part: the diagnosis says so
                log.debug("prune watch: %s unreadable: %s", part, exc)
                self._parts.pop(key, None)
                unreadable = True
        for key in set(self._parts) - seen:
            del self._parts[key]
            changed = True
        self.unreadable = unreadable
        return changed

    def rows(self) -> list[dict]:
        """Every row (superseded ones too), by step."""
        out = [r for _, (_, rows) in sorted(self._parts.items()) for r in rows]
        return sorted((r for r in out if isinstance(r.get("step"), int)),
                      key=lambda r: r["step"])

    def steps(self) -> list[int]:
        return sorted({r["step"] for r in self.rows()})

    def rewritten(self) -> bool:
        rows = self.rows()
        return any((r.get("revision") or 0) > 0 for r in rows) or \
            len({r["step"] for r in rows}) < len(rows)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def distance(rows: list[dict], metric: str) -> list[float | None]:
    """The per-eval distance the quality rules read (analysis/headline.quality_series)."""
    if metric == "sliced_w1":
        out = [None if _num(r.get("sliced_w1")) is None or _num(r.get("sliced_w1_floor")) is None
               else r["sliced_w1"] - r["sliced_w1_floor"] for r in rows]
        if any(v is not None for v in out):
            return out
    return [_num(r.get("w1_mean")) for r in rows]


def flat(values: list[float | None], rel: float) -> bool:
    """The distance never improved by `rel` on its first value (analysis/quality.py)."""
    v = [x for x in values if x is not None]
    return bool(v) and min(v) >= v[0] * (1 - rel)


def no_mode_covered(rows: list[dict]) -> bool:
    mixture = any((_num(r.get("n_modes")) or 0) > 0 for r in rows)
    covered = [_num(r.get("modes_covered")) or 0 for r in rows]
    return mixture and len(covered) > 1 and all(c == 0 for c in covered[1:])


def read_config(run_dir: Path) -> dict[str, Any]:
    try:
        return schema.dotted_keys(tomllib.loads(
            saferead.read_text(run_dir / schema.CONFIG_FILE, "config", root=run_dir)))
    except Exception:  # noqa: BLE001 - unreadable: the defaults (the diagnosis says why)
        return {}


class Gate:
    """Whether the watcher should run the rules now (the module docstring's three conditions).
    `never_fit`: never-fit pruning is on."""

    def __init__(self, run_dir: Path, never_fit: bool) -> None:
        from analysis.thresholds import resolve  # lazy: the analysis layer only with --prune

        self.view = EvalView(run_dir)
        self.config = read_config(run_dir)
        self.th = resolve(None, self.config)
        self.never_fit = never_fit or self.th["prune_never_fit"] >= 1
        self.metric = self.config.get("checkpoint.best_metric", "w1_mean")
        self.judged_step: int | None = None

    def graced(self, steps: list[int]) -> bool:
        total = self.config.get("train.steps")
        frac_ok = not isinstance(total, int) or steps[-1] >= self.th["live_grace_frac"] * total
        return len(steps) >= self.th["live_grace_evals"] and frac_ok

    def possible(self) -> str | None:
        """Why a terminal verdict is possible on the evals read so far, or None."""
        rows = self.view.rows()
        if self.view.unreadable or self.view.rewritten():
            return "an eval part unreadable or rewritten"
        k = max(1, int(self.th["leak_end_evals"]))
        newest = set(sorted({r["step"] for r in rows})[-k:])
        traces = [_num(r.get("fock_trace_min")) for r in rows if r["step"] in newest]
        bar = min(self.th["leak_trace_error"], self.th["prune_leak_trace"])
        if any(t is not None and t < bar for t in traces):
            return "an eval leaking past the error bar"
        total = self.config.get("train.steps")
        late = not isinstance(total, int) or rows[-1]["step"] >= \
            self.th["prune_never_fit_frac"] * total
        if self.never_fit and late and len(rows) >= self.th["never_fit_min_evals"] and (
                flat(distance(rows, self.metric), self.th["never_fit_rel"])
                or no_mode_covered(rows)):
            return "never fit so far"
        return None

    def due(self) -> bool:
        """Read what changed; True when the rules should run now."""
        if not self.view.refresh() and not self.view.unreadable:
            return False
        steps = self.view.steps()
        if not steps or (self.judged_step is not None and steps[-1] <= self.judged_step):
            return False
        if not self.graced(steps):
            return False
        self.judged_step = steps[-1]
        why = self.possible()
        if why is not None:
            log.debug("prune watch %s at step %s: %s", self.view.run_dir, steps[-1], why)
        return why is not None


def better_sibling(run_dir: Path, metric: str, mode: str, value: float, upto: int,
                   th: dict[str, float], views: dict[Path, EvalView]
                   ) -> tuple[str, float] | None:
    """(name, best value) of another run of the experiment that, by step `upto`, fit better
    than `value` by `never_fit_rel` and is trustworthy so far (the module docstring), or
    None."""
    from jobs import ledger  # lazy: as above

    exp = ledger.read_experiment(run_dir.parent) or {}
    names = [t.get("run") for t in exp.get("tasks", []) if isinstance(t, dict)]
    sign = 1.0 if mode == "min" else -1.0
    best: tuple[str, float] | None = None
    for name in names:
        if not isinstance(name, str) or name == run_dir.name or "/" in name or name in ("", ".", ".."):
            continue
        d = run_dir.parent / name
        if not d.is_dir() or d.is_symlink():
            continue
        if ledger.read_jobs(d).get("outcome") in _STOPPED:
            continue
        view = views.setdefault(d, EvalView(d))
        view.refresh()
        rows = [r for r in view.rows() if r["step"] <= upto]
        if not rows:
            continue
        trace = _num(rows[-1].get("fock_trace_min"))
        if trace is not None and trace < th["leak_trace_error"]:
            continue  # leaking at its newest eval: not a result
        dist = distance(rows, metric) if metric in ("w1_mean", "sliced_w1") else \
            [_num(r.get(metric)) for r in rows]
        got = [x for x in dist if x is not None]
        if not got or (mode == "min" and flat(dist, th["never_fit_rel"])):
            continue
        b = min(got) if mode == "min" else max(got)
        bar = value * (1 - th["never_fit_rel"]) if mode == "min" else \
            value * (1 + th["never_fit_rel"])
        if sign * b < sign * bar and (best is None or sign * b < sign * best[1]):
            best = (name, b)
    return best


def judge(run_dir: Path, never_fit: bool = False,
          views: dict[Path, EvalView] | None = None) -> dict[str, Any] | None:
    """The run's live verdict as the pruner sees it: a decision dict when it is terminal,
    else None. The run is named and keyed as the report names it (its experiment's other
    runs decide whether run.json names are unique), so the report reuses the cache.
    `never_fit`: never-fit pruning is on (then only with a better sibling)."""
    from analysis.cache import docs  # lazy: the analysis layer only with --prune
    from analysis.live import live_verdict  # lazy: as above
    from analysis.rundirs import find_runs, run_names  # lazy: as above
    from jobs import ledger, verdicts  # lazy: as above

    exp = ledger.read_experiment(run_dir.parent) or {}
    siblings = find_runs(run_dir.parent) if exp else [run_dir]
    names = dict(zip(siblings, run_names(siblings)))
    doc, findings, th = docs([run_dir], [names.get(run_dir, run_dir.name)],
                             verdicts.overrides(exp), {}, 1)[run_dir]
    v = live_verdict(doc, findings, True, th)
    reason = v.reason
    if v.verdict == "never_fit":
        best = doc.get("best") if isinstance(doc.get("best"), dict) else {}
        value = _num(best.get("value"))
        total, last = doc["live"].get("total_steps"), doc["live"].get("last_step")
        on = (never_fit or th["prune_never_fit"] >= 1) and (
            not total or (last is not None and last >= th["prune_never_fit_frac"] * total))
        other = better_sibling(run_dir, str(best.get("metric") or "w1_mean"),
                               str(best.get("mode") or "min"), value, last, th,
                               views if views is not None else {}) \
            if on and value is not None and last is not None else None
        if other is None:
            log.debug("prune watch %s: never fit, not pruned (%s)", run_dir,
                      "no other run fits better yet" if on
                      else "never-fit pruning is off, or its grace has not passed")
            return None
        reason = (f"{v.reason}; {other[0]} fit better by step {last} "
                  f"(best {best.get('metric')} {other[1]:.3g} vs {value:.3g})")
    elif not v.terminal:
        log.debug("prune watch %s: %s (%s)", run_dir, v.verdict, v.reason)
        return None
    return {"verdict": v.verdict, "reason": reason, "step": v.step, "evals": v.evals,
            "finding": v.worst, "time": time.time()}


class Watcher(threading.Thread):
    """Polls the run's evals; when the gate says so, judges the run; on a terminal verdict,
    stores the decision in `episode["pruned"]` and calls `request_stop` once."""

    def __init__(self, run_dir: Path, episode: dict, request_stop: Callable[[], None],
                 poll_s: float = POLL_S, never_fit: bool = False) -> None:
        super().__init__(name=f"prune-{run_dir.name}", daemon=True)
        self.run_dir, self.episode, self.request_stop = run_dir, episode, request_stop
        self.poll_s, self.never_fit = poll_s, never_fit
        self.judgements = 0  # full diagnoses run, for the tests and the benchmark
        self._done = threading.Event()

    def run(self) -> None:
        gate: Gate | None = None
        views: dict[Path, EvalView] = {}
        while not self._done.wait(self.poll_s):
            try:
                gate = gate or Gate(self.run_dir, self.never_fit)
                if not gate.due():
                    continue
                self.judgements += 1
                decision = judge(self.run_dir, gate.never_fit, views)
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
    w = Watcher(run_dir, episode, request_stop, float(policy.get("prune_poll_s", POLL_S)),
                bool(policy.get("prune_never_fit")))
    w.start()
    return w


def reason(decision: dict[str, Any]) -> str:
    """The ledger's one-line reason for a pruned run."""
    f = decision.get("finding") or {}
    return (f"pruned at step {decision.get('step')} ({decision.get('evals')} evals): "
            f"{decision.get('verdict')}: {decision.get('reason')}"
            + (f" [{f.get('kind')} {f.get('steps')}]" if f else ""))
