"""Planted episodes in a synthetic run are found at exactly the planted steps."""

from __future__ import annotations

import json

import pytest

from analysis import diagnose_path, resolve_thresholds
from analysis.diagnose import to_json
from qgan import schema
from qgan.vocabulary import FindingKind, StopCause
from reports import write_report
from synthetic import Plan, write_experiment, write_run

PLANTED = Plan(name="planted", steps=1000, collapse=(600, None), recovery_action_at=625,
               nan=(305, 309), leak_from=800, vanish_g=(100, 149), d_dominant=(400, 499),
               kills=[237], signals=[(700, "SIGTERM")], dead_g=(150, 180), clip_g=(850, 920),
               explode_d=(500, 530), oscillate=(0, 499))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("planted") / "r", PLANTED)
    return diagnose_path(run).runs[0]


def one(rd, kind, **match):
    found = [f for f in rd.findings if f.kind == kind and
             all(f.evidence.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (kind, [f.summary for f in rd.findings])
    return found[0]


def test_collapse_onset_and_failed_recovery(planted):
    f = one(planted, "mode_collapse")
    assert (f.start_step, f.end_step, f.severity) == (600, 1000, "error")
    assert f.evidence["recovery_actions"] == "lr" and f.evidence["recovery_worked"] is False
    assert planted.verdict == "collapsed"


def test_nan_episode_with_rollback_and_precursor(planted):
    f = one(planted, "nonfinite")
    assert (f.start_step, f.end_step) == (305, 309)
    ev = f.evidence
    assert ev["nonfinite_steps"] == 5 and ev["skipped_steps"] == 5
    assert ev["rollbacks"] == 1 and ev["rollback_to_step"] == 300 and ev["recovered"]
    assert ev["g_grad_growth"] > 10 and "gradient norm growth" in f.summary


def test_gradient_health(planted):
    assert (lambda f: (f.start_step, f.end_step))(one(planted, "vanishing_gradients")) == (100, 149)
    dead = one(planted, "dead_parameters")
    assert (dead.start_step, dead.end_step, dead.severity) == (150, 180, "error")
    ex = one(planted, "exploding_gradients", network="discriminator")
    assert (ex.start_step, ex.end_step) == (500, 530)
    clip = one(planted, "clipping_saturation", network="generator")
    assert (clip.start_step, clip.end_step) == (850, 920)


def test_balance_and_oscillation(planted):
    d = one(planted, "d_dominance")
    assert (d.start_step, d.end_step) == (400, 499)
    assert (FindingKind.D_DOMINANCE, 400, 499) in planted.phases
    osc = one(planted, "oscillation", loss="g_loss")
    assert osc.start_step == 1 and osc.end_step == 500


def test_leakage_onset(planted):
    f = one(planted, "fock_leakage")
    assert (f.start_step, f.end_step) == (800, 1000)


def test_job_history(planted):
    lost = one(planted, "lost_work")
    assert (lost.start_step, lost.end_step) == (201, 237)  # killed at 237, checkpoint at 200
    assert lost.evidence["cause"] == "preemption" and lost.evidence["lost_steps"] == 37
    h = one(planted, "job_history")
    assert h.evidence["attempts"] == 3 and h.evidence["preemptions"] == 2
    assert h.evidence["lost_steps_restart"] == 37 and h.evidence["lost_steps_rollback"] == 9
    causes = [t["cause"] for t in planted.timeline]
    assert causes == ["preemption", "preemption", "finished"]


def test_healthy_run_is_converged(tmp_path):
    rd = diagnose_path(write_run(tmp_path / "ok", Plan(name="ok", steps=600))).runs[0]
    assert (rd.verdict, rd.flags) == ("converged", []), [f.summary for f in rd.findings]
    assert not [f for f in rd.findings if f.severity != "info"]
    assert rd.advice == []


# One planted episode per verdict: (plan, primary verdict, flags).
VERDICT_CASES = {
    "failed": (Plan(steps=400, crash_at=120), "failed", []),
    "diverged": (Plan(steps=400, nan=(200, 204), diverge=True), "diverged", []),
    "leaking": (Plan(steps=400, leak_from=1, leak_level=0.35), "leaking", []),
    "never_fit": (Plan(steps=400, never_fit=True), "never_fit", []),
    "collapsed": (Plan(steps=400, collapse=(250, None)), "collapsed", ["regressed"]),
    "regressed": (Plan(steps=400, regress_from=200), "regressed", []),
    "stalled": (Plan(steps=600, stagnate=True), "stalled", []),
    "degraded": (Plan(steps=400, dead_g=(50, 90)), "degraded", []),
    "unfinished": (Plan(steps=400, stop_at=250), "unfinished", []),
    "converged": (Plan(steps=400, signals=[(150, "SIGUSR2")]), "converged", []),
    "improving": (Plan(steps=400, w1_rate=1.0), "improving", []),
}


@pytest.mark.parametrize("case", list(VERDICT_CASES))
def test_every_verdict_from_a_planted_episode(tmp_path, case):
    plan, verdict, flags = VERDICT_CASES[case]
    rd = diagnose_path(write_run(tmp_path / "r", plan)).runs[0]
    assert (rd.verdict, rd.flags) == (verdict, flags), rd.reasons
    assert list(rd.reasons)[0] == verdict and set(rd.reasons) == {verdict, *flags}


def test_every_verdict_has_a_planted_case():
    from qgan.vocabulary import Verdict
    assert set(VERDICT_CASES) == {v.value for v in Verdict}


def test_regressed_names_best_and_final(tmp_path):
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=400, regress_from=200))).runs[0]
    f = one(rd, "regression")
    n = rd.numbers
    assert f.evidence["best_step"] == n["best_step"] == f.start_step
    assert f.evidence["final_w1"] == pytest.approx(n["final_w1"], rel=1e-5)
    assert n["best_step"] <= 200 and n["final_w1"] > 1.5 * n["best_w1"]
    assert f"step {n['best_step']}" in rd.verdict_reason
    assert [a.key for a in rd.advice] == ["monitor.patience"]
    assert rd.advice[0].panel == "w1" and rd.advice[0].steps == [(n["best_step"], 400)]


def test_never_fit_by_modes_and_by_w1(tmp_path):
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=400, never_fit=True))).runs[0]
    f = one(rd, "never_fit")
    assert f.evidence["no_mode_covered"] and f.evidence["w1_never_improved"]
    assert (f.start_step, f.end_step, f.severity) == (25, 400, "error")


def test_leaking_run_says_so_and_why(tmp_path):
    # Fock leakage with trace 0.35 all run long: the run finishes, but it is not trustworthy
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=400, leak_from=1,
                                                      leak_level=0.35))).runs[0]
    leak = one(rd, "fock_leakage")
    assert (leak.start_step, leak.end_step, leak.severity) == (1, 400, "error")
    assert rd.verdict == "leaking"
    assert "0.25" in rd.verdict_reason  # the worst trace, from the finding's summary
    assert [(a.key, a.direction, a.panel) for a in rd.advice] == [
        ("generator.cutoff", "raise", "trace")]


def test_degraded_names_the_worst_unclaimed_error(tmp_path):
    # a dead-parameter episode that passed (error) and leakage lasting to the end (error):
    # leaking is primary, the dead parameters are not hidden: degraded is a flag with its reason
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=400, dead_g=(50, 90),
                                                      leak_from=300, leak_level=0.5))).runs[0]
    assert {f.kind for f in rd.findings if f.severity == "error"} == {"dead_parameters",
                                                                     "fock_leakage"}
    assert rd.verdict == "leaking" and "degraded" in rd.flags
    assert rd.reasons["degraded"].startswith("dead parameters (steps 50-90)")
    assert rd.verdict_reason.endswith("; also " + ", ".join(rd.flags))


def test_a_worse_verdict_never_hides_an_error_finding(tmp_path):
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=600, crash_at=400, leak_from=200,
                                                      leak_level=0.5))).runs[0]
    assert rd.verdict == "failed" and "leaking" in rd.flags
    assert "also" in rd.verdict_reason and "leaking" in rd.verdict_reason


def test_verdict_rules_are_documented_in_one_place():
    from analysis.verdict import LEGEND, RULES, VERDICTS
    from qgan.vocabulary import Verdict

    assert VERDICTS == ("failed", "diverged", "leaking", "never_fit", "collapsed", "regressed",
                        "stalled", "degraded", "unfinished", "converged", "improving")
    assert set(VERDICTS) == set(Verdict)
    assert [v for v, _ in LEGEND] == list(VERDICTS) and all(m for _, m in LEGEND)
    assert len(RULES) == len(VERDICTS)


def test_recovered_collapse_and_partial(tmp_path):
    p = Plan(steps=600, collapse=(300, 400), recovery_action_at=325, partial=(450, 525))
    rd = diagnose_path(write_run(tmp_path / "r", p)).runs[0]
    f = one(rd, "mode_collapse")
    assert (f.start_step, f.end_step, f.severity) == (300, 375, "warning")
    assert f.evidence["recovered_step"] == 400 and f.evidence["recovery_worked"] is True
    part = one(rd, "partial_collapse")
    assert (part.start_step, part.end_step) == (450, 500)


def test_time_limit_is_not_a_preemption(tmp_path):
    rd = diagnose_path(write_run(tmp_path / "r", Plan(steps=300, signals=[(100, "SIGUSR2")]))
                       ).runs[0]
    assert [t["cause"] for t in rd.timeline] == ["time_limit", "finished"]
    assert not [f for f in rd.findings if f.kind == "lost_work"]


def _set_ledger_cause(run, attempt: int, cause) -> None:
    doc = json.loads((run / schema.JOBS_FILE).read_text())
    for e in doc["episodes"]:
        if e["trainer_attempt"] == attempt:
            e["stop_cause"] = str(cause)
    (run / schema.JOBS_FILE).write_text(json.dumps(doc))


def test_stop_cause_comes_from_the_job_ledger(tmp_path):
    """With `preempt_send_user_signal` a SLURM preemption reaches the trainer as USR2: its
    attempt file says SIGUSR2, and only the job layer (which knows the deadline) can tell a
    preemption from a time limit. The report follows the ledger, as `qgan status` does."""
    run = write_run(tmp_path / "r", Plan(steps=300, signals=[(100, "SIGUSR2"),
                                                             (200, "SIGUSR2")]))
    _set_ledger_cause(run, 1, StopCause.PREEMPTION)
    _set_ledger_cause(run, 2, StopCause.REQUESTED)
    d = diagnose_path(run)
    rd = d.runs[0]
    assert [t["cause"] for t in rd.timeline] == ["preemption", "requested", "finished"]
    h = one(rd, "job_history")
    assert (h.evidence["preemptions"], h.evidence["time_limits"]) == (1, 0)
    assert [a["cause"] for a in to_json(d)["runs"][0]["attempts"]] == [
        "preemption", "requested", "finished"]


def test_without_a_usable_ledger_the_signal_decides(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300, signals=[(100, "SIGUSR2")]))
    (run / schema.JOBS_FILE).unlink()  # a bare `qgan train` under sbatch has no ledger
    assert [t["cause"] for t in diagnose_path(run).runs[0].timeline] == ["time_limit", "finished"]
    # a damaged ledger is a finding, and the signal still decides
    (run / schema.JOBS_FILE).write_text('{"episodes": [{"trainer_attempt": 1, "stop_cause": '
                                        '"bogus"}, "junk", {"trainer_attempt": "1"}]}')
    rd = diagnose_path(run).runs[0]
    assert [t["cause"] for t in rd.timeline] == ["time_limit", "finished"]
    (run / schema.JOBS_FILE).write_text("{not json")
    rd = diagnose_path(run).runs[0]
    assert [t["cause"] for t in rd.timeline] == ["time_limit", "finished"]
    bad = one(rd, "corrupt_file")
    assert bad.summary.startswith(f"{schema.JOBS_FILE} is unreadable")


def test_an_episode_that_never_started_its_trainer_does_not_relabel_an_attempt(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300, signals=[(100, "SIGTERM")]))
    doc = json.loads((run / schema.JOBS_FILE).read_text())
    # an older ledger named the previous attempt for an episode killed during start-up
    doc["episodes"].insert(1, {"n": 2, "trainer_attempt": 1, "stop_cause": "crash"})
    (run / schema.JOBS_FILE).write_text(json.dumps(doc))
    assert [t["cause"] for t in diagnose_path(run).runs[0].timeline] == ["preemption", "finished"]


def test_thresholds_override(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=400, leak_from=300))
    assert any(f.kind == "fock_leakage" for f in diagnose_path(run).runs[0].findings)
    quiet = diagnose_path(run, {"leak_trace": 0.5}).runs[0]
    assert not any(f.kind == "fock_leakage" for f in quiet.findings)
    with pytest.raises(ValueError, match="unknown threshold"):
        resolve_thresholds({"no_such": 1})
    (tmp_path / "t.toml").write_text("[thresholds]\nleak_trace = 0.5\n")
    assert resolve_thresholds(tmp_path / "t.toml")["leak_trace"] == 0.5


def test_a_run_is_judged_by_its_own_configured_thresholds(tmp_path):
    """The collapse limit the run's monitor used (monitor.collapse_var_ratio) is the one the
    postmortem applies; the user's explicit override still wins."""
    run = write_run(tmp_path / "r", Plan(steps=600, collapse=(300, None),
                                         config={"monitor.collapse_var_ratio": 0.9}))
    spans = lambda rd: [(f.start_step, f.end_step) for f in rd.findings  # noqa: E731
                        if f.kind == "mode_collapse"]
    assert spans(diagnose_path(run).runs[0]) == [(25, 200), (300, 600)]  # ratios 0.4-0.89
    assert spans(diagnose_path(run, {"collapse_var_ratio": 0.05}).runs[0]) == [(300, 600)]
    assert resolve_thresholds(None, {"monitor.collapse_var_ratio": 0.2})[
        "collapse_var_ratio"] == 0.2


def test_sweep_ranking_and_separation(tmp_path):
    plans = [Plan(name=f"r{i}", steps=300, g_lr=lr, final_w1=0.02 + lr, samples=False,
                  config={"train.g_lr": lr, "loss.kind": "bce"})
             for i, lr in enumerate([0.4, 0.001, 0.1, 0.01, 0.2, 0.05])]
    d = diagnose_path(write_experiment(tmp_path / "exp", plans))
    assert d.ranking == ["r1", "r3", "r5", "r2", "r4", "r0"]
    top = d.separation[0]
    assert top["key"] == "train.g_lr" and top["rho"] == 1.0 and top["better"] == "smaller"
    assert top["p"] == 2 / 720  # exact permutation test: only the two perfect orderings
    assert any(f.kind == "hyperparameter_effect" for f in d.findings)


def test_three_runs_never_claim_an_effect_and_seeds_are_noise(tmp_path):
    """Three runs ordered perfectly by g_lr: p = 1/3, no claim. Three seeds of one setting:
    their spread is reported as the noise floor, the seed is never a 'hyperparameter'."""
    plans = [Plan(name=f"r{i}", steps=300, final_w1=w, samples=False,
                  config={"train.g_lr": lr, "run.seed": seed})
             for i, (lr, seed, w) in enumerate([(0.01, 1, 0.1), (0.02, 1, 0.2), (0.03, 1, 0.3)])]
    d = diagnose_path(write_experiment(tmp_path / "lr", plans))
    assert [(s["key"], s["p"]) for s in d.separation] == [("train.g_lr", pytest.approx(1 / 3))]
    assert not [f for f in d.findings if f.kind in ("hyperparameter_effect", "seed_spread")]

    plans = [Plan(name=f"s{i}", steps=300, final_w1=w, samples=False,
                  config={"train.g_lr": 0.01, "run.seed": seed})
             for i, (seed, w) in enumerate([(1, 0.5), (2, 0.2), (3, 0.9), (4, 0.3)])]
    d = diagnose_path(write_experiment(tmp_path / "seeds", plans))
    assert d.separation == []
    (spread,) = [f for f in d.findings if f.kind == "seed_spread"]
    finals = sorted(r.numbers["final_w1"] for r in d.runs)  # the planted values, +- 0.01
    assert finals == pytest.approx([0.2, 0.3, 0.5, 0.9], abs=0.01)
    assert spread.evidence == {"settings": 1, "runs": 4,  # evidence is kept to 6 digits
                               "setting": {"train.g_lr": 0.01},
                               "setting_runs": ["s0", "s1", "s2", "s3"],
                               "max_spread": pytest.approx(finals[-1] - finals[0], abs=1e-6),
                               "low": pytest.approx(finals[0], abs=1e-6),
                               "high": pytest.approx(finals[-1], abs=1e-6)}
    assert not [f for f in d.findings if f.kind == "hyperparameter_effect"]
    assert "train.g_lr = 0.01" in spread.summary


def test_final_w1_is_the_median_of_the_last_three_evals(tmp_path):
    """One noisy last eval must not decide a sweep's ranking."""
    from analysis.rundata import load
    from analysis.headline import key_numbers

    run = load(write_run(tmp_path / "r", Plan(steps=300))).runs[0]
    last3 = run.evals["w1_mean"].to_numpy()[-3:].copy()
    run.evals.loc[run.evals.index[-1], "w1_mean"] = 5.0  # a spike at the very last eval
    assert key_numbers(run, [])["final_w1"] == sorted([last3[0], last3[1], 5.0])[1] == last3[0]


def test_each_attempt_names_the_job_that_ran_it(tmp_path):
    """A resubmitted run has attempts from several jobs: the ledger's job id per attempt is in
    the timeline, `qgan diagnose --json` and the report; a forged id is dropped."""
    run = write_run(tmp_path / "r", Plan(steps=300, signals=[(100, "SIGTERM"),
                                                             (200, "SIGTERM")]))
    doc = json.loads((run / schema.JOBS_FILE).read_text())
    for e, job in zip(doc["episodes"], ["42_0", 43, "<b>x</b>"]):
        e["job_id"] = job
    (run / schema.JOBS_FILE).write_text(json.dumps(doc))
    for a in (run / schema.ATTEMPTS_DIR).glob("*.json"):  # the SLURM id the trainer saw
        a.write_text(json.dumps(json.loads(a.read_text()) | {"slurm_job_id": None}))
    d = diagnose_path(run)
    assert [t["job"] for t in d.runs[0].timeline] == ["42_0", "43", None]
    assert [a["job"] for a in to_json(d)["runs"][0]["attempts"]] == ["42_0", "43", None]
    html = write_report(d, tmp_path / "report.html").read_text()
    assert "<td>1</td><td>42_0</td>" in html and "<td>3</td><td>–</td>" in html
    assert "<b>x</b>" not in html
