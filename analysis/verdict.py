"""One word per run, from its findings and how its last attempt ended, plus its key numbers.

The verdict rules live here and only here: `RULES` is an ordered list; the first rule that
matches decides, so the order is the precedence. Each rule's `meaning` is what the report's
legend and the CLI documentation show, so the words and the code cannot drift apart.

"healthy" is a promise: no error-severity finding stands anywhere in the run. A run that ended
normally but carries one (Fock leakage at trace 0.35 all run long, dead parameters, ...) is
"degraded", and the reason names the worst such finding, so a researcher scanning the
overview never mistakes a broken run for a good one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from analysis.findings import Finding
from analysis.load import RunData
from analysis.series import col, flag

FINAL_EVALS = 3  # "final W1" is the median of this many last evals

# (run, findings, attempt timeline) -> a reason if the rule applies, else None
RuleFn = Callable[[RunData, list[Finding], list[dict]], "str | None"]


@dataclass(frozen=True)
class Rule:
    verdict: str
    meaning: str  # shown in the report legend: when this verdict is given
    applies: RuleFn


def _failed(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    if run.steps.empty:
        return "no step rows could be read"
    last = timeline[-1] if timeline else {}
    if last.get("cause") == "crash":
        return f"attempt {last['attempt']} crashed"
    return None


def _diverged(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    last = timeline[-1] if timeline else {}
    gave_up = last.get("cause") == "diverged" or any(
        f.kind == "nonfinite" and f.evidence.get("diverged") for f in findings) or (
        not run.events.empty and bool((run.events["kind"] == "diverged").any()))
    if gave_up:
        return "the guard gave up after repeated rollbacks"
    if flag(run.steps, "nonfinite")[-1]:
        return "the last step is non-finite"
    return None


def _collapsed(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    for f in findings:
        if f.kind == "mode_collapse" and f.evidence.get("persists"):
            return f"mode collapse from step {f.start_step} to the end"
    return None


def _stalled(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    for f in findings:
        if f.kind in ("vanishing_gradients", "dead_parameters") and f.evidence.get("persists"):
            return f"{f.kind.replace('_', ' ')} from step {f.start_step} to the end"
    for f in findings:
        if f.kind == "stagnation":
            return f.summary
    return None


def _unfinished(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    for f in findings:
        if f.kind == "unfinished":
            return f.summary
    return None


def worst_error(findings: list[Finding]) -> Finding | None:
    """The error-severity finding that matters most: one lasting to the end of the run beats
    one that passed, then the longest step range, then the earliest."""
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return None

    def key(f: Finding) -> tuple:
        span = (f.end_step - f.start_step) if f.start_step is not None and \
            f.end_step is not None else -1
        return (not f.evidence.get("persists"), -span,
                f.start_step if f.start_step is not None else 1 << 62, f.kind)
    return min(errors, key=key)


def _degraded(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    f = worst_error(findings)
    if f is None:
        return None
    others = sum(1 for g in findings if g.severity == "error") - 1
    where = f" (steps {f.steps})" if f.steps else ""
    return f"{f.kind.replace('_', ' ')}{where}: {f.summary}" + (
        f"; {others} more error finding(s)" if others else "")


def _healthy(run: RunData, findings: list[Finding], timeline: list[dict]) -> str | None:
    warnings = sum(1 for f in findings if f.severity == "warning")
    return "no error-severity finding" + (f" ({warnings} warning(s))" if warnings else "")


RULES: tuple[Rule, ...] = (
    Rule("failed", "no step could be read, or the last attempt crashed", _failed),
    Rule("diverged", "the guard gave up after repeated rollbacks, or the last step is "
                     "non-finite", _diverged),
    Rule("collapsed", "mode collapse lasts to the last eval", _collapsed),
    Rule("stalled", "vanishing gradients or dead parameters last to the end, or W1 stopped "
                    "improving far from the target", _stalled),
    Rule("unfinished", "the run stopped before train.steps (killed, preempted or timed out "
                       "and not resumed, or still running)", _unfinished),
    Rule("degraded", "finished, but an error-severity finding stands (e.g. Fock leakage, "
                     "dead parameters); the reason names the worst one", _degraded),
    Rule("healthy", "finished with no error-severity finding (warnings may exist)", _healthy),
)
VERDICTS = tuple(r.verdict for r in RULES)  # precedence order, worst first
LEGEND = tuple((r.verdict, r.meaning) for r in RULES)


def verdict(run: RunData, findings: list[Finding],
            timeline: list[dict]) -> tuple[str, str]:
    """(verdict, reason): the first rule of RULES that applies."""
    for rule in RULES:
        reason = rule.applies(run, findings, timeline)
        if reason is not None:
            # A worse verdict must not hide an error finding: name it too (a stalled run that
            # also leaks past the cutoff should say both; "degraded" already names it).
            worst = worst_error(findings)
            if worst is not None and worst.kind.replace("_", " ") not in reason:
                reason += f"; also {worst.kind.replace('_', ' ')}" + (
                    f" (steps {worst.steps})" if worst.steps else "")
            return rule.verdict, reason
    raise AssertionError("the last rule always applies")  # pragma: no cover


def key_numbers(run: RunData, timeline: list[dict]) -> dict:
    """What the overview table shows per run."""
    st, ev = run.steps, run.evals
    w1 = col(ev, "w1_mean")
    ok = np.isfinite(w1)
    best = int(np.nanargmin(w1)) if ok.any() else None
    wall = col(st, "step_seconds")
    lost = run.steps_superseded
    return {
        "last_step": int(st["step"].max()) if len(st) else None,
        "total_steps": run.total_steps,
        # the median of the last FINAL_EVALS evals: one noisy eval must not decide a ranking
        "final_w1": float(np.median(w1[ok][-FINAL_EVALS:])) if ok.any() else None,
        "best_w1": float(w1[best]) if best is not None else None,
        "best_w1_step": int(ev["step"].iloc[best]) if best is not None else None,
        "final_var_ratio": float(col(ev, "sample_var_ratio")[-1]) if len(ev) else None,
        "modes_covered": _last(col(ev, "modes_covered")),
        "n_modes": _last(col(ev, "n_modes")),
        "attempts": len(timeline),
        "lost_steps": int(len(lost)),
        "nonfinite_steps": int(flag(st, "nonfinite").sum() + flag(lost, "nonfinite").sum()),
        "compute_hours": float(np.nansum(wall) + np.nansum(col(lost, "step_seconds"))) / 3600,
    }


def _last(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x[-1]) if x.size else None
