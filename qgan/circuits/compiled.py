"""A compiled Fock-space simulator of a CircuitSpec: same numbers as SF's TF backend, traceable.

Why it exists: SF's TF backend is overhead-bound (tens of thousands of tiny eager ops per step,
gates shared by the batch rebuilt once per sample, `.numpy()` calls that forbid `tf.function`;
FACTS.md). This backend simulates the same circuit with a few hundred vectorised TF ops, so the
whole training step can run under `tf.function` (and XLA, `jit_compile=True`).

What it computes, and why it equals SF:
- Pure states only: a [c]*modes + [B] complex64 (optionally complex128) amplitude tensor
  (mixed states would square every cost, and the circuit has no loss channels).
- Gate matrices are the exact Fock matrix elements truncated to the cutoff (the elements
  thewalrus's recurrences produce, which is what SF calls), vectorised over all gates of a
  kind at once. SF also truncates each *gate* to the cutoff and applies it to the truncated
  state; applying those truncated matrices in sequence is what we do, so the trace (the
  probability left inside the cutoff) and everything else agree also when probability leaks
  past the cutoff. Displacement and squeezing come from their normal-ordered forms, whose
  factors are triangular in the Fock basis, so the product of their truncated blocks *is* the
  truncated matrix (one matmul instead of `cutoff` unrolled recurrence steps: at these sizes a
  step's cost is its op count). Building is done in float64 (the sums cancel), then rounded.
- The gates with zero phase (Dgate(r, 0), Sgate(r, 0)) have real matrices. The beamsplitter
  is built at phi = 0 (real) and its phase applied in closed form:
  <m,n|BS(theta,phi)|p,q> = exp(i phi (n - q)) <m,n|BS(theta,0)|p,q>.
- Diagonal gates are fused into their neighbours (exact algebra, only rounding differs):
  rot1 into the squeezer (S @ R1), rot2 and Kerr into the displacement (K @ D @ R2), per mode.
- The inputs displace the vacuum, so their states are the first columns of the displacement
  matrices (truncated coherent states): no per-sample matrix is built for them. With the phase
  encoding the column is the trainable amplitude's, times the rotation's diagonal
  exp(i z n); its re-uploads are per-sample R(z) D(a_l) matrices (one batched matmul each).
- Gates are applied as one 2-D matmul each (the acted-on modes moved to the front by a
  transpose), not with `tf.einsum`: SF's TF backend replaces `tf.einsum` process-wide when it
  is imported, and this module must behave the same whether or not SF is loaded. It never
  imports strawberryfields. No `tf.math.cumprod` (wrong complex gradients in TF 2.21, no XLA)
  and no `tf.pow` (NaN gradient at a zero base): powers are built by repeated doubling.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorflow as tf

from .spec import CircuitOutput, CircuitSpec

log = logging.getLogger(__name__)

_BATCH = -1  # axis label of the batch axis in the state's axis bookkeeping

# The simulator has no tensor-dependent control flow (its loops run over the static circuit),
# so autograph must not rewrite it: that saves seconds of tracing and does not depend on
# re-reading this file's source.
_plain_python = tf.autograph.experimental.do_not_convert


def _powers(x: tf.Tensor, count: int) -> tf.Tensor:
    """[x^0, ..., x^(count-1)]: [K] -> [K, count], by repeated doubling (log2(count) steps).

    Products only: tf.pow's gradient is NaN at a zero base, tf.math.cumprod's complex gradient
    is wrong in TF 2.21 and does not compile under XLA.
    """
    p = tf.stack([tf.ones_like(x), x], axis=1)
    xp = x
    while int(p.shape[1]) < count:
        xp = xp * xp  # x^(current length)
        p = tf.concat([p, p * xp[:, None]], axis=1)
    return p[:, :count]


def _log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(k + 1) for k in range(n)])


def _ladder_table(cutoff: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Index and coefficient tables of the lower-triangular factor
    A[m, k] = x^j sqrt(m!/k!) / j! with j = (m - k) / step (zero unless step divides m - k >= 0).
    """
    m = np.arange(cutoff)[:, None]
    k = np.arange(cutoff)[None, :]
    diff = m - k
    valid = (diff >= 0) & (diff % step == 0)
    j = np.where(valid, diff // step, 0)
    lf = _log_factorials(cutoff)
    coef = np.where(valid, np.exp(0.5 * (lf[m] - lf[k]) - lf[j]), 0.0)
    return j, coef


def coherent_columns(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|0> = exp(-r^2/2) r^m / sqrt(m!): [K] -> [K, cutoff], in r's dtype."""
    r64 = tf.cast(r, tf.float64)
    inv_sqrt_fact = tf.constant(np.exp(-0.5 * _log_factorials(cutoff)), tf.float64)
    col = tf.exp(-0.5 * tf.square(r64))[:, None] * _powers(r64, cutoff) * inv_sqrt_fact
    return tf.cast(col, r.dtype)


def displacement_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|n>: [K] -> [K, cutoff, cutoff] in r's dtype (real because phi = 0).

    Normal ordering D = exp(-r^2/2) exp(r a+) exp(-r a): both factors are triangular, so their
    cutoff x cutoff blocks multiply to the exact truncated matrix (the same elements as
    thewalrus's recurrence), in one matmul instead of cutoff unrolled recurrence steps
    (op count is what a step costs at these sizes). Built in float64, then rounded.
    """
    j, coef = _ladder_table(cutoff, 1)
    sign = (-1.0) ** (np.arange(cutoff)[:, None] - np.arange(cutoff)[None, :])
    r64 = tf.cast(r, tf.float64)
    lower = tf.gather(_powers(r64, cutoff), j, axis=1) * coef  # exp(r a+) block
    upper_t = lower * sign  # exp(-r a) block, transposed
    d = tf.matmul(lower, upper_t, transpose_b=True) * tf.exp(-0.5 * tf.square(r64))[:, None, None]
    return tf.cast(d, r.dtype)


def squeezing_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|S(r, 0)|n>: [K] -> [K, cutoff, cutoff] in r's dtype (real because phi = 0).

    Normal ordering S = exp(-t/2 a+^2) sech(r)^(a+a + 1/2) exp(t/2 a^2), t = tanh r: triangular
    factors again, so the truncated product is exact (thewalrus's recurrence gives the same
    elements). Built in float64, then rounded.
    """
    j, coef = _ladder_table(cutoff, 2)
    sign = np.where(j % 2 == 1, -1.0, 1.0)
    r64 = tf.cast(r, tf.float64)
    sech = 1.0 / tf.cosh(r64)
    upper_t = tf.gather(_powers(0.5 * tf.tanh(r64), cutoff), j, axis=1) * coef
    lower = upper_t * sign
    diag = _powers(sech, cutoff) * tf.sqrt(sech)[:, None]
    s = tf.matmul(lower * diag[:, None, :], upper_t, transpose_b=True)
    return tf.cast(s, r.dtype)


def beamsplitter_tensors(theta: tf.Tensor, phi: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m,n|BS(theta, phi)|p,q>: [G], [G] real -> [G, c, c, c, c] complex (out m, n; in p, q).

    thewalrus's recurrence solves to BS|p,q> = (c a+ + s b+)^p (-s a+ + c b+)^q |0,0> / sqrt(p! q!)
    at phi = 0 (c = cos theta, s = sin theta), i.e.
    <m,n|BS|p,q> = sqrt(m! n! / (p! q!)) sum_j X[p, j] Y[q, m - j], n = p + q - m,
    X[p, j] = C(p, j) c^j s^(p-j), Y[q, i] = C(q, i) (-s)^i c^(q-i): one batched matmul over j.
    The phase is exp(i phi (n - q)). Built in float64 (the sum has cancellations), then rounded.
    """
    c = cutoff
    lf = _log_factorials(2 * c)
    ar = np.arange(c)
    # binom[a, b] = C(a, b) for a < 2c, b < c (only entries with b <= a are used)
    rest = np.clip(np.arange(2 * c)[:, None] - ar, 0, None)
    binom = np.exp(lf[:, None] - lf[None, :c] - lf[rest])
    # X[p, j]: cos^j sin^(p-j)
    p_, j_ = np.meshgrid(ar, ar, indexing="ij")
    x_ok = j_ <= p_
    x_coef = np.where(x_ok, binom[p_, j_], 0.0)
    x_sin = np.where(x_ok, p_ - j_, 0)
    # Y[q, m - j] laid out as [q, m, j]: (-1)^i C(q, i) sin^i cos^(q-i), i = m - j
    q_, m_, j3 = np.meshgrid(ar, ar, ar, indexing="ij")
    i_ = m_ - j3
    y_ok = (i_ >= 0) & (i_ <= q_)
    i_c = np.where(y_ok, i_, 0)
    y_coef = np.where(y_ok, (-1.0) ** i_c * binom[q_, i_c], 0.0)
    y_cos = np.where(y_ok, q_ - i_c, 0)
    # Z[m, n, p, q] <- Z3[p, q, m] where n = p + q - m is inside the cutoff
    m4, n4, p4, q4 = np.meshgrid(ar, ar, ar, ar, indexing="ij")
    z_ok = (p4 + q4 - m4) == n4
    z_idx = np.where(z_ok, (p4 * c + q4) * c + m4, 0)
    z_norm = np.where(z_ok, np.exp(0.5 * (lf[m4] + lf[n4] - lf[p4] - lf[q4])), 0.0)

    th64 = tf.cast(theta, tf.float64)
    pw = _powers(tf.concat([tf.cos(th64), tf.sin(th64)], axis=0), c)
    pc, ps = pw[: tf.shape(th64)[0]], pw[tf.shape(th64)[0]:]
    x = tf.gather(pc, j_, axis=1) * tf.gather(ps, x_sin, axis=1) * x_coef  # [G, p, j]
    y = tf.gather(ps, i_c, axis=1) * tf.gather(pc, y_cos, axis=1) * y_coef  # [G, q, m, j]
    z3 = tf.matmul(x, tf.reshape(y, [-1, c * c, c]), transpose_b=True)  # [G, p, (q, m)]
    real = tf.cast(tf.gather(tf.reshape(z3, [-1, c ** 3]), z_idx, axis=1) * z_norm, theta.dtype)
    n_minus_q = ar.reshape(1, c, 1, 1) - ar.reshape(1, 1, 1, c)
    angle = phi[:, None, None, None, None] * tf.constant(n_minus_q[None], phi.dtype)
    return tf.complex(real * tf.cos(angle), real * tf.sin(angle))


def _phases(angle: tf.Tensor, exponents: np.ndarray) -> tf.Tensor:
    """exp(i * angle * k) for k in exponents: [...] real -> [..., len(k)] complex.

    The angle is formed in the working precision as SF does (exp(1j * theta * k) in complex64),
    so the rounding of large phases matches.
    """
    a = angle[..., None] * tf.constant(exponents, angle.dtype)
    return tf.complex(tf.cos(a), tf.sin(a))


class CompiledBackend:
    """Vectorised pure-state simulator of a CircuitSpec; pure TF ops, tf.function/XLA-safe.

    dtype: tf.complex64 (default, what SF uses and what the trainer runs) or tf.complex128
    (for finite-difference gradient checks, or cutoffs where complex64 loses accuracy: SF issue
    #485). Outputs come in the matching real dtype.
    """

    name = "compiled"

    def __init__(self, spec: CircuitSpec, dtype: tf.DType = tf.complex64):
        if spec.cutoff < 2:
            raise ValueError(f"cutoff={spec.cutoff} must be at least 2")
        if dtype not in (tf.complex64, tf.complex128):
            raise ValueError(f"dtype must be tf.complex64 or tf.complex128, not {dtype}")
        self.spec = spec
        self.dtype = dtype
        self.real_dtype = dtype.real_dtype
        c = spec.cutoff
        self._n = np.arange(c, dtype=np.float64)
        self._n_sq = self._n ** 2
        self._quad_w = 2.0 * np.sqrt(np.arange(1, c, dtype=np.float64))
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

    def _apply_batched(self, psi: tf.Tensor, axes: list[int], matrices: tf.Tensor,
                       mode: int) -> tuple[tf.Tensor, list[int]]:
        """psi <- one [c, c] matrix per sample ([B, c, c]) acting on `mode`: one batched matmul."""
        psi, axes = self._front(psi, axes, [mode, _BATCH])
        c = self.spec.cutoff
        flat = tf.transpose(tf.reshape(psi, [c, tf.shape(matrices)[0], -1]), [1, 0, 2])
        out = tf.transpose(tf.matmul(matrices, flat), [1, 0, 2])
        return tf.reshape(out, self._shape(axes)), axes

    # --- the circuit ---

    @_plain_python
    def gates(self, weights: dict) -> dict[str, tf.Tensor]:
        """All batch-shared gate matrices of the circuit, built once per call, vectorised.

        bs: [2, layers, n_bs, c^2, c^2] (interferometer 1 and 2); single1 = S @ R1 and
        single2 = K @ D @ R2: [layers, modes, c, c]; all in self.dtype.
        """
        s = self.spec
        c, L, M = s.cutoff, s.layers, s.modes
        w = {k: tf.cast(tf.convert_to_tensor(weights[k]), self.real_dtype) for k in weights}
        out: dict[str, tf.Tensor] = {}
        n_bs = len(s.beamsplitter_pairs)
        if n_bs:
            theta = tf.reshape(tf.stack([w["bs1_theta"], w["bs2_theta"]]), [-1])
            phi = tf.reshape(tf.stack([w["bs1_phi"], w["bs2_phi"]]), [-1])
            z = beamsplitter_tensors(theta, phi, c)
            out["bs"] = tf.reshape(z, [2, L, n_bs, c * c, c * c])
        sq = tf.cast(squeezing_matrices(tf.reshape(w["squeeze"], [-1]), c), self.dtype)
        rot1 = _phases(tf.reshape(w["rot1"], [-1]), self._n)
        out["single1"] = tf.reshape(sq * rot1[:, None, :], [L, M, c, c])
        disp = tf.cast(displacement_matrices(tf.reshape(w["displace"], [-1]), c), self.dtype)
        rot2 = _phases(tf.reshape(w["rot2"], [-1]), self._n)
        kerr = _phases(tf.reshape(w["kerr"], [-1]), self._n_sq)
        out["single2"] = tf.reshape(kerr[:, :, None] * disp * rot2[:, None, :], [L, M, c, c])
        return out

    @_plain_python
    def states(self, weights: dict, inputs: tf.Tensor) -> tuple[tf.Tensor, list[int]]:
        """Final pure states; returns (psi, axes) where axes labels psi's axes (-1 = batch)."""
        s = self.spec
        c, M = s.cutoff, s.modes
        inputs = tf.cast(tf.convert_to_tensor(inputs), self.real_dtype)
        batch = tf.shape(inputs)[0]
        z = tf.transpose(inputs[:, :s.n_inputs])  # [n_inputs, B]
        phase = s.encoding == "phase"
        if phase:  # the inputs rotate coherent states of trainable amplitude: R(z) D(a)|0>
            amp = tf.cast(tf.convert_to_tensor(weights["encode"]), self.real_dtype)
            turn = _phases(z, self._n)  # [n_inputs, B, c]: exp(i z n), diagonal of R(z)
            r_in = tf.broadcast_to(amp[0][:, None], tf.shape(z))
        else:
            r_in = z
        # Vacuum is the coherent state of r = 0: pad to one displacement per mode.
        r = tf.concat([r_in, tf.zeros([M - s.n_inputs, batch], self.real_dtype)], axis=0)
        cols = tf.reshape(coherent_columns(tf.reshape(r, [-1]), c), [M, -1, c])
        cols = tf.unstack(tf.cast(tf.transpose(cols, [0, 2, 1]), self.dtype))  # M x [c, B]
        if phase:
            cols = [cols[m] * tf.transpose(turn[m]) for m in range(s.n_inputs)] + \
                cols[s.n_inputs:]
        psi = cols[0]
        for m in range(1, M):  # product state, axes [0, 1, ..., m, batch]
            psi = psi[..., None, :] * tf.reshape(cols[m], [1] * m + [c, -1])
        axes = list(range(M)) + [_BATCH]
        # The per-sample matrices of the re-uploads, [uploads - 1, n_inputs] x [B, c, c]:
        # R(z) D(a_l) (phase) or D(z) (displacement, the same before every layer).
        if s.uploads > 1 and phase:
            shift = tf.reshape(tf.cast(displacement_matrices(tf.reshape(amp[1:], [-1]), c),
                                       self.dtype), [s.uploads - 1, s.n_inputs, 1, c, c])
            upload = tf.unstack(tf.reshape(turn[None, :, :, :, None] * shift,
                                           [(s.uploads - 1) * s.n_inputs, -1, c, c]))
        elif s.uploads > 1:
            upload = tf.unstack(tf.reshape(tf.cast(displacement_matrices(
                tf.reshape(z, [-1]), c), self.dtype), [s.n_inputs, -1, c, c])) * (s.uploads - 1)

        # unstack, not indexing: a strided slice's gradient is a full-size zero tensor per use
        g = self.gates(weights)
        pairs = s.beamsplitter_pairs
        n_bs = len(pairs)
        bs = tf.unstack(tf.reshape(g["bs"], [-1, c * c, c * c])) if n_bs else []
        single = tf.unstack(tf.reshape(tf.stack([g["single1"], g["single2"]], axis=1),
                                       [-1, c, c]))
        for layer in range(s.layers):
            if layer > 0 and s.uploads > 1:
                for i in range(s.n_inputs):
                    psi, axes = self._apply_batched(
                        psi, axes, upload[(layer - 1) * s.n_inputs + i], i)
            for k in range(2):
                for j, (a, b) in enumerate(pairs):
                    psi, axes = self._apply(psi, axes, bs[(k * s.layers + layer) * n_bs + j],
                                            [a, b])
                for m in range(M):
                    psi, axes = self._apply(psi, axes, single[(layer * 2 + k) * M + m], [m])
        return psi, axes

    @_plain_python
    def __call__(self, weights: dict, inputs: tf.Tensor) -> CircuitOutput:
        """Measured features (spec.readout; hbar = 2, SF's default) and trace of the final
        states. Nothing is divided by the trace (as SF)."""
        s = self.spec
        c = s.cutoff
        psi, axes = self.states(weights, inputs)
        re, im = tf.math.real(psi), tf.math.imag(psi)
        prob = tf.square(re) + tf.square(im)
        trace = tf.reduce_sum(prob, axis=[i for i, a in enumerate(axes) if a != _BATCH])
        w = tf.constant(self._quad_w, self.real_dtype)
        bpos = axes.index(_BATCH)
        x, p, n = [], [], []
        for m in range(s.n_outputs if s.readout == "x" else s.modes):
            # <a> = sum_n sqrt(n+1) conj(psi_n) psi_{n+1}; <x> = 2 Re<a>, <p> = 2 Im<a>
            pos = axes.index(m)
            perm = [pos] + [i for i in range(len(axes)) if i not in (pos, bpos)] + [bpos]
            x_re = tf.reshape(tf.transpose(re, perm), [c, -1, tf.shape(re)[bpos]])
            x_im = tf.reshape(tf.transpose(im, perm), [c, -1, tf.shape(im)[bpos]])
            overlap = tf.reduce_sum(x_re[:-1] * x_re[1:] + x_im[:-1] * x_im[1:], axis=1)
            x.append(tf.tensordot(w, overlap, axes=1))
            if s.readout == "xpn":
                cross = tf.reduce_sum(x_re[:-1] * x_im[1:] - x_im[:-1] * x_re[1:], axis=1)
                p.append(tf.tensordot(w, cross, axes=1))
                marginal = tf.reduce_sum(tf.square(x_re) + tf.square(x_im), axis=1)
                n.append(tf.tensordot(tf.constant(self._n, self.real_dtype), marginal, axes=1))
        return CircuitOutput(tf.stack(x + p + n, axis=1), trace)
