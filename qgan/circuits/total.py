"""The compiled simulator with a total-photon-number truncation (issue 14): fewer basis states.

Why it exists: CompiledBackend (like SF) truncates each mode at `cutoff`, c^M basis states.
Piquasso truncates the *total* photon number instead: every occupation (n_1, ..., n_M) with
n_1 + ... + n_M <= cutoff - 1, C(cutoff - 1 + M, M) states (210 instead of 1,296 at 4 modes,
cutoff 7 against per-mode 6). It is a different approximation; its accuracy against the
per-mode cutoff is measured in BENCHMARKS.md (`benchmarks/truncation.py`).

What it computes: the same circuit, weights and readouts as CompiledBackend, with every gate
projected onto the subspace (P G P, the analogue of SF truncating every gate at the cutoff),
applied in sequence, nothing renormalised; the trace is the probability left inside. At one
mode it is exactly the per-mode backend. It runs CompiledBackend's schedule of the program
(qgan/circuits/schedule.py) with its gate matrices (`gates()`, `_operators()`); only the
application kernels differ: a single-mode gate restricted to the subspace acts, for a configuration of the
other modes with r photons, as the top-left (c - r) x (c - r) block of its c x c truncated
matrix, whose elements are the exact gate elements; a beamsplitter conserves the photon number
N of its pair, so it acts by its sector blocks N <= c - 1 - r (the first c blocks of
`beamsplitter_blocks`, exact).

How: the state is [D, B] (basis index first, sorted by total photon number). Every gate, of
whatever kind, is a sparse D x D matrix with at most c nonzeros per row (the row's block), so
it is stored row by row, padded to c ("ELL" format): columns [D, c] (constant, padding points
at row 0) and values [D, c] (gathered from the gate matrices by a constant index table,
padding reads a zero). Applying it is one row gather and one batched [1, c] @ [c, B] matmul
(out[d] = sum_j values[d, j] psi[cols[d, j]]; under tf.function 2x faster than a product and
a sum, the same under XLA, measured at 4 modes). The values of all gates of a kind are
gathered at once. The row blocks are symmetric (row d's columns are the states of d's own
block), so the adjoint has the same columns and its values are a fixed permutation of the
forward ones: the gradient is written out as the same gather and matmul (TF's own gradient of
the row gather is a scatter-add: 1.4x slower steps under tf.function, 1.3x under XLA at
(4, 2, 7, 16), product-and-sum form). All index tables are built in numpy once per
(modes, cutoff).
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
from qgan.tflib import tf

from .compiled import CompiledBackend, plain_python
from .spec import CircuitOutput, CircuitSpec

log = logging.getLogger(__name__)


def basis_size(modes: int, cutoff: int) -> int:
    """Number of occupations of `modes` modes with at most cutoff - 1 photons in all."""
    return math.comb(cutoff - 1 + modes, modes)


@functools.lru_cache(maxsize=None)
def _basis(modes: int, cutoff: int) -> np.ndarray:
    """[D, modes] occupations with total <= cutoff - 1, sorted by total, then lexicographically
    (so the states with total <= cutoff - 2 come first)."""
    states: list[tuple[int, ...]] = [()]
    for _ in range(modes):
        states = [s + (n,) for s in states for n in range(cutoff - sum(s))]
    occ = np.array(states, np.int64).reshape(-1, modes)
    order = np.lexsort(tuple(occ[:, k] for k in reversed(range(modes))) + (occ.sum(1),))
    return occ[order]


def _lookup(modes: int, cutoff: int, occ: np.ndarray) -> np.ndarray:
    """Basis index of each row of occupations occ [..., modes] (all inside the subspace)."""
    basis = _basis(modes, cutoff)
    radix = cutoff ** np.arange(modes, dtype=np.int64)
    keys = basis @ radix
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], occ @ radix)
    return order[pos]


def _ell(modes: int, cutoff: int, valid: np.ndarray, local: np.ndarray, target: np.ndarray,
         value_index: np.ndarray) -> dict[str, np.ndarray]:
    """The ELL tables of a gate: row d's slot j holds the state target[d, j] (occupations,
    where `valid`), whose local index in the block is j, row d's own is local[d]; its value
    is the gate matrix's element value_index[d, j] (flat). Returns cols [D, c], vidx [D, c]
    (-1 at padding) and tperm [D, c]: the flat slot of the adjoint's value in the values."""
    c = cutoff
    target = np.where(valid[..., None], target, 0)  # padding looks up the vacuum, row 0
    cols = np.where(valid, _lookup(modes, c, target), 0)
    pad = np.flatnonzero(~valid.reshape(-1))  # a slot whose value is zero
    tperm = np.where(valid, cols * c + local[:, None], pad[0] if pad.size else 0)
    return {"cols": cols, "vidx": np.where(valid, value_index, -1), "tperm": tperm}


@functools.lru_cache(maxsize=None)
def _single_tables(modes: int, cutoff: int, mode: int) -> dict[str, np.ndarray]:
    """ELL tables of a c x c gate on `mode`: row d = (rest, n) reads (rest, j), j <= c-1-r;
    its value is gate[n, j] (flat index n * c + j)."""
    c = cutoff
    occ = _basis(modes, c)
    n = occ[:, mode]
    rest = occ.sum(1) - n
    j = np.arange(c)[None, :]
    target = np.repeat(occ[:, None, :], c, axis=1)
    target[:, :, mode] = j
    return _ell(modes, c, j <= (c - 1 - rest)[:, None], n, target, n[:, None] * c + j)


@functools.lru_cache(maxsize=None)
def _pair_tables(modes: int, cutoff: int, a: int, b: int) -> dict[str, np.ndarray]:
    """ELL tables of a beamsplitter on (a, b): row d = (rest, N, m) (m photons in a, N - m in
    b) reads (rest, N, j), j <= N; its value is block[N, m, j] (flat (N * c + m) * c + j of
    the first c sector blocks)."""
    c = cutoff
    occ = _basis(modes, c)
    m = occ[:, a]
    n_pair = occ[:, a] + occ[:, b]
    j = np.arange(c)[None, :]
    target = np.repeat(occ[:, None, :], c, axis=1)
    target[:, :, a] = j
    target[:, :, b] = n_pair[:, None] - j
    return _ell(modes, c, j <= n_pair[:, None], m, target,
                (n_pair[:, None] * c + m[:, None]) * c + j)


@functools.lru_cache(maxsize=None)
def _readout_tables(modes: int, cutoff: int) -> dict[str, np.ndarray]:
    """<a_k> = sum_d sqrt(n_k(d) + 1) conj(psi_d) psi_(d + e_k) over the first P states
    (total <= c - 2, whose raised states are inside): up [modes, P], weight [modes, P];
    occupations n [modes, D] for <n>."""
    occ = _basis(modes, cutoff)
    p = basis_size(modes, cutoff - 1)
    lo = occ[:p]
    up = np.stack([_lookup(modes, cutoff, lo + np.eye(modes, dtype=np.int64)[k])
                   for k in range(modes)])
    return {"up": up, "weight": np.sqrt(lo.T + 1.0), "n": occ.T.astype(np.float64)}


def _ell_apply(psi: tf.Tensor, values: tf.Tensor, cols: np.ndarray, tperm: np.ndarray
               ) -> tf.Tensor:
    """out[d, b] = sum_j values[d, j] psi[cols[d, j], b]: psi [D, B], values [D, c] (one gate:
    a batched [1, c] @ [c, B] matmul per row) or [D, c, B] (one per sample: product and
    sum); zero values at padding. Written-out gradient (module docstring)."""
    cols_t = tf.constant(cols, tf.int32)
    tperm_t = tf.constant(tperm.reshape(-1), tf.int32)
    shared = values.shape.rank == 2

    def contract(v: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        if shared:
            return tf.matmul(v[:, None, :], rows)[:, 0, :]
        return tf.reduce_sum(v * rows, axis=1)

    @tf.custom_gradient
    def apply(psi: tf.Tensor, values: tf.Tensor):
        rows = tf.gather(psi, cols_t)  # [D, c, B]

        def grad(d_out: tf.Tensor):
            flat = tf.reshape(values, [-1] if shared else [-1, tf.shape(values)[2]])
            v_adj = tf.reshape(tf.gather(flat, tperm_t), tf.shape(values))
            d_psi = contract(tf.math.conj(v_adj), tf.gather(d_out, cols_t))
            if shared:
                d_values = tf.matmul(d_out[:, None, :], rows, adjoint_b=True)[:, 0, :]
            else:
                d_values = d_out[:, None, :] * tf.math.conj(rows)
            return d_psi, d_values

        return contract(values, rows), grad

    return apply(psi, values)


class TotalBackend(CompiledBackend):
    """CompiledBackend's circuit on the subspace of total photon number <= cutoff - 1
    (module docstring); same interface, weights, readouts and dtypes."""

    name = "compiled-total"

    def __init__(self, spec: CircuitSpec, dtype: tf.DType = tf.complex64):
        super().__init__(spec, dtype)
        self._sectors = spec.cutoff  # a pair holds at most c - 1 photons: sectors N < c
        m, c = spec.modes, spec.cutoff
        self.size = basis_size(m, c)
        # the value tables (`vidx`) of every batch-shared gate, by its (step kind, signature)
        # and row in the stacked gates: every row is applied by exactly one step
        self._value_tables: dict[tuple[str, int], list[np.ndarray]] = {}
        for kind, n, row, modes in sorted(st for st in self._steps if st[0] != "sample"):
            tables = self._value_tables.setdefault((kind, n), [])
            assert row == len(tables)
            tables.append(self._table(modes)["vidx"])
        # where `states` finds each of them: fused single-mode gates first, then beamsplitters
        order = [k for k in sorted(self._value_tables) if k[0] == "shared"] + \
            [k for k in self._value_tables if k[0] == "pair"]
        flat = [(kind, n, row) for kind, n in order
                for row in range(len(self._value_tables[(kind, n)]))]
        self._value_index = {k: i for i, k in enumerate(flat)}
        log.debug("total-truncation backend for %s: %d basis states (per mode: %d)", spec,
                  self.size, c ** m)

    def occupations(self) -> np.ndarray:
        """[D, modes]: the photon numbers of each basis state, in the state's row order."""
        return _basis(self.spec.modes, self.spec.cutoff)

    @plain_python
    def states(self, weights: dict, inputs: tf.Tensor, gates: dict | None = None) -> tf.Tensor:
        """Final pure states, [D, B] (rows in `occupations()` order). `gates`:
        `self.gates(weights)`, when the caller shares them between calls."""
        c = self.spec.cutoff
        occ = self.occupations()
        cols, g, sample = self._operators(weights, inputs, gates)
        psi = tf.gather(cols[0], occ[:, 0])  # the product state, projected
        for m in range(1, self.spec.modes):
            psi = psi * tf.gather(cols[m], occ[:, m])
        # values of every batch-shared gate of a kind, one gather each: gate i's table is
        # offset by i's share of the flat source, whose last element is the padding zero
        values = []  # per step of a batch-shared gate, in `self._value_tables`' order
        for src, tables, size in self._value_sources(g):
            values += tf.unstack(_gather_values(src, tables, size))
        for kind, n, row, modes in self._steps:
            t = self._table(modes)
            if kind == "sample":
                mats = sample[n][row]  # [B, c, c]
                src = tf.reshape(tf.transpose(mats, [1, 2, 0]), [c * c, -1])
                v = _gather_values(src, [t["vidx"]], c * c)[0]
            else:
                v = values[self._value_index[(kind, n, row)]]
            psi = _ell_apply(psi, v, t["cols"], t["tperm"])
        return psi

    def _value_sources(self, g: dict) -> list[tuple[tf.Tensor, list[np.ndarray], int]]:
        """(flat stacked gates, their value tables, size of one gate): every fused
        single-mode gate in one source, the beamsplitters' blocks in another."""
        c = self.spec.cutoff
        tables = self._value_tables
        shared = list(range(len(self._shared)))
        out = []
        if shared:
            src = tf.concat([tf.reshape(g[f"fused{n}"], [-1]) for n in shared], axis=0)
            out.append((src, [t for n in shared for t in tables[("shared", n)]], c * c))
        if "bs" in g:  # [n, c, c, c]: sectors N < c
            out.append((tf.reshape(g["bs"], [-1]), tables[("pair", 0)], c ** 3))
        return out

    def _table(self, modes: tuple[int, ...]) -> dict[str, np.ndarray]:
        m, c = self.spec.modes, self.spec.cutoff
        return _single_tables(m, c, modes[0]) if len(modes) == 1 else \
            _pair_tables(m, c, *modes)

    @plain_python
    def __call__(self, weights: dict, inputs: tf.Tensor, gates: dict | None = None
                 ) -> CircuitOutput:
        """Measured features (spec.readout; hbar = 2) and trace of the final states, nothing
        divided by the trace (as CompiledBackend). `gates`: as in `states`."""
        s = self.spec
        t = _readout_tables(s.modes, s.cutoff)
        psi = self.states(weights, inputs, gates)
        re, im = tf.math.real(psi), tf.math.imag(psi)
        prob = tf.square(re) + tf.square(im)
        trace = tf.reduce_sum(prob, axis=0)
        count = s.n_outputs if s.readout == "x" else s.modes
        p = t["up"].shape[1]
        # <a_k> = sum w conj(psi_lo) psi_up; <x> = 2 Re<a>, <p> = 2 Im<a>
        up_re, up_im = tf.gather(re, t["up"][:count]), tf.gather(im, t["up"][:count])
        w = tf.constant(2.0 * t["weight"][:count, :, None], self.real_dtype)
        lo_re, lo_im = re[None, :p], im[None, :p]
        x = tf.reduce_sum(w * (lo_re * up_re + lo_im * up_im), axis=1)  # [count, B]
        feats = [x]
        if s.readout == "xpn":
            feats.append(tf.reduce_sum(w * (lo_re * up_im - lo_im * up_re), axis=1))
            feats.append(tf.matmul(tf.constant(t["n"], self.real_dtype), prob))
        return CircuitOutput(tf.transpose(tf.concat(feats, axis=0)), trace)


def _gather_values(src: tf.Tensor, tables: list[np.ndarray], size: int) -> tf.Tensor:
    """The values of len(tables) gates, [G, D, c, ...]: src [G * size, ...] holds gate i's
    matrix (flat) at rows i * size.., tables[i] its `vidx` (-1 = padding: a zero row appended
    to src). One gather for all."""
    pad = len(tables) * size
    index = np.stack([np.where(v < 0, pad, i * size + v) for i, v in enumerate(tables)])
    assert int(src.shape[0]) == pad
    src = tf.concat([src, tf.zeros_like(src[:1])], axis=0)
    return tf.gather(src, index)
