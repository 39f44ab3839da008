"""`qgan diagnose`: findings of a run or an experiment, as a table or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qgan.errors import UserError, checked_path
from qgan.sanitise import clean
from qgan.vocabulary import Severity

NAME = "diagnose"
HELP = ("diagnose a run or an experiment (a folder of runs): mode collapse, NaN episodes, "
        "gradient health, adversarial balance, Fock leakage, lost work, a verdict per run")
SEVERITIES = tuple(s.value for s in Severity)
EXIT_FINDINGS = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="a run directory or an experiment")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("--fail-on", choices=SEVERITIES, metavar="SEVERITY",
                   help=f"exit with status {EXIT_FINDINGS} when a finding of SEVERITY "
                        f"({'|'.join(SEVERITIES)}) or worse exists (status 0 otherwise; 2 on "
                        f"a bad path)")
    p.add_argument("--thresholds", type=Path, metavar="TOML",
                   help="override thresholds (names in analysis/thresholds.py)")


def load_diagnosis(path: Path, thresholds: Path | None, extras: tuple = (), *,
                   data: bool = False):
    """Shared with `qgan report` and `qgan figures`: user mistakes become UserError. Both
    paths are checked, and the thresholds file read and validated, before the run is.
    `data`: load every run's tables (figures draw them); otherwise unchanged runs come from
    their cache with `extras` (analysis.cache.Extra) and are not loaded."""
    from analysis import NotARunError, diagnose_path, summarise_path
    from analysis.thresholds import read_overrides

    path = checked_path(path, "PATH")
    overrides = None
    if thresholds is not None:
        try:
            overrides = read_overrides(checked_path(thresholds, "--thresholds"))
        except ValueError as exc:  # unknown names, wrong types or shape, refused, not TOML
            raise UserError(f"--thresholds {thresholds}: {exc}") from None
    try:
        if data:
            return diagnose_path(path, overrides)
        return summarise_path(path, overrides, extras)
    except NotARunError as exc:
        raise UserError(f"{exc}. Give a run directory or an experiment folder.") from None


def _table(d) -> str:
    """The findings as text. Every string from a run directory (names, summaries, paths) is
    `clean`ed: a newline or an escape sequence in a run name cannot forge a line."""
    from analysis.headline import HEADLINE

    c = clean
    lines = [f"{c(d.experiment.name)}: {len(d.runs)} run(s)", ""]
    if d.keep is not None:
        lines += [f"keep: {c(d.keep)}: {c(d.keep_reason)}", ""]
    names = {r.run.name: c(r.run.name) for r in d.runs}
    w = max([len(n) for n in names.values()] + [3])
    final, best = HEADLINE["final_w1"].label, HEADLINE["best_w1"].label
    lines.append(f"{'#':>3}  {'run':<{w}}  {'verdict':<10}  {final:>9}  {best + ' @step':>16}"
                 f"  reason")
    for r in sorted(d.runs, key=lambda r: d.ranking.index(r.run.name)):
        n = r.numbers
        w1 = n["final_w1"]
        at = "-" if n["best_w1"] is None else f"{n['best_w1']:.4g} @{n['best_step']}"
        lines.append(f"{d.ranking.index(r.run.name) + 1:>3}  {names[r.run.name]:<{w}}  "
                     f"{r.verdict:<10}  {'-' if w1 is None else f'{w1:.4g}':>9}  {at:>16}  "
                     f"{c(r.verdict_reason)}")
    lines += ["", f"final W1 = {HEADLINE['final_w1'].definition}; best W1 = "
              f"{HEADLINE['best_w1'].definition}."]
    for r in d.runs:
        if r.best is not None or r.advice:
            lines += ["", f"{names[r.run.name]} ({r.verdict}"
                      + "".join(f", {f}" for f in r.flags) + ")"]
        if r.best is not None:
            b = r.best
            lines.append(f"  best {b.metric} {b.value:.4g} at step {b.step}: "
                         + (c(b.checkpoint) if b.kept else "checkpoint gone") + f" ({c(b.note)})")
        for a in r.advice:
            lines.append(f"  -> {c(a.text)} [{a.panel}]")
    findings = d.all_findings()
    lines += ["", f"{len(findings)} finding(s)"]
    for f in findings:
        lines.append(f"{f.severity.upper():<8} {c(f.run)}  {f.kind}  {c(f.steps or '-')}  "
                     f"{c(f.summary)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from analysis import severity_rank, to_json

    d = load_diagnosis(args.path, args.thresholds)
    if args.json:
        print(json.dumps(to_json(d), indent=2, default=str))
    else:
        print(_table(d))
    if args.fail_on:
        limit = severity_rank(args.fail_on)
        if any(severity_rank(f.severity) >= limit for f in d.all_findings()):
            return EXIT_FINDINGS
    return 0
