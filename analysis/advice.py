"""Advice a person can follow: a run's findings turned into a short list of actions.

Each finding kind maps to the config change it calls for (`ACTIONS`: key and direction; an
action may apply only to findings whose evidence says so, e.g. the generator's kind).
Findings asking for the same change merge into one `Advice` carrying every step range; when one
run asks to raise and to lower the same key in different phases, the two become one
recommendation that says so, with the evidence of both (the direction the evidence covers
longest wins; alternating phases call for the learning-rate controller). Findings without a
config change keep their own advice text, merged by kind. Pure functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from analysis.findings import Finding, severity_rank
from analysis.panels import PANELS, panel_of
from qgan.generator_kinds import GeneratorKind
from qgan.vocabulary import FindingKind, Severity


class Action(NamedTuple):
    """One config change a finding kind calls for."""

    key: str  # the config key; "{net}" = g or d, from the evidence's "network"
    direction: str  # "raise" | "lower" | "" (set it)
    why: str
    when: tuple[str, str] | None = None  # (evidence field, value): only for such findings


A = Action
_MAP_WHY = "samples stay between the modes"
ACTIONS: dict[FindingKind, list[Action]] = {
    FindingKind.D_DOMINANCE: [A("train.d_lr", "lower", "the discriminator dominated and the "
                                                       "generator's gradients faded")],
    FindingKind.G_DOMINANCE: [A("train.d_lr", "raise", "the discriminator could not tell real "
                                                       "from fake before equilibrium")],
    FindingKind.OSCILLATION: [A("train.g_lr", "lower", "the losses oscillated"),
                              A("train.d_lr", "lower", "the losses oscillated")],
    FindingKind.VANISHING_GRADIENTS: [A("train.d_lr", "lower", "gradients vanished")],
    FindingKind.EXPLODING_GRADIENTS: [A("train.{net}_lr", "lower", "gradients exploded")],
    FindingKind.CLIPPING_SATURATION: [A("train.{net}_lr", "lower", "every update was clipped, "
                                        "so the learning rate alone set the step")],
    FindingKind.MODE_COLLAPSE: [A("train.g_lr", "lower", "the generator collapsed onto few "
                                                         "modes")],
    FindingKind.PARTIAL_COLLAPSE: [A("train.g_lr", "lower", "modes once learned were lost")],
    FindingKind.DROPPED_MODE: [
        A("loss.likelihood_weight", "raise", "a mode of the data was dropped, and the "
          "generator's exact likelihood covers every mode", ("likelihood_term", "off")),
        A("train.g_lr", "lower", "a mode of the data was dropped")],
    FindingKind.SKEWED_WEIGHTS: [A("train.batch_size", "raise", "the mode weights were "
                                                                "skewed")],
    FindingKind.BETWEEN_MODES: [
        A("generator.cutoff", "raise", f"{_MAP_WHY} (the circuit's map from latent to samples "
          "is a smooth series whose steepness the photon numbers bound: raise "
          "generator.encode_amplitude with it)",
          ("generator", GeneratorKind.QUANTUM)),
        A("generator.cutoff", "raise", f"{_MAP_WHY} (homodyne samples: the state's quadrature "
          "noise around each mode; narrower peaks need more squeezing and photons)",
          ("generator", GeneratorKind.HOMODYNE)),
        A("generator.cutoff", "raise", f"{_MAP_WHY} (heterodyne samples: the Q function's "
          "noise around each mode; components further apart need more photons)",
          ("generator", GeneratorKind.HETERODYNE)),
        A("generator.hidden", "raise", f"{_MAP_WHY} (wider layers, or one more, let the MLP "
          "bend sharply between them)", ("generator", GeneratorKind.CLASSICAL))],
    FindingKind.FOCK_LEAKAGE: [A("generator.cutoff", "raise", "probability leaked past the "
                                                              "Fock cutoff")],
    FindingKind.REGRESSION: [A("monitor.patience", "", "the run got worse after its best eval: "
                               "early stopping ends it near the best (and keep that state: "
                               "checkpoint.keep_best = true)")],
}
del A
_NETS = {"generator": "g", "discriminator": "d"}
_RAISE_LOWER = {"raise", "lower"}


@dataclass
class Advice:
    text: str  # what to do, one sentence
    key: str  # the config key acted on, or ""
    direction: str  # "raise" | "lower" | ""
    steps: list[tuple[int, int]]  # step ranges where it applies (merged, sorted)
    evidence: str  # the findings behind it, in plain words
    kinds: list[str]  # finding kinds merged into it
    panel: str  # analysis.panels.PANELS id of the figure that shows it
    severity: str = Severity.WARNING.value  # the worst of its findings
    phases: list[dict[str, Any]] = field(default_factory=list)  # resolved contradictions

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [list(s) for s in self.steps]
        return d


def _actions(f: Finding) -> list[tuple[str, str, str]]:
    """(key, direction, why) of the actions that apply to this finding: its kind's, filtered
    by `when` and with "{net}" filled from its evidence."""
    net = _NETS.get(str(f.evidence.get("network", "")), "g")
    return [(a.key.format(net=net), a.direction, a.why) for a in ACTIONS.get(f.kind, [])
            if a.when is None or f.evidence.get(a.when[0]) == a.when[1]]


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching step ranges as one, sorted."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _span(ranges: list[tuple[int, int]]) -> int:
    return sum(b - a + 1 for a, b in ranges)


def _fmt(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


@dataclass
class _Group:
    key: str
    direction: str
    whys: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return merge_ranges([(f.start_step, f.end_step if f.end_step is not None
                              else f.start_step) for f in self.findings
                             if f.start_step is not None])


def _worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=severity_rank)


def _kinds(findings: list[Finding]) -> list[str]:
    return sorted({f.kind for f in findings})


def _panel(findings: list[Finding]) -> str:
    worst = max(findings, key=lambda f: (severity_rank(f.severity), -(f.start_step or 0)))
    p = panel_of(worst.kind)
    assert p in PANELS, p
    return p


def _evidence(findings: list[Finding]) -> str:
    return "; ".join(dict.fromkeys(f.summary for f in findings))


def advise(findings: list[Finding]) -> list[Advice]:
    """One run's findings (warning or worse, with advice) as merged, ordered actions."""
    acting = [f for f in findings if severity_rank(f.severity) >= severity_rank("warning")
              and (f.advice or f.kind in ACTIONS)]
    groups: dict[tuple[str, str], _Group] = {}
    plain: dict[str, list[Finding]] = {}
    for f in acting:
        acts = _actions(f)
        if not acts:
            plain.setdefault(f.kind, []).append(f)
        for key, direction, why in acts:
            g = groups.setdefault((key, direction), _Group(key, direction))
            g.findings.append(f)
            if why not in g.whys:
                g.whys.append(why)
    out: list[Advice] = []
    for key in dict.fromkeys(k for k, _ in groups):
        mine = [g for (k, _), g in groups.items() if k == key]
        opposed = [g for g in mine if g.direction in _RAISE_LOWER]
        if len(opposed) == 2:
            out.append(_resolve(key, opposed))
            mine = [g for g in mine if g not in opposed]
        out += [_keyed(g) for g in mine]
    for kind, fs in plain.items():
        ranges = _Group("", "", findings=fs).ranges
        out.append(Advice(fs[0].advice, "", "", ranges, _evidence(fs), [kind], _panel(fs),
                          _worst(fs)))
    return sorted(out, key=lambda a: (-severity_rank(a.severity),
                                      a.steps[0][0] if a.steps else 1 << 62, a.key, a.text))


def _keyed(g: _Group) -> Advice:
    where = f" (steps {_fmt(g.ranges)})" if g.ranges else ""
    verb = f"{g.direction.capitalize()} {g.key}" if g.direction else f"Set {g.key}"
    text = f"{verb}: {'; '.join(g.whys)}{where}."
    return Advice(text, g.key, g.direction, g.ranges, _evidence(g.findings),
                  _kinds(g.findings), _panel(g.findings), _worst(g.findings))


def _resolve(key: str, pair: list[_Group]) -> Advice:
    """Raise and lower of one key, asked in different phases: one recommendation. The
    direction whose findings cover more steps wins (ties: the one holding at the end);
    the text names both phases so the reader sees why."""
    def weight(g: _Group) -> tuple[int, int]:
        return _span(g.ranges), max((b for _, b in g.ranges), default=-1)
    win, lose = sorted(pair, key=weight, reverse=True)
    phases = [{"direction": g.direction, "steps": [list(r) for r in g.ranges],
               "why": "; ".join(g.whys)} for g in sorted(pair, key=lambda g: min(
                   (a for a, _ in g.ranges), default=0))]
    both = " and ".join(f"{p['direction']} at steps {_fmt([tuple(r) for r in p['steps']])} "
                        f"({p['why']})" for p in phases)
    lr = key.startswith("train.") and key.endswith("_lr")
    text = (f"{win.direction.capitalize()} {key} modestly (the evidence asks to {both}; "
            f"{win.direction} covers more steps)"
            + ("; the balance swung both ways, so let monitor.lr_controller = true adapt it"
               if lr else "") + ".")
    findings = win.findings + lose.findings
    return Advice(text, key, win.direction, merge_ranges(win.ranges + lose.ranges),
                  _evidence(findings), _kinds(findings), _panel(findings), _worst(findings),
                  phases)
