"""What a run knows about its data, decided once and kept in the run directory.

At its first attempt a run profiles its training data and writes `data_profile.json`:
- the data's modes: the known centres of a built-in target, or, for a user's file, the modes
  of a Gaussian mixture fitted to the data (the number of components chosen by BIC, up to
  `eval.data_modes_max`), with components that no density valley separates merged into one
  mode (a curve or one blob is then "no distinct modes", not ten invented ones);
- the data's centre and the quantiles of the distance from it (too narrow / too wide), the
  sliced-W1 directions;
- reference values at the eval's sample size: the same metrics for a second real sample set
  (the floor of the distance, the precision a perfect generator would get, ...).

Every later attempt reads the record instead of fitting again, so a resume, a resubmit or a
newer scikit-learn cannot move the modes under a run (and the fit's cost is paid once).
The record is untrusted input like every file of a run directory: read without following
links, bounded in size, and checked field by field (`ProfileError` names the problem).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qgan import saferead, schema
from qgan.atomic import atomic_write_json
from qgan.manifolds import RealManifold
from qgan.sliced import directions, sliced_w1
from qgan.thresholds import value as threshold

log = logging.getLogger(__name__)

VERSION = 1
SOURCES = ("known", "fitted")  # centres of a built-in target | a mixture fitted to the data
FIT_ROWS = 4000  # rows the mixture is fitted on: enough for 50 components, < 2 s in 2-D
HQ_MASS = 0.9973  # "within 3 std" of a component: the mass of a 1-D Gaussian's +-3 sigma
RADIUS_QUANTILES = (0.1, 0.5, 0.9, 0.99)
# the eval columns of the generated/real ratios of those quantiles, in the same order
RADIUS_COLUMNS = ("radius_q10_ratio", "radius_q50_ratio", "radius_q90_ratio", "radius_q99_ratio")
GRAPH_K = 30  # neighbours in the k-NN graph the modes are found on (a smooth graph: 10 left
#              gaps in the tails of 2-D blobs)
GRAPH_MIN_SHARE = 0.02  # a piece with fewer of the points is stray points, not a mode


class ProfileError(ValueError):
    """data_profile.json is missing a field, holds a wrong type, or cannot be read."""


@dataclass(frozen=True)
class Modes:
    """The data's distinct modes as Gaussian components grouped into modes.

    `weights[k]` is the share of real held-out samples that lie within the HQ ellipsoid of a
    component of mode k (so sum(weights) is the real data's HQ fraction).
    """

    means: np.ndarray  # [C, d]
    covs: np.ndarray  # [C, d, d]
    comp_weights: np.ndarray  # [C] mixture weights
    mode_of: np.ndarray  # [C] mode index of each component
    weights: np.ndarray  # [K] real share per mode
    hq_chi2: float  # squared Mahalanobis radius of "within 3 std" in d dimensions

    @property
    def n_modes(self) -> int:
        return len(self.weights)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mode index, HQ) per sample: the component of highest posterior, and whether the
        sample lies within its HQ ellipsoid."""
        logp, sq = _component_terms(x, self.means, self.covs, self.comp_weights)
        best = logp.argmax(axis=1)
        return self.mode_of[best], sq[np.arange(len(x)), best] <= self.hq_chi2

    def shares(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """(share of all samples that are HQ in each mode, HQ fraction)."""
        mode, hq = self.assign(x)
        counts = np.bincount(mode[hq], minlength=self.n_modes)
        return counts / max(len(x), 1), float(hq.mean()) if len(x) else float("nan")


@dataclass(frozen=True)
class Profile:
    source: str
    dim: int
    modes: Modes | None  # None: no distinct modes
    centre: np.ndarray
    radius_quantiles: tuple[float, ...]  # which quantiles the record holds (RADIUS_QUANTILES)
    radius_q: np.ndarray  # the real data's distance from its centre at those quantiles
    directions: np.ndarray  # [L, d] for the sliced W1
    references: dict[int, dict[str, float]]  # eval size -> real-vs-real values
    record: dict  # the JSON record as read


# ---- Gaussian terms (numpy only: evals never need scikit-learn) ------------------------------

def _component_terms(x: np.ndarray, means: np.ndarray, covs: np.ndarray,
                     weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log w_c + log N(x; mu_c, S_c), squared Mahalanobis distance), each [n, C]."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    logp = np.empty((n, len(means)))
    sq = np.empty((n, len(means)))
    for c, (mu, cov) in enumerate(zip(means, covs)):
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (x - mu).T)  # [d, n]
        sq[:, c] = (z * z).sum(axis=0)
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        logp[:, c] = np.log(weights[c]) - 0.5 * (sq[:, c] + logdet + d * math.log(2 * math.pi))
    return logp, sq


def group_components(x: np.ndarray, means: np.ndarray, covs: np.ndarray,
                     weights: np.ndarray, valley: float, k: int = GRAPH_K,
                     min_share: float = GRAPH_MIN_SHARE) -> np.ndarray:
    """Mode index per component: the components that cover one mode of the data's density.

    Modes are found on the data itself, not on straight lines between component means (a
    curve bends away from those): topological mode analysis (ToMATo, Chazal, Guibas, Oudot
    and Skraba 2013) on the k-nearest-neighbour graph of the data, with the fitted mixture as
    the density. Points are taken from the densest down; each joins the cluster of its
    densest already-taken neighbour, and two clusters that touch at a point merge unless
    the density there (the saddle) is below `valley` times the lower of their two peaks:
    only a real valley keeps two modes apart. A curve, a blob with heavy tails or a ring of
    components is one mode; two blobs or two moons with empty space between them are two.
    Clusters holding less than `min_share` of the points (stray tail points) are not
    modes. Each Gaussian component joins the cluster holding most of its posterior mass;
    modes are numbered by their first component."""
    from scipy.spatial import cKDTree  # lazy: scipy, first needed at the first eval

    n = len(x)
    _, nn = cKDTree(x).query(x, k=min(k, n - 1) + 1)
    logp, _ = _component_terms(x, means, covs, weights)
    top = logp.max(axis=1, keepdims=True)
    logf = (top + np.log(np.exp(logp - top).sum(axis=1, keepdims=True)))[:, 0]
    from scipy.sparse import coo_matrix  # lazy: scipy, first needed at the first eval

    kk = nn.shape[1] - 1
    graph = coo_matrix((np.ones(n * kk), (np.repeat(np.arange(n), kk), nn[:, 1:].ravel())),
                       shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()  # symmetric
    neighbours = [graph.indices[graph.indptr[i]:graph.indptr[i + 1]].tolist()
                  for i in range(n)]
    parent = np.full(n, -1)  # union-find over the points taken so far; roots are peaks

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    cut = math.log(valley)
    for i in np.argsort(-logf, kind="stable").tolist():
        taken = [j for j in neighbours[i] if parent[j] >= 0]
        if not taken:
            parent[i] = i  # a new peak
            continue
        up = root(max(taken, key=lambda j: logf[j]))
        parent[i] = up
        for j in taken:
            other = root(j)
            if other == up:
                continue
            low, high = sorted((up, other), key=lambda r: logf[r])
            if logf[i] >= logf[low] + cut:  # no valley at this saddle: one mode
                parent[low] = high
                up = root(up)
    peaks = np.array([root(i) for i in range(n)])
    ids, piece = np.unique(peaks, return_inverse=True)
    big = np.flatnonzero(np.bincount(piece) >= min_share * n)
    post = np.exp(logp - top)
    post /= post.sum(axis=1, keepdims=True)  # [n, C] posteriors
    member = (piece[:, None] == big[None, :]).astype(float)  # [n, B]
    owner = (post.T @ member).argmax(axis=1)  # [C]: the big cluster of most of its mass
    order = {b: m for m, b in enumerate(dict.fromkeys(owner.tolist()))}
    return np.array([order[b] for b in owner.tolist()], dtype=np.int64)


def fit_mixture(x: np.ndarray, max_components: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """A full-covariance Gaussian mixture by scikit-learn, its number of components chosen
    by BIC among 1..max_components (stopping once BIC has not improved for 3 sizes), fitted
    on centred coordinates scaled by one common factor (the root mean square of the axes'
    std: the k-means start of each fit is not scale invariant, and scaling every axis alike
    keeps the data's geometry, where per-axis scaling would blow up noise axes) and
    returned in data units: (means, covs, weights, BICs)."""
    from sklearn.mixture import GaussianMixture  # lazy: scikit-learn, once per run

    mean = x.mean(axis=0)
    std = np.full(x.shape[1], float(np.sqrt(np.mean(_safe_std(x) ** 2))))
    z = (x - mean) / std
    best, best_bic, bics, since = None, math.inf, [], 0
    for k in range(1, max_components + 1):
        if k > len(z) // 2:
            break
        gm = GaussianMixture(k, covariance_type="full", random_state=seed, n_init=1,
                             reg_covar=1e-6, max_iter=300).fit(z)
        bic = float(gm.bic(z))
        bics.append(bic)
        if bic < best_bic:
            best, best_bic, since = gm, bic, 0
        else:
            since += 1
            if since >= 3:
                break
    scale = np.outer(std, std)
    return (best.means_ * std + mean, best.covariances_ * scale[None], best.weights_, bics)


def _safe_std(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return np.where(std > 0, std, 1.0)


# ---- building the record -------------------------------------------------------------------

def _modes_record(train: np.ndarray, holdout: np.ndarray, centers: np.ndarray | None,
                  std: float, max_modes: int, seed: int) -> dict:
    from scipy.stats import chi2  # lazy: scipy, first needed at the first eval

    d = train.shape[1]
    hq_chi2 = float(chi2.ppf(HQ_MASS, d))
    if centers is not None:  # a built-in target: its known centres, one component each
        means = np.asarray(centers, np.float64)
        covs = np.repeat((std ** 2 * np.eye(d))[None], len(means), axis=0)
        weights = np.full(len(means), 1.0 / len(means))
        mode_of = np.arange(len(means))
        bics: list[float] = []
        source = "known"
    else:
        rng = np.random.default_rng([seed, 0x60DE])
        rows = train if len(train) <= FIT_ROWS else train[rng.choice(len(train), FIT_ROWS,
                                                                     replace=False)]
        means, covs, weights, bics = fit_mixture(rows.astype(np.float64), max_modes, seed)
        mode_of = group_components(rows, means, covs, weights, threshold("mode_valley"))
        source = "fitted"
    modes = {"means": means.tolist(), "covs": covs.tolist(), "comp_weights": weights.tolist(),
             "mode_of": mode_of.tolist(), "hq_chi2": hq_chi2, "bic": bics,
             "weights": [1.0]}  # placeholder until the held-out shares are measured
    n_modes = int(mode_of.max()) + 1
    probe = Modes(means, covs, weights, mode_of, np.zeros(n_modes), hq_chi2)
    shares, _ = probe.shares(holdout.astype(np.float64))
    modes["weights"] = shares.tolist()
    modes["distinct"] = n_modes >= 2
    return {"source": source, **modes}


def _reference(profile: Profile, real_b: np.ndarray, holdout: np.ndarray) -> dict[str, float]:
    """The eval metrics of a second real sample set: what a perfect generator would score."""
    ref = {"sliced_w1": sliced_w1(real_b, holdout, profile.directions)}
    ref.update(RealManifold(holdout).score(real_b))
    ref.update(radius_ratios(profile, real_b))
    if profile.modes is not None:
        shares, hq = profile.modes.shares(real_b)
        ref["high_quality_frac"] = hq
        ref["mode_weights"] = shares.tolist()
    ref["n"] = len(real_b)
    return ref


def build(train: np.ndarray, holdout: np.ndarray, centers: np.ndarray | None, std: float, *,
          seed: int, eval_size: int, max_modes: int) -> dict:
    """The record of a run's data (JSON-ready), reference values at `eval_size` included."""
    train = np.asarray(train, np.float64)
    holdout = np.asarray(holdout, np.float64)
    d = train.shape[1]
    centre = holdout.mean(axis=0)
    record = {
        "version": VERSION, "dim": d,
        "modes": _modes_record(train, holdout, centers, std, max_modes, seed),
        "centre": centre.tolist(),
        "radius_quantiles": list(RADIUS_QUANTILES),
        "radius_q": np.quantile(np.linalg.norm(holdout - centre, axis=1),
                                RADIUS_QUANTILES).tolist(),
        "directions": directions(d, np.random.default_rng([seed, 0x511CE])).tolist(),
        "references": {},
    }
    return add_reference(record, train, holdout, seed=seed, eval_size=eval_size)


def add_reference(record: dict, train: np.ndarray, holdout: np.ndarray, *, seed: int,
                  eval_size: int) -> dict:
    """The record with reference values for `eval_size` samples (a second real set drawn
    from the training data: all of it when it has fewer rows)."""
    profile = parse(record)
    rng = np.random.default_rng([seed, 0xF100, eval_size])
    train = np.asarray(train, np.float64)
    real_b = train if len(train) <= eval_size else train[rng.choice(len(train), eval_size,
                                                                    replace=False)]
    refs = dict(record["references"])
    refs[str(eval_size)] = _reference(profile, real_b, np.asarray(holdout, np.float64))
    return {**record, "references": refs}


# ---- reading it back -------------------------------------------------------------------------

def radius_ratios(profile: Profile, x: np.ndarray) -> dict[str, float]:
    """Eval column -> the samples' quantile of the distance from the data's centre over the
    data's own, for the quantiles the record holds (a column it lacks stays out)."""
    q = np.quantile(np.linalg.norm(np.asarray(x, np.float64) - profile.centre, axis=1),
                    profile.radius_quantiles)
    return {RADIUS_COLUMNS[RADIUS_QUANTILES.index(p)]: float(a / b) if b > 0 else float("nan")
            for p, a, b in zip(profile.radius_quantiles, q, profile.radius_q)}


def _array(rec: dict, key: str, shape: tuple, where: str) -> np.ndarray:
    try:
        a = np.asarray(rec[key], dtype=np.float64)
    except KeyError:
        raise ProfileError(f"{where}: field {key!r} is missing") from None
    except (TypeError, ValueError):
        raise ProfileError(f"{where}: field {key!r} is not an array of numbers") from None
    if a.shape != shape or not np.isfinite(a).all():
        raise ProfileError(f"{where}: field {key!r} has shape {a.shape}, expected {shape} of "
                           "finite numbers")
    return a


def parse(rec: Any, where: str = schema.PROFILE_FILE) -> Profile:
    """A record (as read from JSON) checked field by field; ProfileError names the first
    problem."""
    if not isinstance(rec, dict):
        raise ProfileError(f"{where}: not a JSON object")
    if rec.get("version") != VERSION:
        raise ProfileError(f"{where}: version {rec.get('version')!r}, expected {VERSION}")
    d = rec.get("dim")
    if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 4096:
        raise ProfileError(f"{where}: dim {d!r} is not a dimension")
    m = rec.get("modes")
    if not isinstance(m, dict) or m.get("source") not in SOURCES:
        raise ProfileError(f"{where}: modes is not an object with a source in {SOURCES}")
    c = len(m["means"]) if isinstance(m.get("means"), list) else 0
    if not 1 <= c <= 256:
        raise ProfileError(f"{where}: modes field 'means' must list 1-256 components")
    mw = f"{where}: modes"
    means = _array(m, "means", (c, d), mw)
    covs = _array(m, "covs", (c, d, d), mw)
    comp_w = _array(m, "comp_weights", (c,), mw)
    mode_of = _array(m, "mode_of", (c,), mw)
    if (mode_of != np.round(mode_of)).any() or mode_of.min() != 0 or \
            set(mode_of.astype(int).tolist()) != set(range(int(mode_of.max()) + 1)):
        raise ProfileError(f"{mw}: mode_of must number the modes 0..K-1")
    k = int(mode_of.max()) + 1
    weights = _array(m, "weights", (k,), mw)
    hq = m.get("hq_chi2")
    if not isinstance(hq, (int, float)) or isinstance(hq, bool) or not hq > 0:
        raise ProfileError(f"{mw}: hq_chi2 must be a positive number")
    if (comp_w <= 0).any() or (weights < 0).any() or not isinstance(m.get("distinct"), bool):
        raise ProfileError(f"{mw}: weights must be positive and distinct a boolean")
    try:
        np.linalg.cholesky(covs)
    except np.linalg.LinAlgError:
        raise ProfileError(f"{mw}: a covariance is not positive definite") from None
    modes = Modes(means, covs, comp_w, mode_of.astype(np.int64), weights, float(hq)) \
        if m["distinct"] else None
    refs = rec.get("references")
    if not isinstance(refs, dict) or not all(
            isinstance(key, str) and key.isdigit() and isinstance(v, dict)
            for key, v in refs.items()):
        raise ProfileError(f"{where}: references must map eval sizes to objects")
    n_dirs = len(rec.get("directions", [])) if isinstance(rec.get("directions"), list) else 0
    quantiles = rec.get("radius_quantiles")
    if not isinstance(quantiles, list) or not quantiles or \
            not all(isinstance(p, float) and p in RADIUS_QUANTILES for p in quantiles):
        raise ProfileError(f"{where}: radius_quantiles must list some of {RADIUS_QUANTILES}")
    quantiles = tuple(quantiles)
    return Profile(
        source=m["source"], dim=d, modes=modes,
        centre=_array(rec, "centre", (d,), where),
        radius_quantiles=quantiles,
        radius_q=_array(rec, "radius_q", (len(quantiles),), where),
        directions=_array(rec, "directions", (max(n_dirs, 1), d), where),
        references={int(key): v for key, v in refs.items()}, record=rec)


def read(path: Path, root: Path | None = None) -> Profile:
    """Read and check a record, confined to `root` (default: its run directory) by the one
    bounded reader (qgan.saferead); ProfileError for anything wrong (missing included)."""
    path = Path(path)
    try:
        data = saferead.read_bytes(path, "data_profile", root=root or path.parent)
    except FileNotFoundError:
        raise ProfileError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    try:
        rec = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    return parse(rec, str(path))


def load_or_create(run_dir: Path, train: np.ndarray, holdout: np.ndarray,
                   centers: np.ndarray | None, std: float, *, seed: int, eval_size: int,
                   max_modes: int) -> Profile:
    """The run's profile: read from the run directory, or built and written at the first
    attempt. A record without references for this eval size (eval.n_samples changed) gains
    them; the modes are never refitted. A damaged record raises ProfileError: deleting it
    would silently change what later evals measure."""
    path = Path(run_dir) / schema.PROFILE_FILE
    if path.exists() or path.is_symlink():
        profile = read(path)
        if profile.dim != train.shape[1]:
            raise ProfileError(f"{path} describes {profile.dim}-D data, but the data has "
                               f"{train.shape[1]} columns")
        if eval_size in profile.references:
            return profile
        record = add_reference(profile.record, train, holdout, seed=seed, eval_size=eval_size)
    else:
        record = build(train, holdout, centers, std, seed=seed, eval_size=eval_size,
                       max_modes=max_modes)
        m = record["modes"]
        log.info("data profile: %s, %d component(s), %s", m["source"], len(m["means"]),
                 f"{max(m['mode_of']) + 1} distinct modes" if m["distinct"]
                 else "no distinct modes")
    atomic_write_json(path, record)
    return read(path)  # what later attempts will read, bit for bit
