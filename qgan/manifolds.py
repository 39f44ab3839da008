"""Precision, recall, density and coverage of generated samples, by k-nearest-neighbour
manifolds: they see the support of the data in any dimension, where per-axis W1 sees only the
marginals.

- precision, recall: Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models" (k = 3): the share of generated samples inside the real
  manifold (the union of balls reaching each real sample's k-th neighbour), and the share of
  real samples inside the generated one.
- density, coverage: Naeem et al. 2020, "Reliable fidelity and diversity metrics for
  generative models" (k = 5): how many real balls hold each generated sample, over k (1 when
  the generated samples are distributed like the real ones; above 1 when they crowd the dense
  regions), and the share of real balls that hold at least one generated sample.

Distances are Euclidean in the data's own coordinates, as W1 is (the four metrics do not
change under one common scale; scaling each axis by its own std would blow up noise axes and
hide the modes, e.g. 2 signal axes among 16). The k-th
neighbour radii come from SciPy's cKDTree; the cross distances from `cdist`, in blocks, as the
authors' reference code does with a full distance matrix.
"""

from __future__ import annotations

import numpy as np

K_PRECISION_RECALL = 3  # Kynkäänniemi et al.'s choice
K_DENSITY_COVERAGE = 5  # Naeem et al.'s choice
_BLOCK = 1024  # rows of the cross-distance matrix held at once (1024 x M float64)

NAMES = ("precision", "recall", "density", "coverage")


def knn_radii(x: np.ndarray, ks: tuple[int, ...]) -> list[np.ndarray]:
    """Distance from each point to its k-th nearest other point of the same set, for each k
    of `ks` (one tree query for all)."""
    from scipy.spatial import cKDTree  # lazy: scipy, first needed at the first eval

    kmax = min(max(ks), len(x) - 1)
    if kmax < 1:
        return [np.zeros(len(x)) for _ in ks]
    # workers=-1: both cores (the same neighbours, so the same numbers)
    dist, _ = cKDTree(x).query(x, k=kmax + 1, workers=-1)  # the first is the point itself
    return [dist[:, min(k, kmax)] for k in ks]


class RealManifold:
    """The real samples and their k-th neighbour radii, computed once per run: an eval then
    pays for the generated samples' radii and one cross-distance pass."""

    def __init__(self, real: np.ndarray, *, k_pr: int = K_PRECISION_RECALL,
                 k_dc: int = K_DENSITY_COVERAGE):
        self.real = np.asarray(real, np.float64)
        self.k_pr, self.k_dc = k_pr, k_dc
        self.r_pr, self.r_dc = knn_radii(self.real, (k_pr, k_dc))

    def score(self, fake: np.ndarray) -> dict[str, float]:
        """The four metrics of `fake` (finite, [n, d]) against the real samples."""
        from scipy.spatial.distance import cdist  # lazy: scipy, first needed at the first eval

        fake = np.asarray(fake, np.float64)
        real = self.real
        (f_pr,) = knn_radii(fake, (self.k_pr,))
        in_real = np.zeros(len(fake), bool)  # inside the real manifold (precision)
        balls = np.zeros(len(fake))  # real k_dc-balls holding each fake sample (density)
        real_hit = np.zeros(len(real), bool)  # real sample inside the fake manifold (recall)
        nearest_fake = np.full(len(real), np.inf)  # for coverage
        for start in range(0, len(fake), _BLOCK):
            d = cdist(fake[start:start + _BLOCK], real)  # [b, M]
            in_real[start:start + _BLOCK] = (d <= self.r_pr[None, :]).any(axis=1)
            balls[start:start + _BLOCK] = (d <= self.r_dc[None, :]).sum(axis=1)
            real_hit |= (d <= f_pr[start:start + _BLOCK, None]).any(axis=0)
            nearest_fake = np.minimum(nearest_fake, d.min(axis=0))
        return {"precision": float(in_real.mean()), "recall": float(real_hit.mean()),
                "density": float(balls.sum() / (self.k_dc * len(fake))),
                "coverage": float((nearest_fake <= self.r_dc).mean())}


def prdc(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """The four metrics of `fake` against `real`, at the papers' k."""
    return RealManifold(real).score(fake)
