"""The total-photon-number truncation (qgan/circuits/total.py) against an independent reference.

The reference is built here in numpy, complex128: dense states with a per-mode cutoff c, every
gate its own dense matrix (displacement and squeezing from scipy's expm of their generators at
a cutoff 30 higher, cropped; the beamsplitter from expm on two modes at cutoff 2c, cropped;
rotations and Kerr diagonal), applied one by one (no fusion), each followed by the projection
onto total photon number <= c - 1 (the semantics TotalBackend claims: P G P for every gate,
nothing renormalised). Without the projections the same reference is SF's per-mode truncation,
checked against CompiledBackend first, so the reference's gate conventions are SF's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from qgan.circuits import CircuitSpec, initial_weights, make_backend
from qgan.circuits.compiled import CompiledBackend
from qgan.circuits.total import TotalBackend, basis_size


def _lower(k: int) -> np.ndarray:
    return np.diag(np.sqrt(np.arange(1, k)), 1)


def _single(kind: str, value: float, c: int) -> np.ndarray:
    """The c x c truncation of Dgate(r, 0), Sgate(r, 0), Rgate(phi), Kgate(kappa)."""
    n = np.arange(c)
    if kind == "R":
        return np.diag(np.exp(1j * value * n))
    if kind == "K":
        return np.diag(np.exp(1j * value * n ** 2))
    a = _lower(c + 30)
    gen = value * (a.T - a) if kind == "D" else 0.5 * value * (a @ a - a.T @ a.T)
    return scipy.linalg.expm(gen)[:c, :c]


def _beamsplitter(theta: float, phi: float, c: int) -> np.ndarray:
    """[c, c, c, c] (out m, n; in p, q) truncation of BSgate(theta, phi) =
    exp(theta (e^(i phi) a b+ - e^(-i phi) a+ b)), exact for sectors below 2c."""
    k = 2 * c
    a, b = np.kron(_lower(k), np.eye(k)), np.kron(np.eye(k), _lower(k))
    u = scipy.linalg.expm(theta * (np.exp(1j * phi) * a @ b.T - np.exp(-1j * phi) * a.T @ b))
    return u.reshape(k, k, k, k)[:c, :c, :c, :c]


class Reference:
    """Dense numpy simulation of a CircuitSpec (module docstring); project=True: total
    truncation at spec.cutoff, False: per-mode truncation."""

    def __init__(self, spec: CircuitSpec, project: bool):
        self.spec, self.project = spec, project
        c, m = spec.cutoff, spec.modes
        self.mask = np.indices([c] * m).sum(0) <= c - 1

    def _p(self, psi: np.ndarray) -> np.ndarray:
        return psi * self.mask[..., None] if self.project else psi

    def _one(self, psi: np.ndarray, g: np.ndarray, mode: int) -> np.ndarray:
        """g [c, c] or one per sample [B, c, c] on `mode`."""
        psi = np.moveaxis(psi, mode, 0)
        if g.ndim == 2:
            out = np.tensordot(g, psi, axes=1)
        else:
            out = np.einsum("bmn,n...b->m...b", g, psi)
        return self._p(np.moveaxis(out, 0, mode))

    def _pair(self, psi: np.ndarray, g: np.ndarray, a: int, b: int) -> np.ndarray:
        psi = np.moveaxis(psi, (a, b), (0, 1))
        return self._p(np.moveaxis(np.tensordot(g, psi, axes=2), (0, 1), (a, b)))

    def states(self, w: dict, x: np.ndarray) -> np.ndarray:
        s = self.spec
        c, bsz = s.cutoff, len(x)
        psi = np.zeros([c] * s.modes + [bsz], complex)
        psi[(0,) * s.modes] = 1.0

        def encode(psi: np.ndarray, upload: int) -> np.ndarray:
            for i in range(s.n_inputs):
                if s.encoding == "phase":
                    psi = self._one(psi, _single("D", w["encode"][upload, i], c), i)
                    psi = self._one(psi, np.stack([_single("R", z, c) for z in x[:, i]]), i)
                else:
                    psi = self._one(psi, np.stack([_single("D", z, c) for z in x[:, i]]), i)
            return psi

        psi = encode(psi, 0)
        for layer in range(s.layers):
            if layer > 0 and s.reupload:
                psi = encode(psi, layer)
            for tag in "12":
                for j, (a, b) in enumerate(s.beamsplitter_pairs):
                    psi = self._pair(psi, _beamsplitter(w[f"bs{tag}_theta"][layer, j],
                                                        w[f"bs{tag}_phi"][layer, j], c), a, b)
                for m in range(s.modes):
                    psi = self._one(psi, _single("R", w[f"rot{tag}"][layer, m], c), m)
                    if tag == "1":
                        psi = self._one(psi, _single("S", w["squeeze"][layer, m], c), m)
                    else:
                        psi = self._one(psi, _single("D", w["displace"][layer, m], c), m)
                        psi = self._one(psi, _single("K", w["kerr"][layer, m], c), m)
        return psi

    def __call__(self, w: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features [B, n_features], trace [B])."""
        s = self.spec
        psi = self.states(w, x)
        prob = np.abs(psi) ** 2
        a = _lower(s.cutoff)
        x_, p_, n_ = [], [], []
        for m in range(s.n_outputs if s.readout == "x" else s.modes):
            lowered = np.moveaxis(np.tensordot(a, np.moveaxis(psi, m, 0), axes=1), 0, m)
            mean_a = np.sum(np.conj(psi) * lowered, axis=tuple(range(s.modes)))
            x_.append(2 * mean_a.real)
            p_.append(2 * mean_a.imag)
            n_.append(np.sum(prob * np.arange(s.cutoff).reshape(
                [-1 if k == m else 1 for k in range(s.modes)] + [1]), axis=tuple(range(s.modes))))
        feats = x_ if s.readout == "x" else x_ + p_ + n_
        return np.stack(feats, axis=1), prob.sum(axis=tuple(range(s.modes)))


SPECS = [
    CircuitSpec(2, 2, 5, 2, 2),
    CircuitSpec(2, 2, 4, 1, 2, reupload=True, readout="xpn", encoding="phase"),
    CircuitSpec(3, 1, 5, 2, 3, readout="xpn"),
    CircuitSpec(3, 2, 4, 2, 2, reupload=True, encoding="phase"),
    # 4 modes with re-upload: the per-sample gate moves the batch axis in front of modes 2, 3
    # (CompiledBackend's in-place application failed an assertion there before issue 14)
    CircuitSpec(4, 2, 3, 2, 2, reupload=True, readout="xpn", encoding="phase"),
]


def _problem(spec: CircuitSpec, batch: int = 3, seed: int = 5, std: float = 0.3):
    w = {k: v.astype(np.float64)
         for k, v in initial_weights(spec, seed, std, encode_amplitude=0.7).items()}
    x = np.random.default_rng(seed).normal(0.0, 0.6, (batch, spec.n_inputs))
    return w, x


def _run(backend, w: dict, x: np.ndarray, dtype=tf.float64):
    out = backend({k: tf.constant(v, dtype) for k, v in w.items()}, tf.constant(x, dtype))
    return out.quads.numpy(), out.trace.numpy()


def _matches_reference(backend, project: bool) -> np.ndarray:
    """Assert the backend's complex128 features and traces equal the reference's; the trace."""
    w, x = _problem(backend.spec)
    want_q, want_t = Reference(backend.spec, project)(w, x)
    got_q, got_t = _run(backend, w, x)
    np.testing.assert_allclose(got_q, want_q, atol=1e-9)
    np.testing.assert_allclose(got_t, want_t, atol=1e-9)
    return got_t


@pytest.mark.parametrize("spec", SPECS[:2] + SPECS[3:], ids=str)
def test_reference_without_projection_is_the_per_mode_backend(spec):
    """The reference's conventions are CompiledBackend's (= SF's, tests/test_compiled_backend)."""
    _matches_reference(CompiledBackend(spec, tf.complex128), project=False)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_equals_the_projected_reference(spec):
    trace = _matches_reference(TotalBackend(spec, tf.complex128), project=True)
    assert np.all(trace <= 1.0)
    # the truncations differ (else this test would not tell them apart)
    w, x = _problem(spec)
    assert np.abs(_run(CompiledBackend(spec, tf.complex128), w, x)[1] - trace).max() > 1e-4


def test_states_equal_the_projected_reference():
    spec = SPECS[2]
    w, x = _problem(spec)
    backend = TotalBackend(spec, tf.complex128)
    got = backend.states({k: tf.constant(v, tf.float64) for k, v in w.items()},
                         tf.constant(x)).numpy()
    want = Reference(spec, project=True).states(w, x)
    occ = backend.occupations()
    assert got.shape == (basis_size(3, 5), 3) == (35, 3)
    np.testing.assert_allclose(got, want[tuple(occ.T)], atol=1e-10)
    # everything outside the subspace is zero in the reference
    assert np.abs(want).sum() == pytest.approx(np.abs(want[tuple(occ.T)]).sum(), abs=1e-12)


@pytest.mark.parametrize("spec", [CircuitSpec(1, 2, 6, 1, 1),
                                  CircuitSpec(1, 2, 5, 1, 1, reupload=True, readout="xpn",
                                              encoding="phase")], ids=str)
def test_one_mode_is_the_per_mode_backend(spec):
    w, x = _problem(spec, batch=4)
    wt = {k: tf.Variable(v, dtype=tf.float32) for k, v in w.items()}
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        a, b = CompiledBackend(spec)(wt, xt), TotalBackend(spec)(wt, xt)
        la = tf.reduce_sum(a.quads) + tf.reduce_sum(a.trace)
        lb = tf.reduce_sum(b.quads) + tf.reduce_sum(b.trace)
    np.testing.assert_allclose(b.quads.numpy(), a.quads.numpy(), atol=1e-6)
    np.testing.assert_allclose(b.trace.numpy(), a.trace.numpy(), atol=1e-6)
    for k in wt:
        ga, gb = tape.gradient(la, wt[k]), tape.gradient(lb, wt[k])
        if ga is None:  # no beamsplitter at one mode
            assert gb is None and wt[k].shape.num_elements() == 0, k
            continue
        np.testing.assert_allclose(gb.numpy(), ga.numpy(), atol=2e-6, err_msg=k)


@pytest.mark.parametrize("spec", [SPECS[1], CircuitSpec(3, 1, 4, 2, 2, readout="xpn")], ids=str)
def test_gradients_match_finite_differences_of_the_reference(spec):
    """complex128 autodiff (the written-out gradient) against central differences of the
    numpy reference, for every weight and input, through a random linear loss."""
    w, x = _problem(spec, batch=2)
    rng = np.random.default_rng(9)
    coef_q = rng.normal(size=(2, spec.n_features))
    coef_t = rng.normal(size=2)
    ref = Reference(spec, project=True)

    def loss(w: dict, x: np.ndarray) -> float:
        q, t = ref(w, x)
        return float(np.sum(q * coef_q) + np.sum(t * coef_t))

    wt = {k: tf.Variable(v) for k, v in w.items()}
    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = TotalBackend(spec, tf.complex128)(wt, xt)
        total = tf.reduce_sum(out.quads * coef_q) + tf.reduce_sum(out.trace * coef_t)
    grads = tape.gradient(total, list(wt.values()) + [xt])
    h = 1e-6
    for (name, value), got in zip(list(w.items()) + [("inputs", x)], grads):
        want = np.zeros(value.shape)
        for idx in np.ndindex(*value.shape):
            def shifted(step: float) -> float:
                v = value.copy()
                v[idx] += step
                return loss({**w, name: v}, x) if name != "inputs" else loss(w, v)
            want[idx] = (shifted(h) - shifted(-h)) / (2 * h)
        assert got is not None, name
        np.testing.assert_allclose(got.numpy(), want, atol=2e-7, err_msg=name)


def test_complex64_and_graph_modes_agree():
    spec = SPECS[3]
    w, x = _problem(spec, batch=4)
    wt = {k: tf.Variable(v, dtype=tf.float32) for k, v in w.items()}
    xt = tf.constant(x, tf.float32)
    backend = TotalBackend(spec)

    def step(inputs):
        with tf.GradientTape() as tape:
            out = backend(wt, inputs)
            loss = tf.reduce_sum(out.quads) + tf.reduce_sum(out.trace)
        return out.quads, tape.gradient(loss, list(wt.values()))

    eager = step(xt)
    want_q, _ = Reference(spec, project=True)(w, x)
    np.testing.assert_allclose(eager[0].numpy(), want_q, atol=2e-6)
    for jit in (False, True):
        graph = tf.function(step, jit_compile=jit)(xt)
        np.testing.assert_allclose(graph[0].numpy(), eager[0].numpy(), atol=1e-6)
        for g, e in zip(graph[1], eager[1]):
            np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-5)


def test_basis_sizes():
    assert [basis_size(4, c) for c in (6, 7)] == [126, 210]
    assert TotalBackend(CircuitSpec(4, 1, 7, 2, 2)).size == 210 == math.comb(10, 4)
    occ = TotalBackend(CircuitSpec(3, 1, 4, 1, 1)).occupations()
    assert occ.sum(1).max() == 3 and len({tuple(r) for r in occ}) == len(occ) == 20
    assert list(occ.sum(1)) == sorted(occ.sum(1))


def test_bad_configurations():
    with pytest.raises(ValueError, match="cutoff=1 must be at least 2"):
        TotalBackend(CircuitSpec(2, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="dtype must be"):
        TotalBackend(CircuitSpec(2, 1, 4, 1, 1), tf.float32)
    spec = CircuitSpec(2, 1, 4, 1, 1, truncation="total")
    assert isinstance(make_backend("compiled", spec), TotalBackend)
    assert type(make_backend("compiled", CircuitSpec(2, 1, 4, 1, 1))) is CompiledBackend
    with pytest.raises(ValueError, match="truncation='total' needs the compiled backend"):
        make_backend("sf", spec)
    with pytest.raises(ValueError, match="truncation='bogus'; allowed: mode, total"):
        CircuitSpec(2, 1, 4, 1, 1, truncation="bogus")
