"""The circuit as data (qgan/circuits/program.py) and the compiled backends' schedule of it
(qgan/circuits/schedule.py): exact instruction sequences of small specs, TensorFlow-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qgan.circuits import CircuitSpec
from qgan.circuits.program import Gate, Input, Weight, program
from qgan.circuits.schedule import Fused, Pair, schedule


def _layer(layer: int) -> list[Gate]:
    """One CV-QNN layer of a 2-mode circuit (one beamsplitter per interferometer)."""
    out = []
    for tag in "12":
        out.append(Gate("beamsplitter", (0, 1), (Weight(f"bs{tag}_theta", layer, 0),
                                                 Weight(f"bs{tag}_phi", layer, 0))))
        out += [Gate("rotation", (m,), (Weight(f"rot{tag}", layer, m),)) for m in (0, 1)]
        if tag == "1":
            out += [Gate("squeeze", (m,), (Weight("squeeze", layer, m),)) for m in (0, 1)]
    out += [Gate("displace", (m,), (Weight("displace", layer, m),)) for m in (0, 1)]
    return out + [Gate("kerr", (m,), (Weight("kerr", layer, m),)) for m in (0, 1)]


def test_displacement_encoding_one_layer():
    prog = program(CircuitSpec(2, 1, 4, 2, 2))
    assert prog == (Gate("displace", (0,), (Input(0),)), Gate("displace", (1,), (Input(1),)),
                    *_layer(0))
    assert [g.per_sample for g in prog[:3]] == [True, True, False]


def test_phase_encoding_one_layer():
    prog = program(CircuitSpec(2, 1, 4, 1, 2, encoding="phase"))
    assert prog == (Gate("displace", (0,), (Weight("encode", 0, 0),)),
                    Gate("rotation", (0,), (Input(0),)), *_layer(0))


@pytest.mark.parametrize("encoding", ["displacement", "phase"])
def test_reupload_encodes_before_every_layer(encoding):
    spec = CircuitSpec(2, 2, 4, 2, 2, reupload=True, encoding=encoding)
    prog = program(spec)
    upload = 2 if encoding == "displacement" else 4
    assert len(prog) == 2 * (upload + len(_layer(0)))
    assert prog[upload + len(_layer(0)):][upload:] == tuple(_layer(1))
    second = prog[upload + len(_layer(0)):][:upload]
    assert {g.modes for g in second} == {(0,), (1,)}
    assert sum(g.per_sample for g in second) == 2
    if encoding == "phase":
        assert [p for g in second for p in g.params if isinstance(p, Weight)] == \
            [Weight("encode", 1, 0), Weight("encode", 1, 1)]
    # every weight element is a parameter exactly once
    used = [p for g in prog for p in g.params if isinstance(p, Weight)]
    assert len(used) == len(set(used)) == sum(r * k for r, k in spec.weight_shapes().values())
    # without reupload the inputs enter once
    assert sum(g.per_sample for g in program(CircuitSpec(2, 2, 4, 2, 2))) == 2


def test_bad_instruction_is_refused():
    with pytest.raises(ValueError, match="beamsplitter takes 2 mode"):
        Gate("beamsplitter", (0,), (Weight("bs1_theta", 0, 0), Weight("bs1_phi", 0, 0)))


def test_schedule_fuses_the_layer_like_the_hand_written_simulator():
    """S @ R1 and K @ D @ R2 per mode; the encoding becomes the initial columns; the
    re-upload R(z) D(a) is one per-sample group applied after the layer's last groups."""
    spec = CircuitSpec(2, 2, 4, 1, 2, reupload=True, encoding="phase")
    prog = program(spec)
    sched = schedule(prog, spec.modes)
    first = sched.columns[0]
    assert [prog[i].kind for _, i in first.components()] == ["displace", "rotation"]
    assert sched.columns[1] is None  # vacuum
    kinds = [("pair",) if isinstance(st, Pair) else
             (st.mode, *(prog[i].kind for _, i in st.components())) for st in sched.steps]
    layer = [("pair",), (0, "rotation", "squeeze"), (1, "rotation", "squeeze"), ("pair",),
             (0, "rotation", "displace", "kerr"), (1, "rotation", "displace", "kerr")]
    assert kinds == layer + [(0, "displace", "rotation")] + layer
    upload = sched.steps[len(layer)]
    assert isinstance(upload, Fused) and upload.post and prog[upload.post[0]].per_sample


def test_program_needs_no_tensorflow():
    code = ("import sys; from qgan.circuits import CircuitSpec; "
            "from qgan.circuits.schedule import schedule; from qgan.circuits.program import "
            "program; schedule(program(CircuitSpec(3, 2, 5, 2, 3)), 3); "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
