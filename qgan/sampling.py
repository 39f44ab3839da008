"""Draw samples from a trained generator: the code behind `qgan sample` and the trainer's
latent-interpolation file.

The generator is rebuilt by `qgan.models.build_models`, the one construction the trainer uses,
and restored from a checkpoint only after every file's sha256 verified (CheckpointManager in
read-only mode: a trainer may be writing into the run at the same time). Outputs are Parquet,
written atomically: x0..x{d-1} plus `step`, with the checkpoint's folder, step and seq in the
file's key-value metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qgan import saferead, schema
from qgan.checkpoints import (CheckpointCorruptError, CheckpointInfo, CheckpointManager,
                              CheckpointMismatchError)
from qgan.config import Config, ConfigInvalid, load_config
from qgan.data import DataError, load_dataset, mixture_centers

log = logging.getLogger(__name__)

MAX_SAMPLES = 10_000_000  # -n above this is almost surely a typo (and would need GBs)


class SampleError(ValueError):
    """Sampling cannot proceed; the message names the problem and the fix (CLI: exit 2)."""


@dataclass
class Loaded:
    """A generator restored from a verified checkpoint."""

    cfg: Config
    models: object  # qgan.models.Models
    checkpoint: Path  # the folder it was restored from
    step: int
    seq: int


def data_dim(cfg: Config, run_dir: Path) -> int:
    """The data's dimension without reading the data: from samples/real.parquet (written at
    the run's start), else from the config's synthetic target, else by loading the file."""
    real = run_dir / schema.SAMPLES_DIR / "real.parquet"
    try:
        names = saferead.read_parquet_schema(real, "samples", root=run_dir).names
        dims = [n for n in names if n.startswith("x") and n[1:].isdigit()]
        if dims:
            return len(dims)
    except (OSError, ValueError):
        pass

    if cfg.data.target != "file":
        return int(mixture_centers(cfg.data.target, cfg.data.scale).shape[1])
    try:
        return load_dataset(cfg.data, cfg.run.seed).dim
    except DataError as exc:
        raise SampleError(f"cannot tell the data's dimension: {exc}") from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_request(run_dir: Path, which: str = "best") -> tuple[Config, Path | None]:
    """Every check of a sampling request that needs no TensorFlow: the run's config reads,
    it has checkpoints/, and `which` names best, latest or a folder inside them. Returns
    (config, the folder asked for or None). Raises SampleError."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / schema.CONFIG_FILE
    if not cfg_file.is_file():
        raise SampleError(f"{run_dir} is not a run directory (no {schema.CONFIG_FILE}); give "
                          "the folder `qgan train --run-dir` wrote")
    try:
        cfg = load_config(cfg_file, [], root=run_dir)
    except (ConfigInvalid, OSError, ValueError) as exc:
        raise SampleError(f"{cfg_file} cannot be read: {exc}") from None
    ckpt_dir = run_dir / schema.CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        raise SampleError(f"{run_dir} has no checkpoints/ yet: train it first")
    if which in ("best", "latest"):
        return cfg, None
    path = Path(which)
    if not path.is_absolute():  # a bare folder name is looked up in the run's checkpoints/
        path = ckpt_dir / path if len(path.parts) == 1 else Path.cwd() / path
    if not _inside(path, ckpt_dir) or path.resolve() == ckpt_dir.resolve():
        raise SampleError(f"--checkpoint {which}: not a checkpoint folder of this run; give "
                          f"best, latest, or a folder inside {ckpt_dir}")
    return cfg, path


def load_generator(run_dir: Path, which: str = "best") -> Loaded:
    """Rebuild the run's models and restore them from `which`: "best" (the kept best
    checkpoint; the newest one if the run has none), "latest", or a checkpoint folder inside
    the run's checkpoints/ (a path, or a bare folder name such as ckpt-000012). Raises
    SampleError."""
    run_dir = Path(run_dir)
    cfg, path = check_request(run_dir, which)
    ckpt_dir = run_dir / schema.CHECKPOINT_DIR
    # TensorFlow only now: every mistake above is reported in a fraction of a second
    from qgan.models import build_models  # lazy: TensorFlow, after the request is checked
    from qgan.tflib import configure_tensorflow  # lazy: TensorFlow

    configure_tensorflow()
    models = build_models(cfg, data_dim(cfg, run_dir))
    manager = CheckpointManager(ckpt_dir, models.trackables(), keep=cfg.checkpoint.keep,
                                read_only=True)
    info: CheckpointInfo | None
    if which == "best":
        info = manager.best()
        if info is None:
            info = manager.latest()
            if info is not None:
                log.warning("%s has no best checkpoint (checkpoint.keep_best was off); using "
                            "the newest one, %s (step %d)", run_dir, info.name, info.step)
    elif which == "latest":
        info = manager.latest()
    else:
        assert path is not None
        candidates = [i for i in manager.list() + [manager.best()]
                      if i is not None and i.path.resolve() == path.resolve()]
        if not candidates:
            raise SampleError(f"--checkpoint {which}: not a committed checkpoint (no manifest "
                              "entry or checksums.json); list the run's checkpoints/ folder")
        info = candidates[0]
    if info is None:
        raise SampleError(f"{run_dir} has no checkpoint to sample from ({which}); train it first")
    try:
        manager.restore(info)
    except CheckpointCorruptError as exc:
        raise SampleError(f"checkpoint {info.path} is damaged ({exc}); choose another with "
                          "--checkpoint latest or a ckpt-* folder") from None
    except CheckpointMismatchError as exc:
        raise SampleError(f"checkpoint {info.path} does not fit this run's models: {exc}") \
            from None
    return Loaded(cfg, models, info.path, info.step, info.seq)


def metadata(loaded: Loaded, run_dir: Path, **more: object) -> dict[str, str]:
    return {"qgan.run": str(run_dir), "qgan.checkpoint": loaded.checkpoint.name,
            "qgan.step": str(loaded.step), "qgan.seq": str(loaded.seq),
            **{f"qgan.{k}": str(v) for k, v in more.items()}}


def draw(loaded: Loaded, n: int, seed: int) -> dict[str, np.ndarray]:
    """n samples as columns x0..x{d-1} plus step (latents uniform, as in training)."""
    from qgan.models import generate, latent_uniform  # lazy: TensorFlow, after the request is checked

    x, _ = generate(loaded.models.sampling, latent_uniform(loaded.cfg, n, seed))
    return {"step": np.full(n, loaded.step, np.int64),
            **{f"x{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])}}


def interpolation(cfg: Config, generator, step: int, points: int) -> dict[str, np.ndarray]:
    """The generator along the latent diagonal (qgan.models.latent_line): columns t,
    z0..z{k-1}, x0..x{d-1}, trace (Fock trace; NaN for a classical generator), step."""
    from qgan.models import generate, latent_line  # lazy: TensorFlow, after the request is checked

    t, z = latent_line(cfg, points)
    x, trace = generate(generator, z)
    return {"t": t, **{f"z{i}": z[:, i].astype(np.float64) for i in range(z.shape[1])},
            **{f"x{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])},
            "trace": trace.astype(np.float64), "step": np.full(points, step, np.int64)}
