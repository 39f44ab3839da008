"""The CV quantum neural network, described once and simulated by interchangeable backends.

A circuit of `modes` modes: the inputs displace modes 0..n_inputs-1 (x-direction), then
`layers` CV-QNN layers follow (Killoran et al. 2019): interferometer, squeezing on every mode,
interferometer, displacement on every mode, Kerr on every mode. An interferometer is a
rectangular (Clements) mesh of beamsplitters followed by a rotation on every mode. The
outputs are the x-quadrature expectations of modes 0..n_outputs-1, and the state's trace (the
probability that stayed inside the Fock cutoff).

Two options make the map from inputs to outputs less close to affine (a 2-layer circuit with a
small Kerr is nearly linear in its input displacements):
- `reupload`: the inputs displace their modes again before every layer after the first
  (data re-uploading, Perez-Salinas et al. 2020): the output becomes a higher-degree
  function of the inputs.
- `readout = "xpn"`: the measured features are <x>, <p> and <n> of every mode (3 * modes of
  them, ancilla modes included) instead of <x> of the output modes; a trainable linear map
  (in the model) turns them into the outputs. <n> is quadratic in the displacements.

The weights are a dict of named arrays with the shapes below; every backend takes the same
dict, so a checkpoint written by one backend restores into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

# Weight name -> (kind of parameter, per-layer length in terms of modes/beamsplitters).
PASSIVE = ("bs1_theta", "bs1_phi", "rot1", "bs2_theta", "bs2_phi", "rot2")
ACTIVE = ("squeeze", "displace", "kerr")
READOUTS = ("x", "xpn")
WEIGHT_NAMES = ("bs1_theta", "bs1_phi", "rot1", "squeeze", "bs2_theta", "bs2_phi", "rot2",
                "displace", "kerr")


@dataclass(frozen=True)
class CircuitSpec:
    modes: int
    layers: int
    cutoff: int
    n_inputs: int
    n_outputs: int
    reupload: bool = False
    readout: str = "x"  # "x": <x> of modes 0..n_outputs-1; "xpn": <x>, <p>, <n> of every mode

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"readout={self.readout!r}; allowed: {', '.join(READOUTS)}")
        if not 1 <= self.n_inputs <= self.modes:
            raise ValueError(f"n_inputs={self.n_inputs} must be in 1..modes={self.modes}")
        if not 1 <= self.n_outputs <= self.modes:
            raise ValueError(f"n_outputs={self.n_outputs} must be in 1..modes={self.modes}")

    @property
    def n_features(self) -> int:
        """Number of measured features per sample (CircuitOutput.quads' width)."""
        return self.n_outputs if self.readout == "x" else 3 * self.modes

    @property
    def beamsplitter_pairs(self) -> list[tuple[int, int]]:
        """Mode pairs of the rectangular mesh, in the order they are applied."""
        pairs = []
        for k in range(self.modes):
            for i in range(k % 2, self.modes - 1, 2):
                pairs.append((i, i + 1))
        return pairs

    def weight_shapes(self) -> dict[str, tuple[int, int]]:
        n_bs = len(self.beamsplitter_pairs)
        per_layer = {"bs1_theta": n_bs, "bs1_phi": n_bs, "rot1": self.modes,
                     "squeeze": self.modes, "bs2_theta": n_bs, "bs2_phi": n_bs,
                     "rot2": self.modes, "displace": self.modes, "kerr": self.modes}
        return {name: (self.layers, per_layer[name]) for name in WEIGHT_NAMES}


def initial_weights(spec: CircuitSpec, seed: int, active_std: float) -> dict[str, np.ndarray]:
    """Deterministic initial weights: passive angles uniform in [0, 2pi), active ones small."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in spec.weight_shapes().items():
        if name in PASSIVE:
            out[name] = rng.uniform(0.0, 2 * np.pi, size=shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, active_std, size=shape).astype(np.float32)
    return out


class CircuitOutput(NamedTuple):
    quads: "object"  # tf.Tensor [B, n_features], float32: the measured features (spec.readout)
    trace: "object"  # tf.Tensor [B], float32: probability inside the cutoff


class CircuitBackend(Protocol):
    """Simulates a CircuitSpec for a batch of inputs, differentiably."""

    spec: CircuitSpec
    name: str

    def __call__(self, weights: dict, inputs: "object") -> CircuitOutput:
        """weights: name -> tf.Variable [layers, k]; inputs: tf.Tensor [B, n_inputs] float32."""
        ...
