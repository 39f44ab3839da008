"""Config validation at the edge: every problem listed, nothing written, exit status 2."""

from __future__ import annotations

import tomllib

import pytest

from jobs.cli import main
from qgan.config import (Config, ConfigInvalid, config_from_dict, default_config_text, dumps,
                         load_config, parse_override)


def test_default_config_text_is_complete_commented_and_loads(tmp_path):
    text = default_config_text()
    parsed = tomllib.loads(text)
    assert config_from_dict(parsed) == Config()
    assert "# Fock-space cutoff dimension per mode." in text
    # one comment line per key
    n_keys = sum(len(v) for v in parsed.values())
    assert text.count("\n# ") >= n_keys


def test_every_problem_is_listed_with_path_value_and_allowed(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[train]\nsteps = "many"\nbatch_size = 1\nlearning_rate = 0.1\n'
                    '[generator]\nkind = "photonic"\n[colour]\nx = 1\n')
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    messages = sorted(str(e) for e in info.value.errors)
    assert messages == sorted([
        "colour: got {'x': 1}; unknown section; known sections: run, data, generator, "
        "discriminator, loss, train, guard, eval, monitor, checkpoint, metrics, faults",
        "train.learning_rate: got 0.1; unknown key; known keys: steps, batch_size, g_lr, d_lr, "
        "beta1, beta2, g_ema, clip_norm, log_every, xla, "
        "graph_optimization",
        "train.steps: got 'many'; expected an integer",
        "train.batch_size: got 1; must be >= 2",
        "generator.kind: got 'photonic'; allowed: 'quantum', 'classical'",
    ])


def test_cross_field_checks():
    with pytest.raises(ConfigInvalid) as info:
        config_from_dict({"generator": {"modes": 2, "latent_dim": 3},
                          "data": {"target": "file"}, "eval": {"n_samples": 32,
                                                                "save_samples": 64}})
    paths = sorted(e.path for e in info.value.errors)
    assert paths == ["data.path", "eval.save_samples", "generator.latent_dim"]


def test_sweep_section_is_refused_with_a_hint():
    with pytest.raises(ConfigInvalid, match="sweeps are run with `qgan submit`"):
        config_from_dict({"sweep": {"train.g_lr": [0.1, 0.2]}})


def test_overrides_parse_toml_values_and_apply_dotted_paths(tmp_path):
    assert parse_override("train.steps=100") == ("train.steps", 100)
    assert parse_override("run.name=my run") == ("run.name", "my run")
    assert parse_override("generator.hidden=[8, 8]") == ("generator.hidden", [8, 8])
    assert parse_override("monitor.lr_controller=true") == ("monitor.lr_controller", True)
    cfg = load_config(None, ["train.steps=100", "generator.cutoff=9", "run.seed=3"])
    assert (cfg.train.steps, cfg.generator.cutoff, cfg.run.seed) == (100, 9, 3)
    assert config_from_dict(tomllib.loads(dumps(cfg))) == cfg


def test_cli_bad_config_exits_2_without_traceback_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nsteps = -5\n")
    run_dir = tmp_path / "run"
    status = main(["train", str(path), "--run-dir", str(run_dir), "--set", "generator.cutoff=1"])
    err = capsys.readouterr().err
    assert status == 2
    assert "train.steps: got -5; must be >= 1" in err
    assert "generator.cutoff: got 1; must be >= 2" in err
    assert "Traceback" not in err
    assert not run_dir.exists()


def test_cli_missing_and_malformed_files(tmp_path, capsys):
    assert main(["config", "--check", str(tmp_path / "nope.toml")]) == 2
    assert "file not found; `qgan config --default > FILE` writes a starting point" in \
        capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=1")
    assert main(["config", "--check", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_cli_set_without_equals_is_a_user_error(tmp_path, capsys):
    assert main(["config", "--check", str(tmp_path / "x.toml"), "--set", "train.steps"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_total_truncation_needs_the_compiled_backend(tmp_path, capsys):
    assert 'truncation = "mode"' in default_config_text()
    assert load_config(None, ["generator.truncation=\"total\""]).generator.truncation == "total"
    path = tmp_path / "sf.toml"
    path.write_text('[generator]\nbackend = "sf"\ntruncation = "total"\n')
    run_dir = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "generator.truncation: got 'total'; needs generator.backend = 'compiled' " \
        "(Strawberry Fields truncates each mode): set the backend to 'compiled' or the " \
        "truncation to 'mode'" in err
    assert "Traceback" not in err and not run_dir.exists()
    with pytest.raises(ConfigInvalid, match="generator.truncation: got 'sum'; allowed: "
                                            "'mode', 'total'"):
        config_from_dict({"generator": {"truncation": "sum"}})
