"""The circuit of a CircuitSpec as one ordered sequence of gate instructions (issue 23).

Why it exists: every simulator used to write out the layer sequence of spec.py's docstring
itself; now `program(spec)` writes it once, as plain data, and each simulator interprets it
(qgan/circuits/compiled.py and total.py through qgan/circuits/schedule.py, and
qgan/circuits/sf_backend.py). Pure Python: no TensorFlow, no Strawberry Fields.

An instruction (`Gate`) names its kind, the mode(s) it acts on and where each parameter comes
from: a weight element (`Weight(name, row, col)`), an input column (`Input(index)`), or a
constant (`Const(value)`). The order is Strawberry Fields' (the reference simulator).

How to add a gate:
1. its kind in `KINDS` (modes, parameter count, whether it is diagonal in the Fock basis) and
   its instructions in `program()` below;
2. if it has trainable parameters, their weight shape in `CircuitSpec.weight_shapes`
   (spec.py; `WEIGHT_NAMES`, and `PASSIVE` or not for the initial draws);
3. one kernel per simulator: its truncated Fock matrix (or diagonal) builder in
   compiled.py's `MATRICES` / `DIAGONALS` (the total-photon backend reuses them), and its SF
   operation in sf_backend.py's `OPERATIONS`.
A two-mode kind other than the beamsplitter also needs an application kernel in compiled.py
and total.py: theirs exploit the beamsplitter's photon-number conservation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple, Union

from .spec import CircuitSpec


@dataclass(frozen=True)
class Weight:
    """The element [row, col] of the weight `name`."""
    name: str
    row: int
    col: int


@dataclass(frozen=True)
class Input:
    """Column `index` of the inputs: a per-sample parameter."""
    index: int


@dataclass(frozen=True)
class Const:
    value: float


Param = Union[Weight, Input, Const]


class Kind(NamedTuple):
    modes: int  # how many modes the gate acts on
    params: int  # how many parameters it takes
    # diagonal in the Fock basis with phase 0 at n = 0 (so it leaves the vacuum unchanged):
    # the compiled simulators fuse such gates into their neighbours
    diagonal: bool


KINDS: dict[str, Kind] = {
    "beamsplitter": Kind(2, 2, False),  # BS(theta, phi)
    "rotation": Kind(1, 1, True),  # R(phi) = exp(i phi n)
    "squeeze": Kind(1, 1, False),  # S(r, 0)
    "displace": Kind(1, 1, False),  # D(r, 0)
    "kerr": Kind(1, 1, True),  # K(kappa) = exp(i kappa n^2)
}


@dataclass(frozen=True)
class Gate:
    kind: str
    modes: tuple[int, ...]
    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        k = KINDS[self.kind]
        if len(self.modes) != k.modes or len(self.params) != k.params:
            raise ValueError(f"{self.kind} takes {k.modes} mode(s) and {k.params} "
                             f"parameter(s), not {self.modes} and {self.params}")

    @property
    def per_sample(self) -> bool:
        """True if a parameter is an input (the gate differs between the samples)."""
        return any(isinstance(p, Input) for p in self.params)


def _single(kind: str, name: str, layer: int, modes: int) -> list[Gate]:
    return [Gate(kind, (m,), (Weight(name, layer, m),)) for m in range(modes)]


def _interferometer(spec: CircuitSpec, layer: int, tag: str) -> list[Gate]:
    """Clements mesh of beamsplitters, then a rotation on every mode."""
    gates = [Gate("beamsplitter", pair, (Weight(f"bs{tag}_theta", layer, j),
                                         Weight(f"bs{tag}_phi", layer, j)))
             for j, pair in enumerate(spec.beamsplitter_pairs)]
    return gates + _single("rotation", f"rot{tag}", layer, spec.modes)


def _encoding(spec: CircuitSpec, layer: int) -> list[Gate]:
    """The inputs' upload before `layer`: D(z) (displacement) or R(z) D(a_layer) (phase)."""
    gates: list[Gate] = []
    for i in range(spec.n_inputs):
        if spec.encoding == "phase":
            gates += [Gate("displace", (i,), (Weight("encode", layer, i),)),
                      Gate("rotation", (i,), (Input(i),))]
        else:
            gates.append(Gate("displace", (i,), (Input(i),)))
    return gates


@functools.lru_cache(maxsize=None)
def program(spec: CircuitSpec) -> tuple[Gate, ...]:
    """The instructions of `spec`'s circuit, in the order they act (spec.py's docstring)."""
    gates: list[Gate] = []
    for layer in range(spec.layers):
        if layer < spec.uploads:
            gates += _encoding(spec, layer)
        gates += _interferometer(spec, layer, "1")
        gates += _single("squeeze", "squeeze", layer, spec.modes)
        gates += _interferometer(spec, layer, "2")
        gates += _single("displace", "displace", layer, spec.modes)
        gates += _single("kerr", "kerr", layer, spec.modes)
    return tuple(gates)
