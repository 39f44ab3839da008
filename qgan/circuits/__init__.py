"""Circuit description (spec) and the simulators that run it.

Backends are imported lazily: importing SF's TF backend patches `tf.einsum` process-wide, so
only a run that selects `backend = "sf"` pays for it.
"""

from __future__ import annotations

from .spec import ENCODE_AMPLITUDE, CircuitBackend, CircuitOutput, CircuitSpec, initial_weights

__all__ = ["ENCODE_AMPLITUDE", "CircuitBackend", "CircuitOutput", "CircuitSpec", "initial_weights", "make_backend"]


def make_backend(name: str, spec: CircuitSpec) -> CircuitBackend:
    """The simulator `name` of `spec`; spec.truncation = 'total' needs 'compiled'."""
    if name == "sf":
        if spec.truncation != "mode":
            raise ValueError(f"truncation={spec.truncation!r} needs the compiled backend "
                             "(SF truncates each mode)")
        from .sf_backend import SFBackend  # lazy: Strawberry Fields, only for this simulator

        return SFBackend(spec)
    if name == "compiled" and spec.truncation == "total":
        from .total import TotalBackend  # lazy: TensorFlow; spec.py is read without it

        return TotalBackend(spec)
    if name == "compiled":
        from .compiled import CompiledBackend  # lazy: TensorFlow; spec.py is read without it

        return CompiledBackend(spec)
    raise ValueError(f"unknown circuit backend {name!r}; allowed: 'sf', 'compiled'")
