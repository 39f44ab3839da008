"""The between_modes finding (analysis/offmode.py): every mode covered, but a plateaued share of
the samples off every mode (issue 9), on hand-made evals tables in the shape analysis.rundata
produces, and through a written run directory to `qgan diagnose` and its verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import diagnose_path
from analysis.advice import advise
from analysis.diagnose import diagnose_run
from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.offmode import diagnose_between_modes
from jobs.cli import main
from qgan.thresholds import defaults
from qgan.vocabulary import FindingKind
from synthetic import Plan, write_run

TH = defaults()
# 12 evals every 150 steps: HQ climbs, then holds at 0.86-0.88 from step 600 (eval 4) on
PLATEAU = [0.40, 0.70, 0.84, 0.86, 0.87, 0.86, 0.87, 0.88, 0.87, 0.86, 0.87, 0.87]


def _run(hq, *, covered=2, n_modes=2, trace=0.995, gen="quantum",
         column="paper_hq_frac") -> RunData:
    n = len(hq)
    evals = pd.DataFrame({
        "step": np.arange(1, n + 1, dtype=np.int64) * 150, "revision": np.zeros(n, np.int64),
        "n_modes": np.full(n, n_modes, np.int32),
        "modes_covered": np.r_[np.full(n - 1, n_modes), covered].astype(np.int32),
        column: np.asarray(hq, float), "fock_trace_min": np.full(n, trace, float)})
    config = {"generator.kind": gen, "generator.cutoff": 6, "generator.hidden": [16, 16]}
    empty = pd.DataFrame()
    return RunData(Path("r"), "r", {}, config, {}, empty, empty, evals, empty, empty, [])


def _one(run: RunData) -> Finding:
    (f,) = diagnose_between_modes(run, TH)
    return f


def test_a_plateau_off_the_modes_is_one_warning_with_its_evidence():
    f = _one(_run(PLATEAU))
    assert (f.kind, f.severity, f.start_step, f.end_step) == ("between_modes", "warning", 600,
                                                               1800)
    assert f.summary == ("13.0% of the samples lie off every mode (median of the last 5 evals), "
                         "a plateau since step 600")
    assert f.evidence == {
        "off_mode_frac": 0.13, "hq_median": 0.87, "hq_median_before": 0.86,
        "hq_measure": "paper_hq_frac", "evals_used": 5, "window_start_step": 1200,
        "plateau_step": 600, "modes_covered": 2, "n_modes": 2, "generator": "quantum",
        "cutoff": 6, "trace_min_median": 0.995, "leaking": False, "persists": True}
    assert f.advice.startswith("Raise generator.cutoff (now 6) together with "
                               "generator.encode_amplitude: ")
    assert "leaks" not in f.advice


def test_not_raised_when_most_samples_are_on_a_mode():
    assert diagnose_between_modes(_run([h + 0.05 for h in PLATEAU]), TH) == []  # 8% off
    # exactly at the threshold is not above it
    assert diagnose_between_modes(_run([h + 0.03 for h in PLATEAU]), TH) == []  # 10% off
    # the user's threshold (qgan diagnose --thresholds) decides
    assert diagnose_between_modes(_run(PLATEAU), {**TH, "off_mode_max": 0.15}) == []


def test_not_raised_when_a_mode_is_missing_at_the_end():
    # the collapse findings speak then
    assert diagnose_between_modes(_run(PLATEAU, covered=1), TH) == []


def test_not_raised_while_hq_is_still_climbing():
    climbing = list(np.linspace(0.40, 0.86, 12))  # +4.2 points per eval, 84% at the end
    assert diagnose_between_modes(_run(climbing), TH) == []
    # a slow climb within off_mode_climb counts as a plateau
    slow = PLATEAU[:7] + [0.87, 0.875, 0.875, 0.88, 0.88]
    assert _one(_run(slow)).evidence["hq_median_before"] == 0.86


def test_not_raised_without_modes_or_with_too_few_evals():
    # a data file target: no modes, no HQ (NaN), as qgan.evals writes it
    assert diagnose_between_modes(_run([np.nan] * 12, n_modes=0, covered=0), TH) == []
    assert diagnose_between_modes(_run(PLATEAU, n_modes=1, covered=1), TH) == []
    assert diagnose_between_modes(_run(PLATEAU[-5:]), TH) == []  # 5 evals: no "before"
    assert len(diagnose_between_modes(_run(PLATEAU[-6:]), TH)) == 1


def test_older_runs_fall_back_to_the_loose_hq():
    f = _one(_run(PLATEAU, column="high_quality_frac"))
    assert f.evidence["hq_measure"] == "high_quality_frac" and f.evidence["off_mode_frac"] == 0.13


def test_a_leaking_run_keeps_the_finding_and_one_cutoff_advice():
    """Leakage does not explain the band (BENCHMARKS.md 'Learning': re-simulating the trained
    bimodal circuits at cutoff 12, trace >= 0.995, moves HQ by <= 2.3 points), so the finding
    stands, says the state leaks too, and both ask for the same change: one advice line."""
    f = _one(_run(PLATEAU, trace=0.95))
    assert (f.evidence["leaking"], f.evidence["trace_min_median"]) == (True, 0.95)
    assert f.advice.endswith("The state also leaks past the cutoff (trace 0.950); a higher "
                             "cutoff treats both.")
    leak = Finding(FindingKind.FOCK_LEAKAGE, "error", "r", "Fock trace below 0.99", "x", 1, 1800)
    (a,) = advise([f, leak])
    assert (a.key, a.direction, a.kinds, a.severity, a.steps) == (
        "generator.cutoff", "raise", ["between_modes", "fock_leakage"], "error", [(1, 1800)])
    assert a.text.startswith("Raise generator.cutoff: samples stay between the modes (the "
                             "circuit's map") and "probability leaked past the Fock cutoff" in a.text


def test_the_advice_depends_on_the_generator_kind():
    (q,) = advise([_one(_run(PLATEAU))])
    (c,) = advise([_one(_run(PLATEAU, gen="classical"))])
    assert (q.key, q.direction, q.panel, q.steps) == ("generator.cutoff", "raise", "modes",
                                                      [(600, 1800)])
    assert (c.key, c.direction, c.panel) == ("generator.hidden", "raise", "modes")
    assert c.text == ("Raise generator.hidden: samples stay between the modes (wider layers, or "
                      "one more, let the MLP bend sharply between them) (steps 600-1800).")
    f = _one(_run(PLATEAU, gen="classical"))
    assert (f.evidence["hidden"], "cutoff" in f.evidence) == ("[16, 16]", False)
    assert f.advice.startswith("Widen generator.hidden (now [16, 16]) or add a layer")
    # a run without a generator kind: no config key, the finding's own advice
    (u,) = advise([_one(_run(PLATEAU, gen=None))])
    assert (u.key, u.kinds) == ("", ["between_modes"]) and "generator.cutoff for the quantum" \
        in u.text


def test_the_verdict_does_not_change_and_diagnose_shows_it(tmp_path, capsys):
    """Through a run directory (Parquet written per the contract): the finding, its advice in
    `qgan diagnose` and `--json`, and the verdict it leaves alone."""
    good = write_run(tmp_path / "good", Plan(steps=400, hq=0.97, samples=False))
    band = write_run(tmp_path / "band", Plan(steps=400, hq=0.9, samples=False))  # 85.5% HQ
    g, b = diagnose_path(good).runs[0], diagnose_path(band).runs[0]
    assert g.verdict == b.verdict == "converged"
    assert [f.kind for f in b.findings if f.kind not in {f.kind for f in g.findings}] == [
        "between_modes"]
    (f,) = [f for f in b.findings if f.kind == "between_modes"]
    assert (f.evidence["off_mode_frac"], f.evidence["generator"]) == (0.145, "quantum")
    assert main(["diagnose", str(band)]) == 0
    out = capsys.readouterr().out
    assert "between_modes" in out and "14.5% of the samples lie off every mode" in out
    assert "-> Raise generator.cutoff: samples stay between the modes" in out
    assert main(["diagnose", "--json", str(band)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["kinds"] for a in doc["runs"][0]["advice"] if a["key"] == "generator.cutoff"] == [
        ["between_modes"]]
    assert any(x["kind"] == "between_modes" for x in doc["findings"])
    assert diagnose_run(b.run).verdict == "converged"


def test_a_run_that_did_better_before_gets_no_capacity_advice():
    """HQ held 0.95 for five evals, then settled at 0.80: the map could do better, so the
    samples off the modes are a regression (its own finding), not the band limit; 2 points
    below the best stretch is still a plateau at the best."""
    fell = [0.5, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.80, 0.80, 0.81, 0.80, 0.80, 0.80, 0.80]
    assert diagnose_between_modes(_run(fell), TH) == []
    near = [0.5, 0.8, 0.88, 0.88, 0.88, 0.88, 0.88, 0.86, 0.86, 0.87, 0.86, 0.86, 0.86, 0.86]
    assert _one(_run(near)).evidence["hq_median"] == 0.86
