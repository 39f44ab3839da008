"""The compiled backend against Strawberry Fields' TF backend (the reference), and on its own.

Tolerances (complex64 on both sides): outputs and states agree to rtol = 1e-5, atol = 1e-5;
gradients to rtol = 1e-5, atol = 1e-5 * max(1, max |gradient of that weight|). The differences
measured while writing this were <= 1.5e-6, so these are not loose.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from qgan.circuits import CircuitSpec, initial_weights
from qgan.circuits.compiled import (CompiledBackend, beamsplitter_tensors, coherent_columns,
                                    displacement_matrices, squeezing_matrices)
from qgan.circuits.spec import WEIGHT_NAMES

RTOL = 1e-5
ATOL = 1e-5


def _problem(spec: CircuitSpec, batch: int, active_std: float, input_std: float, seed: int,
             dtype: tf.DType = tf.float32):
    """Random weights (passive angles uniform in [0, 2pi)), inputs and loss coefficients."""
    weights = {k: tf.Variable(tf.cast(v, dtype))
               for k, v in initial_weights(spec, seed, active_std).items()}
    rng = np.random.default_rng(seed + 1000)
    inputs = tf.constant(rng.normal(0.0, input_std, (batch, spec.n_inputs)), dtype)
    coef_q = tf.constant(rng.normal(size=(batch, spec.n_outputs)), dtype)
    coef_t = tf.constant(rng.normal(size=(batch,)), dtype)
    return weights, inputs, coef_q, coef_t


def _forward_backward(backend, weights, inputs, coef_q, coef_t):
    """Outputs and the gradients of a random linear loss w.r.t. every weight and the inputs."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = backend(weights, inputs)
        loss = tf.reduce_sum(out.quads * coef_q) + tf.reduce_sum(out.trace * coef_t)
    names = list(weights)
    grads = tape.gradient(loss, [weights[k] for k in names] + [inputs])
    return out, dict(zip(names + ["inputs"], grads))


def _assert_grads_close(got: dict, want: dict) -> None:
    for name, w in want.items():
        g = got[name]
        if w is None or g is None:  # only the empty beamsplitter weights of a 1-mode circuit
            assert (w is None or w.shape.num_elements() == 0) and \
                (g is None or g.shape.num_elements() == 0), name
            continue
        w = w.numpy()
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g.numpy(), w, rtol=RTOL, atol=ATOL * scale, err_msg=name)


def _sf_reference(backend, weights, inputs, coef_q, coef_t):
    """SF's outputs and gradients. SF's batched engine rejects batch_size=1 (SFBackend does not
    handle that yet), so a batch of one is run as a batch of two identical samples whose second
    row has zero loss weight, and the second row is dropped."""
    if int(inputs.shape[0]) != 1:
        return _forward_backward(backend, weights, inputs, coef_q, coef_t)
    pad = tf.zeros_like
    out, grads = _forward_backward(backend, weights, tf.concat([inputs, inputs], 0),
                                   tf.concat([coef_q, pad(coef_q)], 0),
                                   tf.concat([coef_t, pad(coef_t)], 0))
    grads["inputs"] = grads["inputs"][:1]
    return type(out)(out.quads[:1], out.trace[:1]), grads


@pytest.fixture(scope="module")
def sf_backend_cls():
    # Imported here, not at module level: SF's TF backend patches tf.einsum process-wide.
    from qgan.circuits.sf_backend import SFBackend

    return SFBackend


# (modes, layers, cutoff, batch, n_inputs, n_outputs, active_std, input_std, min_trace_below)
CASES = [
    pytest.param(1, 2, 5, 1, 1, 1, 0.3, 0.5, None, id="1mode-c5-b1"),
    pytest.param(2, 2, 8, 32, 2, 2, 0.2, 0.5, None, id="2modes-c8-b32-default"),
    pytest.param(3, 1, 6, 7, 2, 3, 0.2, 0.5, None, id="3modes-c6-b7"),
    pytest.param(2, 1, 3, 64, 1, 2, 0.3, 0.5, None, id="2modes-c3-b64"),
    pytest.param(2, 2, 12, 2, 2, 1, 0.4, 0.8, None, id="2modes-c12-b2"),
    pytest.param(2, 2, 4, 5, 2, 2, 0.5, 1.2, 0.9, id="2modes-c4-b5-leaky"),
]


@pytest.mark.parametrize(
    "modes,layers,cutoff,batch,n_in,n_out,active_std,input_std,leak", CASES)
def test_matches_strawberry_fields(sf_backend_cls, modes, layers, cutoff, batch, n_in, n_out,
                                   active_std, input_std, leak):
    spec = CircuitSpec(modes, layers, cutoff, n_in, n_out)
    problem = _problem(spec, batch, active_std, input_std, seed=cutoff * 10 + modes)
    ref_out, ref_grads = _sf_reference(sf_backend_cls(spec), *problem)
    out, grads = _forward_backward(CompiledBackend(spec), *problem)

    assert out.quads.dtype == tf.float32 and out.trace.dtype == tf.float32
    assert out.quads.shape == (batch, n_out) and out.trace.shape == (batch,)
    np.testing.assert_allclose(out.quads.numpy(), ref_out.quads.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.trace.numpy(), ref_out.trace.numpy(), rtol=RTOL, atol=ATOL)
    if leak is not None:  # the truncation behaviour itself, not just the happy path
        assert ref_out.trace.numpy().min() < leak
    _assert_grads_close(grads, ref_grads)


@pytest.mark.parametrize("spec", [
    CircuitSpec(2, 3, 5, 2, 2, reupload=True),
    CircuitSpec(3, 2, 4, 2, 2, readout="xpn"),
    CircuitSpec(3, 2, 5, 1, 2, reupload=True, readout="xpn"),
], ids=["reupload", "xpn-ancilla", "reupload-xpn-1input"])
def test_expressive_options_match_strawberry_fields(sf_backend_cls, spec):
    """Re-uploading the inputs before every layer, and the <x>, <p>, <n> readout of every mode."""
    weights, inputs, _, coef_t = _problem(spec, 4, 0.3, 0.5, seed=3)
    coef_q = tf.constant(np.random.default_rng(1).normal(size=(4, spec.n_features)), tf.float32)
    ref_out, ref_grads = _sf_reference(sf_backend_cls(spec), weights, inputs, coef_q, coef_t)
    out, grads = _forward_backward(CompiledBackend(spec), weights, inputs, coef_q, coef_t)
    assert out.quads.shape == (4, spec.n_features)
    np.testing.assert_allclose(out.quads.numpy(), ref_out.quads.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.trace.numpy(), ref_out.trace.numpy(), rtol=RTOL, atol=ATOL)
    _assert_grads_close(grads, ref_grads)
    plain = CompiledBackend(CircuitSpec(spec.modes, spec.layers, spec.cutoff, spec.n_inputs,
                                        spec.n_outputs))(weights, inputs)
    if spec.reupload:  # the option changes the circuit, not only its bookkeeping
        assert np.abs(plain.trace.numpy() - out.trace.numpy()).max() > 1e-3
    else:  # the first features are the plain circuit's <x>
        np.testing.assert_allclose(out.quads.numpy()[:, :spec.n_outputs], plain.quads.numpy(),
                                   rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spec", [
    CircuitSpec(2, 3, 5, 2, 2, reupload=True, encoding="phase"),
    CircuitSpec(3, 2, 4, 1, 2, readout="xpn", encoding="phase"),
    CircuitSpec(1, 2, 6, 1, 1, reupload=True, readout="xpn", encoding="phase"),
], ids=["phase-reupload", "phase-xpn-ancilla", "phase-1mode-reupload-xpn"])
def test_phase_encoding_matches_strawberry_fields(sf_backend_cls, spec):
    """Inputs as rotation angles of coherent states, R(z) D(a_l), with the re-upload
    amplitudes a_l moved off their initial 0 so every factor is exercised."""
    weights, _, _, coef_t = _problem(spec, 4, 0.3, 0.5, seed=4)
    rng = np.random.default_rng(9)
    assert weights["encode"].shape == (spec.layers if spec.reupload else 1, spec.n_inputs)
    weights["encode"].assign(rng.uniform(0.2, 0.9, weights["encode"].shape).astype(np.float32))
    inputs = tf.constant(rng.uniform(-np.pi, np.pi, (4, spec.n_inputs)), tf.float32)
    coef_q = tf.constant(rng.normal(size=(4, spec.n_features)), tf.float32)
    ref_out, ref_grads = _sf_reference(sf_backend_cls(spec), weights, inputs, coef_q, coef_t)
    out, grads = _forward_backward(CompiledBackend(spec), weights, inputs, coef_q, coef_t)
    np.testing.assert_allclose(out.quads.numpy(), ref_out.quads.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.trace.numpy(), ref_out.trace.numpy(), rtol=RTOL, atol=ATOL)
    _assert_grads_close(grads, ref_grads)
    assert np.abs(grads["encode"].numpy()).min() > 1e-4  # every amplitude matters


def test_phase_encoding_is_a_rotated_coherent_state():
    """Without layers' effect (all active weights 0, passive ones 0), mode 0 holds the coherent
    state of amplitude a e^{iz}: <x> = 2a cos z, <p> = 2a sin z, <n> = a^2 (hbar = 2)."""
    spec = CircuitSpec(1, 1, 12, 1, 1, readout="xpn", encoding="phase")
    weights = {k: tf.Variable(np.zeros(v.shape, np.float32))
               for k, v in initial_weights(spec, 0, 0.1).items()}
    weights["encode"].assign([[0.8]])
    z = np.array([[-3.0], [-1.0], [0.0], [0.5], [2.0]], np.float32)
    out = CompiledBackend(spec, tf.complex128)(weights, tf.constant(z, tf.float64))
    want = np.stack([1.6 * np.cos(z[:, 0]), 1.6 * np.sin(z[:, 0]),
                     np.full(len(z), 0.64)], axis=1)
    np.testing.assert_allclose(out.quads.numpy(), want, atol=1e-6)


@pytest.mark.parametrize("modes,cutoff,batch", [(2, 5, 3), (3, 4, 2)])
def test_states_match_strawberry_fields(sf_backend_cls, modes, cutoff, batch):
    """The kets themselves (phase included), not only what is measured on them."""
    import strawberryfields as sf

    spec = CircuitSpec(modes, 2, cutoff, modes, 1)
    weights, inputs, _, _ = _problem(spec, batch, 0.4, 0.7, seed=7)
    args = {f"in_{i}": inputs[:, i] for i in range(spec.n_inputs)}
    for name, var in weights.items():
        for layer in range(spec.layers):
            for j in range(var.shape[1]):
                args[f"{name}_{layer}_{j}"] = var[layer, j]
    prog = sf_backend_cls(spec)._prog
    eng = sf.Engine("tf", backend_options={"cutoff_dim": cutoff, "batch_size": batch})
    ref = eng.run(prog, args=args).state.ket().numpy()  # [B, c, ..., c]

    psi, axes = CompiledBackend(spec).states(weights, inputs)
    order = [axes.index(-1)] + [axes.index(m) for m in range(modes)]
    ket = tf.transpose(psi, order).numpy()
    np.testing.assert_allclose(ket, ref, rtol=RTOL, atol=ATOL)
    assert np.abs(ket).max() > 0.1


@pytest.mark.parametrize("cutoff", [3, 7, 12])
def test_gate_matrices_match_thewalrus(cutoff):
    """Each gate's truncated matrix equals thewalrus's recurrence (what SF calls), float64."""
    from thewalrus.fock_gradients import beamsplitter, displacement, squeezing

    rs = np.array([0.0, 0.3, -0.7, 1.5, -2.5])
    d = displacement_matrices(tf.constant(rs), cutoff).numpy()
    s = squeezing_matrices(tf.constant(rs), cutoff).numpy()
    col = coherent_columns(tf.constant(rs), cutoff).numpy()
    for i, r in enumerate(rs):
        np.testing.assert_allclose(d[i], displacement(r, 0.0, cutoff), rtol=0, atol=1e-10)
        np.testing.assert_allclose(s[i], squeezing(r, 0.0, cutoff), rtol=0, atol=1e-10)
        np.testing.assert_allclose(col[i], displacement(r, 0.0, cutoff)[:, 0], rtol=0, atol=1e-10)
    thetas = np.array([0.3, -2.0, 0.0, np.pi / 2, 5.5])
    phis = np.array([1.2, 4.0, 0.0, 1.0, -0.3])
    z = beamsplitter_tensors(tf.constant(thetas), tf.constant(phis), cutoff).numpy()
    for i, (th, ph) in enumerate(zip(thetas, phis)):
        np.testing.assert_allclose(z[i], beamsplitter(th, ph, cutoff), rtol=0, atol=1e-10)


@pytest.mark.parametrize("spec", [CircuitSpec(2, 2, 7, 2, 2), CircuitSpec(3, 1, 5, 2, 3),
                                  CircuitSpec(4, 1, 4, 2, 2, reupload=True, readout="xpn")],
                         ids=["2modes-c7", "3modes-c5", "4modes-c4-xpn"])
def test_sector_beamsplitters_equal_dense(spec):
    """Beamsplitters applied sector by sector (the default) give the dense matrices' states,
    outputs and gradients (the SF comparisons above run the sector form)."""
    problem = _problem(spec, 3, 0.3, 0.6, seed=4)
    problem = (problem[0], problem[1],
               tf.constant(np.random.default_rng(2).normal(size=(3, spec.n_features)),
                           tf.float32), problem[3])
    sector, dense = CompiledBackend(spec), CompiledBackend(spec, sector=False)
    assert sector.sector and not dense.sector
    out, grads = _forward_backward(sector, *problem)
    ref_out, ref_grads = _forward_backward(dense, *problem)
    np.testing.assert_allclose(out.quads.numpy(), ref_out.quads.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.trace.numpy(), ref_out.trace.numpy(), rtol=RTOL, atol=ATOL)
    _assert_grads_close(grads, ref_grads)
    psi, axes = sector.states(problem[0], problem[1])
    ref_psi, ref_axes = dense.states(problem[0], problem[1])
    assert axes == ref_axes
    np.testing.assert_allclose(psi.numpy(), ref_psi.numpy(), rtol=RTOL, atol=ATOL)


def test_sector_blocks_hold_every_beamsplitter_element():
    """The dense matrix rebuilt from the sector blocks is block diagonal in N = m + n and each
    block is unitary where no photon can leave the cutoff (N <= c - 1)."""
    from qgan.circuits.compiled import beamsplitter_blocks, dense_beamsplitters

    c = 5
    blocks = beamsplitter_blocks(tf.constant([0.7, -1.9]), tf.constant([0.4, 2.2]), c).numpy()
    dense = dense_beamsplitters(tf.constant(blocks)).numpy().reshape(2, c, c, c, c)
    m, n, p, q = np.meshgrid(*[np.arange(c)] * 4, indexing="ij")
    assert np.abs(dense[:, (m + n) != (p + q)]).max() == 0.0
    for big_n in range(c):
        size = big_n + 1
        b = blocks[0, big_n, :size, :size]
        np.testing.assert_allclose(b @ b.conj().T, np.eye(size), atol=1e-6)
        assert not np.any(blocks[:, big_n, size:]) and not np.any(blocks[:, big_n, :, size:])


def test_gradients_match_central_finite_differences():
    """Complex-gradient check (TF 2.21 has complex ops with wrong gradients): complex128
    backend, tape gradient vs central differences of the same loss, for one entry of every
    weight and one input."""
    spec = CircuitSpec(2, 2, 6, 2, 2)
    weights, inputs, coef_q, coef_t = _problem(spec, 3, 0.3, 0.6, seed=3, dtype=tf.float64)
    backend = CompiledBackend(spec, dtype=tf.complex128)

    def loss() -> float:
        out = backend(weights, inputs)
        return float(tf.reduce_sum(out.quads * coef_q) + tf.reduce_sum(out.trace * coef_t))

    _, grads = _forward_backward(backend, weights, inputs, coef_q, coef_t)
    inputs_var = tf.Variable(inputs)
    h = 1e-6
    checks = [(name, weights[name], (1, 0)) for name in WEIGHT_NAMES]
    checks.append(("inputs", inputs_var, (2, 1)))
    for name, var, idx in checks:
        base = var.numpy()
        fd = []
        for sign in (1, -1):
            bumped = base.copy()
            bumped[idx] += sign * h
            var.assign(bumped)
            if name == "inputs":
                inputs = tf.convert_to_tensor(inputs_var)
            fd.append(loss())
        var.assign(base)
        if name == "inputs":
            inputs = tf.convert_to_tensor(inputs_var)
        numeric = (fd[0] - fd[1]) / (2 * h)
        analytic = float(grads[name].numpy()[idx])
        assert abs(analytic) > 1e-4, name  # a check of something non-trivial
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8), name


def test_complex64_gradients_match_complex128():
    """The complex64 gradients the trainer uses are those of the exact function, to 1e-5."""
    spec = CircuitSpec(3, 2, 5, 2, 3)
    weights, inputs, coef_q, coef_t = _problem(spec, 4, 0.3, 0.6, seed=5)
    weights64 = {k: tf.Variable(tf.cast(v, tf.float64)) for k, v in weights.items()}
    cast = [tf.cast(t, tf.float64) for t in (inputs, coef_q, coef_t)]
    out32, g32 = _forward_backward(CompiledBackend(spec), weights, inputs, coef_q, coef_t)
    out64, g64 = _forward_backward(CompiledBackend(spec, tf.complex128), weights64, *cast)
    np.testing.assert_allclose(out32.quads.numpy(), out64.quads.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out32.trace.numpy(), out64.trace.numpy(), rtol=RTOL, atol=ATOL)
    _assert_grads_close(g32, g64)


@pytest.mark.parametrize("jit", [False, True], ids=["tf.function", "xla"])
def test_graph_mode_matches_eager(jit):
    spec = CircuitSpec(2, 1, 5, 2, 2)
    weights, inputs, coef_q, coef_t = _problem(spec, 4, 0.3, 0.6, seed=11)
    backend = CompiledBackend(spec)

    def step(x):
        return _forward_backward(backend, weights, x, coef_q, coef_t)

    eager_out, eager_grads = step(inputs)
    compiled = tf.function(step, jit_compile=jit)
    for _ in range(2):  # the second call reuses the traced graph
        out, grads = compiled(inputs)
    tol = dict(rtol=1e-5, atol=1e-6) if jit else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.quads.numpy(), eager_out.quads.numpy(), **tol)
    np.testing.assert_allclose(out.trace.numpy(), eager_out.trace.numpy(), **tol)
    for name in eager_grads:
        np.testing.assert_allclose(grads[name].numpy(), eager_grads[name].numpy(), **tol,
                                   err_msg=name)
    assert compiled.experimental_get_tracing_count() == 1


def test_variable_batch_size_in_one_graph():
    """A tf.function with an unknown batch dimension serves every batch size."""
    spec = CircuitSpec(2, 1, 4, 1, 2)
    weights, _, _, _ = _problem(spec, 1, 0.3, 0.6, seed=2)
    backend = CompiledBackend(spec)
    fn = tf.function(lambda x: backend(weights, x),
                     input_signature=[tf.TensorSpec([None, 1], tf.float32)])
    for batch in (1, 5):
        x = tf.random.stateless_normal([batch, 1], seed=[1, batch])
        out = fn(x)
        eager = backend(weights, x)
        assert out.quads.shape == (batch, 2)
        np.testing.assert_allclose(out.quads.numpy(), eager.quads.numpy(), rtol=1e-6, atol=1e-7)


def test_import_does_not_load_strawberry_fields():
    code = textwrap.dedent("""
        import sys
        import tensorflow as tf
        einsum = tf.einsum
        from qgan.circuits import CircuitSpec, initial_weights, make_backend
        spec = CircuitSpec(2, 1, 4, 2, 2)
        backend = make_backend("compiled", spec)
        w = {k: tf.Variable(v) for k, v in initial_weights(spec, 0, 0.1).items()}
        out = backend(w, tf.zeros([3, 2]))
        assert out.quads.shape == (3, 2)
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("strawberryfields", "thewalrus"))
        assert not loaded, loaded
        assert tf.einsum is einsum
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
