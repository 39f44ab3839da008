"""The generator kinds and what each can do: the one place the config checks, the model
builder, the training step and the postmortem ask, instead of comparing strings.

A run's config names its generator by two keys, `generator.kind` ("quantum" or "classical")
and, for the quantum one, `generator.output` ("expectation", "homodyne" or "heterodyne");
`kind_of` turns them into one `GeneratorKind`. Adding a kind: a member here with its `KindInfo`, its model in
qgan/models.py (`build_generator`), and its advice text in analysis/offmode.py and
analysis/advice.py (docs/where-to-add.md). TensorFlow-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping

CONFIG_KINDS = ("quantum", "classical")  # the values of generator.kind


class GeneratorKind(StrEnum):
    QUANTUM = "quantum"  # a CV circuit whose outputs are expectation values of its state
    HOMODYNE = "homodyne"  # a CV circuit whose samples are measured quadratures (Born machine)
    HETERODYNE = "heterodyne"  # ... whose samples are both quadratures of each mode (Husimi Q)
    CLASSICAL = "classical"  # the Keras MLP baseline


@dataclass(frozen=True)
class KindInfo:
    """What a generator kind is made of, for the code that must treat kinds differently."""
    kind: GeneratorKind
    circuit: bool  # a CV circuit: modes, cutoff, a Fock trace (the trace penalty applies)
    outcomes_per_mode: int  # measured outcomes each mode gives (0: not measured)
    compiled_only: bool  # needs generator.backend = "compiled"
    density: bool  # an exact, differentiable density of its samples (loss.likelihood_weight)
    capacity: str  # the config key that bounds how sharp a map it can learn

    @property
    def measured(self) -> bool:
        """Samples are measurement outcomes: their uniforms join the latent."""
        return self.outcomes_per_mode > 0


KINDS: dict[GeneratorKind, KindInfo] = {
    GeneratorKind.QUANTUM: KindInfo(GeneratorKind.QUANTUM, circuit=True, outcomes_per_mode=0,
                                    compiled_only=False, density=False,
                                    capacity="generator.cutoff"),
    GeneratorKind.HOMODYNE: KindInfo(GeneratorKind.HOMODYNE, circuit=True, outcomes_per_mode=1,
                                     compiled_only=True, density=True,
                                     capacity="generator.cutoff"),
    GeneratorKind.HETERODYNE: KindInfo(GeneratorKind.HETERODYNE, circuit=True,
                                       outcomes_per_mode=2, compiled_only=True, density=True,
                                       capacity="generator.cutoff"),
    GeneratorKind.CLASSICAL: KindInfo(GeneratorKind.CLASSICAL, circuit=False,
                                      outcomes_per_mode=0, compiled_only=False, density=False,
                                      capacity="generator.hidden"),
}


def kind_of(kind: Any, output: Any = None) -> GeneratorKind | None:
    """The kind named by `generator.kind` and `generator.output`; None if they name none
    (a damaged or foreign config.toml, read by the postmortem)."""
    if kind == "classical":
        return GeneratorKind.CLASSICAL
    if kind == "quantum":
        return {"homodyne": GeneratorKind.HOMODYNE, "heterodyne": GeneratorKind.HETERODYNE
                }.get(output, GeneratorKind.QUANTUM)
    return None


def info(generator: Any) -> KindInfo:
    """The KindInfo of a validated GeneratorConfig."""
    kind = kind_of(generator.kind, generator.output)
    if kind is None:
        raise ValueError(f"unknown generator.kind {generator.kind!r}")
    return KINDS[kind]


def info_of_config(config: Mapping[str, Any]) -> KindInfo | None:
    """The KindInfo of a run's flattened config (dotted keys, as the postmortem reads it);
    None if its generator keys name no kind."""
    kind = kind_of(config.get("generator.kind"), config.get("generator.output"))
    return KINDS[kind] if kind is not None else None
