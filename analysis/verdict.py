"""What happened to a run, as a primary verdict plus flags: the other verdicts that also apply.

The rules live here and only here: `RULES` is an ordered table; the first rule that applies is
the primary verdict, so the order is the precedence (worst first). Every other rule that applies
becomes a flag, so a worse error finding is never hidden behind the primary word (an unfinished
run that also leaks says both). Each rule's `meaning` is what the report's legend and the CLI
documentation show, so the words and the code cannot drift apart. The words themselves are
`qgan.vocabulary.Verdict`.

Every error-severity finding leads to a verdict: the rules above `degraded` claim the kinds
they explain (`Rule.kinds`); `degraded` takes any other error finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from analysis.findings import Finding
from analysis.headline import FINAL_EVALS, QUALITY_LABEL, final_of, quality_series
from analysis.series import data_scale, flag
from qgan.vocabulary import AttemptEnd, FindingKind, Severity, Verdict

if TYPE_CHECKING:  # the loader (pandas) only for type checkers: status imports RULES
    from analysis.rundata import RunData


@dataclass
class Context:
    """What a rule sees: the run, its findings and attempts, the thresholds, and the verdicts
    of the rules above it that applied (verdict -> reason)."""

    run: RunData
    findings: list[Finding]
    timeline: list[dict]
    th: dict[str, float]
    applied: dict[str, str]

    def find(self, kind: FindingKind, *, error: bool = False, persists: bool = False
             ) -> Finding | None:
        for f in self.findings:
            if f.kind == kind and (not error or f.severity == Severity.ERROR) and (
                    not persists or f.evidence.get("persists")):
                return f
        return None

    def errors(self) -> list[Finding]:
        """Error findings that no rule above has explained (Rule.kinds of applied rules)."""
        claimed = {k for r in RULES if r.verdict.value in self.applied for k in r.kinds}
        return [f for f in self.findings if f.severity == Severity.ERROR
                and f.kind not in claimed]


# context -> a reason if the rule applies, else None
RuleFn = Callable[[Context], "str | None"]


@dataclass(frozen=True)
class Rule:
    verdict: Verdict
    meaning: str  # shown in the report legend: when this verdict is given
    applies: RuleFn
    kinds: tuple[str, ...] = ()  # the error finding kinds this rule explains
    # the rule speaks of the end of the run (lasts to the end, final W1, stopped early): while
    # the run still trains, analysis/live.py says "too early" instead of applying it
    needs_end: bool = False


def _failed(c: Context) -> str | None:
    if c.run.steps.empty:
        return "no step rows could be read"
    last = c.timeline[-1] if c.timeline else {}
    if last.get("cause") == AttemptEnd.CRASH:
        return f"attempt {last['attempt']} crashed at step {last.get('end_step')}"
    return None


def _diverged(c: Context) -> str | None:
    last = c.timeline[-1] if c.timeline else {}
    events = c.run.events
    gave_up = last.get("cause") == AttemptEnd.DIVERGED or any(
        f.kind == FindingKind.NONFINITE and f.evidence.get("diverged") for f in c.findings) or (
        not events.empty and bool((events["kind"] == "diverged").any()))
    if gave_up:
        return "the guard gave up after repeated rollbacks"
    nonfinite = flag(c.run.steps, "nonfinite")
    if nonfinite.size and nonfinite[-1]:
        return "the last step is non-finite"
    return None


def _leaking(c: Context) -> str | None:
    f = c.find(FindingKind.FOCK_LEAKAGE, error=True)
    return None if f is None else (f"{f.summary}: more than {1 - c.th['leak_trace_error']:.0%} "
                                   "of the probability is past the cutoff, so the samples are "
                                   "simulation artefacts")


def _summary_of(kind: FindingKind) -> Callable[[Context], str | None]:
    def rule(c: Context) -> str | None:
        f = c.find(kind)
        return None if f is None else f.summary
    return rule


def _collapsed(c: Context) -> str | None:
    f = c.find(FindingKind.MODE_COLLAPSE, persists=True)
    if f is not None:
        return f"mode collapse from step {f.start_step} to the end"
    f = c.find(FindingKind.DROPPED_MODE, error=True)
    return None if f is None else f.summary


def _stalled(c: Context) -> str | None:
    for kind in (FindingKind.VANISHING_GRADIENTS, FindingKind.DEAD_PARAMETERS):
        f = c.find(kind, persists=True)
        if f is not None:
            return f"{kind.replace('_', ' ')} from step {f.start_step} to the end"
    f = c.find(FindingKind.STAGNATION)
    # a collapse lasting to the end also stops W1 improving: "stalled" would only repeat it
    return None if f is None or Verdict.COLLAPSED in c.applied else f.summary


def _final(c: Context) -> tuple[str, float | None]:
    """(label, final value) of the run's quality distance (analysis.headline.quality_series:
    W1, or the sliced W1 above its floor)."""
    metric, series = quality_series(c.run)
    return QUALITY_LABEL[metric], final_of(series)


def _converged(c: Context) -> str | None:
    name, final = _final(c)
    good = c.th["w1_good_rel"] * data_scale(c.run.evals)
    if final is None or final > good or any(f.severity == Severity.ERROR for f in c.findings):
        return None
    if c.find(FindingKind.DROPPED_MODE, persists=True) is not None:
        return None  # a run that ends without a mode of its data is never converged
    return (f"final {name} {final:.3g} (median of the last {FINAL_EVALS} evals) is below "
            f"{good:.3g} ({c.th['w1_good_rel']:g} real-data std per axis)")


def _improving(c: Context) -> str | None:
    dropped = c.find(FindingKind.DROPPED_MODE, persists=True)
    if dropped is not None:  # a warning: its share is still climbing
        return f"{dropped.summary}; its share is still climbing: train longer"
    name, final = _final(c)
    n = int(np.isfinite(quality_series(c.run)[1]).sum())
    text = f"final {name} {final:.3g} has not reached the target" if final is not None else \
        f"no {name} yet"
    if n < c.th["stagnation_min_evals"]:
        return f"{text}; only {n} eval(s), too few to say whether it stopped improving"
    return f"{text} and was still improving over the last evals: train longer"


def worst_error(findings: list[Finding]) -> Finding | None:
    """The error-severity finding that matters most: one lasting to the end of the run beats
    one that passed, then the longest step range, then the earliest."""
    errors = [f for f in findings if f.severity == Severity.ERROR]
    if not errors:
        return None

    def key(f: Finding) -> tuple:
        span = (f.end_step - f.start_step) if f.start_step is not None and \
            f.end_step is not None else -1
        return (not f.evidence.get("persists"), -span,
                f.start_step if f.start_step is not None else 1 << 62, f.kind)
    return min(errors, key=key)


def _degraded(c: Context) -> str | None:
    errors = c.errors()
    f = worst_error(errors)
    if f is None:
        return None
    where = f" (steps {f.steps})" if f.steps else ""
    return f"{f.kind.replace('_', ' ')}{where}: {f.summary}" + (
        f"; {len(errors) - 1} more error finding(s)" if len(errors) > 1 else "")


RULES: tuple[Rule, ...] = (
    Rule(Verdict.FAILED, "no step could be read, or the last attempt crashed: read its log",
         _failed, (FindingKind.CRASH,)),
    Rule(Verdict.DIVERGED, "the guard gave up after repeated rollbacks, or the last step is "
                           "non-finite", _diverged, (FindingKind.NONFINITE,)),
    Rule(Verdict.LEAKING, "an error-level Fock leakage finding: the simulation is not "
                          "trustworthy (raise generator.cutoff)", _leaking, (FindingKind.FOCK_LEAKAGE,)),
    Rule(Verdict.NEVER_FIT, "no mode covered at any eval after the first, or W1 never "
                            "improved on the first eval", _summary_of(FindingKind.NEVER_FIT),
         (FindingKind.NEVER_FIT,)),
    Rule(Verdict.COLLAPSED, "mode collapse lasts to the last eval, or the kept checkpoint "
                            "misses a mode of the data", _collapsed,
         (FindingKind.MODE_COLLAPSE, FindingKind.DROPPED_MODE), needs_end=True),
    Rule(Verdict.REGRESSED, "the best W1 is far better than the final W1: keep the best "
                            "checkpoint, not the last", _summary_of(FindingKind.REGRESSION), needs_end=True),
    Rule(Verdict.STALLED, "vanishing gradients or dead parameters last to the end, or W1 "
                          "stopped improving far from the target", _stalled,
         (FindingKind.VANISHING_GRADIENTS, FindingKind.DEAD_PARAMETERS), needs_end=True),
    Rule(Verdict.DEGRADED, "another error-severity finding stands (the reason names the worst)",
         _degraded),
    Rule(Verdict.UNFINISHED, "the run stopped before train.steps (killed, preempted or timed "
                             "out and not resumed, or still running)",
         _summary_of(FindingKind.UNFINISHED), needs_end=True),
    Rule(Verdict.CONVERGED, "final W1 is within w1_good_rel real-data std of the data and no "
                            "error finding stands (data files: the sliced W1 above its floor "
                            "stands for W1 in every rule)", _converged, needs_end=True),
    Rule(Verdict.IMPROVING, "none of the above: W1 has not reached the target but was still "
                            "improving; train longer", _improving, needs_end=True),
)
VERDICTS = tuple(r.verdict for r in RULES)  # precedence order, worst first
LEGEND = tuple((r.verdict.value, r.meaning) for r in RULES)


@dataclass
class VerdictResult:
    verdict: Verdict
    reason: str
    flags: list[Verdict]
    reasons: dict[str, str]  # every verdict that applies -> its reason, precedence order


def verdict(run: RunData, findings: list[Finding], timeline: list[dict],
            th: dict[str, float]) -> VerdictResult:
    """The first rule of RULES that applies, and every other one as a flag (the fallback
    `improving` is never a flag: it only means "nothing above applies")."""
    reasons: dict[str, str] = {}
    ctx = Context(run, findings, timeline, th, reasons)
    for rule in RULES:
        if rule.verdict == Verdict.IMPROVING and reasons:
            break
        reason = rule.applies(ctx)
        if reason is not None:
            reasons[rule.verdict.value] = reason
    primary = Verdict(next(iter(reasons)))
    flags = [Verdict(v) for v in reasons if v != primary]
    reason = reasons[primary]
    if flags:
        reason += "; also " + ", ".join(f.value for f in flags)
    return VerdictResult(primary, reason, flags, reasons)
