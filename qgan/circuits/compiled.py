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
  truncated matrix; multiplied out, every element is a polynomial in the gate parameter(s), so
  a kind of gate is built as one matmul of monomials with a constant coefficient table
  instead of a chain of gathers and products. Building is done in float64 (the sums
  cancel), then rounded.
- Beamsplitters conserve the photon number of their two modes: they are built and applied
  block by block inside each photon-number sector N = m + n ([2c-1, c, c] padded blocks, one
  batched matmul between two row gathers) instead of as dense c^2 x c^2 matrices: the
  truncated matrix is block diagonal, so this is the same arithmetic without the zeros.
- The gates with zero phase (Dgate(r, 0), Sgate(r, 0)) have real matrices. The beamsplitter
  is built at phi = 0 (real) and its phase applied in closed form:
  <m,n|BS(theta,phi)|p,q> = exp(i phi (n - q)) <m,n|BS(theta,0)|p,q>.
- The circuit is `program(spec)` (qgan/circuits/program.py), run by its schedule
  (qgan/circuits/schedule.py): diagonal gates are fused into their neighbours (exact algebra,
  only rounding differs; in the CV-QNN layer rot1 into the squeezer, S @ R1, rot2 and Kerr into
  the displacement, K @ D @ R2, per mode), and the gates on the vacuum become each mode's
  initial column (a displacement's is its truncated coherent state, `coherent_columns`: no
  per-sample matrix is built for the encoding). `gates(weights)` builds every batch-shared
  gate with one kernel call per kind (and weight) and multiplies the fused groups of one
  signature at once; the per-sample groups (the re-uploads: D(z), or R(z) D(a_l) with the
  phase encoding) are built per call, equal ones once.
- Gates are applied as one matmul each where their modes are (broadcast over the axes before
  them; no transpose of the state, which was the largest cost at 4 modes), not with
  `tf.einsum`: SF's TF backend replaces `tf.einsum` process-wide when it
  is imported, and this module must behave the same whether or not SF is loaded. It never
  imports strawberryfields. No `tf.math.cumprod` (wrong complex gradients in TF 2.21, no XLA)
  and no `tf.pow` (NaN gradient at a zero base): powers are built by repeated doubling.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
from qgan.tflib import tf

from .program import Const, Weight, program
from .schedule import layout, param_name, schedule
from .spec import CircuitOutput, CircuitSpec

log = logging.getLogger(__name__)

_BATCH = -1  # axis label of the batch axis in the state's axis bookkeeping

# The simulator has no tensor-dependent control flow (its loops run over the static circuit),
# so autograph must not rewrite it: that saves seconds of tracing and does not depend on
# re-reading this file's source.
plain_python = tf.autograph.experimental.do_not_convert


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


def _ladder_coef(cutoff: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(j, coef) of the lower-triangular factor A[m, k] = x^j sqrt(m!/k!) / j!, j = (m - k) / step
    (coef zero unless step divides m - k >= 0)."""
    m = np.arange(cutoff)[:, None]
    k = np.arange(cutoff)[None, :]
    diff = m - k
    valid = (diff >= 0) & (diff % step == 0)
    j = np.where(valid, diff // step, 0)
    lf = _log_factorials(cutoff)
    return j, np.where(valid, np.exp(0.5 * (lf[m] - lf[k]) - lf[j]), 0.0)


@functools.lru_cache(maxsize=None)
def _single_tables(cutoff: int) -> dict[str, np.ndarray]:
    """Polynomial coefficients of the truncated displacement and squeezing matrices.

    Normal ordering makes both a product of triangular factors, D = exp(-r^2/2) exp(r a+)
    exp(-r a) and S = exp(-t/2 a+^2) sech(r)^(a+a + 1/2) exp(t/2 a^2) (t = tanh r), so the
    product of their cutoff x cutoff blocks is the exact truncated matrix (the elements of
    thewalrus's recurrences). Multiplied out, an element is a polynomial:
    D[m, n] = exp(-r^2/2) sum_d r^d disp[d, m, n] (d <= 2c - 2) and
    S[m, n] = sqrt(sech) sum_(e, k) (t/2)^e sech^k squeeze[e, k, m, n] (e, k < c).
    """
    c = cutoff
    j1, a1 = _ladder_coef(c, 1)
    j2, a2 = _ladder_coef(c, 2)
    disp = np.zeros((2 * c - 1, c, c))
    squeeze = np.zeros((c, c, c, c))
    for m in range(c):
        for n in range(c):
            for k in range(min(m, n) + 1):
                disp[j1[m, k] + j1[n, k], m, n] += a1[m, k] * a1[n, k] * (-1.0) ** j1[n, k]
                if a2[m, k] and a2[n, k]:
                    squeeze[j2[m, k] + j2[n, k], k, m, n] += (a2[m, k] * a2[n, k]
                                                             * (-1.0) ** j2[m, k])
    return {"disp": disp.reshape(2 * c - 1, c * c), "squeeze": squeeze.reshape(c * c, c * c)}


def coherent_columns(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|0> = exp(-r^2/2) r^m / sqrt(m!): [K] -> [K, cutoff], in r's dtype."""
    r64 = tf.cast(r, tf.float64)
    inv_sqrt_fact = tf.constant(np.exp(-0.5 * _log_factorials(cutoff)), tf.float64)
    col = tf.exp(-0.5 * tf.square(r64))[:, None] * _powers(r64, cutoff) * inv_sqrt_fact
    return tf.cast(col, r.dtype)


def displacement_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|D(r, 0)|n>: [K] -> [K, cutoff, cutoff] in r's dtype (real because phi = 0): one
    matmul of the powers of r with a constant (`_single_tables`), in float64, then rounded."""
    r64 = tf.cast(r, tf.float64)
    poly = tf.matmul(_powers(r64, 2 * cutoff - 1), tf.constant(_single_tables(cutoff)["disp"]))
    d = poly * tf.exp(-0.5 * tf.square(r64))[:, None]
    return tf.cast(tf.reshape(d, [-1, cutoff, cutoff]), r.dtype)


def squeezing_matrices(r: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m|S(r, 0)|n>: [K] -> [K, cutoff, cutoff] in r's dtype (real because phi = 0): one
    matmul of the monomials (t/2)^e sech^k with a constant (`_single_tables`), in float64."""
    c = cutoff
    r64 = tf.cast(r, tf.float64)
    sech = 1.0 / tf.cosh(r64)
    half_t, sech_pw = tf.split(_powers(tf.concat([0.5 * tf.tanh(r64), sech], 0), c), 2, 0)
    mono = tf.reshape(half_t[:, :, None] * sech_pw[:, None, :], [-1, c * c])
    s = tf.matmul(mono, tf.constant(_single_tables(c)["squeeze"])) * tf.sqrt(sech)[:, None]
    return tf.cast(tf.reshape(s, [-1, c, c]), r.dtype)


@functools.lru_cache(maxsize=None)
def _sector_tables(cutoff: int) -> dict[str, np.ndarray]:
    """Constant tables of the photon-number-sector form of the truncated beamsplitter.

    A beamsplitter conserves the total photon number N = m + n of its two modes, so its
    truncated c^2 x c^2 matrix is block diagonal: one block per N = 0..2c-2, of size
    min(N, 2c-2-N) + 1 <= c. Blocks are laid out padded, [2c-1, c, c] = [N, m_out, m_in]
    (m = occupation of the first mode, n = N - m of the second; padding entries are zero).
    At phi = 0 an element is a polynomial of degree N in (cos theta, sin theta):
    <m,n|BS|p,q> = sqrt(m! n! / (p! q!)) sum_j C(p, j) C(q, m - j) (-1)^(m-j)
    cos^(q - m + 2j) sin^(p + m - 2j) (thewalrus's recurrence, solved), so the blocks of sector
    N are mono_N @ coef[N], mono_N = [cos^a sin^(N-a)]_a: one small batched matmul per call.
    """
    c = cutoff
    s = 2 * c - 1
    lf = _log_factorials(2 * c)

    def binom(n: int, k: int) -> float:
        return math.exp(lf[n] - lf[k] - lf[n - k])

    coef = np.zeros((s, s, c, c))  # [N, cos power a, m_out, m_in]
    phase = np.zeros((s, c, c))  # n_out - n_in = m_in - m_out, where the element exists
    state_rows = np.zeros((s, c), np.int64)  # psi row (m * c + n) of sector slot [N, m_in]
    for n_tot in range(s):
        for m in range(max(0, n_tot - c + 1), min(n_tot, c - 1) + 1):
            state_rows[n_tot, m] = m * c + n_tot - m
            for p in range(max(0, n_tot - c + 1), min(n_tot, c - 1) + 1):
                q, n = n_tot - p, n_tot - m
                norm = math.exp(0.5 * (lf[m] + lf[n] - lf[p] - lf[q]))
                phase[n_tot, m, p] = p - m
                for j in range(max(0, m - q), min(p, m) + 1):
                    coef[n_tot, q - m + 2 * j, m, p] += (norm * binom(p, j) * binom(q, m - j)
                                                        * (-1.0) ** (m - j))
    # where the N-th degree monomial cos^a sin^(N-a) takes its sin power (clipped where a > N,
    # whose coefficients are zero)
    sin_power = np.clip(np.arange(s)[:, None] - np.arange(s)[None, :], 0, None)
    # psi row (m, n) -> its slot in the flattened [N, m] layout
    ar = np.arange(c)
    back_rows = ((ar[:, None] + ar[None, :]) * c + ar[:, None]).reshape(-1)
    # dense [c^2, c^2] <- flattened blocks; entries outside a sector read a padding zero
    m4, n4, p4, q4 = np.meshgrid(ar, ar, ar, ar, indexing="ij")
    inside = (m4 + n4) == (p4 + q4)
    padding_zero = 1  # [N=0, m_out=0, m_in=1]: N = 0 has only m = 0
    dense = np.where(inside, ((m4 + n4) * c + m4) * c + p4, padding_zero).reshape(c * c, c * c)
    mask = np.zeros((s, c, c))  # 1 where a block element exists
    for n_tot in range(s):
        lo, hi = max(0, n_tot - c + 1), min(n_tot, c - 1) + 1
        mask[n_tot, lo:hi, lo:hi] = 1.0
    return {"coef": coef.reshape(s, s, c * c), "phase": phase, "sin_power": sin_power,
            "state_rows": state_rows.reshape(-1), "back_rows": back_rows, "dense": dense,
            "mask": mask}


def beamsplitter_blocks(theta: tf.Tensor, phi: tf.Tensor, cutoff: int,
                        sectors: int | None = None) -> tf.Tensor:
    """The beamsplitters' photon-number-sector blocks: [G], [G] real -> [G, 2c-1, c, c]
    complex, [gate, N, m_out, m_in] (layout in `_sector_tables`). Built in float64 (the sums
    cancel), then rounded; the phase is exp(i phi (n_out - n_in)) in the working precision.
    sectors: only the first `sectors` blocks (N < sectors; the total truncation needs c).
    """
    t = _sector_tables(cutoff)
    s = 2 * cutoff - 1 if sectors is None else sectors
    th64 = tf.cast(theta, tf.float64)
    pw = _powers(tf.concat([tf.cos(th64), tf.sin(th64)], axis=0), s)
    pc, ps = tf.split(pw, 2, axis=0)
    mono = tf.gather(ps, t["sin_power"][:s, :s], axis=1) * pc[:, None, :]  # [G, N, a]
    # batched over N, not broadcast over G: 1.4x faster with its gradient (issue 14)
    real = tf.matmul(tf.transpose(mono, [1, 0, 2]), tf.constant(t["coef"][:s, :s]))
    real = tf.transpose(real, [1, 0, 2])  # [G, N, c*c]
    real = tf.cast(tf.reshape(real, [-1, s, cutoff, cutoff]), theta.dtype)
    angle = phi[:, None, None, None] * tf.constant(t["phase"][:s], phi.dtype)
    return tf.complex(real * tf.cos(angle), real * tf.sin(angle))


def beamsplitter_tensors(theta: tf.Tensor, phi: tf.Tensor, cutoff: int) -> tf.Tensor:
    """<m,n|BS(theta, phi)|p,q>: [G], [G] real -> [G, c, c, c, c] complex (out m, n; in p, q),
    the dense form of `beamsplitter_blocks`."""
    c = cutoff
    return tf.reshape(dense_beamsplitters(beamsplitter_blocks(theta, phi, c)), [-1, c, c, c, c])


def dense_beamsplitters(blocks: tf.Tensor) -> tf.Tensor:
    """[G, 2c-1, c, c] sector blocks -> [G, c^2, c^2] dense matrices (zeros outside sectors)."""
    c = int(blocks.shape[-1])
    flat = tf.reshape(blocks, [-1, (2 * c - 1) * c * c])
    return tf.gather(flat, _sector_tables(c)["dense"], axis=1)


@tf.custom_gradient
def _sector_apply(psi3: tf.Tensor, blocks: tf.Tensor):
    """[P, c^2, Q] state (two modes in the middle), [2c-1, c, c] sector blocks -> [P, c^2, Q].

    The rows of each (P, Q) column are gathered into sector order [N, m] (padding slots read
    row 0: the blocks' padding columns are zero), multiplied block by block (one batched
    matmul, broadcast over P), and gathered back. The gradient is written out: TF's own
    gradient of a gather on a middle axis transposes twice around an unsorted segment sum,
    which cost more than the forward (issue 14); here each gather's adjoint is the other
    gather, exactly, because padding rows and columns of the blocks are zero.
    """
    c = int(blocks.shape[-1])
    s = 2 * c - 1
    t = _sector_tables(c)
    shape = tf.shape(psi3)
    y = tf.reshape(tf.gather(psi3, t["state_rows"], axis=1), [shape[0], s, c, shape[2]])
    out = tf.matmul(blocks[None], y)  # [P, N, m_out, Q]

    def grad(d_psi3: tf.Tensor):
        d_out = tf.reshape(tf.gather(d_psi3, t["state_rows"], axis=1), [shape[0], s, c, -1])
        d_y = tf.matmul(blocks[None], d_out, adjoint_a=True)  # zero in padding slots
        d_blocks = tf.reduce_sum(tf.matmul(d_out, y, adjoint_b=True), axis=0)
        d_blocks *= tf.constant(t["mask"], d_blocks.dtype)  # padding rows read row 0 above
        return tf.gather(tf.reshape(d_y, [shape[0], s * c, -1]), t["back_rows"], axis=1), \
            d_blocks

    return tf.gather(tf.reshape(out, [shape[0], s * c, -1]), t["back_rows"], axis=1), grad


def _phases(angle: tf.Tensor, exponents: np.ndarray) -> tf.Tensor:
    """exp(i * angle * k) for k in exponents: [...] real -> [..., len(k)] complex.

    The angle is formed in the working precision as SF does (exp(1j * theta * k) in complex64),
    so the rounding of large phases matches.
    """
    a = angle[..., None] * tf.constant(exponents, angle.dtype)
    return tf.complex(tf.cos(a), tf.sin(a))


def _exponents_n(cutoff: int) -> np.ndarray:
    return np.arange(cutoff, dtype=np.float64)


def _exponents_n2(cutoff: int) -> np.ndarray:
    return np.arange(cutoff, dtype=np.float64) ** 2


# The kernels of the single-mode gate kinds (qgan/circuits/program.py's KINDS), one per kind:
# a diagonal kind by the exponents k(n) of its diagonal exp(i p k(n)); any other by the
# builder of its truncated Fock matrices, [K] real -> [K, c, c] real (zero phase).
DIAGONALS = {"rotation": _exponents_n, "kerr": _exponents_n2}
MATRICES = {"displace": displacement_matrices, "squeeze": squeezing_matrices}
# Cheaper builders of a matrix's first column (the gate on the vacuum), where one exists
COLUMNS = {"displace": coherent_columns}


def _first_column(kind: str):
    """The vacuum column of `kind` from its full matrices (no cheaper builder)."""
    return lambda r, cutoff: MATRICES[kind](r, cutoff)[:, :, 0]


class CompiledBackend:
    """Vectorised pure-state simulator of a CircuitSpec; pure TF ops, tf.function/XLA-safe.

    dtype: tf.complex64 (default, what SF uses and what the trainer runs) or tf.complex128
    (for finite-difference gradient checks, or cutoffs where complex64 loses accuracy: SF issue
    #485). Outputs come in the matching real dtype.
    """

    name = "compiled"

    def __init__(self, spec: CircuitSpec, dtype: tf.DType = tf.complex64,
                 sector: bool = True):
        if spec.cutoff < 2:
            raise ValueError(f"cutoff={spec.cutoff} must be at least 2")
        if dtype not in (tf.complex64, tf.complex128):
            raise ValueError(f"dtype must be tf.complex64 or tf.complex128, not {dtype}")
        self.spec = spec
        self.dtype = dtype
        self.real_dtype = dtype.real_dtype
        c = spec.cutoff
        self._n = np.arange(c, dtype=np.float64)
        self._quad_w = 2.0 * np.sqrt(np.arange(1, c, dtype=np.float64))
        # Beamsplitters act block by block inside each photon-number sector (a batched matmul
        # over [2c-1, c, c] blocks, between two row gathers): ~c/2 times fewer multiply-adds
        # than one dense c^2 x c^2 matmul, and faster at every size measured in issue 14 (2-4
        # modes, BENCHMARKS.md). sector=False keeps the dense form, for comparisons.
        self.sector = sector
        self._sectors: int | None = None  # beamsplitter sectors built (None: all 2c - 1)
        self._prog = program(spec)
        self._sched = schedule(self._prog, spec.modes)
        lay = layout(self._prog, self._sched)
        self._kind_instrs, self._row, self._steps = lay.kind_instrs, lay.row, lay.steps
        self._shared, self._sample = lay.shared, lay.sample
        self._sample_kinds = lay.sample_kinds
        log.debug("compiled backend for %s (sector beamsplitters: %s)", spec, self.sector)

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

    def _local(self, psi: tf.Tensor, axes: list[int], modes: list[int]
               ) -> tuple[tf.Tensor, list[int], int]:
        """psi as [P, c^len(modes), Q] around `modes` (adjacent, in order, after a transpose
        only if they are not already), and the axes; returns (psi3, axes, P)."""
        pos = [axes.index(m) for m in modes]
        # the batch axis (moved forward by a per-sample gate) must not be before them either
        if pos != list(range(pos[0], pos[0] + len(modes))) or _BATCH in axes[:pos[0]]:
            psi, axes = self._front(psi, axes, modes)
            pos = list(range(len(modes)))
        c = self.spec.cutoff
        outer = c ** pos[0]
        return tf.reshape(psi, [outer, c ** len(modes), -1]), axes, outer

    def _apply(self, psi: tf.Tensor, axes: list[int], matrix: tf.Tensor,
               modes: list[int]) -> tuple[tf.Tensor, list[int]]:
        """psi <- matrix acting on `modes` (1 mode: [c, c]; 2 modes: [c^2, c^2]) where they
        are: one matmul, broadcast over the axes before them (no transpose of the state)."""
        psi3, axes, outer = self._local(psi, axes, modes)
        out = tf.matmul(matrix if outer == 1 else matrix[None], psi3)
        return tf.reshape(out, self._shape(axes)), axes

    def _apply_beamsplitter(self, psi: tf.Tensor, axes: list[int], gate: tf.Tensor,
                            pair: tuple[int, int]) -> tuple[tf.Tensor, list[int]]:
        """psi <- a beamsplitter on `pair`: dense [c^2, c^2], or sector blocks [2c-1, c, c]
        (`_sector_apply`)."""
        if not self.sector:
            return self._apply(psi, axes, gate, list(pair))
        psi3, axes, _ = self._local(psi, axes, list(pair))
        return tf.reshape(_sector_apply(psi3, gate), self._shape(axes)), axes

    def _apply_batched(self, psi: tf.Tensor, axes: list[int], matrices: tf.Tensor,
                       mode: int) -> tuple[tf.Tensor, list[int]]:
        """psi <- one [c, c] matrix per sample ([B, c, c]) acting on `mode`: one batched matmul."""
        psi, axes = self._front(psi, axes, [mode, _BATCH])
        c = self.spec.cutoff
        flat = tf.transpose(tf.reshape(psi, [c, tf.shape(matrices)[0], -1]), [1, 0, 2])
        out = tf.transpose(tf.matmul(matrices, flat), [1, 0, 2])
        return tf.reshape(out, self._shape(axes)), axes

    # --- the circuit: the schedule of `program(spec)`, one kernel per gate kind ---

    def _params(self, w: dict, instrs: list[int], slot: int) -> tf.Tensor:
        """Parameter `slot` of batch-shared instructions, [len(instrs)], from the weights
        (one reshape when they are one weight in order, else one gather)."""
        refs = [self._prog[i].params[slot] for i in instrs]
        names = list(dict.fromkeys(p.name for p in refs if isinstance(p, Weight)))
        parts = [tf.reshape(w[n], [-1]) for n in names]
        offset = dict(zip(names, np.cumsum([0] + [int(p.shape[0]) for p in parts])))
        consts = [p.value for p in refs if isinstance(p, Const)]
        n_weights = sum(int(p.shape[0]) for p in parts)
        if consts:
            parts.append(tf.constant(consts, self.real_dtype))
        consts_seen = iter(range(n_weights, n_weights + len(consts)))
        index = [offset[p.name] + p.row * int(w[p.name].shape[1]) + p.col
                 if isinstance(p, Weight) else next(consts_seen) for p in refs]
        flat = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
        return flat if index == list(range(int(flat.shape[0]))) else tf.gather(flat, index)

    def _inputs(self, inputs_t: tf.Tensor, instrs: list[int]) -> tf.Tensor:
        """The per-sample parameter of each instruction, [len(instrs), B]."""
        index = [self._prog[i].params[0].index for i in instrs]
        return inputs_t if index == list(range(int(inputs_t.shape[0]))) else \
            tf.gather(inputs_t, index)

    def _kernel(self, kind: str, params: tf.Tensor) -> tf.Tensor:
        """The gates of one single-mode kind: [K] real -> diagonals [K, c] or matrices
        [K, c, c], in self.dtype."""
        if kind in DIAGONALS:
            return _phases(params, DIAGONALS[kind](self.spec.cutoff))
        return tf.cast(MATRICES[kind](params, self.spec.cutoff), self.dtype)

    @staticmethod
    def _combine(roles: list[str], parts: list[tf.Tensor]) -> tf.Tensor:
        """post @ dense @ pre from the components ([..., c] diagonals, [..., c, c] dense)."""
        diag = {"pre": None, "post": None}
        dense = None
        for role, t in zip(roles, parts):
            if role == "dense":
                dense = t
            else:
                diag[role] = t if diag[role] is None else diag[role] * t
        if dense is None:
            d = [t for t in (diag["pre"], diag["post"]) if t is not None]
            return tf.linalg.diag(d[0] if len(d) == 1 else d[0] * d[1])
        if diag["post"] is not None:
            dense = diag["post"][..., :, None] * dense
        if diag["pre"] is not None:
            dense = dense * diag["pre"][..., None, :]
        return dense

    @staticmethod
    def _take(t: tf.Tensor, rows: list[int]) -> tf.Tensor:
        return t if rows == list(range(int(t.shape[0]))) else tf.gather(t, rows)

    @plain_python
    def gates(self, weights: dict) -> dict[str, tf.Tensor]:
        """All batch-shared gate matrices of the circuit, built once per call, one kernel call
        per kind: bs [n, ...] (every beamsplitter, sector blocks [2c-1, c, c] if self.sector,
        else dense [c^2, c^2]), fused{k} [G, c, c] (the batch-shared groups of the k-th
        signature), kind.{kind} (what the per-sample groups read); in self.dtype."""
        c = self.spec.cutoff
        w = {k: tf.cast(tf.convert_to_tensor(weights[k]), self.real_dtype) for k in weights}
        built: dict[str, tf.Tensor] = {}
        out: dict[str, tf.Tensor] = {}
        for kind, instrs in self._kind_instrs.items():
            if kind == "beamsplitter":
                z = beamsplitter_blocks(self._params(w, instrs, 0), self._params(w, instrs, 1),
                                        c, self._sectors)
                out["bs"] = z if self.sector else dense_beamsplitters(z)
            else:  # one call per weight: the kernels' rounding depends on their length
                runs = [[i for i in instrs if param_name(self._prog[i].params[0]) == name]
                        for name in dict.fromkeys(param_name(self._prog[i].params[0])
                                                  for i in instrs)]
                parts = [self._kernel(kind, self._params(w, run, 0)) for run in runs]
                built[kind] = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
        for n, (sig, groups) in enumerate(self._shared.items()):
            roles = [role for role, _, _ in sig]
            parts = [self._take(built[kind], [self._row[g.components()[k][1]] for g in groups])
                     for k, (_, kind, _) in enumerate(sig)]
            out[f"fused{n}"] = self._combine(roles, parts)
        for kind in self._sample_kinds:
            out[f"kind.{kind}"] = built[kind]
        return out

    def _per_input(self, inputs_t: tf.Tensor, cache: dict):
        """kind -> `kind` at every input, [n_inputs, B, c(, c)]: one kernel call per kind and
        call of the circuit, shared by the initial columns and the per-sample groups."""
        c = self.spec.cutoff

        def build(kind: str) -> tf.Tensor:
            if kind not in cache:
                t = self._kernel(kind, tf.reshape(inputs_t, [-1]))
                cache[kind] = tf.reshape(t, [int(inputs_t.shape[0]), -1,
                                             *([c] * (t.shape.rank - 1))])
            return cache[kind]

        return build

    def _sample_gates(self, g: dict, inputs_t: tf.Tensor, cache: dict) -> list[tf.Tensor]:
        """The per-sample groups' matrices, one [G, B, c, c] per signature (equal groups
        built once)."""
        per_input = self._per_input(inputs_t, cache)
        out = []
        for sig, groups in self._sample.items():
            parts = []
            for k, (_, kind, ps) in enumerate(sig):
                instrs = [grp.components()[k][1] for grp in groups.values()]
                if ps:
                    index = [self._prog[i].params[0].index for i in instrs]
                    parts.append(self._take(per_input(kind), index))
                else:
                    parts.append(self._take(g[f"kind.{kind}"],
                                            [self._row[i] for i in instrs])[:, None])
            out.append(self._combine([role for role, _, _ in sig], parts))
        return out

    def _columns(self, weights: dict, inputs_t: tf.Tensor, cache: dict) -> list[tf.Tensor]:
        """Every mode's initial column, [c, B]: the gates acting on its vacuum."""
        c = self.spec.cutoff
        prog = self._prog
        w = {k: tf.cast(tf.convert_to_tensor(weights[k]), self.real_dtype) for k in weights}
        vacuum = tf.constant(np.eye(c, 1), self.dtype)
        groups = {m: g for m, g in enumerate(self._sched.columns)
                  if g is not None and g.dense is not None}
        cols: dict[int, tf.Tensor] = {}
        for shared in (False, True):  # the dense gates' columns, one kernel call per kind
            for kind in dict.fromkeys(prog[g.dense].kind for g in groups.values()):
                modes = [m for m, g in groups.items() if prog[g.dense].kind == kind
                         and prog[g.dense].per_sample != shared]
                if not modes:
                    continue
                instrs = [groups[m].dense for m in modes]
                p = self._params(w, instrs, 0) if shared else \
                    tf.reshape(self._inputs(inputs_t, instrs), [-1])
                if shared and any(prog[i].per_sample for m in modes for i in groups[m].post):
                    # a per-sample diagonal follows: build the column per sample, so that
                    # the gradient sums over the batch after the kernel, as the written-out
                    # circuit did (bit-identical training, not only equal to round-off)
                    p = tf.reshape(tf.broadcast_to(p[:, None], [len(modes),
                                                                tf.shape(inputs_t)[1]]), [-1])
                col = COLUMNS.get(kind, _first_column(kind))(p, c)
                col = tf.reshape(tf.cast(col, self.dtype), [len(modes), -1, c])  # [G, B|1, c]
                cols.update(zip(modes, tf.unstack(col)))
        for m, g in groups.items():
            for i in g.post:  # diagonals after the dense gate; those before act as 1
                ins = prog[i]
                if ins.per_sample:
                    diag = self._per_input(inputs_t, cache)(ins.kind)[ins.params[0].index]
                else:
                    diag = _phases(self._params(w, [i], 0), DIAGONALS[ins.kind](c))
                cols[m] = cols[m] * diag
        # every column per sample, as the written-out circuit built them: the same values
        # either way, but the gradients' summation order (and so the trained bits) follow
        batch = tf.shape(inputs_t)[1]
        return [tf.broadcast_to(tf.transpose(cols[m]) if m in cols else vacuum, [c, batch])
                for m in range(self.spec.modes)]

    def _operators(self, weights: dict, inputs: tf.Tensor, gates: dict | None
                   ) -> tuple[list[tf.Tensor], dict, list[tf.Tensor]]:
        """(initial columns, batch-shared gates, per-sample gates) of one call."""
        inputs_t = tf.transpose(tf.cast(tf.convert_to_tensor(inputs),
                                        self.real_dtype)[:, :self.spec.n_inputs])
        g = self.gates(weights) if gates is None else gates
        cache: dict[str, tf.Tensor] = {}
        return self._columns(weights, inputs_t, cache), g, self._sample_gates(g, inputs_t, cache)

    @plain_python
    def states(self, weights: dict, inputs: tf.Tensor, gates: dict | None = None
               ) -> tuple[tf.Tensor, list[int]]:
        """Final pure states; returns (psi, axes) where axes labels psi's axes (-1 = batch).
        `gates`: `self.gates(weights)`, when the caller shares them between calls."""
        c = self.spec.cutoff
        cols, g, sample = self._operators(weights, inputs, gates)
        psi = cols[0]
        for m in range(1, self.spec.modes):  # product state, axes [0, 1, ..., m, batch]
            psi = psi[..., None, :] * tf.reshape(cols[m], [1] * m + [c, -1])
        axes = list(range(self.spec.modes)) + [_BATCH]
        # unstack, not indexing: a strided slice's gradient is a full-size zero tensor per use
        ops = {("pair", 0): tf.unstack(g["bs"]) if "bs" in g else []}
        ops.update({("shared", n): tf.unstack(g[f"fused{n}"]) for n in range(len(self._shared))})
        ops.update({("sample", n): tf.unstack(t) for n, t in enumerate(sample)})
        for kind, n, row, modes in self._steps:
            op = ops[(kind, n)][row]
            if kind == "pair":
                psi, axes = self._apply_beamsplitter(psi, axes, op, modes)
            elif kind == "sample":
                psi, axes = self._apply_batched(psi, axes, op, modes[0])
            else:
                psi, axes = self._apply(psi, axes, op, list(modes))
        return psi, axes

    @plain_python
    def __call__(self, weights: dict, inputs: tf.Tensor, gates: dict | None = None
                 ) -> CircuitOutput:
        """Measured features (spec.readout; hbar = 2, SF's default) and trace of the final
        states. Nothing is divided by the trace (as SF). `gates`: as in `states`."""
        s = self.spec
        c = s.cutoff
        psi, axes = self.states(weights, inputs, gates)
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
