"""The analysis contract the report builds on (docs/analysis-contract.md): best checkpoint,
advice, the run to keep, per-setting statistics, significance, and `qgan diagnose --json`."""

from __future__ import annotations

import json
import shutil

import pytest

from analysis import diagnose_path
from analysis.advice import advise, merge_ranges
from analysis.diagnose import to_json
from analysis.findings import Finding
from analysis.headline import HEADLINES
from analysis.keep import versus
from analysis.panels import KIND_PANEL, PANELS, panel_of
from jobs.cli import main
from qgan.vocabulary import FindingKind
from synthetic import Plan, write_checkpoints, write_experiment, write_run


def test_best_checkpoint_from_the_manifest_is_kept_and_verified(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300, regress_from=150))
    folders = write_checkpoints(run, [250, 300], best=(125, 0.2))
    b = diagnose_path(run).runs[0].best
    assert (b.metric, b.mode, b.step, b.value, b.kept) == ("w1_mean", "min", 125, 0.2, True)
    assert b.checkpoint == folders["best-000001"] == run / "checkpoints" / "best-000001"
    assert "outside the keep-N rotation" in b.note
    # a damaged file: named, not kept, and the note says why
    data = b.checkpoint / "state.data-00000-of-00001"
    data.write_bytes(b"x" + data.read_bytes()[1:])
    b = diagnose_path(run).runs[0].best
    assert not b.kept and b.step == 125
    assert "(sha256 mismatch for state.data-00000-of-00001 (expected " in b.note


def test_best_checkpoint_of_an_old_run_deleted_by_rotation(tmp_path):
    # no "best" in the manifest: the best eval step comes from the evals; a checkpoint was
    # written there (event) but keep-N deleted it
    run = write_run(tmp_path / "r", Plan(steps=400, regress_from=200, checkpoint_every=25,
                                         config={"checkpoint.keep": 3}))
    write_checkpoints(run, [350, 375, 400])
    rd = diagnose_path(run).runs[0]
    b = rd.best
    assert b.step == rd.numbers["best_step"] and b.value == pytest.approx(rd.numbers["best_w1"])
    assert (b.checkpoint, b.kept) == (None, False)
    assert b.note == ("deleted by keep-N rotation (checkpoint.keep = 3): set "
                      "checkpoint.keep_best = true")


def test_best_checkpoint_of_an_old_run_still_in_the_rotation(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300, checkpoint_every=50))
    rd = diagnose_path(run).runs[0]
    step = rd.numbers["best_step"]
    folders = write_checkpoints(run, [step - 50, step])
    b = diagnose_path(run).runs[0].best
    assert (b.step, b.kept, b.checkpoint) == (step, True, folders["ckpt-000002"])
    assert "the rotation will delete it" in b.note


def test_best_checkpoint_never_written(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300, eval_every=25, checkpoint_every=100,
                                         regress_from=120))
    rd = diagnose_path(run).runs[0]
    assert rd.numbers["best_step"] % 100 != 0
    assert rd.best.note.startswith(f"no checkpoint was written at step {rd.numbers['best_step']}")


def test_manifest_cannot_point_outside_the_run(tmp_path):
    run = write_run(tmp_path / "r", Plan(steps=300))
    write_checkpoints(run, [300], best=(300, 0.05))
    manifest = run / "checkpoints" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["best"]["folder"] = "../../elsewhere"
    manifest.write_text(json.dumps(doc))
    b = diagnose_path(run).runs[0].best  # the entry is ignored: the evals decide
    assert (b.step, b.checkpoint) == (300, run / "checkpoints" / "ckpt-000001")


def _f(kind, a, b, severity="warning", **ev):
    return Finding(kind, severity, "r", f"{kind} at {a}-{b}", "advice text", a, b, ev)


def test_advice_merges_repeats_with_their_step_ranges():
    fs = [_f("mode_collapse", 600, 700), _f("partial_collapse", 650, 800),
          _f("mode_collapse", 900, 950), _f("lost_work", 10, 20), _f("lost_work", 40, 50)]
    adv = advise(fs)
    (g_lr,) = [a for a in adv if a.key == "train.g_lr"]
    assert (g_lr.direction, g_lr.steps) == ("lower", [(600, 800), (900, 950)])
    assert g_lr.kinds == ["mode_collapse", "partial_collapse"] and g_lr.panel == "modes"
    assert g_lr.text.startswith("Lower train.g_lr: ") and "600-800, 900-950" in g_lr.text
    (lost,) = [a for a in adv if a.kinds == ["lost_work"]]
    assert (lost.key, lost.steps, lost.panel, lost.text) == ("", [(10, 20), (40, 50)],
                                                             "timeline", "advice text")
    assert len(adv) == 2
    assert all(a.panel in PANELS for a in adv)


def test_contradicting_advice_becomes_one_recommendation():
    # D dominant early (lower d_lr, 100 steps), G dominant later (raise d_lr, 300 steps)
    fs = [_f("d_dominance", 100, 199), _f("g_dominance", 400, 699)]
    (a,) = advise(fs)
    assert (a.key, a.direction, a.steps) == ("train.d_lr", "raise", [(100, 199), (400, 699)])
    assert [p["direction"] for p in a.phases] == ["lower", "raise"]
    assert "lower at steps 100-199" in a.text and "raise at steps 400-699" in a.text
    assert "monitor.lr_controller" in a.text and a.panel == "critic"
    assert a.kinds == ["d_dominance", "g_dominance"]


def test_advice_ignores_info_and_orders_errors_first():
    fs = [_f("equilibrium", 1, 50, "info"), _f("oscillation", 10, 90),
          _f("fock_leakage", 200, 300, "error")]
    adv = advise(fs)
    assert [(a.key, a.direction) for a in adv] == [("generator.cutoff", "raise"),
                                                   ("train.d_lr", "lower"),
                                                   ("train.g_lr", "lower")]
    assert adv[0].severity == "error" and adv[0].panel == "trace"


def test_every_finding_kind_has_exactly_one_panel_and_strangers_are_refused():
    assert set(KIND_PANEL) == set(FindingKind)
    assert set(KIND_PANEL.values()) <= set(PANELS)
    assert panel_of("fock_leakage") == "trace" and panel_of(FindingKind.KEEP) == "sweep"
    with pytest.raises(ValueError, match="'fock_leak' is not a valid FindingKind"):
        panel_of("fock_leak")
    with pytest.raises(ValueError, match="'mode_colapse' is not a valid FindingKind"):
        Finding("mode_colapse", "warning", "r", "typo")


def test_finding_kinds_are_spelt_once_in_the_code():
    """A finding kind's string lives in qgan/vocabulary.py only; analysis, reports and jobs use
    the members (issue 11: `grep` for a kind finds its one definition). A few kinds share their
    word with another vocabulary (a steps column "nonfinite", the event "checkpoint_failed",
    the verdict "never_fit", the stop cause "crash"); those words may be spelt for that
    other meaning, so the check covers the kinds no other vocabulary uses. A JSON field name
    ("keep": the run to keep) is not a kind either."""
    import re
    from pathlib import Path

    from qgan import schema
    from qgan.vocabulary import StopCause, Verdict
    other = ({f.name for t in schema.SCHEMAS.values() for f in t} | set(schema.EVENT_KINDS)
             | set(Verdict) | set(StopCause))
    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("analysis", "reports", "jobs") for p in (root / d).rglob("*")
               if p.suffix in (".py", ".j2", ".js")]
    own = [k for k in FindingKind if k.value not in other]
    assert len(own) >= 25
    for kind in own:
        spelt = [str(p.relative_to(root)) for p in sources
                 if re.search(rf"[\"']{kind.value}[\"'](?!\s*:)", p.read_text())]
        assert spelt == [], (kind.value, spelt)


def test_merge_ranges():
    assert merge_ranges([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]) == [(1, 9), (20, 30)]


def _sweep(tmp_path, keep_best=True):
    # g_lr 0.01 x 2 seeds (good), 0.05 x 2 seeds (worse), one leaking run with the best W1
    spec = [("a", 0.01, 1, 0.05, {}), ("b", 0.01, 2, 0.07, {}), ("c", 0.05, 1, 0.3, {}),
            ("d", 0.05, 2, 0.35, {}), ("e", 0.02, 1, 0.02, {"leak_from": 1, "leak_level": 0.4})]
    plans = [Plan(name=n, steps=300, final_w1=w, seed=s, samples=False,
                  config={"train.g_lr": lr, "run.seed": s}, **kw)
             for n, lr, s, w, kw in spec]
    root = write_experiment(tmp_path / "exp", plans)
    for i, (_, _, _, w, _) in enumerate(spec):
        write_checkpoints(root / f"task-{i:03d}", [250, 300],
                          best=(300, w) if keep_best else None)
    return root


def test_keep_is_the_best_trustworthy_run_with_its_checkpoint(tmp_path):
    d = diagnose_path(_sweep(tmp_path))
    by = {r.run.name: r for r in d.runs}
    assert by["e"].verdict == "leaking"
    assert d.keep == "a" and by["a"].best.kept
    assert str(by["a"].best.checkpoint) in d.keep_reason
    assert not [f for f in d.findings if f.kind == "keep"]


def test_keep_warns_when_no_best_checkpoint_survives(tmp_path):
    root = _sweep(tmp_path, keep_best=False)
    for run in root.glob("task-*"):
        shutil.rmtree(run / "checkpoints")
    d = diagnose_path(root)
    assert d.keep == "a"
    (w,) = [f for f in d.findings if f.kind == "keep"]
    assert w.severity == "warning" and "best checkpoint is gone" in w.summary


def test_keep_prefers_a_trustworthy_run_to_a_kept_artefact(tmp_path):
    root = _sweep(tmp_path)
    for name in ("task-000", "task-001", "task-002", "task-003"):
        shutil.rmtree(root / name / "checkpoints")  # only the leaking run "e" kept its best
    d = diagnose_path(root)
    assert d.keep == "a" and "warning: its best checkpoint is gone" in d.keep_reason
    assert {r.run.name: r.best.kept for r in d.runs}["e"]


def test_settings_mean_spread_and_significance(tmp_path):
    d = diagnose_path(_sweep(tmp_path))
    by = {tuple(s["values"].items()): s for s in d.settings}
    good = by[(("train.g_lr", 0.01),)]
    finals = {r.run.name: r.numbers["final_w1"] for r in d.runs}
    assert good["runs"] == ["a", "b"] and good["n_seeds"] == 2
    assert good["mean"] == pytest.approx((finals["a"] + finals["b"]) / 2)
    assert good["spread"] == pytest.approx(abs(finals["a"] - finals["b"]) / 2 ** 0.5)
    assert by[(("train.g_lr", 0.02),)]["spread"] is None  # one seed: no spread
    (sep,) = d.separation
    assert sep["key"] == "train.g_lr" and sep["max_p"] == 0.1 and sep["min_effect"] == 0.5
    assert sep["significant"] == (sep["p"] <= 0.1 and sep["effect"] >= 0.5)
    effects = [f for f in d.findings if f.kind == "hyperparameter_effect"]
    assert len(effects) == int(sep["significant"])


def test_diagnose_json_carries_the_contract(tmp_path, capsys):
    root = _sweep(tmp_path)
    assert main(["diagnose", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["keep"] == "a" and data["keep_reason"]
    runs = {r["name"]: r for r in data["runs"]}
    assert runs["e"]["verdict"] == "leaking" and isinstance(runs["e"]["flags"], list)
    assert runs["a"]["best"]["kept"] is True
    assert runs["a"]["best"]["checkpoint"].endswith("task-000/checkpoints/best-000001")
    assert runs["e"]["advice"][0]["key"] == "generator.cutoff"
    assert set(runs["e"]["advice"][0]) >= {"text", "key", "direction", "steps", "evidence",
                                           "kinds", "panel"}
    assert [h["name"] for h in data["headlines"]] == [h.name for h in HEADLINES]
    assert {s["metric"] for s in data["settings"]} == {"final_w1"}
    assert all("significant" in s for s in data["separation"])
    assert main(["diagnose", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("keep: a: best w1_mean")


@pytest.mark.parametrize("text", [
    "[1, 2]", "{not json", '{"best": "best-000001"}',
    '{"best": {"folder": "best-000001", "step": 5, "files": "garbage", "value": "x"}}',
    '{"best": {"folder": "best-000001", "step": 5, "files": {"../../x": "00"}}}',
    '{"checkpoints": [{"folder": "ckpt-000001", "step": "300"}, 7]}',
])
def test_a_damaged_manifest_never_stops_the_postmortem(tmp_path, text):
    run = write_run(tmp_path / "r", Plan(steps=300))
    write_checkpoints(run, [300], best=(300, 0.05))
    (run / "checkpoints" / "manifest.json").write_text(text)
    rd = diagnose_path(run).runs[0]
    assert not [f for f in rd.findings if f.kind == "analysis_error"]
    b = rd.best
    assert b.step in (5, 300)
    if b.step == 5:  # the manifest's best entry is read but cannot be verified
        assert not b.kept and "cannot be used" in b.note
    else:  # the evals decide; ckpt-000001 is still described by its own checksums.json
        assert b.kept and b.checkpoint == run / "checkpoints" / "ckpt-000001"


def test_a_shorter_run_is_compared_with_the_kept_run_at_equal_steps(tmp_path):
    """A run given 500 steps is not a worse setting because the kept run had 2,000: the
    comparison says how the kept run stood at step 500, and says to train the faster one
    longer when it was ahead there."""
    root = write_experiment(tmp_path / "exp", [
        Plan(name="long", steps=2000, final_w1=0.02, samples=False),
        Plan(name="fast", steps=500, final_w1=0.1, samples=False),
        Plan(name="slow", steps=500, final_w1=0.5, samples=False),
        Plan(name="leaky", steps=500, final_w1=0.1, samples=False, leak_from=1,
             leak_level=0.4)])
    d = diagnose_path(root)
    by = {r.run.name: r for r in d.runs}
    assert d.keep == "long"
    ev = by["long"].run.evals
    then = float(ev.loc[ev["step"] <= 500, "w1_mean"].min())
    assert 0.29 < then < 0.31  # 0.02 + 0.98 exp(-1.25), with the plan's 0.5 % noise
    fast, slow = (versus(by[n], by["long"]) for n in ("fast", "slow"))
    assert fast.startswith(f"best W1 {by['fast'].best.value:.4g} at step ")
    assert fast.endswith(f"; but at equal steps (up to 500) the kept run's best W1 was "
                         f"{then:.4g}: this setting learned faster and only stopped at step "
                         f"500: give it the kept run's 2000 steps before ruling it out")
    assert slow.endswith(f"worse than the kept {by['long'].best.value:.4g}; at equal steps "
                         f"(up to 500) the kept run's best W1 was {then:.4g}")
    # an untrusted run's values are artefacts: no equal-steps clause, let alone advice
    assert by["leaky"].verdict == "leaking" and "equal steps" not in versus(by["leaky"],
                                                                           by["long"])
    # a run as long as the kept one gets no equal-steps clause; the JSON carries the text
    assert "equal steps" not in versus(by["long"], by["fast"])
    runs = {r["name"]: r for r in to_json(d)["runs"]}
    assert runs["fast"]["versus_keep"] == fast and runs["long"]["versus_keep"] is None
