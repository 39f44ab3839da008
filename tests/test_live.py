"""Issue 24: the diagnosis cache (invalidated by a new or changed part, refused when forged or
copied), live verdicts, and pruning end to end on the local executor (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import cache
from analysis.diagnose import diagnose_path, to_json
from analysis.live import TOO_EARLY, experiment_verdicts
from conftest import wait_for
from jobs import ledger
from qgan import schema
from synthetic import sweep_plans, write_experiment


@pytest.fixture(autouse=True)
def _private_key(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.KEY_ENV, str(tmp_path / "key" / "diagnosis.key"))
    cache._mac_key.cache_clear()


def _sweep(tmp_path: Path, n: int = 4) -> Path:
    root = tmp_path / "sweep"
    write_experiment(root, sweep_plans(n, 300, False))
    return root


def _hits(root: Path, monkeypatch) -> list[bool]:
    seen: list[bool] = []
    real = cache.diagnose_cached

    def spy(run, th, extras=()):
        rd, hit = real(run, th, extras)
        seen.append(hit)
        return rd, hit
    monkeypatch.setattr("analysis.diagnose.diagnose_cached", spy)  # where it is called
    diagnose_path(root)
    return seen


def test_cache_is_used_and_invalidated_by_a_new_or_changed_part(tmp_path, monkeypatch):
    root = _sweep(tmp_path)
    fresh = to_json(diagnose_path(root, cache=False))
    assert _hits(root, monkeypatch) == [False] * 4
    assert all((root / f"task-00{i}" / schema.DIAGNOSIS_CACHE_FILE).is_file() for i in range(4))
    assert _hits(root, monkeypatch) == [True] * 4
    assert to_json(diagnose_path(root)) == fresh  # the cached diagnosis is the diagnosis
    parts = sorted((root / "task-001" / "metrics" / "steps").rglob("part-*.parquet"))
    shutil.copy(parts[-1], parts[-1].with_name("part-999999.parquet"))  # a part added
    assert _hits(root, monkeypatch) == [True, False, True, True]
    evals = sorted((root / "task-002" / "metrics" / "evals").rglob("part-*.parquet"))
    evals[0].write_bytes(evals[0].read_bytes())  # a part rewritten (new mtime)
    assert _hits(root, monkeypatch) == [True, True, False, True]


def _cache_doc(path: Path) -> tuple[dict, dict]:
    """(header, body) of a diagnosis cache file: a header line, the diagnosis, the extras."""
    head, diagnosis, extras = path.read_text().splitlines()
    return json.loads(head), {**json.loads(diagnosis), "extras": json.loads(extras)}


def test_forged_damaged_or_copied_cache_is_refused(tmp_path, monkeypatch, caplog):
    root = _sweep(tmp_path)
    diagnose_path(root)
    path = root / "task-000" / schema.DIAGNOSIS_CACHE_FILE
    head, body = _cache_doc(path)
    assert set(head) == {"format", "key", "macs"} and head["format"] == cache.FORMAT == 2
    assert set(body) == {"diagnosis", "thresholds", "extras"} and body["extras"] == {}
    diag = body["diagnosis"]
    diag["verdict"] = "converged" if diag["verdict"] != "converged" else "failed"
    line = {"diagnosis": diag, "thresholds": body["thresholds"]}
    path.write_text("\n".join(json.dumps(x) for x in (head, line, body["extras"])))
    # forged: the key still matches, the MAC does not
    assert _hits(root, monkeypatch) == [False, True, True, True]
    assert "MAC does not verify" in caplog.text
    path.write_text('{"format": 2, "key": ')  # damaged
    assert _hits(root, monkeypatch) == [False, True, True, True]
    shutil.copy(root / "task-003" / schema.DIAGNOSIS_CACHE_FILE, path)  # another run's
    assert _hits(root, monkeypatch) == [False, True, True, True]
    assert to_json(diagnose_path(root)) == to_json(diagnose_path(root, cache=False))
    caplog.clear()
    path.write_text(json.dumps({"format": 1, "key": "k", "body": {}, "mac": "m"}, indent=2))
    assert _hits(root, monkeypatch) == [False, True, True, True]  # format 1: stale, quietly
    assert "refused" not in caplog.text
    # a well-formed body with a valid MAC but a finding of an unknown kind: refused by schema
    _, body = _cache_doc(path)
    body["diagnosis"]["findings"].append({"kind": "made_up", "severity": "error", "run": "x",
                                          "summary": "", "advice": "", "start_step": None,
                                          "end_step": None, "evidence": {}})
    with pytest.raises(cache.CacheRefused):
        cache.check_doc(body["diagnosis"], body["diagnosis"]["name"])


def test_live_verdicts_hold_back_end_of_run_rules(tmp_path):
    root = _sweep(tmp_path)
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    ended = experiment_verdicts(dirs, {d.name: False for d in dirs})
    live = experiment_verdicts(dirs, {d.name: True for d in dirs})
    post = {Path(r["path"]).name: r["verdict"] for r in to_json(diagnose_path(root))["runs"]}
    assert {n: v.verdict for n, v in ended.items()} == post
    for name, v in live.items():  # converged/collapsed/... need the end: "too early" live
        assert v.verdict == TOO_EARLY or v.verdict in ("failed", "diverged", "leaking",
                                                      "never_fit", "degraded"), (name, v)
        assert not v.terminal or v.verdict in ("diverged", "leaking", "never_fit")


CONFIG = """
[run]
seed = 7
[data]
target = "{target}"
n_train = 256
n_holdout = 128
[generator]
cutoff = {cutoff}
[loss]
trace_penalty = {penalty}
[train]
steps = 300
log_every = 50
batch_size = 16
[eval]
every_steps = 20
n_samples = {samples}
save_samples = 0
[checkpoint]
every_steps = 20
[metrics]
flush_seconds = 1
"""


@pytest.mark.slow
def test_planted_leaking_run_is_pruned_its_slot_reused_and_a_noisy_healthy_run_kept(tmp_path):
    """One slot (--parallel 1): a cutoff-3 run without trace penalty (leaks from step 1; 3,000
    steps, so that it cannot finish before the grace on a quiet machine) is pruned after the
    grace (10 % of its steps), and the queued run takes its slot; that run (bimodal, W1 flat for
    its first evals) is not pruned. The ledger and the report name the cause."""
    cfg = tmp_path / "pair.toml"
    cfg.write_text(CONFIG.format(target="ring8", cutoff=3, penalty=0.0, samples=128) +
                   '[sweep]\nsets = [{"generator.cutoff" = 3, "train.steps" = 3000}, '
                   '{"generator.cutoff" = 10, '
                   '"loss.trace_penalty" = 50.0, "data.target" = "bimodal", '
                   '"eval.n_samples" = 512}]\n')
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "submit", str(cfg), "--executor",
                           "local", "--parallel", "1", "--prune", "--runs-root",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    exp_dir = tmp_path / "runs" / "pair"
    leak, ok = exp_dir / "task-000", exp_dir / "task-001"
    wait_for(lambda: ledger.read_jobs(ok)["outcome"] is not None, 600, "both runs to end")
    jobs = ledger.read_jobs(leak)
    assert jobs["outcome"] == "pruned"
    episode = jobs["episodes"][-1]
    assert episode["stop_cause"] == "pruned" and episode["pruned"]["verdict"] == "leaking"
    assert episode["pruned"]["finding"]["kind"] == "fock_leakage"
    assert 300 <= episode["pruned"]["step"] < 3000
    assert ledger.read_jobs(ok)["outcome"] == "finished"  # its slot was reused; not pruned
    # CPU seconds from rusage; the watcher ran the rules only on the leaking run
    assert episode["cpu"]["trainer_s"] > 1 and episode["cpu"]["judgements"] >= 1
    ok_cpu = ledger.read_jobs(ok)["episodes"][0]["cpu"]
    assert ok_cpu["trainer_s"] > 1 and ok_cpu["judgements"] == 0
    assert 0 < ok_cpu["job_s"] < ok_cpu["trainer_s"]
    started_ok = ledger.read_jobs(ok)["episodes"][0]["start_time"]
    assert started_ok >= episode["end_time"] - 5  # it waited for the pruned run's slot
    out = subprocess.run([sys.executable, "-m", "jobs.cli", "diagnose", str(exp_dir), "--json"],
                         capture_output=True, text=True, timeout=300)
    d = json.loads(out.stdout)
    pruned = [f for f in d["findings"] if f["kind"] == "pruned"]
    assert [f["run"] for f in pruned] == ["task-000"]
    assert pruned[0]["evidence"]["core_seconds_saved"] > 0
    assert "pruned" in [t["cause"] for r in d["runs"] if r["name"] == "task-000"
                        for t in r["attempts"]]
    status = json.loads(subprocess.run([sys.executable, "-m", "jobs.cli", "status",
                                        str(exp_dir), "--json"], capture_output=True,
                                       text=True, timeout=120).stdout)
    assert [r["state"] for r in status] == ["PRUNED", "FINISHED"]
    skipped = subprocess.run([sys.executable, "-m", "jobs.cli", "resubmit", str(exp_dir),
                              "--dry-run"], capture_output=True, text=True, timeout=120)
    assert "skipped task-000: pruned" in skipped.stdout and "nothing to resubmit" in skipped.stdout


def test_advice_with_two_phases_survives_the_cache_round_trip():
    """Raise and lower of one key in different phases (the demo's run 1: oscillating losses,
    then a discriminator that could not tell real from fake) resolve into one advice whose
    phases nest four deep; the cache must read back what it wrote, not refuse it each time."""
    from analysis.advice import advise
    from analysis.findings import Finding
    from qgan.vocabulary import FindingKind

    found = [Finding(FindingKind.OSCILLATION, "warning", "r", "s", "", 1, 1000, {}),
             Finding(FindingKind.G_DOMINANCE, "warning", "r", "s", "", 50, 212, {}),
             Finding(FindingKind.G_DOMINANCE, "warning", "r", "s", "", 278, 437, {})]
    resolved = [a for a in advise(found) if a.phases]
    assert [(a.key, [p["steps"] for p in a.phases]) for a in resolved] == [
        ("train.d_lr", [[[1, 1000]], [[50, 212], [278, 437]]])]
    doc = json.loads(json.dumps(resolved[0].to_dict()))
    assert cache._advice(doc) == resolved[0]


# ---- the pruner's watcher: a cheap gate before the rules (jobs/prune.py) --------------------

def _one_part_per_eval(run: Path, hold: Path) -> list[Path]:
    """Split the run's evals into one part per eval (as a trainer flushing after each eval
    writes them) and move them all to `hold`; returns them in order, to be put back one by
    one."""
    import pyarrow.parquet as pq

    folder = run / schema.METRICS_DIR / "evals" / "attempt=1"
    [part] = sorted(folder.glob("part-*.parquet"))
    table = pq.read_table(part)
    part.unlink()
    hold.mkdir(parents=True)
    out = []
    for i in range(table.num_rows):
        out.append(hold / f"part-{i:06d}.parquet")
        pq.write_table(table.slice(i, 1), out[-1])
    return out


def test_watch_gate_reads_each_part_once_and_judges_a_leak_once_per_eval_step(tmp_path):
    """12 evals (every 25 of 400 steps, written up to step 300), added one part at a time: the
    leaking run is due for the rules at each new eval from the grace on (5 evals, 10 % of the
    steps: the 5th eval, step 125), never twice for one step; the healthy run inside its
    cutoff is never due; each part is read once."""
    from synthetic import Plan
    from jobs import prune

    root = write_experiment(tmp_path / "exp", [
        Plan(name="leak", steps=400, stop_at=300, leak_from=1, leak_level=0.5, samples=False),
        Plan(name="ok", steps=400, stop_at=300, samples=False)])
    for run in ("task-000", "task-001"):
        parts = _one_part_per_eval(root / run, tmp_path / f"hold-{run}")
        folder = root / run / schema.METRICS_DIR / "evals" / "attempt=1"
        gate = prune.Gate(root / run, never_fit=False)
        due = []
        for part in parts:
            part.rename(folder / part.name)
            due.append(gate.due())
            due.append(gate.due())  # nothing new: not due again
        expect = [False] * 8 + [True, False] * 8 if run == "task-000" else [False] * 24
        assert due == expect, run
        assert gate.view.reads == 12
        (folder / "part-000011.parquet").touch()  # rewritten, same step: read, not due
        assert not gate.due() and gate.view.reads == 13
    # a shallow leak (trace 0.89 sinking to ~0.82 by step 300: error-level, below 0.9, but
    # above prune_leak_trace 0.8) reads leaking live and is neither due nor pruned
    shallow = write_experiment(tmp_path / "shallow", [
        Plan(name="shallow", steps=400, stop_at=300, leak_from=1, leak_level=0.89,
             samples=False)]) / "task-000"
    live = experiment_verdicts([shallow], {shallow.name: True})[shallow.name]
    assert (live.verdict, live.terminal) == ("leaking", False)
    assert not prune.Gate(shallow, never_fit=False).due() and prune.judge(shallow) is None
    decision = prune.judge(root / "task-000")
    assert decision is not None and decision["verdict"] == "leaking"
    assert decision["finding"]["kind"] == "fock_leakage" and decision["step"] == 300
    assert prune.judge(root / "task-001") is None


def test_never_fit_is_pruned_only_after_its_grace_and_while_a_trusted_run_fits_better(tmp_path):
    """A never-fit run (W1 flat at 1.5, no mode covered) is stopped only with never-fit
    pruning on, after prune_never_fit_frac (a quarter) of its steps, and only while another
    run of the experiment did better by never_fit_rel at equal steps without leaking; a
    leaking or never-fit sibling is no reason, nor is one the job layer stopped, nor one
    ahead only after this run's newest step."""
    from synthetic import Plan
    from jobs import prune

    def exp(name: str, stop_at: int, sibling: Plan) -> Path:
        return write_experiment(tmp_path / name, [
            Plan(name="nf", steps=400, stop_at=stop_at, never_fit=True, samples=False),
            sibling], name=name) / "task-000"

    fits = Plan(name="fits", steps=400, samples=False)
    early = exp("early", 80, fits)  # 80 < 100 steps: before the never-fit grace
    assert prune.judge(early, never_fit=True) is None
    late = exp("late", 200, fits)
    assert prune.judge(late, never_fit=False) is None  # off by default
    d = prune.judge(late, never_fit=True)
    assert d is not None and d["verdict"] == "never_fit" and d["step"] == 200
    # the sibling's W1 is 0.05 + 0.95 exp(-5 step / 400): 0.128 at step 200, 0.05 at its end
    assert "task-001 fit better by step 200 (best w1_mean 0.128 vs 1.49)" in d["reason"]
    assert prune.Gate(late, never_fit=True).due()  # the cheap gate lets it through
    assert not prune.Gate(late, never_fit=False).due()  # ... and not without never-fit
    leaking = exp("leaking", 200, Plan(name="lk", steps=400, leak_from=1, leak_level=0.5,
                                       samples=False))
    assert prune.judge(leaking, never_fit=True) is None
    # equal steps: a sibling whose W1 is 1.6 at step 25 and 1.4 (not 10 % below 1.49) up to
    # step 150, and fits after, is no reason at step 150, and is at step 200
    import pyarrow as pa
    import pyarrow.parquet as pq

    for stop_at, pruned in ((150, False), (200, True)):
        nf = exp(f"equal-{stop_at}", stop_at, fits)
        [part] = (nf.parent / "task-001" / schema.METRICS_DIR / "evals").rglob("part-*.parquet")
        t = pq.read_table(part)
        steps = t.column("step").to_pylist()
        w1 = [1.6 if st == 25 else 1.4 if st <= 150 else v
              for st, v in zip(steps, t.column("w1_mean").to_pylist())]
        pq.write_table(t.set_column(t.schema.get_field_index("w1_mean"), "w1_mean",
                                    pa.array(w1, pa.float64())), part)
        assert (prune.judge(nf, never_fit=True) is not None) == pruned, stop_at
    flat = exp("flat", 200, Plan(name="nf2", steps=400, never_fit=True, samples=False))
    assert prune.judge(flat, never_fit=True) is None
    stopped = late.parent / "task-001" / schema.JOBS_FILE
    doc = json.loads(stopped.read_text())
    doc["outcome"] = "diverged"
    stopped.write_text(json.dumps(doc))
    assert prune.judge(late, never_fit=True) is None


def test_core_seconds_saved_count_evals_and_checkpoints_not_model_building(tmp_path):
    """A run pruned at step 200 of 400, 0.5 s per step with 2 s more at each eval (every 25
    steps) and 30 s to build its models: 199 gaps of 0.5 s plus 8 evals = 115.5 s over 199
    steps, so the 200 steps it did not train would have cost 200 x 115.5 / 199 s, on 2 CPUs
    (the median step time alone said 200 x 0.5)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synthetic import Plan
    from analysis.rundata import load_run
    from analysis.pruned import diagnose_pruned, seconds_per_step

    root = write_experiment(tmp_path / "exp", [Plan(name="p", steps=400, stop_at=200,
                                                    step_seconds=0.5, samples=False)])
    exp = json.loads((root / schema.EXPERIMENT_FILE).read_text())
    exp["profile"] = {"cpus": 2}
    (root / schema.EXPERIMENT_FILE).write_text(json.dumps(exp))
    run = root / "task-000"
    [part] = (run / schema.METRICS_DIR / "steps").rglob("part-*.parquet")
    t = pq.read_table(part)
    steps = t.column("step").to_pylist()
    # step 1 ends 30 s late (building the models): every wall time after it moves too
    wall = [w + 2.0 * (s // 25) + 30.0 for s, w in zip(steps, t.column("wall_time").to_pylist())]
    pq.write_table(t.set_column(t.schema.get_field_index("wall_time"), "wall_time",
                                pa.array(wall, pa.float64())), part)
    jobs = json.loads((run / schema.JOBS_FILE).read_text())
    jobs["outcome"] = "pruned"
    jobs["episodes"].append({"n": len(jobs["episodes"]) + 1, "stop_cause": "pruned",
                             "end_step": 200, "pruned": {"verdict": "leaking", "step": 200,
                                                         "reason": "r", "evals": 8}})
    (run / schema.JOBS_FILE).write_text(json.dumps(jobs))
    data = load_run(run)
    assert seconds_per_step(data.steps) == pytest.approx(115.5 / 199)
    from qgan.thresholds import defaults
    [f] = diagnose_pruned(data, defaults())
    assert f.evidence["remaining_steps"] == 200 and f.evidence["cpus"] == 2
    assert f.evidence["core_seconds_saved"] == pytest.approx(2 * 200 * 115.5 / 199)


def test_prune_never_fit_switch_is_recorded_and_reaches_the_job(tmp_path):
    """`qgan submit --prune-never-fit` implies --prune; both are kept in experiment.json (so
    resubmit and extend keep them); the job runs its watcher (cpu.judgements recorded: 0 for
    a 12-step run, whose grace never passes) and records its CPU seconds."""
    import tomli_w
    from trainer_utils import TINY, run_cli

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tomli_w.dumps(TINY))
    proc = run_cli("submit", str(cfg), "--executor", "local", "--parallel", "1",
                   "--prune-never-fit", "--no-report", "--wait", "--runs-root",
                   str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    exp_dir = tmp_path / "runs" / "tiny"
    exp = ledger.read_experiment(exp_dir)
    assert (exp["prune"], exp["prune_never_fit"]) == (True, True)
    # --wait returns once the trainer's attempt says finished; its process and the job's
    # callable end a little later
    run = exp_dir / "task-000"
    wait_for(lambda: ledger.read_jobs(run)["outcome"] is not None, 120, "the job to end")
    jobs = ledger.read_jobs(run)
    assert jobs["outcome"] == "finished"
    cpu = jobs["episodes"][-1]["cpu"]
    assert cpu["judgements"] == 0 and cpu["trainer_s"] > 0.5 and cpu["job_s"] > 0
