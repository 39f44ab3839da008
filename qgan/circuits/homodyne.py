"""Homodyne sampling of a circuit's output state: a CV Born machine (issue 21).

Why it exists: the expectation-value generator maps the latent through a smooth, low-degree
trigonometric series (BENCHMARKS.md, "the band limit"); a photonic device outputs measurement
results instead, whose distribution is the state's own (a cat state has two x-peaks). This
module draws x-quadrature outcomes of the first `d` modes of a batch of pure Fock states,
exactly and differentiably (Čepaitė, Coyle and Kashefi 2022; Killoran et al. 2019).

What it computes (hbar = 2, SF's default: x = a + a^dagger):
- The wavefunction of the measured quadratures from the Fock amplitudes,
  psi(x_1..x_d; rest) = sum_n c[n, rest] prod_i phi_{n_i}(x_i), with the Hermite functions
  phi_n by their stable three-term recurrence (no factorials, no Hermite polynomials, which
  overflow long before cutoff 30). Unmeasured (ancilla) modes are traced out: the density sums
  |psi|^2 over their photon numbers.
- Samples by inverse CDF, one mode after the other: x_1 from its marginal (the other measured
  modes integrate out exactly, by the orthonormality of the phi_n: no grid for them), then
  x_2 from its conditional given x_1 (the amplitudes contracted with phi(x_1)), and so on.
  Each density is evaluated on a fixed grid (`grid`), integrated by the trapezoid rule into a
  CDF normalised by its last value (so the probability the cutoff lost is renormalised away,
  as a homodyne measurement of the truncated state would) and inverted by linear
  interpolation: the sample is the exact inverse of a piecewise-linear CDF.
- Gradients by implicit reparameterisation (Figurnov, Mohamed and Mnih 2018):
  dx/dtheta = -(dF(x; theta)/dtheta) / p(x), with F the piecewise-linear CDF and p its slope
  at x, so the gradient is the exact derivative of the sampler as computed. It is written as
  a surrogate, x - (F(x) - stop(F(x))) / stop(p(x)), whose value is x exactly and whose
  derivative is the formula; the conditionals' CDFs take the previous samples' surrogates, so
  the chain rule through x_1 -> p(x_2 | x_1) comes for free. No tensor-dependent control flow:
  it runs under tf.function and XLA.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from qgan.tflib import tf

# Grid points per shortest wavelength of the density |psi|^2 (the product of two Hermite
# functions of degree c - 1 oscillates with local wavenumber up to 2 sqrt(2c - 1) in the
# dimensionless quadrature): 8 keeps the trapezoid CDF within ~1e-3 of the exact one at
# cutoffs 10-30 (tests/test_homodyne.py measures it against a 4x finer grid).
POINTS_PER_WAVELENGTH = 8
# Beyond the classical turning point of the highest Fock state, sqrt(2c - 1) in xi = x / sqrt(2),
# every phi_n (n < c) decays like exp(-xi^2 / 2) at least: 4 more units of xi leave < 1e-6
# of any state's probability outside.
TAIL_MARGIN = 4.0


def grid(cutoff: int) -> np.ndarray:
    """The x grid (hbar = 2) of a cutoff: wide enough for every state in the span of
    phi_0..phi_{c-1} (turning point plus `TAIL_MARGIN`), fine enough to resolve its fastest
    oscillation (`POINTS_PER_WAVELENGTH`); odd length, symmetric about 0."""
    k = math.sqrt(2 * cutoff - 1)
    half = k + TAIL_MARGIN  # in xi
    step = math.pi / k / POINTS_PER_WAVELENGTH  # |psi|^2's shortest wavelength is pi / k
    n = int(math.ceil(half / step))
    return math.sqrt(2.0) * np.linspace(-half, half, 2 * n + 1)


def hermite_functions(x: tf.Tensor, cutoff: int) -> tf.Tensor:
    """phi_n(x), n < cutoff, the Fock states' x-wavefunctions for hbar = 2: [...] -> [..., c].

    Stable recurrence in xi = x / sqrt(2): phi_0 = (2 pi)^(-1/4) exp(-xi^2 / 2),
    phi_{n+1} = sqrt(2 / (n + 1)) xi phi_n - sqrt(n / (n + 1)) phi_{n-1}.
    """
    xi = x / math.sqrt(2.0)
    phis = [(2.0 * math.pi) ** -0.25 * tf.exp(-0.5 * tf.square(xi))]
    if cutoff > 1:
        phis.append(math.sqrt(2.0) * xi * phis[0])
    for n in range(1, cutoff - 1):
        phis.append(math.sqrt(2.0 / (n + 1)) * xi * phis[n]
                    - math.sqrt(n / (n + 1)) * phis[n - 1])
    return tf.stack(phis, axis=-1)


@functools.lru_cache(maxsize=16)
def _tables(cutoff: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cutoff, computed once (they do not depend on the weights): the grid, phi_n on it
    [G, c], and the products phi_n phi_m (n <= m, off-diagonal ones doubled) [c(c+1)/2, G]
    that turn the real part of a reduced density matrix into the density on the grid."""
    xs = grid(cutoff)
    phi = _hermite_numpy(xs, cutoff)
    rows, cols = np.triu_indices(cutoff)
    pairs = phi[:, rows] * phi[:, cols] * np.where(rows == cols, 1.0, 2.0)
    return xs, phi, np.ascontiguousarray(pairs.T)


def _hermite_numpy(x: np.ndarray, cutoff: int) -> np.ndarray:
    """`hermite_functions` in float64 numpy (the same recurrence): [len(x), c]."""
    xi = np.asarray(x, np.float64) / math.sqrt(2.0)
    phis = [(2.0 * math.pi) ** -0.25 * np.exp(-0.5 * xi ** 2)]
    if cutoff > 1:
        phis.append(math.sqrt(2.0) * xi * phis[0])
    for n in range(1, cutoff - 1):
        phis.append(math.sqrt(2.0 / (n + 1)) * xi * phis[n] - math.sqrt(n / (n + 1)) * phis[n - 1])
    return np.stack(phis, axis=-1)


def density_on_grid(amp_re: tf.Tensor, amp_im: tf.Tensor, phi_grid: tf.Tensor,
                    pairs: tf.Tensor | None = None) -> tf.Tensor:
    """p(g) on the grid of the first axis' quadrature, summed over the others:
    amplitudes [B, c, K] (real and imaginary parts), phi_grid [G, c] -> [B, G].

    Two orders of the same sum, the cheaper one by the shapes: with K >= c / 2 (mode 0 of a
    2-mode state, K = c) through the reduced density matrix, Re(rho) = re re^T + im im^T
    [B, c, c], contracted with `pairs` (`_tables`: c(c+1)/2 products, not G c K per sample);
    else amplitude by amplitude, |phi_grid @ amp|^2 summed over K."""
    c = int(phi_grid.shape[1])
    k = amp_re.shape[2]
    if pairs is not None and k is not None and 2 * k >= c:
        rho = (tf.matmul(amp_re, amp_re, transpose_b=True)
               + tf.matmul(amp_im, amp_im, transpose_b=True))  # [B, c, c], symmetric
        rows, cols = np.triu_indices(c)
        flat = tf.gather(tf.reshape(rho, [-1, c * c]), rows * c + cols, axis=1)
        return tf.matmul(flat, pairs)
    w_re = tf.matmul(phi_grid[None], amp_re)  # [B, G, K]
    w_im = tf.matmul(phi_grid[None], amp_im)
    return tf.reduce_sum(tf.square(w_re) + tf.square(w_im), axis=2)


def invert_cdf(density: tf.Tensor, xs: np.ndarray, u: tf.Tensor) -> tf.Tensor:
    """Samples x with F(x) = u, F the trapezoid CDF of `density` [B, G] on the uniform grid
    `xs` normalised by its total, inverted by linear interpolation; u [B] in (0, 1). A
    density of batch 1 (one state for every sample) serves every u.

    Differentiable by implicit reparameterisation (module docstring): the value is the sample,
    the gradient -(dF/dtheta) / p at it, through `density`'s dependence on everything."""
    h = float(xs[1] - xs[0])
    g = int(len(xs))
    dtype = density.dtype
    cells = 0.5 * h * (density[:, 1:] + density[:, :-1])  # [B, G - 1]
    cum = tf.concat([tf.zeros_like(density[:, :1]), tf.cumsum(cells, axis=1)], axis=1)
    cdf = cum / cum[:, -1:]
    u = tf.cast(u, dtype)
    cdf = tf.broadcast_to(cdf, [tf.shape(u)[0], g])  # no-op unless one state serves all
    # the cell [k, k+1] with F_k <= u < F_{k+1}: a count, not a search (XLA has no searchsorted)
    k = tf.reduce_sum(tf.cast(tf.stop_gradient(cdf) <= u[:, None], tf.int32), axis=1) - 1
    k = tf.clip_by_value(k, 0, g - 2)
    f_lo = tf.gather(cdf, k, batch_dims=1)
    f_hi = tf.gather(cdf, k + 1, batch_dims=1)
    x_lo = tf.gather(tf.constant(xs, dtype), k)
    slope = tf.maximum((f_hi - f_lo) / h, tf.constant(1e-30, dtype))
    x = tf.stop_gradient(x_lo + (u - f_lo) / slope)
    f_at_x = f_lo + (x - x_lo) * (f_hi - f_lo) / h  # = u in value; carries dF/dtheta
    return x - (f_at_x - tf.stop_gradient(f_at_x)) / tf.stop_gradient(slope)


def sample_quadratures(amp: tf.Tensor, measured: int, u: tf.Tensor,
                       cutoff: int) -> tf.Tensor:
    """x-quadrature outcomes of the first `measured` modes of pure states.

    amp: [B, c, ..., c, R] complex (the measured modes' axes first, then the others flattened
    into R, traced out), or [1, ...]: one state measured B times; u: [B, measured] uniforms in
    (0, 1), one per measured mode (the inverse CDF's input: the same u gives the same sample).
    Returns [B, measured] in the amplitudes' real dtype (hbar = 2)."""
    xs, phi_np, pairs_np = _tables(cutoff)
    real = amp.dtype.real_dtype
    phi_grid = tf.constant(phi_np, real)  # [G, c]
    pairs = tf.constant(pairs_np, real)
    re, im = tf.math.real(amp), tf.math.imag(amp)
    rest = int(np.prod(amp.shape[2:]))  # static: the measured modes after the first, and R
    out = []
    for i in range(measured):
        re3 = tf.reshape(re, [-1, cutoff, rest])
        im3 = tf.reshape(im, [-1, cutoff, rest])
        x = invert_cdf(density_on_grid(re3, im3, phi_grid, pairs), xs, u[:, i])
        out.append(x)
        if i + 1 < measured:  # condition on x: contract its axis with phi(x)
            phi_x = hermite_functions(x, cutoff)[:, None, :]  # [B, 1, c]
            re = tf.matmul(phi_x, re3)[:, 0]  # [B, rest]: broadcasts one state to B
            im = tf.matmul(phi_x, im3)[:, 0]
            rest //= cutoff
    return tf.stack(out, axis=1)


def joint_density(amp: tf.Tensor, x: tf.Tensor, measured: int, cutoff: int) -> tf.Tensor:
    """p(x) of the first `measured` modes' quadratures at points x [N, measured] (hbar = 2),
    for each of M pure states amp [M, c, ..., c, R] (the measured modes' axes first, the
    others flattened into R and traced out): [M, N], normalised by each state's norm (the
    probability the cutoff lost is renormalised away, as the sampler does).

    Exact, no grid: psi(x; r) = sum_n c[n, r] prod_i phi_{n_i}(x_i), one mode's axis
    contracted at a time (M N c^d R multiply-adds for the first, less after), so a
    likelihood of a data batch costs about one batch of samples. Differentiable in amp and x."""
    real = amp.dtype.real_dtype
    x = tf.cast(x, real)
    re, im = tf.math.real(amp), tf.math.imag(amp)
    m = tf.shape(amp)[0]
    norm = tf.reduce_sum(tf.reshape(tf.square(re) + tf.square(im), [m, -1]), axis=1)  # [M]
    rest = int(np.prod(amp.shape[1:])) // cutoff  # static
    re = tf.reshape(re, [m, cutoff, rest])
    im = tf.reshape(im, [m, cutoff, rest])
    phi = hermite_functions(x[:, 0], cutoff)  # [N, c]
    re = tf.einsum("mnk,bn->mbk", re, phi)  # [M, N, rest]
    im = tf.einsum("mnk,bn->mbk", im, phi)
    for i in range(1, measured):
        rest //= cutoff
        phi = hermite_functions(x[:, i], cutoff)
        re = tf.einsum("mbnk,bn->mbk", tf.reshape(re, [m, -1, cutoff, rest]), phi)
        im = tf.einsum("mbnk,bn->mbk", tf.reshape(im, [m, -1, cutoff, rest]), phi)
    return tf.reduce_sum(tf.square(re) + tf.square(im), axis=2) / norm[:, None]


@functools.lru_cache(maxsize=8)
def _split_table(cutoff: int) -> np.ndarray:
    """T[n, k, l]: a 50:50 beamsplitter takes |n>|0> to sum_k sqrt(C(n, k)) 2^(-n/2) |k>|n-k>
    (a coherent |b>|0> to |b/sqrt2>|b/sqrt2>), then arm 2 is rotated by R(-pi/2) ((-i)^l), so
    that its x-quadrature is the input's p: [c, c, c] complex128."""
    t = np.zeros((cutoff, cutoff, cutoff), np.complex128)
    for n in range(cutoff):
        for k in range(n + 1):
            t[n, k, n - k] = math.sqrt(math.comb(n, k)) * 2.0 ** (-n / 2) * (-1j) ** (n - k)
    return t


def heterodyne_arms(amp: tf.Tensor, split: int, cutoff: int) -> tf.Tensor:
    """The state seen by a heterodyne measurement of modes 0..split-1: each is mixed with a
    vacuum on a 50:50 beamsplitter and x is measured on one arm, p on the other, so the x
    outcomes of the two arms are a sample of the mode's Husimi Q function: their density is
    Q(alpha) / 2 at alpha = (x1 + i x2) / sqrt(2) (hbar = 2; tests/test_homodyne.py). amp [B, c, ..., c] (one axis per mode)
    -> [B, k0, l0, ..., k_{split-1}, l_{split-1}, the other modes' axes]; exact within the
    cutoff (a photon number n < c splits into k + l = n)."""
    table = tf.constant(_split_table(cutoff), amp.dtype)
    modes = len(amp.shape) - 1
    labels = list(range(modes))  # the axes after the batch, by what they hold
    for j in range(split):
        axis = 1 + labels.index(j)
        amp = tf.tensordot(amp, table, axes=[[axis], [0]])  # [B, ..., k, l] at the end
        labels = [m for m in labels if m != j] + [("k", j), ("l", j)]
    order = [("k", j) if i % 2 == 0 else ("l", j)
             for j in range(split) for i in range(2)] + list(range(split, modes))
    return tf.transpose(amp, [0] + [1 + labels.index(a) for a in order])


def marginal_density(amp: tf.Tensor, x: np.ndarray, cutoff: int) -> np.ndarray:
    """p(x) of the first axis' quadrature of pure states amp [B, c, K] (the others traced
    out), not divided by the state's norm (as SF's Wigner marginal): [B, len(x)]. For tests
    and figures."""
    amp = tf.convert_to_tensor(amp)
    real = amp.dtype.real_dtype
    re3 = tf.reshape(tf.math.real(amp), [tf.shape(amp)[0], cutoff, -1])
    im3 = tf.reshape(tf.math.imag(amp), [tf.shape(amp)[0], cutoff, -1])
    return density_on_grid(re3, im3, hermite_functions(tf.constant(x, real), cutoff)).numpy()
