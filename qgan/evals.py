"""Eval metrics of generated samples against held-out real data (pure numpy/scipy).

Two families: the per-axis and mode metrics of the built-in mixtures (`eval_metrics`, the
papers' protocol beside the toolkit's looser one), and the structure metrics that need no
known centres (`Evaluator`: precision, recall, density, coverage, sliced W1 with its floor,
mode weights and spread against the run's data profile, qgan/dataprofile.py).
"""

from __future__ import annotations

import numpy as np

from qgan.dataprofile import RADIUS_COLUMNS, Profile, radius_ratios
from qgan.manifolds import NAMES as SUPPORT_METRICS
from qgan.manifolds import RealManifold
from qgan.sliced import sliced_w1

_PAIR_LIMIT = 256  # pairwise distances on at most this many samples: O(n^2) stays cheap


def _pairwise(x: np.ndarray) -> np.ndarray:
    x = x[:_PAIR_LIMIT]
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return d[np.triu_indices(len(x), k=1)]


def mode_occupancy(samples: np.ndarray, centers: np.ndarray, std: float) -> tuple[np.ndarray, float]:
    """Counts of samples within 3 std of each centre, and the fraction that is within any."""
    dist = np.sqrt(((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    nearest = dist.argmin(axis=1)
    good = dist[np.arange(len(samples)), nearest] <= 3.0 * std * np.sqrt(samples.shape[1])
    counts = np.bincount(nearest[good], minlength=len(centers))
    return counts, float(good.mean())


def paper_mode_metrics(samples: np.ndarray, centers: np.ndarray,
                       std: float) -> tuple[float, int, float]:
    """(HQ fraction, modes captured, reverse KL) by the VEEGAN/PacGAN protocol.

    HQ: Euclidean distance to the nearest centre <= 3 std (no sqrt(d) factor, unlike
    `mode_occupancy`); captured: >= 1 HQ sample; reverse KL: KL(p || uniform) of the HQ samples'
    histogram over all K modes, sum_k p_k log(K p_k) (NaN when there is no HQ sample).
    """
    dist = np.sqrt(((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    nearest = dist.argmin(axis=1)
    hq = dist[np.arange(len(samples)), nearest] <= 3.0 * std
    counts = np.bincount(nearest[hq], minlength=len(centers))
    if counts.sum() == 0:
        return float(hq.mean()), 0, float("nan")
    p = counts[counts > 0] / counts.sum()
    return float(hq.mean()), int((counts > 0).sum()), float((p * np.log(len(centers) * p)).sum())


def eval_metrics(samples: np.ndarray, real: np.ndarray, centers: np.ndarray | None,
                 std: float) -> dict:
    """The `evals` table's sample columns for one eval."""
    samples = np.asarray(samples, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    finite = np.isfinite(samples).all()
    sample_var = float(samples.var(axis=0).sum()) if finite else float("nan")
    real_var = float(real.var(axis=0).sum())
    row = {
        "sample_var": sample_var, "real_var": real_var,
        "sample_var_ratio": sample_var / real_var if real_var > 0 else float("nan"),
        "real_mean_pairwise_dist": float(_pairwise(real).mean()),
        "n_modes": 0, "modes_covered": 0, "mode_balance": float("nan"),
        "high_quality_frac": float("nan"), "paper_hq_frac": float("nan"),
        "paper_modes_captured": 0, "paper_reverse_kl": float("nan"),
    }
    if not finite:
        row.update(mean_pairwise_dist=float("nan"), min_pairwise_dist=float("nan"),
                   w1_mean=float("nan"), w1_per_axis=[float("nan")] * samples.shape[1])
        return row
    # imported here, not at the top: scipy.stats takes ~0.2 s to import, which every requeued
    # attempt would pay before its first trained step (issue 14)
    from scipy.stats import wasserstein_distance  # lazy: scipy, first needed at the first eval

    pd_ = _pairwise(samples)
    w1 = [float(wasserstein_distance(samples[:, i], real[:, i])) for i in range(samples.shape[1])]
    row.update(mean_pairwise_dist=float(pd_.mean()), min_pairwise_dist=float(pd_.min()),
               w1_mean=float(np.mean(w1)), w1_per_axis=w1)
    if centers is not None:
        counts, hq = mode_occupancy(samples, centers, std)
        k = len(centers)
        covered = int((counts >= len(samples) / (4.0 * k)).sum())
        p = counts / counts.sum() if counts.sum() > 0 else np.zeros(k)
        nz = p[p > 0]
        balance = float(-(nz * np.log(nz)).sum() / np.log(k)) if k > 1 else 1.0
        row.update(n_modes=k, modes_covered=covered, mode_balance=balance, high_quality_frac=hq)
        p_hq, p_captured, p_kl = paper_mode_metrics(samples, centers, std)
        row.update(paper_hq_frac=p_hq, paper_modes_captured=p_captured, paper_reverse_kl=p_kl)
    return row


def mode_balance(shares: np.ndarray, target: np.ndarray) -> float:
    """1 - KL(p || w) / log(1 / min w) of the generated mode shares p against the data's
    weights w (both normalised): 1 when they match, 0 when every sample sits on the lightest
    mode. With uniform weights it is the normalised entropy of the built-in targets'
    `mode_balance`, H(p) / log K."""
    p = np.asarray(shares, float)
    w = np.asarray(target, float)
    if len(w) < 2 or p.sum() <= 0 or w.sum() <= 0 or (w <= 0).any():
        return float("nan") if p.sum() <= 0 else 1.0
    p, w = p / p.sum(), w / w.sum()
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] / w[nz])).sum())
    return float(1.0 - kl / np.log(1.0 / w.min()))


_STRUCTURE_NAN = {name: float("nan") for name in (
    *SUPPORT_METRICS, "sliced_w1", *RADIUS_COLUMNS)}


class Evaluator:
    """The eval row of generated samples: the built-in metrics plus the structure metrics
    against the run's data profile. Built once per attempt: the real manifold's radii are
    computed here, not at every eval."""

    def __init__(self, holdout: np.ndarray, centers: np.ndarray | None, std: float,
                 profile: Profile, eval_size: int):
        self.holdout = np.asarray(holdout, np.float64)
        self.centers, self.std, self.profile = centers, std, profile
        self.manifold = RealManifold(self.holdout)
        self.floor = float(profile.references[eval_size]["sliced_w1"])

    def __call__(self, samples: np.ndarray) -> dict:
        samples = np.asarray(samples, np.float64)
        row = eval_metrics(samples, self.holdout, self.centers, self.std)
        row.update(_STRUCTURE_NAN, sliced_w1_floor=self.floor, mode_weights=None)
        if not np.isfinite(samples).all():
            return row
        p = self.profile
        row.update(self.manifold.score(samples),
                   sliced_w1=sliced_w1(samples, self.holdout, p.directions))
        row.update(radius_ratios(p, samples))
        if p.modes is not None:
            shares, hq = p.modes.shares(samples)
            row["mode_weights"] = shares.tolist()
            if self.centers is None:  # the built-in targets keep their own definitions
                w = p.modes.weights
                row.update(n_modes=p.modes.n_modes,
                           modes_covered=int((shares >= w / 4.0).sum()),
                           mode_balance=mode_balance(shares, w), high_quality_frac=hq)
        return row
