"""Forward+gradient step time of the circuit: Strawberry Fields vs the compiled backend (issue 5).

Side by side in one process, for the project's circuit (CircuitSpec, inputs displace modes, CV-QNN
layers, x-quadrature outputs and trace), batch 32, loss = sum of quads + sum of traces, gradient
w.r.t. every weight:
  (a) one SF engine run per sample (the seeds' way),
  (b) SF's batched engine (SFBackend),
  (c) CompiledBackend under tf.function,
  (d) CompiledBackend under tf.function(jit_compile=True).
Each figure is the median of at least 5 timed steps after warm-up. Also printed: the FLOP count
of the state updates per step (cost model below), the fraction of this machine's measured
complex64 matmul throughput it reaches, the XLA compile time and its break-even step count.

Cost model (FACTS.md): a single-mode gate on a pure state costs B*c^(n+1) complex
multiply-adds, a dense two-mode gate B*c^(n+2); a complex multiply-add is 8 real FLOPs; a
forward+gradient step costs ~3x the forward (the backward of each matmul is two matmuls). The
count is that of what the compiled backend executes (diagonal gates fused into their
neighbours: per layer 2*n_bs beamsplitters and 2*n single-mode gates). Gate construction and
the per-output reductions are not counted (they do not scale with B*c^n).

Usage: python benchmarks/step_speed.py [--quick] [--no-write] [--output BENCHMARKS.md]
--quick: 2 and 3 modes only, cutoffs 4/8, and (a) only at the default circuit.
Results are written into the "## Circuit step speed (issue 5)" section of BENCHMARKS.md.

Side-by-side mode (issue 14): `--side-by-side [--reps 21]` measures, at each (modes, layers,
cutoff, batch) of SIDE_BY_SIDE, every implementation in one process with alternating
repetitions (round k calls each implementation once, in an order rotated by k, so load
changes on a shared machine hit them all alike) and prints medians and ratios; it writes
nothing. `--piquasso` adds Piquasso's JAX path (jit of value_and_grad over a vmap of its
PureFockSimulator with the JaxConnector, complex64): the same circuit and loss, Piquasso's
own gates (its conventions equal SF's, checked gate by gate). Piquasso truncates the *total*
photon number (its `cutoff`), SF and this project each mode's: its cutoff is matched for
accuracy first, as the smallest total cutoff whose <x> error against a converged reference
(this backend in complex128 at a large per-mode cutoff) is at most this backend's error at
the benchmarked cutoff (searched with Piquasso's NumPy connector, no compile). Piquasso and
JAX are benchmark-only: `pip install --target /work/bench-pkgs --no-deps piquasso==8.0.2
jax==0.9.2 jaxlib==0.9.2` (their other dependencies are in the project's environment) and
run with `PYTHONPATH=/work/bench-pkgs`. Every size also times this project's total-photon-
number truncation (`generator.truncation = "total"`, qgan/circuits/total.py: "total
tf.function", "total XLA") at that same total cutoff, so it and Piquasso compute the same
approximation (their agreement at that cutoff is printed); without --piquasso at the total
cutoff matched the same way with TotalBackend itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qgan.circuits import CircuitSpec, initial_weights, make_backend  # noqa: E402
from qgan.circuits.compiled import CompiledBackend  # noqa: E402
from qgan.circuits.total import TotalBackend, basis_size  # noqa: E402

BATCH = 32
LAYERS = 2
DEFAULT = (2, 8)  # modes, cutoff
SECTION = "## Circuit step speed (issue 5)"
# SF's quad_expectation forms the full density matrix (B * c^(2n) complex64 entries) before the
# partial trace; above this many entries the SF runs are skipped (memory, and minutes per step).
SF_DM_LIMIT = 2e7


SIDE_BY_SIDE = [(2, 2, 8, 32), (3, 2, 8, 32), (4, 2, 6, 16)]


def _problem(spec: CircuitSpec, batch: int = BATCH):
    weights = {k: tf.Variable(v) for k, v in initial_weights(spec, 1, 0.1).items()}
    x = tf.constant(np.random.default_rng(0).normal(0.0, 0.5, (batch, spec.n_inputs)),
                    tf.float32)
    return weights, x


def _time(fn, min_reps: int = 5, max_reps: int = 30, budget: float = 4.0,
          warmup: int = 1) -> tuple[float, float]:
    """(first call seconds, median of the timed calls) - at least min_reps timed calls."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (len(times) < max_reps
                                    and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def _materialise(result) -> None:
    for t in tf.nest.flatten(result):
        if t is not None:
            t.numpy()


def _loss(out) -> tf.Tensor:
    return tf.reduce_sum(out.quads) + tf.reduce_sum(out.trace)


def compiled_step(spec: CircuitSpec, jit: bool, batch: int = BATCH):
    """Forward + gradient of the compiled backend (spec.truncation picks per-mode or total)."""
    weights, x = _problem(spec, batch)
    backend = make_backend("compiled", spec)
    variables = list(weights.values())

    @tf.function(jit_compile=jit)
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = _loss(backend(weights, inputs))
        return loss, tape.gradient(loss, variables)

    return lambda: _materialise(step(x))


def sf_batched_step(spec: CircuitSpec, batch: int = BATCH):
    from qgan.circuits.sf_backend import SFBackend

    weights, x = _problem(spec, batch)
    backend = SFBackend(spec)
    variables = list(weights.values())

    def step():
        with tf.GradientTape() as tape:
            loss = _loss(backend(weights, x))
        _materialise(tape.gradient(loss, variables))

    return step


def sf_per_sample_step(spec: CircuitSpec):
    """The seeds' way: one unbatched SF engine run per sample, losses summed, one gradient."""
    import strawberryfields as sf

    from qgan.circuits.sf_backend import SFBackend

    weights, x = _problem(spec)
    prog = SFBackend(spec)._prog
    variables = list(weights.values())

    def step():
        with tf.GradientTape() as tape:
            loss = tf.constant(0.0)
            shared = {f"{name}_{layer}_{j}": var[layer, j] for name, var in weights.items()
                      for layer in range(spec.layers) for j in range(var.shape[1])}
            for b in range(BATCH):
                args = dict(shared, **{f"in_{i}": x[b, i] for i in range(spec.n_inputs)})
                eng = sf.Engine("tf", backend_options={"cutoff_dim": spec.cutoff})
                state = eng.run(prog, args=args).state
                for m in range(spec.n_outputs):
                    loss += tf.cast(tf.math.real(state.quad_expectation(m, 0.0)[0]), tf.float32)
                loss += tf.cast(tf.math.real(state.trace()), tf.float32)
        _materialise(tape.gradient(loss, variables))

    return step


def state_update_flops(spec: CircuitSpec, batch: int = BATCH, sector: bool = False) -> float:
    """Real FLOPs of the state updates of one forward+gradient step (module docstring);
    sector=True: with the beamsplitters applied per photon-number sector as executed since
    issue 14 ((2c-1) c^2 instead of c^4 multiply-adds per c^(n-2) B column)."""
    n, c = spec.modes, spec.cutoff
    n_bs = len(spec.beamsplitter_pairs)
    bs = (2 * c - 1) * c ** n if sector else c ** (n + 2)
    cmacs = spec.layers * (2 * n_bs * batch * bs + 2 * n * batch * c ** (n + 1))
    return 3 * 8 * float(cmacs)


def matmul_throughput() -> float:
    """This machine's complex64 matmul throughput (real FLOP/s), 512x512 under tf.function."""
    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(512, 512)) + 1j * rng.normal(size=(512, 512)), tf.complex64)
    mm = tf.function(lambda: tf.matmul(a, a))
    _, t = _time(lambda: mm().numpy(), min_reps=10, max_reps=50, budget=2.0, warmup=3)
    return 8 * 512 ** 3 / t


def run(quick: bool) -> tuple[list[dict], dict]:
    modes_list = [2, 3] if quick else [2, 3, 4]
    cutoffs = [4, 8] if quick else [4, 6, 8, 10]
    configs = [(n, c) for n in modes_list for c in cutoffs]
    per_sample_at = {DEFAULT} if quick else {DEFAULT, (2, 4)}
    peak = matmul_throughput()
    print(f"complex64 matmul throughput: {peak / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    for n, c in configs:
        spec = CircuitSpec(n, LAYERS, c, min(2, n), n)
        row: dict = {"modes": n, "cutoff": c}
        if (n, c) in per_sample_at:
            _, row["a"] = _time(sf_per_sample_step(spec), budget=0.0)
        if BATCH * c ** (2 * n) <= SF_DM_LIMIT:
            _, row["b"] = _time(sf_batched_step(spec), budget=0.0)
        row["c_first"], row["c"] = _time(compiled_step(spec, jit=False), warmup=3)
        row["d_first"], row["d"] = _time(compiled_step(spec, jit=True), warmup=3)
        row["flops"] = state_update_flops(spec)
        rows.append(row)
        print(_row_text(row, peak), flush=True)
    meta = {"peak": peak, "quick": quick}
    return rows, meta


def _ms(seconds: float | None) -> str:
    return "skipped" if seconds is None else f"{seconds * 1e3:.1f}" if seconds < 10 else \
        f"{seconds * 1e3:.0f}"


def _row_text(row: dict, peak: float) -> str:
    best = min(row["c"], row["d"])
    speedup = f"{row['b'] / row['c']:.0f}x / {row['b'] / row['d']:.0f}x" if "b" in row else "-"
    gain = row["c"] - row["d"]
    compile_extra = row["d_first"] - row["c_first"]
    pays = f"{max(compile_extra, 0) / gain:.0f}" if gain > 0 else "never"
    return (f"| {row['modes']} | {row['cutoff']} | {_ms(row.get('a'))} | {_ms(row.get('b'))} | "
            f"{_ms(row['c'])} | {_ms(row['d'])} | {speedup} | {row['flops'] / 1e6:.1f} | "
            f"{row['flops'] / best / 1e9:.2f} ({100 * row['flops'] / best / peak:.1f}%) | "
            f"{row['d_first']:.1f} | {pays} |")


HEADER = ("| modes | cutoff | (a) SF per sample, ms | (b) SF batched, ms | (c) tf.function, ms "
          "| (d) XLA, ms | speedup over (b): (c) / (d) | state-update MFLOP/step "
          "| GFLOP/s of best (% of matmul peak) | XLA first call, s | XLA pays off after "
          "(steps) |\n|---|---|---|---|---|---|---|---|---|---|---|")


def markdown(rows: list[dict], meta: dict) -> str:
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/step_speed.py"
        f"{' --quick' if meta['quick'] else ''}` on {platform.machine()}, {os.cpu_count()} "
        f"cores, no GPU; TF {tf.__version__}; load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}. Circuit: {LAYERS} CV-QNN layers, batch "
        f"{BATCH}, 2 inputs (1 for one mode), every mode an output; forward + gradient w.r.t. "
        "all weights; medians of >= 5 steps after warm-up.",
        "",
        HEADER,
    ]
    lines += [_row_text(r, meta["peak"]) for r in rows]
    lines += [
        "",
        f"- Machine complex64 matmul throughput (512x512, tf.function): "
        f"{meta['peak'] / 1e9:.1f} GFLOP/s.",
        "- (a) is run only for the 2-mode circuits (cutoff 4 and 8): at 32 engine runs per "
        "step it takes seconds per step and says nothing new at larger sizes.",
        f"- (b) is skipped where B*c^(2n) > {SF_DM_LIMIT:.0e}: SF's `quad_expectation` builds "
        "the full density matrix of the batch (B*c^(2n) complex entries; 4.3 GB at 4 modes, "
        "cutoff 8) before tracing out the other modes, even for a pure state.",
        "- XLA first call = tracing + compilation; \"pays off after\" = (XLA first call - "
        "tf.function first call) / (tf.function step - XLA step).",
        "- FLOPs: state updates only (cost model in the script's docstring); at small sizes the "
        "step is overhead-bound (op dispatch), so the percentage of matmul peak is low there.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace our section (up to the next '## ' heading) or append it; leave others alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        new = "".join(lines[:start]) + text + ("\n" if end < len(lines) else "") + \
            "".join(lines[end:])
    path.write_text(new)


def _piquasso_program(spec: CircuitSpec, w: dict, x):
    """The CircuitSpec's circuit (no re-upload, <x> readout) as a Piquasso program."""
    import piquasso as pq

    with pq.Program() as program:
        pq.Q() | pq.Vacuum()
        for i in range(spec.n_inputs):
            pq.Q(i) | pq.Displacement(r=x[i])
        for layer in range(spec.layers):
            for tag in "12":
                for j, (a, b) in enumerate(spec.beamsplitter_pairs):
                    pq.Q(a, b) | pq.Beamsplitter(theta=w[f"bs{tag}_theta"][layer, j],
                                                 phi=w[f"bs{tag}_phi"][layer, j])
                for m in range(spec.modes):
                    pq.Q(m) | pq.Phaseshifter(w[f"rot{tag}"][layer, m])
                if tag == "1":
                    for m in range(spec.modes):
                        pq.Q(m) | pq.Squeezing(r=w["squeeze"][layer, m])
            for m in range(spec.modes):
                pq.Q(m) | pq.Displacement(r=w["displace"][layer, m])
            for m in range(spec.modes):
                pq.Q(m) | pq.Kerr(xi=w["kerr"][layer, m])
    return program


def _piquasso_outputs(spec: CircuitSpec, cutoff: int, w: dict, x, connector=None,
                      mean_position: bool = False):
    """(<x> of the output modes, norm) of one sample. Piquasso 8.0.2's `mean_position` gives
    0.765 for <x> of the coherent state |0.4> (SF and its own quadratures_mean_variance: 0.8),
    so <x> comes from quadratures_mean_variance (which forms each mode's reduced density
    matrix); mean_position=True times the cheap readout anyway (its cost, not its numbers)."""
    import piquasso as pq

    kwargs = {} if connector is None else {"connector": connector}
    sim = pq.PureFockSimulator(d=spec.modes, config=pq.Config(cutoff=cutoff, dtype=np.float32),
                               **kwargs)
    state = sim.execute(_piquasso_program(spec, w, x)).state
    if mean_position:
        return [state.mean_position(m) for m in range(spec.n_outputs)], state.norm
    return [state.quadratures_mean_variance((m,), 0)[0] for m in range(spec.n_outputs)], \
        state.norm


def _reference_error(spec: CircuitSpec, batch: int) -> tuple[np.ndarray, float]:
    """(converged <x> of the benchmark problem, this backend's <x> error at spec.cutoff). The
    reference is this backend in complex128 at per-mode cutoff 2c (16 at most at 2 modes, 12
    at 3, 9 above)."""
    weights, x = _problem(spec, batch)
    big = dataclasses.replace(spec, cutoff=min(2 * spec.cutoff, 16 if spec.modes == 2 else
                                               12 if spec.modes == 3 else 9))
    ref = CompiledBackend(big, tf.complex128)(
        {k: tf.cast(v, tf.float64) for k, v in weights.items()}, tf.cast(x, tf.float64))
    ref = ref.quads.numpy()
    return ref, float(np.abs(CompiledBackend(spec)(weights, x).quads.numpy() - ref).max())


def _matched_cutoff(spec: CircuitSpec, ours: float, ref: np.ndarray, quads) -> tuple[int, float]:
    """The smallest total cutoff whose <x> (quads(cutoff) -> [B, n]) error against ref is at
    most ours, and that error."""
    for cutoff in range(spec.cutoff, spec.modes * (spec.cutoff - 1) + 2):
        err = float(np.abs(quads(cutoff) - ref).max())
        if err <= ours:
            break
    return cutoff, err


def total_cutoff(spec: CircuitSpec, batch: int) -> tuple[int, float, float]:
    """(total cutoff of TotalBackend matched for accuracy, its <x> error, the per-mode one)."""
    weights, x = _problem(spec, batch)
    ref, ours = _reference_error(spec, batch)

    def quads(cutoff: int) -> np.ndarray:
        total = dataclasses.replace(spec, cutoff=cutoff, truncation="total")
        return TotalBackend(total)(weights, x).quads.numpy()

    return (*_matched_cutoff(spec, ours, ref, quads), ours)


def piquasso_cutoff(spec: CircuitSpec, batch: int) -> tuple[int, float, float]:
    """(Piquasso total-photon cutoff matched for accuracy, its <x> error, ours): module
    docstring."""
    weights, x = _problem(spec, batch)
    w = {k: v.numpy() for k, v in weights.items()}
    ref, ours = _reference_error(spec, batch)
    xs = x.numpy()

    def quads(cutoff: int) -> np.ndarray:
        return np.array([_piquasso_outputs(spec, cutoff, w, xs[b])[0] for b in range(batch)])

    return (*_matched_cutoff(spec, ours, ref, quads), ours)


def piquasso_agreement(spec: CircuitSpec, batch: int, cutoff: int) -> float:
    """max |<x> of TotalBackend - <x> of Piquasso| at the same total cutoff: the same
    approximation (both project every gate onto total photon number < cutoff)."""
    weights, x = _problem(spec, batch)
    w = {k: v.numpy() for k, v in weights.items()}
    total = dataclasses.replace(spec, cutoff=cutoff, truncation="total")
    ours = TotalBackend(total, tf.complex128)(
        {k: tf.cast(v, tf.float64) for k, v in weights.items()}, tf.cast(x, tf.float64))
    theirs = np.array([_piquasso_outputs(spec, cutoff, w, xb)[0] for xb in x.numpy()])
    return float(np.abs(ours.quads.numpy() - theirs).max())


def piquasso_step(spec: CircuitSpec, batch: int, cutoff: int, mean_position: bool = False):
    """Forward + gradient of the same loss with Piquasso's JAX path: jit(value_and_grad) of a
    vmap over the batch."""
    import jax
    import jax.numpy as jnp
    import piquasso as pq

    weights, x = _problem(spec, batch)
    w = {k: jnp.asarray(v.numpy()) for k, v in weights.items()}
    xs = jnp.asarray(x.numpy())

    def sample(w, xi):
        quads, norm = _piquasso_outputs(spec, cutoff, w, xi, pq.JaxConnector(), mean_position)
        return jnp.stack(quads), norm

    def loss(w, xb):
        quads, norm = jax.vmap(sample, in_axes=(None, 0))(w, xb)
        return jnp.sum(quads) + jnp.sum(norm)

    step = jax.jit(jax.value_and_grad(loss))
    return lambda: jax.block_until_ready(step(w, xs))


def alternating(fns: dict, reps: int) -> dict[str, float]:
    """Median seconds per call of each fn over `reps` rounds; each fn is called once per
    round, the order rotated by one every round. Every fn is warmed up (traced, compiled)
    twice first."""
    for fn in fns.values():
        fn()
        fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for k in range(reps):
        for n in names[k % len(names):] + names[:k % len(names)]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


def side_by_side(reps: int, sizes: list[tuple[int, int, int, int]], with_sf: bool,
                 with_piquasso: bool) -> None:
    """Print a table of medians (ms) and ratios, one row per size (module docstring)."""
    tf.get_logger().setLevel("ERROR")  # SF's complex-to-real cast warnings
    peak = matmul_throughput()
    print(f"complex64 matmul throughput: {peak / 1e9:.1f} GFLOP/s; {reps} alternating "
          f"repetitions; load average {os.getloadavg()[0]:.1f}", flush=True)
    for n, layers, c, batch in sizes:
        spec = CircuitSpec(n, layers, c, min(2, n), n)
        fns = {"tf.function": compiled_step(spec, jit=False, batch=batch),
               "XLA": compiled_step(spec, jit=True, batch=batch)}
        if with_sf and batch * c ** (2 * n) <= SF_DM_LIMIT:
            fns["SF batched"] = sf_batched_step(spec, batch)
        if with_piquasso:
            tc, pq_err, our_err = piquasso_cutoff(spec, batch)
            print(f"({n}, {layers}, {c}, {batch}): Piquasso total cutoff {tc}: <x> error "
                  f"{pq_err:.1e} vs ours {our_err:.1e} (per-mode cutoff {c}); TotalBackend "
                  f"vs Piquasso at total cutoff {tc}, complex128 vs complex64: max |d<x>| "
                  f"{piquasso_agreement(spec, batch, tc):.1e}", flush=True)
        else:
            tc, t_err, our_err = total_cutoff(spec, batch)
            print(f"({n}, {layers}, {c}, {batch}): total cutoff {tc}: <x> error {t_err:.1e} "
                  f"vs per-mode {our_err:.1e} (cutoff {c})", flush=True)
        total = dataclasses.replace(spec, cutoff=tc, truncation="total")
        print(f"  basis states: per-mode {c ** n}, total {basis_size(n, tc)}", flush=True)
        fns["total tf.function"] = compiled_step(total, jit=False, batch=batch)
        fns["total XLA"] = compiled_step(total, jit=True, batch=batch)
        if with_piquasso:
            fns["Piquasso JAX"] = piquasso_step(spec, batch, tc)
            fns["Piquasso, mean_position"] = piquasso_step(spec, batch, tc, True)
            for name in ("Piquasso JAX", "Piquasso, mean_position"):
                t0 = time.perf_counter()
                fns[name]()
                print(f"  {name}: jit compile + first call {time.perf_counter() - t0:.1f} s",
                      flush=True)
        med = alternating(fns, reps)
        flops = state_update_flops(spec, batch)
        best = min(med["tf.function"], med["XLA"])
        cells = ", ".join(f"{k} {_ms(v)} ms" for k, v in med.items())
        ratios = ""
        if "SF batched" in med:
            ratios = (f"; SF / tf.function {med['SF batched'] / med['tf.function']:.0f}x, "
                      f"SF / XLA {med['SF batched'] / med['XLA']:.0f}x")
        for name in ("Piquasso JAX", "Piquasso, mean_position"):
            if name in med:
                ratios += "".join(f"; {name} / {ours} {med[name] / med[ours]:.2f}x" for ours in
                                  ("tf.function", "XLA", "total tf.function", "total XLA"))
        executed = state_update_flops(spec, batch, sector=True)
        print(f"({n}, {layers}, {c}, {batch}): {cells}{ratios}; best per-mode at "
              f"{100 * flops / best / peak:.1f}% of matmul peak counting dense beamsplitters "
              f"({flops / 1e6:.1f} MFLOP), {100 * executed / best / peak:.1f}% counting what "
              f"runs ({executed / 1e6:.1f} MFLOP) (load {os.getloadavg()[0]:.1f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid (see docstring)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--side-by-side", action="store_true",
                        help="alternating repetitions at SIDE_BY_SIDE sizes; prints only")
    parser.add_argument("--reps", type=int, default=21, help="rounds of --side-by-side")
    parser.add_argument("--no-sf", action="store_true", help="--side-by-side without SF")
    parser.add_argument("--piquasso", action="store_true",
                        help="--side-by-side with Piquasso's JAX path (benchmark-only install)")
    parser.add_argument("--size", action="append", default=None,
                        help="--side-by-side at modes,layers,cutoff,batch (repeatable)")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.side_by_side:
        sizes = ([tuple(int(v) for v in s.split(",")) for s in args.size] if args.size
                 else SIDE_BY_SIDE)
        side_by_side(args.reps, sizes, not args.no_sf, args.piquasso)
        return
    print(HEADER, flush=True)
    t0 = time.perf_counter()
    rows, meta = run(args.quick)
    text = markdown(rows, meta)
    print(text)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if not args.no_write:
        write_section(args.output, text)
        print(f"wrote section {SECTION!r} of {args.output}")


if __name__ == "__main__":
    main()
