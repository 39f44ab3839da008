"""Synthetic run directories, written exactly per the contract (qgan/schema.py,
docs/run-directory.md), with planted episodes at known steps.

Used by the analysis/report tests and by benchmarks/report_scale.py. Steps are 1-based. The
writer simulates the trainer's timeline (attempts, checkpoints, rollbacks, kills) over segments
of steps and generates each segment's columns with numpy, so a 10,000-step run takes
milliseconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w

from qgan import schema
from qgan.vocabulary import StopCause
from qgan.vocabulary import METRIC_MODE

T0 = 1_700_000_000.0  # wall-clock origin of every synthetic run
QUEUE_WAIT = 120.0  # seconds between an attempt's end and the next one's start


@dataclass
class Plan:
    name: str = "run"
    steps: int = 400  # train.steps (total)
    stop_at: int | None = None  # last step computed, when the run never finishes
    seed: int = 0
    loss: str = "bce"
    quantum: bool = True
    eval_every: int = 25
    checkpoint_every: int = 50
    step_seconds: float = 1.0
    n_modes: int = 2
    hq: float = 0.97  # high_quality_frac at every eval (paper_hq_frac = 0.95 x); below ~0.95
    # the paper HQ's off-mode share passes off_mode_max: a between_modes finding
    final_w1: float = 0.05
    w1_rate: float = 5.0  # W1 = final + (1 - final) exp(-w1_rate step/steps)
    g_lr: float = 0.005
    collapse: tuple[int, int | None] | None = None  # evals in [onset, recovered) collapse
    recovery_action_at: int | None = None
    partial: tuple[int, int | None] | None = None  # one mode dropped in [a, b)
    nan: tuple[int, int] | None = None  # steps a..b non-finite, then a rollback
    diverge: bool = False  # the guard gives up after the NaN episode
    leak_from: int | None = None
    leak_level: float = 0.95  # Fock trace at the leak's onset (it then sinks by 0.1 over the run)
    vanish_g: tuple[int, int] | None = None
    explode_d: tuple[int, int] | None = None
    dead_g: tuple[int, int] | None = None
    clip_g: tuple[int, int] | None = None
    d_dominant: tuple[int, int] | None = None
    oscillate: tuple[int, int] | None = None
    stagnate: bool = False
    regress_from: int | None = None  # W1 climbs back to regress_to from this step on
    regress_to: float = 0.75
    never_fit: bool = False  # W1 stays near its start and no mode is covered after eval 1
    kills: list[int] = field(default_factory=list)  # SIGKILL (preemption, no grace) at step
    signals: list[tuple[int, str]] = field(default_factory=list)  # graceful (step, signal)
    crash_at: int | None = None
    config: dict[str, Any] = field(default_factory=dict)  # dotted key -> value
    message: str = ""  # appended to every event message (untrusted-string tests)
    samples: bool = True
    part_rows: int = 1000


def _in(s: np.ndarray, window: tuple[int, int | None] | None) -> np.ndarray:
    if window is None:
        return np.zeros(s.shape, bool)
    a, b = window
    return (s >= a) & (s < (b if b is not None else 1 << 62))


def _span(s: np.ndarray, window: tuple[int, int] | None) -> np.ndarray:
    """Inclusive window a..b."""
    return np.zeros(s.shape, bool) if window is None else (s >= window[0]) & (s <= window[1])


class _Writer:
    def __init__(self, run: Path, p: Plan):
        self.run, self.p = run, p
        self.seq: dict[tuple[str, int], int] = {}
        self.events: dict[int, list[dict]] = {}

    def part(self, table: str, attempt: int, cols: dict[str, Any]) -> None:
        sch = schema.SCHEMAS[table]
        t = pa.table({f.name: pa.array(cols[f.name], f.type) for f in sch}, schema=sch)
        folder = self.run / schema.METRICS_DIR / table / f"attempt={attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        n = self.seq.get((table, attempt), 0)
        self.seq[(table, attempt)] = n + 1
        pq.write_table(t, folder / f"part-{n:05d}.parquet")

    def event(self, attempt: int, rev: int, at: int, wall: float, kind: str, severity: str,
              message: str, **data: Any) -> None:
        self.events.setdefault(attempt, []).append(
            {"step": at, "revision": rev, "wall_time": wall, "kind": kind,
             "severity": severity, "message": message + self.p.message,
             "data": json.dumps(data)})

    def flush_events(self) -> None:
        for attempt, rows in self.events.items():
            self.part("events", attempt, {k: [r[k] for r in rows] for k in rows[0]})


def _step_cols(p: Plan, s: np.ndarray, attempt: int, rev: int, wall0: float,
               nan_rev: bool) -> dict[str, Any]:
    rng = np.random.default_rng([p.seed, attempt, rev, int(s[0])])
    n = len(s)
    z = lambda: rng.standard_normal(n)  # noqa: E731
    f = s / p.steps
    g_loss, d_loss = 0.8 + 0.05 * z(), 1.3 + 0.05 * z()
    osc = _span(s, p.oscillate)
    g_loss[osc] += 0.3 * np.sin(2 * np.pi * s[osc] / 100)
    d_loss[osc] -= 0.3 * np.sin(2 * np.pi * s[osc] / 100)
    if p.loss == "bce":
        d_real = 0.5 + 0.25 * np.exp(-3 * f) + 0.01 * z()
        d_fake = 0.5 - 0.25 * np.exp(-3 * f) + 0.01 * z()
        dd = _span(s, p.d_dominant)
        d_real[dd], d_fake[dd] = 0.98 + 0.005 * z()[dd], 0.02 + 0.005 * z()[dd]
        gp = np.full(n, np.nan)
    else:
        gap = 0.5 * np.exp(-3 * f) + 0.01 * z()
        gap[_span(s, p.d_dominant)] = 3.0
        d_real, d_fake, gp = gap / 2, -gap / 2, 0.1 + 0.01 * np.abs(z())
    g_norm, d_norm = 0.5 * np.exp(0.2 * z()), 1.0 * np.exp(0.2 * z())
    g_norm[_span(s, p.vanish_g)] = 1e-8
    d_norm[_span(s, p.explode_d)] = 1e4
    g_norm[_span(s, p.clip_g)] = 50.0
    g_live = np.ones(n)
    g_live[_span(s, p.dead_g)] = 0.05
    g_param = 3 + 0.5 * f
    bad = np.zeros(n, bool)
    if nan_rev and p.nan:
        a, b = p.nan
        pre = (s >= a - 20) & (s < a)
        g_norm[pre] *= 10 ** (3 * (s[pre] - (a - 20)) / 20)
        bad = _span(s, p.nan)
        g_loss[bad] = d_loss[bad] = g_norm[bad] = np.nan
    if p.quantum:
        tmin = 0.998 - 0.001 * np.abs(z())
        if p.leak_from is not None:
            lk = s >= p.leak_from
            tmin[lk] = p.leak_level - 0.1 * (s[lk] - p.leak_from) / p.steps
        tmean = np.minimum(tmin + 0.001, 1.0)
    else:
        tmin = tmean = np.full(n, np.nan)
    lr_scale = 0.5 ** rev
    return {
        "step": s, "revision": np.full(n, rev), "wall_time": wall0 + (s - s[0] + 1) *
        p.step_seconds, "step_seconds": np.full(n, p.step_seconds),
        "g_loss": g_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake, "gp": gp,
        "g_grad_norm": g_norm, "d_grad_norm": d_norm, "g_grad_live": g_live,
        "d_grad_live": np.ones(n), "g_clipped": np.nan_to_num(g_norm) > 10,
        "d_clipped": np.nan_to_num(d_norm) > 10, "g_param_norm": g_param,
        "d_param_norm": 5 + 0.1 * f, "g_lr": np.full(n, p.g_lr * lr_scale),
        "d_lr": np.full(n, 0.001 * lr_scale), "nonfinite": bad, "skipped": bad,
        "fock_trace_min": tmin, "fock_trace_mean": tmean, "g_nll": np.full(n, np.nan),
    }


def _eval_cols(p: Plan, s: np.ndarray, attempt: int, rev: int, wall: np.ndarray,
               tmin: np.ndarray) -> dict[str, Any]:
    rng = np.random.default_rng([p.seed, attempt, rev, int(s[0]) if len(s) else 0, 7])
    n = len(s)
    f = s / p.steps
    ratio = 1 - 0.7 * np.exp(-5 * f) + 0.02 * rng.standard_normal(n)
    w1 = p.final_w1 + (1 - p.final_w1) * np.exp(-p.w1_rate * f)
    if p.stagnate:
        w1 = np.maximum(w1, 0.5)
    if p.regress_from is not None:
        late = s >= p.regress_from
        w1[late] = w1[late] + (p.regress_to - w1[late]) * np.minimum(
            1.0, (s[late] - p.regress_from) / max(1, (p.steps - p.regress_from) / 2))
    if p.never_fit:
        w1 = np.full(n, 1.5)
    w1 = w1 * (1 + 0.005 * rng.standard_normal(n))
    covered = np.where(f > 0.1, p.n_modes, max(1, p.n_modes // 2)).astype(np.int32)
    if p.never_fit:
        covered[s > p.eval_every] = 0
    balance, hq = np.full(n, 0.95), np.full(n, p.hq)
    part = _in(s, p.partial)
    covered[part] = p.n_modes - 1
    ratio[part] = 0.6
    col = _in(s, p.collapse)
    ratio[col], covered[col], balance[col], hq[col], w1[col] = 0.01, 1, 0.0, 0.3, 0.8
    real_var = np.ones(n)
    return {
        "step": s, "revision": np.full(n, rev), "wall_time": wall,
        "sample_var": ratio * real_var, "real_var": real_var, "sample_var_ratio": ratio,
        "mean_pairwise_dist": np.sqrt(2 * ratio * real_var),
        "min_pairwise_dist": np.full(n, 0.01), "real_mean_pairwise_dist": np.sqrt(2 * real_var),
        "n_modes": np.full(n, p.n_modes, np.int32), "modes_covered": covered,
        "mode_balance": balance, "high_quality_frac": hq, "paper_hq_frac": 0.95 * hq,
        "paper_modes_captured": covered, "paper_reverse_kl": np.log(p.n_modes) * (1 - balance),
        "w1_mean": w1,
        "w1_per_axis": [[w * 0.9, w * 1.1] for w in w1],
        "fock_trace_min": tmin, "fock_trace_mean": tmin,
        # structure metrics of a healthy generator (the run has no data profile, so nothing
        # judges them: they are drawn, not diagnosed)
        **{name: np.full(n, 0.95) for name in ("precision", "recall", "coverage")},
        "density": np.full(n, 1.0),
        **{name: np.ones(n) for name in ("radius_q10_ratio", "radius_q50_ratio",
                                         "radius_q90_ratio", "radius_q99_ratio")},
        "sliced_w1": w1 * 1.2, "sliced_w1_floor": np.full(n, 0.02), "mode_weights": [None] * n,
    }


def _samples(p: Plan, step: int, collapsed: bool, rng: np.random.Generator,
             n: int = 128) -> np.ndarray:
    centres = np.array([[math.cos(2 * math.pi * k / p.n_modes),
                         math.sin(2 * math.pi * k / p.n_modes)] for k in range(p.n_modes)])
    if collapsed:
        return centres[0] + 0.02 * rng.standard_normal((n, 2))
    return centres[rng.integers(0, p.n_modes, n)] + 0.15 * rng.standard_normal((n, 2))


def _write_samples(run: Path, p: Plan, attempt: int, rev: int, steps: np.ndarray) -> None:
    folder = run / schema.SAMPLES_DIR / f"attempt={attempt}"
    folder.mkdir(parents=True, exist_ok=True)
    for st in steps:
        rng = np.random.default_rng([p.seed, int(st), rev])
        x = _samples(p, int(st), bool(_in(np.array([st]), p.collapse)[0]), rng)
        t = pa.table({"step": pa.array(np.full(len(x), st), pa.int64()),
                      "revision": pa.array(np.full(len(x), rev), pa.int32()),
                      "x0": x[:, 0], "x1": x[:, 1]})
        pq.write_table(t, folder / f"step-{int(st):09d}-r{rev}.parquet")


def _config(p: Plan) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "run": {"name": p.name, "seed": p.seed},
        "generator": {"kind": "quantum" if p.quantum else "classical", "cutoff": 6},
        "loss": {"kind": p.loss},
        "train": {"steps": p.steps, "g_lr": p.g_lr, "d_lr": 0.001, "clip_norm": 10.0},
        "eval": {"every_steps": p.eval_every},
        "checkpoint": {"every_steps": p.checkpoint_every},
    }
    for key, value in p.config.items():
        *head, last = key.split(".")
        d = cfg
        for h in head:
            d = d.setdefault(h, {})
        d[last] = value
    return cfg


def write_run(run: Path, p: Plan, array_index: int = 0, experiment: str = "exp") -> Path:
    """Write one run directory following Plan `p`; returns its path."""
    run.mkdir(parents=True, exist_ok=True)
    (run / schema.CONFIG_FILE).write_text(tomli_w.dumps(_config(p)))
    (run / schema.RUN_FILE).write_text(json.dumps({
        "name": p.name, "experiment": experiment, "array_index": array_index, "seed": p.seed,
        "total_steps": p.steps, "created": "2024-01-01T00:00:00+00:00",
        "versions": {"qgan": "0.1.0"}}))
    w = _Writer(run, p)
    interrupts = {k: "kill" for k in p.kills} | {k: sig for k, sig in p.signals}
    if p.crash_at:
        interrupts[p.crash_at] = "crash"
    last = p.stop_at or p.steps
    attempt, rev, step, ckpt, wall = 1, 0, 1, 0, T0
    nan_done = p.nan is None
    attempts: list[dict] = []
    episodes: list[dict] = []  # the job layer's ledger (jobs.json): why each episode stopped

    def start_attempt() -> None:
        attempts.append({"attempt": attempt, "start_time": wall, "end_time": None,
                         "start_step": step, "end_step": None,
                         "resumed_from": ckpt or None, "reason": None, "signal": None,
                         "exit_status": None, "host": "node1", "pid": 1000 + attempt,
                         "slurm_job_id": "42_0", "slurm_array_task_id": array_index,
                         "slurm_restart_count": attempt - 1})
        w.event(attempt, rev, step, wall, "attempt_start", "info", "attempt started",
                host="node1", pid=1000 + attempt, job_id="42_0", restart_count=attempt - 1,
                resumed_from=ckpt or None)
        if ckpt:
            w.event(attempt, rev, step, wall, "checkpoint_restored", "info", "resumed",
                    step=ckpt, path=f"checkpoints/ckpt-{ckpt}")

    def end_attempt(reason: str | None, status: int | None, signal: str | None = None,
                    end_step: int | None = None, cause: StopCause | None = None) -> None:
        a = attempts[-1]
        if reason is not None:
            a.update(end_time=wall, end_step=end_step, reason=reason, exit_status=status,
                     signal=signal)
            w.event(attempt, rev, end_step or 0, wall, "attempt_end", "info", "attempt ended",
                    reason=reason, exit_status=status)
        if cause is not None:
            episodes.append({"n": len(episodes) + 1, "executor": "slurm", "job_id": "42_0",
                             "start_time": a["start_time"], "end_time": wall,
                             "trainer_attempt": attempt, "end_step": end_step,
                             "stop_cause": str(cause), "action": "requeue"})

    start_attempt()
    while True:
        stops = [last] + [k for k in interrupts if k >= step]
        if not nan_done and p.nan[1] >= step:
            stops.append(p.nan[1])
        end = min(stops)
        s = np.arange(step, end + 1)
        nan_rev = not nan_done
        cols = _step_cols(p, s, attempt, rev, wall, nan_rev)
        for lo in range(0, len(s), p.part_rows):
            w.part("steps", attempt, {k: (v[lo:lo + p.part_rows] if hasattr(v, "__len__")
                                          else v) for k, v in cols.items()})
        ev_mask = (s % p.eval_every == 0) | (s == p.steps)
        if ev_mask.any():
            w.part("evals", attempt, _eval_cols(p, s[ev_mask], attempt, rev,
                                                cols["wall_time"][ev_mask],
                                                cols["fock_trace_min"][ev_mask]))
            if p.samples:
                _write_samples(run, p, attempt, rev, s[ev_mask])
        bad = cols["nonfinite"]
        for st, wt in zip(s[(s % p.checkpoint_every == 0) & ~bad],
                          cols["wall_time"][(s % p.checkpoint_every == 0) & ~bad]):
            if nan_rev and p.nan and st > p.nan[0]:
                continue
            ckpt = int(st)
            w.event(attempt, rev, ckpt, float(wt), "checkpoint_written", "info", "checkpoint",
                    step=ckpt, path=f"checkpoints/ckpt-{ckpt}", seconds=2.0, bytes=10_000)
        if p.collapse and step <= p.collapse[0] <= end:
            w.event(attempt, rev, p.collapse[0], wall, "collapse_detected", "warning",
                    "collapse", sample_var_ratio=0.01, modes_covered=1)
        if p.recovery_action_at and step <= p.recovery_action_at <= end:
            w.event(attempt, rev, p.recovery_action_at, wall, "recovery_action", "warning",
                    "halved g_lr", action="lr")
        wall = float(cols["wall_time"][-1])
        if nan_rev and end == p.nan[1]:
            for st in s[bad]:
                w.event(attempt, rev, int(st), wall, "nonfinite_step", "warning",
                        "non-finite loss", which="g_loss")
            w.event(attempt, rev, end, wall, "rollback", "warning", "rollback", to_step=ckpt,
                    lr_scale=0.5, g_lr=p.g_lr * 0.5 ** (rev + 1), d_lr=0.001 * 0.5 ** (rev + 1))
            nan_done = True
            if p.diverge:
                w.event(attempt, rev, end, wall, "diverged", "error", "gave up")
                end_attempt("diverged", schema.EXIT_DIVERGED, end_step=end, cause=StopCause.DIVERGED)
                break
            rev, step = rev + 1, ckpt + 1
            continue
        kind = interrupts.pop(end, None) if end in interrupts else None
        if kind == "kill":
            end_attempt(None, None, cause=StopCause.PREEMPTION)
            wall += QUEUE_WAIT
            attempt, step = attempt + 1, ckpt + 1
            start_attempt()
            continue
        if kind == "crash":
            end_attempt("crash", schema.EXIT_CRASH, end_step=end, cause=StopCause.CRASH)
            break
        if kind is not None:  # graceful signal: checkpoint at once, exit 75, requeue
            w.event(attempt, rev, end, wall, "signal", "warning", "signal", signal=kind,
                    at_step=end)
            ckpt = end
            w.event(attempt, rev, end, wall, "checkpoint_written", "info", "checkpoint",
                    step=end, path=f"checkpoints/ckpt-{end}", seconds=2.0, bytes=10_000)
            end_attempt("signal", schema.EXIT_RESUME, signal=kind, end_step=end,
                        cause=StopCause.PREEMPTION if kind == "SIGTERM" else StopCause.TIME_LIMIT)
            wall += QUEUE_WAIT
            attempt, step = attempt + 1, end + 1
            start_attempt()
            continue
        if end == p.steps:
            end_attempt("finished", schema.EXIT_OK, end_step=end, cause=StopCause.FINISHED)
        break  # stop_at < steps: the attempt is left without an end (killed, never resumed)
    w.flush_events()
    adir = run / schema.ATTEMPTS_DIR
    adir.mkdir(exist_ok=True)
    for a in attempts:
        (adir / f"{a['attempt']:04d}.json").write_text(json.dumps(a))
    (run / schema.JOBS_FILE).write_text(json.dumps({"episodes": episodes, "outcome": None}))
    if p.samples:
        rng = np.random.default_rng(p.seed)
        x = _samples(p, 0, False, rng, 256)
        pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1]}),
                       run / schema.SAMPLES_DIR / "real.parquet")
    return run


def write_experiment(root: Path, plans: list[Plan], name: str = "exp",
                     overrides: list[dict[str, Any]] | None = None) -> Path:
    """An experiment folder: experiment.json + one run folder per plan (task-NNN)."""
    root.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i, p in enumerate(plans):
        folder = f"task-{i:03d}"
        write_run(root / folder, p, array_index=i, experiment=name)
        tasks.append({"index": i, "run": folder,
                      "overrides": (overrides[i] if overrides else p.config)})
    (root / schema.EXPERIMENT_FILE).write_text(json.dumps({
        "name": name, "created": "2024-01-01T00:00:00+00:00", "executor": "local",
        "config": "sweep.toml", "tasks": tasks, "job_ids": ["42"]}))
    return root


def sweep_plans(n_runs: int = 64, steps: int = 10_000, samples: bool = False) -> list[Plan]:
    """A sweep over g_lr x loss with a mix of fates; final quality depends on g_lr."""
    plans = []
    lrs = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    for i in range(n_runs):
        lr = lrs[i % len(lrs)]
        loss = "bce" if (i // len(lrs)) % 2 == 0 else "wgan-gp"
        p = Plan(name=f"lr{lr}-{loss}-{i}", steps=steps, seed=i, loss=loss, g_lr=lr,
                 eval_every=max(steps // 100, 1), checkpoint_every=max(steps // 40, 1),
                 final_w1=0.02 + 0.5 * lr, samples=samples, part_rows=2000,
                 config={"train.g_lr": lr, "loss.kind": loss})
        if lr >= 0.1:
            p.collapse = (int(steps * 0.6), None)
        if i % 5 == 1:
            p.nan = (int(steps * 0.41), int(steps * 0.41) + 4)
        if i % 7 == 2:
            p.kills = [int(steps * 0.3) + 7]
            p.signals = [(int(steps * 0.7), "SIGUSR2")]
        if i % 11 == 3:
            p.leak_from = int(steps * 0.8)
        plans.append(p)
    return plans


def write_checkpoints(run: Path, steps: list[int], best: tuple[int, float] | None = None,
                      metric: str = "w1_mean") -> dict[str, Path]:
    """Checkpoint folders laid out per the contract (qgan/checkpoints.py): `ckpt-<seq>` for
    `steps` and, with `best` = (step, value), a `best-<seq>` folder named by the manifest's
    "best" entry. The TensorFlow files are stand-ins (analysis never opens them); the sha256
    records are real. Returns folder name -> path."""
    import hashlib

    ck = run / schema.CHECKPOINT_DIR
    ck.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def folder(name: str, seq: int, step: int, extra: dict) -> dict:
        d = ck / name
        d.mkdir()
        (d / "state.index").write_bytes(b"index %d" % step)
        (d / "state.data-00000-of-00001").write_bytes(b"data %d" % step * 100)
        (d / "extra.json").write_text(json.dumps({"step": step, **extra}))
        files = {f.name: {"sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                          "bytes": f.stat().st_size} for f in sorted(d.iterdir())}
        (d / schema.CHECKSUM_FILE).write_text(json.dumps(
            {"seq": seq, "step": step, "wall_time": T0 + step, "files": files}))
        files[schema.CHECKSUM_FILE] = {
            "sha256": hashlib.sha256((d / schema.CHECKSUM_FILE).read_bytes()).hexdigest(),
            "bytes": (d / schema.CHECKSUM_FILE).stat().st_size}
        out[name] = d
        return {"seq": seq, "step": step, "wall_time": T0 + step, "folder": name,
                "files": files}

    manifest: dict[str, Any] = {"format": 1, "checkpoints": [
        folder(f"{schema.CHECKPOINT_PREFIX}{i + 1:06d}", i + 1, st, {})
        for i, st in enumerate(steps)]}
    if best is not None:
        entry = folder(f"{schema.BEST_PREFIX}000001", 1, best[0],
                       {"best": {"metric": metric, "value": best[1]}})
        manifest["best"] = entry | {"metric": metric, "mode": METRIC_MODE[metric],
                                    "value": best[1]}
    (ck / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    return out


def corrupt_part(run: Path, table: str = "steps", attempt: int = 1, index: int = 0) -> Path:
    """Overwrite the middle of a part with garbage, as a bad disk or a partial copy would."""
    part = sorted((run / schema.METRICS_DIR / table / f"attempt={attempt}").glob(
        "*.parquet"))[index]
    data = bytearray(part.read_bytes())
    data[4: len(data) - 4] = b"\x00" * (len(data) - 8)
    part.write_bytes(bytes(data))
    return part


def plant_structure(run: Path, train: np.ndarray, holdout: np.ndarray,
                    frames: list[np.ndarray], centers: np.ndarray | None = None,
                    std: float = 0.0, seed: int = 0) -> list[dict]:
    """Give a written run real structure evidence: its data profile (qgan.dataprofile, built
    from `train`/`holdout` as the trainer does) and evals table rows computed by the trainer's
    own Evaluator on `frames` (generated samples per eval, in step order: the run's eval steps
    are replaced by 25, 50, ...). Returns the eval rows."""
    from qgan.dataprofile import load_or_create
    from qgan.evals import Evaluator

    n = len(frames[0])
    profile = load_or_create(run, train, holdout, centers, std, seed=seed, eval_size=n,
                             max_modes=12)
    evaluate = Evaluator(holdout, centers, std, profile, n)
    rows = []
    for i, x in enumerate(frames):
        row = evaluate(x)
        row.update(step=25 * (i + 1), revision=0, wall_time=T0 + i, fock_trace_min=1.0,
                   fock_trace_mean=1.0)
        rows.append(row)
    folder = run / schema.METRICS_DIR / "evals"
    for old in folder.rglob("*.parquet"):
        old.unlink()
    (folder / "attempt=1").mkdir(parents=True, exist_ok=True)
    sch = schema.EVALS_SCHEMA
    t = pa.table({f.name: pa.array([r[f.name] for r in rows], f.type) for f in sch}, schema=sch)
    pq.write_table(t, folder / "attempt=1" / "part-00000.parquet")
    return rows
