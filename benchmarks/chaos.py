"""Chaos trials: kill a real `qgan train` process at random instants, resume, check the damage.

Each trial trains one tiny run to completion while SIGKILL and SIGTERM arrive at random
moments (during steps, evals, checkpoint and metric writes alike). After every stop it checks
that the newest checkpoint in the manifest verifies and loads, and that every committed
metric part is readable; at the end it compares the run with an uninterrupted reference run
of the same config: metric rows (latest attempt per step) and final parameters must be
identical, bit for bit.

    python benchmarks/chaos.py --trials 5            # quick
    python benchmarks/chaos.py --trials 200 --json out.json

Figures of long runs are recorded in RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "run": {"name": "chaos", "seed": 11},
    "data": {"n_train": 256, "n_holdout": 128},
    "generator": {"cutoff": 4, "layers": 1},
    "train": {"steps": 200, "batch_size": 8, "log_every": 10},
    "loss": {"n_critic": 2},
    "eval": {"every_steps": 20, "n_samples": 64, "save_samples": 16},
    "checkpoint": {"every_steps": 10, "every_seconds": 0.0, "keep": 2},
    "metrics": {"flush_seconds": 0.2},
}
_IGNORED = ("wall_time", "step_seconds", "attempt")


@dataclass
class TrialResult:
    stops: list[dict] = field(default_factory=list)  # {signal, after_s, exit, lost_steps}
    unloadable_checkpoints: int = 0
    unreadable_parts: int = 0
    identical_rows: bool = False
    identical_params: bool = False
    identical_best: bool = False  # the kept best checkpoint: same step, value and tensors
    attempts: int = 0
    seconds: float = 0.0


def _env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")


def _cmd(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "train", str(config), "--run-dir", str(run_dir)]


def write_config(path: Path, backend: str) -> Path:
    import tomli_w

    cfg = json.loads(json.dumps(CONFIG))
    cfg["generator"]["backend"] = backend
    path.write_text(tomli_w.dumps(cfg))
    return path


def check_checkpoint(run_dir: Path) -> bool:
    """The manifest's newest checkpoint verifies against its checksums and opens in TF."""
    import tensorflow as tf

    manifest = run_dir / "checkpoints" / "manifest.json"
    if not manifest.exists():
        return True  # killed before the first checkpoint: nothing committed, nothing broken
    newest = json.loads(manifest.read_text())["checkpoints"][-1]
    folder = run_dir / "checkpoints" / newest["folder"]
    for name, meta in newest["files"].items():
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != meta["sha256"]:
            return False
    try:
        tf.train.load_checkpoint(str(folder / "state"))
    except Exception:  # noqa: BLE001 - any failure to open counts
        return False
    return True


def unreadable_parts(run_dir: Path) -> int:
    bad = 0
    for part in (run_dir / "metrics").glob("*/attempt=*/part-*.parquet"):
        try:
            pq.read_table(part)
        except Exception:  # noqa: BLE001
            bad += 1
    return bad


def latest_rows(run_dir: Path, table: str):
    from qgan.metrics import read_table

    return read_table(run_dir, table).drop(columns=list(_IGNORED), errors="ignore") \
        .reset_index(drop=True)


def _params(folder: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(folder / "state"))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if "save_counter" not in n}


def final_params(run_dir: Path) -> dict[str, np.ndarray]:
    newest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())["checkpoints"][-1]
    return _params(run_dir / "checkpoints" / newest["folder"])


def best_state(run_dir: Path) -> tuple[int, float, dict[str, np.ndarray]]:
    """The kept best checkpoint (checkpoint.keep_best): its step, value and tensors. The
    folder's sequence number may differ between runs (a resume re-saves a best it replays)."""
    best = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())["best"]
    return best["step"], best["value"], _params(run_dir / "checkpoints" / best["folder"])


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _wait_for_new_attempt(run_dir: Path, known: list[int], proc: subprocess.Popen,
                          limit: float = 300.0) -> None:
    """Wait until the new attempt has flushed its first step rows (tracing is over)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        new = set(_attempt_numbers(run_dir)) - set(known)
        if new and any((run_dir / "metrics" / "steps" / f"attempt={max(new)}").glob("part-*")):
            return
        time.sleep(0.02)


def _attempt_numbers(run_dir: Path) -> list[int]:
    return [int(p.stem) for p in (run_dir / "attempts").glob("[0-9]*.json")]


def _max_step_written(run_dir: Path, attempt: int) -> int:
    steps = []
    for part in (run_dir / "metrics" / "steps" / f"attempt={attempt}").glob("part-*.parquet"):
        try:
            steps += pq.read_table(part, columns=["step"]).column("step").to_pylist()
        except Exception:  # noqa: BLE001
            pass
    return max(steps, default=0)


def run_trial(config: Path, run_dir: Path, rng: random.Random, max_stops: int,
              window: tuple[float, float], sigterm_share: float = 0.5,
              startup_share: float = 0.1,
              signals: list[signal.Signals] | None = None) -> TrialResult:
    """Train to completion under random stops; check invariants after each one."""
    result = TrialResult()
    started = time.monotonic()
    for _ in range(max_stops + 20):
        known = _attempt_numbers(run_dir)
        proc = subprocess.Popen(_cmd(config, run_dir), cwd=ROOT, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result.attempts += 1
        if len(result.stops) < max_stops:
            # Most stops land during training (timed from the attempt's start); some during
            # start-up, before the trainer has claimed an attempt.
            if rng.random() >= startup_share:
                _wait_for_new_attempt(run_dir, known, proc)
            delay = rng.uniform(*window)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                if signals:
                    sig = signals[len(result.stops) % len(signals)]
                else:
                    sig = signal.SIGTERM if rng.random() < sigterm_share else signal.SIGKILL
                proc.send_signal(sig)
                code = proc.wait(timeout=300)
                new = sorted(set(_attempt_numbers(run_dir)) - set(known))
                attempt = new[-1] if new else None  # None: killed before claiming an attempt
                record = (json.loads((run_dir / "attempts" / f"{attempt:04d}.json").read_text())
                          if attempt else {})
                ckpt_ok = check_checkpoint(run_dir)
                result.unloadable_checkpoints += not ckpt_ok
                result.unreadable_parts += unreadable_parts(run_dir)
                result.stops.append({"signal": sig.name, "after_s": round(delay, 2),
                                     "exit": code, "attempt": attempt,
                                     "ended_at_step": record.get("end_step"),
                                     "max_step_written": _max_step_written(run_dir, attempt)
                                     if attempt else 0})
                continue
        else:
            proc.wait(timeout=600)
        if proc.returncode == 0:
            break
        if proc.returncode not in (75, -9):
            raise RuntimeError(f"trainer exited with {proc.returncode}; see {run_dir}")
    # lost work per stop: steps that a later attempt had to compute again
    records = sorted((json.loads(p.read_text()) for p in (run_dir / "attempts").glob("*.json")),
                     key=lambda r: r["attempt"])
    starts = {r["attempt"]: r["start_step"] for r in records}
    for stop in result.stops:
        if stop["attempt"] is None:
            stop["lost_steps"] = 0
            continue
        nxt = starts.get(stop["attempt"] + 1)
        reached = max(stop["ended_at_step"] or 0, stop["max_step_written"])
        stop["lost_steps"] = max(0, reached - (nxt - 1)) if nxt is not None else 0
    result.seconds = time.monotonic() - started
    return result


def compare(run_dir: Path, reference: Path, result: TrialResult) -> None:
    result.identical_rows = all(latest_rows(run_dir, t).equals(latest_rows(reference, t))
                                for t in ("steps", "evals"))
    result.identical_params = _same(final_params(run_dir), final_params(reference))
    (sa, va, ta), (sb, vb, tb) = best_state(run_dir), best_state(reference)
    result.identical_best = (sa, va) == (sb, vb) and _same(ta, tb)


def reference_run(config: Path, run_dir: Path) -> None:
    subprocess.run(_cmd(config, run_dir), cwd=ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(results: list[TrialResult]) -> dict:
    stops = [s for r in results for s in r.stops]
    by_signal = {}
    for name in ("SIGTERM", "SIGKILL"):
        lost = [s["lost_steps"] for s in stops if s["signal"] == name]
        by_signal[name] = {"stops": len(lost), "lost_steps_mean": float(np.mean(lost)) if lost
                           else 0.0, "lost_steps_max": max(lost, default=0)}
    return {"trials": len(results), "stops": len(stops), "by_signal": by_signal,
            "unloadable_checkpoints": sum(r.unloadable_checkpoints for r in results),
            "unreadable_parts": sum(r.unreadable_parts for r in results),
            "runs_diverging_from_reference": sum(not (r.identical_rows and r.identical_params
                                                      and r.identical_best) for r in results),
            "seconds": round(sum(r.seconds for r in results), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--stops", type=int, default=3, help="stops per trial")
    ap.add_argument("--backend", default="compiled", choices=("compiled", "sf"))
    ap.add_argument("--window", type=float, nargs=2, default=(0.0, 3.0),
                    help="a stop arrives uniformly within this many seconds of an attempt's "
                         "start")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="qgan-chaos-"))
    config = write_config(work / "chaos.toml", args.backend)
    reference_run(config, work / "reference")
    results = []
    for i in range(args.trials):
        run_dir = work / f"trial-{i:04d}"
        r = run_trial(config, run_dir, rng, args.stops, tuple(args.window))
        compare(run_dir, work / "reference", r)
        results.append(r)
        print(f"trial {i}: {len(r.stops)} stops "
              f"({', '.join(s['signal'] + '/lost ' + str(s['lost_steps']) for s in r.stops)}), "
              f"identical={r.identical_rows and r.identical_params and r.identical_best}", flush=True)
        shutil.rmtree(run_dir)
    summary = summarize(results)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary,
                                         "trials": [asdict(r) for r in results]}, indent=2))
    shutil.rmtree(work)
    ok = (summary["unloadable_checkpoints"] == 0 and summary["unreadable_parts"] == 0
          and summary["runs_diverging_from_reference"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
