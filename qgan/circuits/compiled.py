"""A compiled Fock-space simulator of a CircuitSpec: same numbers as SF's TF backend, traceable.

Why it exists: SF's TF backend is overhead-bound (tens of thousands of tiny eager ops per step,
gates shared by the batch rebuilt once per sample, `.numpy()` calls that forbid `tf.function`;
FACTS.md). This backend simulates the same circuit with a few hundred vectorised TF ops, so the
whole training step can run under `tf.function` (and XLA, `jit_compile=True`).

What it computes, and why it equals SF:
- Pure states only: a [c]*modes + [B] complex64 amplitude tensor (mixed states would square
  every cost, and the circuit has no loss channels).
- Gate matrices are the exact Fock matrix elements, truncated to the cutoff, built with the
  same recurrences thewalrus uses (what SF calls), vectorised over all gates of a kind at once.
  SF also truncates each *gate* to the cutoff and applies it to the truncated state; applying
  those truncated matrices in sequence is what we do, so the trace (probability left inside
  the cutoff) and everything else agree also when probability leaks past the cutoff.
- The gates with zero phase (Dgate(r, 0), Sgate(r, 0)) have real matrices: built in float32.
  The beamsplitter is built at phi = 0 (real) and its phase applied in closed form:
  <m,n|BS(theta,phi)|p,q> = exp(i phi (n - q)) <m,n|BS(theta,0)|p,q>.
- Diagonal gates are fused into their neighbours (exact algebra, only rounding differs):
  rot1 into the squeezer (S @ R1), rot2 and Kerr into the displacement (K @ D @ R2), per mode.
- The inputs displace the vacuum, so their states are the first columns of the displacement
  matrices (truncated coherent states): no per-sample matrix is ever built.
- Gates are applied as one 2-D matmul each (the acted-on modes moved to the front by a
  transpose), not with `tf.einsum`: SF's TF backend replaces `tf.einsum` process-wide when it
  is imported, and this module must behave the same whether or not SF is loaded. It never
  imports strawberryfields. No `tf.math.cumprod` (wrong complex gradients in TF 2.21, no XLA):
  powers and recurrences are unrolled over the cutoff in Python.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorflow as tf

from .spec import CircuitOutput, CircuitSpec

log = logging.getLogger(__name__)

_BATCH = -1  # axis label of the batch axis in the state's axis bookkeeping


def _shift_down(x: tf.Tensor, axis: int) -> tf.Tensor:
    """x[..., m, ...] -> x[..., m-1, ...] along `axis`, with zeros at m = 0."""
    rank = len(x.shape)
    axis = axis % rank
    begin = [0] * rank
    size = [-1] * rank
    size[axis] = int(x.shape[axis]) - 1
    paddings = [[0, 0]] * rank
    paddings[axis] = [1, 0]
    return tf.pad(tf.slice(x, begin, size), paddings)


def coherent_columns(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|0> for m < cutoff: [K] float32 -> [K, cutoff] float32.

    thewalrus's first-column recurrence D[m, 0] = r / sqrt(m) * D[m-1, 0], unrolled.
    """
    col = [tf.exp(-0.5 * tf.square(r))]
    for m in range(1, cutoff):
        col.append(col[-1] * (r * np.float32(1.0 / np.sqrt(m))))
    return tf.stack(col, axis=1)


def displacement_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|n>: [K] float32 -> [K, cutoff, cutoff] float32 (real because phi = 0).

    thewalrus's recurrence, one column at a time:
    D[m, n] = -r / sqrt(n) * D[m, n-1] + sqrt(m / n) * D[m-1, n-1].
    """
    sqrt_m = tf.constant(np.sqrt(np.arange(cutoff)), tf.float32)
    cols = [coherent_columns(r, cutoff)]
    neg_r = -r[:, None]
    for n in range(1, cutoff):
        prev = cols[-1]
        inv = np.float32(1.0 / np.sqrt(n))
        cols.append(neg_r * inv * prev + (sqrt_m * inv) * _shift_down(prev, 1))
    return tf.stack(cols, axis=2)


def squeezing_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|S(r, 0)|n>: [K] float32 -> [K, cutoff, cutoff] float32 (real because phi = 0).

    thewalrus's recurrence with R = [[-tanh r, sech r], [sech r, tanh r]]:
    S[m, 0] = sqrt((m-1)/m) R00 S[m-2, 0];
    S[m, n] = sqrt((n-1)/n) R11 S[m, n-2] + sqrt(m/n) R01 S[m-1, n-1].
    Entries with m + n odd stay zero by construction.
    """
    tanh = tf.tanh(r)
    sech = 1.0 / tf.cosh(r)
    zero = tf.zeros_like(r)
    first = [tf.sqrt(sech)]
    for m in range(1, cutoff):
        if m % 2:
            first.append(zero)
        else:
            first.append(first[m - 2] * (-tanh) * np.float32(np.sqrt((m - 1) / m)))
    cols = [tf.stack(first, axis=1)]
    sqrt_m = tf.constant(np.sqrt(np.arange(cutoff)), tf.float32)
    tanh_c, sech_c = tanh[:, None], sech[:, None]
    for n in range(1, cutoff):
        term = (sech_c * (sqrt_m * np.float32(1.0 / np.sqrt(n)))) * _shift_down(cols[-1], 1)
        if n >= 2:
            term = term + (tanh_c * np.float32(np.sqrt((n - 1) / n))) * cols[n - 2]
        cols.append(term)
    return tf.stack(cols, axis=2)


def _powers(x: tf.Tensor, cutoff: int) -> tf.Tensor:
    """[x^0, ..., x^(cutoff-1)] by repeated products (tf.pow's gradient is NaN at 0 base)."""
    out = [tf.ones_like(x)]
    for _ in range(1, cutoff):
        out.append(out[-1] * x)
    return tf.stack(out, axis=1)


def beamsplitter_tensors(theta: tf.Tensor, phi: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m,n|BS(theta, phi)|p,q>: [G], [G] float32 -> [G, c, c, c, c] complex64 (out m, n; in p, q).

    thewalrus's recurrence at phi = 0 (real): the q = 0 slice is the binomial
    Z[m, n, m+n, 0] = sqrt((m+n)! / (m! n!)) cos^m(theta) sin^n(theta), then
    Z[m, n, p, q] = (-sin sqrt(m) Z[m-1, n, p, q-1] + cos sqrt(n) Z[m, n-1, p, q-1]) / sqrt(q).
    The phase exp(i phi (n - q)) is applied last.
    """
    c = cutoff
    idx = np.arange(c)
    fact = np.array([float(math.factorial(k)) for k in range(2 * c)])
    m_, n_, p_ = np.meshgrid(idx, idx, idx, indexing="ij")
    binom = np.where(p_ == m_ + n_, np.sqrt(fact[np.minimum(m_ + n_, 2 * c - 1)]
                                            / (fact[m_] * fact[n_])), 0.0)
    ct, st = tf.cos(theta), tf.sin(theta)
    base = (_powers(ct, c)[:, :, None, None] * _powers(st, c)[:, None, :, None]
            * tf.constant(binom, tf.float32)[None])
    sqrt_m = tf.constant(np.sqrt(idx).reshape(1, c, 1, 1), tf.float32)
    sqrt_n = tf.constant(np.sqrt(idx).reshape(1, 1, c, 1), tf.float32)
    neg_s = -st[:, None, None, None]
    cos_c = ct[:, None, None, None]
    slices = [base]
    for q in range(1, c):
        prev = slices[-1]
        inv = np.float32(1.0 / np.sqrt(q))
        slices.append((neg_s * inv) * (sqrt_m * _shift_down(prev, 1))
                      + (cos_c * inv) * (sqrt_n * _shift_down(prev, 2)))
    real = tf.stack(slices, axis=4)
    n_minus_q = (idx.reshape(1, c, 1, 1) - idx.reshape(1, 1, 1, c)).astype(np.float32)
    angle = phi[:, None, None, None, None] * tf.constant(n_minus_q[None], tf.float32)
    return tf.complex(real * tf.cos(angle), real * tf.sin(angle))


def _phases(angle: tf.Tensor, exponents: np.ndarray) -> tf.Tensor:
    """exp(i * angle * k) for k in exponents: [...] float32 -> [..., len(k)] complex64.

    The angle is formed in float32 as SF does (exp(1j * theta * k) in complex64), so the
    rounding of large phases matches.
    """
    a = angle[..., None] * tf.constant(exponents, tf.float32)
    return tf.complex(tf.cos(a), tf.sin(a))


class CompiledBackend:
    """Vectorised pure-state simulator of a CircuitSpec; pure TF ops, tf.function/XLA-safe."""

    name = "compiled"

    def __init__(self, spec: CircuitSpec):
        if spec.cutoff < 2:
            raise ValueError(f"cutoff={spec.cutoff} must be at least 2")
        self.spec = spec
        c = spec.cutoff
        self._n = np.arange(c, dtype=np.float32)
        self._n_sq = self._n ** 2
        self._quad_w = np.float32(2.0) * np.sqrt(np.arange(1, c)).astype(np.float32)
        log.debug("compiled backend for %s", spec)

    # --- state bookkeeping: psi has one axis per mode plus the batch axis, in `axes` order ---

    @staticmethod
    def _front(psi: tf.Tensor, axes: list[int], modes: list[int]) -> tuple[tf.Tensor, list[int]]:
        """Transpose so that `modes` are the leading axes (in that order); no-op if they are."""
        pos = [axes.index(m) for m in modes]
        if pos == list(range(len(modes))):
            return psi, axes
        perm = pos + [i for i in range(len(axes)) if i not in pos]
        return tf.transpose(psi, perm), [axes[i] for i in perm]

    def _shape(self, axes: list[int]) -> list[int]:
        return [-1 if a == _BATCH else self.spec.cutoff for a in axes]

    def _apply(self, psi: tf.Tensor, axes: list[int], matrix: tf.Tensor,
               modes: list[int]) -> tuple[tf.Tensor, list[int]]:
        """psi <- matrix acting on `modes` (1 mode: [c, c]; 2 modes: [c^2, c^2]), one matmul."""
        psi, axes = self._front(psi, axes, modes)
        d = self.spec.cutoff ** len(modes)
        out = tf.matmul(matrix, tf.reshape(psi, [d, -1]))
        return tf.reshape(out, self._shape(axes)), axes

    # --- the circuit ---

    def gates(self, weights: dict) -> dict[str, tf.Tensor]:
        """All batch-shared gate matrices of the circuit, built once per call, vectorised.

        bs: [2, layers, n_bs, c^2, c^2] (interferometer 1 and 2); single1 = S @ R1 and
        single2 = K @ D @ R2: [layers, modes, c, c]; all complex64.
        """
        s = self.spec
        c, L, M = s.cutoff, s.layers, s.modes
        w = {k: tf.cast(tf.convert_to_tensor(weights[k]), tf.float32) for k in weights}
        out: dict[str, tf.Tensor] = {}
        n_bs = len(s.beamsplitter_pairs)
        if n_bs:
            theta = tf.reshape(tf.stack([w["bs1_theta"], w["bs2_theta"]]), [-1])
            phi = tf.reshape(tf.stack([w["bs1_phi"], w["bs2_phi"]]), [-1])
            z = beamsplitter_tensors(theta, phi, c)
            out["bs"] = tf.reshape(z, [2, L, n_bs, c * c, c * c])
        sq = tf.complex(squeezing_matrices(tf.reshape(w["squeeze"], [-1]), c), 0.0)
        rot1 = _phases(tf.reshape(w["rot1"], [-1]), self._n)
        out["single1"] = tf.reshape(sq * rot1[:, None, :], [L, M, c, c])
        disp = tf.complex(displacement_matrices(tf.reshape(w["displace"], [-1]), c), 0.0)
        rot2 = _phases(tf.reshape(w["rot2"], [-1]), self._n)
        kerr = _phases(tf.reshape(w["kerr"], [-1]), self._n_sq)
        out["single2"] = tf.reshape(kerr[:, :, None] * disp * rot2[:, None, :], [L, M, c, c])
        return out

    def states(self, weights: dict, inputs: tf.Tensor) -> tuple[tf.Tensor, list[int]]:
        """Final pure states; returns (psi, axes) where axes labels psi's axes (-1 = batch)."""
        s = self.spec
        c, M = s.cutoff, s.modes
        inputs = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
        batch = tf.shape(inputs)[0]
        # Vacuum is the coherent state of r = 0: pad the inputs to one displacement per mode.
        r = tf.concat([inputs[:, :s.n_inputs], tf.zeros([batch, M - s.n_inputs])], axis=1)
        cols = tf.reshape(coherent_columns(tf.reshape(tf.transpose(r), [-1]), c), [M, -1, c])
        cols = tf.complex(tf.transpose(cols, [0, 2, 1]), 0.0)  # [M, c, B]
        psi = cols[0]
        for m in range(1, M):  # product state, axes [0, 1, ..., m, batch]
            psi = psi[..., None, :] * tf.reshape(cols[m], [1] * m + [c, -1])
        axes = list(range(M)) + [_BATCH]

        g = self.gates(weights)
        pairs = s.beamsplitter_pairs
        for layer in range(s.layers):
            for k, single in ((0, "single1"), (1, "single2")):
                for j, (a, b) in enumerate(pairs):
                    psi, axes = self._apply(psi, axes, g["bs"][k, layer, j], [a, b])
                for m in range(M):
                    psi, axes = self._apply(psi, axes, g[single][layer, m], [m])
        return psi, axes

    def __call__(self, weights: dict, inputs: tf.Tensor) -> CircuitOutput:
        """x-quadrature expectations (hbar = 2, SF's default) and trace of the final states."""
        s = self.spec
        c = s.cutoff
        psi, axes = self.states(weights, inputs)
        re, im = tf.math.real(psi), tf.math.imag(psi)
        prob = tf.square(re) + tf.square(im)
        trace = tf.reduce_sum(prob, axis=[i for i, a in enumerate(axes) if a != _BATCH])
        quads = []
        w = tf.constant(self._quad_w, tf.float32)
        for m in range(s.n_outputs):
            # <x> = 2 sum_n sqrt(n+1) Re(psi_n conj(psi_{n+1})), not divided by the trace (as SF)
            pos = axes.index(m)
            bpos = axes.index(_BATCH)
            perm = [pos] + [i for i in range(len(axes)) if i not in (pos, bpos)] + [bpos]
            x_re = tf.reshape(tf.transpose(re, perm), [c, -1, tf.shape(re)[bpos]])
            x_im = tf.reshape(tf.transpose(im, perm), [c, -1, tf.shape(im)[bpos]])
            overlap = tf.reduce_sum(x_re[:-1] * x_re[1:] + x_im[:-1] * x_im[1:], axis=1)
            quads.append(tf.tensordot(w, overlap, axes=1))
        return CircuitOutput(tf.stack(quads, axis=1), trace)
