"""Samples between the modes: every mode of a mixture target is covered, yet a steady share of
the samples lies off every mode (issue 9).

The quantum generator's outputs are expectation values: a smooth trigonometric series in the
latent angles whose usable degree grows with the photon numbers the Fock cutoff allows.
Between two separated modes the map has to cross the gap, and the latent space spent crossing
stays as a band of samples bridging the modes (bimodal at the defaults: 87 % HQ; 90 % with
generator.encode_amplitude 2 at cutoff 12, 91 % at 16: BENCHMARKS.md "the band limit"). A
classical MLP that is too small shows the same. Mode coverage and W1 look fine and the
verdict can say "converged", so only this finding tells the researcher.

It is a note on sample quality, not a failure: no verdict rule reads it. It speaks only when
the plateau is the run's best: a run whose HQ was higher before is regressing or swinging (the
regression and balance findings say so), and more capacity would be the wrong advice. While
HQ is still climbing the run says nothing (the "improving" verdict already says to train
longer); while a mode is missing the collapse findings speak instead. A leaking run keeps the finding: the
band is the circuit's, not the truncation's (BENCHMARKS.md, cutoff check: re-simulating the
trained bimodal circuits at cutoff 12, trace >= 0.995, moves HQ by at most 2.3 points); the
evidence says when the state leaks too, and the advice merges with fock_leakage's, since both
ask to raise generator.cutoff.
"""

from __future__ import annotations

import numpy as np

from analysis.findings import Finding
from analysis.rundata import RunData
from analysis.series import col
from qgan.generator_kinds import KINDS, GeneratorKind, info_of_config
from qgan.vocabulary import FindingKind

# the papers' HQ (VEEGAN/PacGAN: within 3 std); runs written before it existed only have the
# loose one (3 std sqrt(d)), which counts at least as many samples HQ: its off-mode share is
# a lower bound of the papers', so a finding from it is never a false alarm
HQ_COLUMNS = ("paper_hq_frac", "high_quality_frac")


def _hq(evals) -> tuple[np.ndarray, str]:
    """The HQ series to judge by, and its column name."""
    for name in HQ_COLUMNS:
        hq = col(evals, name)
        if np.isfinite(hq).any():
            return hq, name
    return hq, ""


def diagnose_between_modes(run: RunData, th: dict[str, float]) -> list[Finding]:
    ev = run.evals
    hq, measure = _hq(ev)
    ok = np.isfinite(hq)
    k = int(th["off_mode_evals"])
    if ok.sum() <= k:
        return []  # no mixture target, or too few evals to tell a plateau from a climb
    steps = ev["step"].to_numpy()[ok]
    hq, trace = hq[ok], col(ev, "fock_trace_min")[ok]
    n_modes, covered = col(ev, "n_modes")[ok], col(ev, "modes_covered")[ok]
    if not n_modes[-1] >= 2 or not covered[-1] >= n_modes[-1]:
        return []  # nothing to lie between, or a mode is missing (the collapse findings')
    final, before = float(np.median(hq[-k:])), float(np.median(hq[-2 * k:-k]))
    best = max(float(np.median(hq[i:i + k])) for i in range(len(hq) - k + 1))
    off, climb = 1.0 - final, th["off_mode_climb"]
    if off <= th["off_mode_max"] or final - before > climb:
        return []
    if best - final > th["off_mode_best_gap"]:
        return []  # it did better before: regression or swings (their findings), not the map
    away = np.flatnonzero(np.abs(hq[:-k] - final) > climb)
    start = int(steps[away[-1] + 1]) if away.size else int(steps[0])
    trace_end = float(np.median(trace[-k:])) if np.isfinite(trace[-k:]).all() else None
    leaking = trace_end is not None and trace_end < th["leak_trace"]
    kind = info_of_config(run.config)
    gen = kind.kind if kind is not None else None
    size = {}
    if kind is not None:  # the setting that bounds how sharp a map this kind can learn
        value = run.config.get(kind.capacity)
        size[kind.capacity.removeprefix("generator.")] = \
            value if isinstance(value, (int, float)) or value is None else str(value)
    return [Finding(
        FindingKind.BETWEEN_MODES, "warning", run.name,
        f"{off:.1%} of the samples lie off every mode (median of the last {k} evals), "
        f"a plateau since step {start}",
        _advice(run, gen, trace_end if leaking else None), start, int(steps[-1]),
        {"off_mode_frac": off, "hq_median": final, "hq_median_before": before,
         "hq_measure": measure, "evals_used": k, "window_start_step": int(steps[-k]),
         "plateau_step": start, "modes_covered": int(covered[-1]),
         "n_modes": int(n_modes[-1]),
         "generator": gen, **size, "trace_min_median": trace_end, "leaking": leaking,
         "persists": True})]


def _advice(run: RunData, gen: GeneratorKind | None, leak: float | None) -> str:
    """What to change, by generator kind (the keyed form is analysis.advice.ACTIONS)."""
    if gen is GeneratorKind.QUANTUM:
        text = (f"Raise generator.cutoff (now {run.config.get('generator.cutoff')}) together "
                "with generator.encode_amplitude: each output is a smooth series in the "
                "latent angles whose steepness grows with the photon numbers the cutoff "
                "allows, and the band between the modes is where the map crosses the gap "
                "(bimodal: 87 % HQ at the defaults, 90 % with encode_amplitude 2 at cutoff "
                "12, 91-94 % at 16-24).")
        if leak is not None:
            text += (f" The state also leaks past the cutoff (trace {leak:.3f}); a higher "
                     "cutoff treats both.")
        return text
    if gen is not None and KINDS[gen].measured:  # measurements: no latent map to steepen
        return (f"Raise generator.cutoff (now {run.config.get('generator.cutoff')}): the "
                "samples are measurement outcomes, whose spread around each mode is the state's "
                "own quadrature noise; narrower peaks need more squeezing and more photons "
                "(a cat whose components sit further apart), which the cutoff bounds. The "
                "encode amplitude does not steepen anything here.")
    if gen is GeneratorKind.CLASSICAL:
        return (f"Widen generator.hidden (now {run.config.get('generator.hidden')}) or add a "
                "layer: a small MLP bends too gently to jump between the modes.")
    return ("Give the generator more capacity: generator.cutoff for the quantum generator, "
            "generator.hidden for the classical one.")
