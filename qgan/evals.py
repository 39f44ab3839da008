"""Eval metrics of generated samples against held-out real data (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np

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
    from scipy.stats import wasserstein_distance

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
