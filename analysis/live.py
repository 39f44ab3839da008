"""The verdict of a run that is still training, from the same rule table as the postmortem.

`analysis/verdict.py` RULES is applied unchanged to what the run has written so far (the
diagnosis, cached per run: analysis/cache.py). While the run trains, a rule that speaks of
the end of the run (`Rule.needs_end`: collapse "to the end", regressed, stalled, unfinished,
converged, improving) is not applied: the live verdict is the first rule without that mark
that applies, or "too early". Rules that could fire on a noisy start (leaking, never fit) wait
for the grace: `live_grace_evals` evals and `live_grace_frac` of train.steps.

A live verdict is *terminal* (what `qgan submit --prune` stops a run for, jobs/prune.py) when
more training cannot change it:

- diverged: the guard gave up (the trainer stops by itself, exit 3, so the pruner never needs
  to; a non-finite last step alone is not terminal: the guard rolls back);
- leaking: an error-level Fock leakage that lasts to the newest step and that the evals at its
  end confirm, below `prune_leak_trace` (0.8: a healthy run dipped to 0.888 and recovered;
  the samples are simulation artefacts, and the generator is not pulling back);
- never_fit: no improvement on the first eval, or no mode covered, after the grace; only
  with the threshold `prune_never_fit` = 1. The pruner (`--prune-never-fit`) adds its own
  guard: a quarter of train.steps, and another run clearly ahead at equal steps
  (jobs/prune.py), because in a sweep of weak runs the run to keep can be a never-fit one
  (measured, benchmarks/prune_sweep.py).

`failed` is never pruned (the job layer already decides about crashes: max_failures), nor
`degraded` (warnings and other errors may pass). Optuna's MedianPruner or ASHA compare one
number against the other runs; the leak and divergence rules need no other run, so a run is
never stopped because its siblings happen to be better, and the run that would be kept
(trustworthy: not leaking, not diverged, whenever such a run exists) is never one of them
(analysis/keep.py); never-fit pruning reads other runs only to protect the run to keep.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis.cache import docs
from analysis.findings import Finding, severity_rank
from analysis.rundirs import is_run_dir, run_names
from analysis.verdict import RULES
from qgan.vocabulary import FindingKind, Verdict

TOO_EARLY = "too_early"  # not a Verdict: what a live run is before any live rule applies
TERMINAL = (Verdict.DIVERGED, Verdict.LEAKING, Verdict.NEVER_FIT)
_GRACED = (Verdict.LEAKING, Verdict.NEVER_FIT)


@dataclass
class LiveVerdict:
    verdict: str  # a Verdict value, or TOO_EARLY
    reason: str
    terminal: bool  # more training cannot change it: a pruner may stop the run
    step: int | None  # the newest step the verdict saw
    evals: int
    worst: dict[str, Any] | None  # the worst finding: kind, severity, steps, summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst_finding(findings: list[Finding]) -> dict[str, Any] | None:
    """The finding to show in one line: the highest severity, then one lasting to the end,
    then the earliest."""
    if not findings:
        return None
    f = min(findings, key=lambda f: (-severity_rank(f.severity), not f.evidence.get("persists"),
                                      f.start_step if f.start_step is not None else 1 << 62))
    return {"kind": f.kind.value, "severity": f.severity, "steps": f.steps,
            "summary": f.summary}


def _graced(doc_live: dict[str, Any], th: dict[str, float]) -> bool:
    total, last = doc_live.get("total_steps"), doc_live.get("last_step")
    frac_ok = not total or (last is not None and last >= th["live_grace_frac"] * total)
    return doc_live.get("evals", 0) >= th["live_grace_evals"] and frac_ok


def live_verdict(doc: dict[str, Any], findings: list[Finding], running: bool,
                 th: dict[str, float]) -> LiveVerdict:
    """The verdict of one run from its diagnosis (`analysis.cache.to_doc`'s document and its
    findings). `running`: the run is still training or queued to go on; an ended run gets its
    postmortem verdict, never terminal (there is nothing left to stop)."""
    live = doc["live"]
    worst = worst_finding(findings)
    base = dict(step=live.get("last_step"), evals=live.get("evals", 0), worst=worst)
    if not running:
        return LiveVerdict(doc["verdict"], doc["verdict_reason"], False, **base)
    reasons = dict(doc["reasons"]) if isinstance(doc["reasons"], list) else doc["reasons"]
    if live.get("last_step") is None:
        return LiveVerdict(TOO_EARLY, "no step written yet", False, **base)
    for rule in RULES:
        v = rule.verdict
        if rule.needs_end or v.value not in reasons:
            continue
        if v == Verdict.FAILED and live.get("last_step") is None:
            continue
        if v in _GRACED and not _graced(live, th):
            continue
        return LiveVerdict(v.value, reasons[v.value],
                           _terminal(v, reasons[v.value], findings, th), **base)
    return LiveVerdict(TOO_EARLY, "no rule that can be judged before the end applies yet "
                       f"({live.get('evals', 0)} eval(s))", False, **base)


def _terminal(v: Verdict, reason: str, findings: list[Finding], th: dict[str, float]
              ) -> bool:
    if v not in TERMINAL:
        return False
    if v == Verdict.NEVER_FIT:
        return th["prune_never_fit"] >= 1
    if v == Verdict.DIVERGED:
        return reason.startswith("the guard gave up")
    if v == Verdict.LEAKING:
        return any(f.kind == FindingKind.FOCK_LEAKAGE and f.severity == "error"
                   and f.evidence.get("persists")
                   and isinstance(f.evidence.get("end_eval_trace"), (int, float))
                   and f.evidence["end_eval_trace"] < th["prune_leak_trace"] for f in findings)
    return True


def experiment_verdicts(run_dirs: list[Path], running: dict[str, bool],
                        overrides: dict[str, dict] | None = None,
                        n_workers: int | None = None, name_dirs: list[Path] | None = None
                        ) -> dict[str, LiveVerdict]:
    """{run folder name: live verdict} for the runs of one experiment (`running`: by folder
    name, whether the run still trains or waits to). Each run's diagnosis comes from its cache
    when nothing it read has changed; the others are diagnosed in parallel processes.
    `name_dirs`: every run folder of the experiment, when `run_dirs` are only some of them
    (runs are named as `qgan report` names them, so that both share the cache)."""
    present = [d for d in run_dirs if is_run_dir(d)]
    seen = set(present)
    out = {d.name: LiveVerdict(TOO_EARLY, "the run has not started", False, None, 0, None)
           for d in run_dirs if d not in seen}
    if not present:
        return out
    everyone = [d for d in (name_dirs or present) if is_run_dir(d)] or present
    names = dict(zip(everyone, run_names(everyone)))
    got = docs(present, [names.get(d, d.name) for d in present], overrides or {}, {},
               n_workers)
    for d in present:
        doc, findings, th = got[d]
        out[d.name] = live_verdict(doc, findings, running.get(d.name, False), th)
    return out
