"""A finding: one thing that went wrong (or is worth knowing), with evidence and advice."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from qgan.schema import SEVERITIES  # info < warning < error
from qgan.vocabulary import FindingKind

EXPERIMENT = "(experiment)"  # the `run` of findings about the experiment as a whole


def severity_rank(severity: str) -> int:
    """Position in SEVERITIES, so that findings can be compared and filtered."""
    return SEVERITIES.index(severity)


@dataclass
class Finding:
    kind: FindingKind
    severity: str
    run: str
    summary: str
    advice: str = ""
    start_step: int | None = None
    end_step: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = FindingKind(self.kind)  # ValueError for a kind nobody defined
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITIES}")
        self.evidence = {k: _plain(v) for k, v in self.evidence.items()}
        for attr in ("start_step", "end_step"):
            v = getattr(self, attr)
            if v is not None:
                setattr(self, attr, int(v))

    @property
    def steps(self) -> str:
        if self.start_step is None:
            return ""
        if self.end_step is None or self.end_step == self.start_step:
            return str(self.start_step)
        return f"{self.start_step}-{self.end_step}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _plain(v: Any) -> Any:
    """Evidence values as JSON-safe Python scalars (numpy types in, NaN -> None)."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        v = v.item()
    if isinstance(v, float):
        return None if not math.isfinite(v) else float(f"{v:.6g}")
    return v


def worst(findings: list[Finding]) -> str | None:
    """The highest severity among `findings`, or None."""
    if not findings:
        return None
    return max((f.severity for f in findings), key=severity_rank)
