"""The generator-kind registry (qgan/generator_kinds.py): the one place that turns
generator.kind / generator.output into a kind and says what each kind can do."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from qgan.config import Config
from qgan.generator_kinds import KINDS, GeneratorKind, info, info_of_config, kind_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("kind", "output", "expected"), [
    ("quantum", "expectation", GeneratorKind.QUANTUM),
    ("quantum", None, GeneratorKind.QUANTUM),
    ("quantum", "homodyne", GeneratorKind.HOMODYNE),
    ("quantum", "heterodyne", GeneratorKind.HETERODYNE),
    ("classical", "homodyne", GeneratorKind.CLASSICAL),  # output only qualifies a circuit
    ("classical", None, GeneratorKind.CLASSICAL),
    ("mlp", None, None), (None, None, None), (3, "homodyne", None), ("QUANTUM", None, None),
])
def test_kind_of_reads_the_two_config_keys(kind, output, expected):
    assert kind_of(kind, output) is expected


def test_what_each_kind_can_do():
    assert {k: (i.circuit, i.measured, i.outcomes_per_mode, i.compiled_only, i.density,
                i.capacity) for k, i in KINDS.items()} == {
        GeneratorKind.QUANTUM: (True, False, 0, False, False, "generator.cutoff"),
        GeneratorKind.HOMODYNE: (True, True, 1, True, True, "generator.cutoff"),
        GeneratorKind.HETERODYNE: (True, True, 2, True, True, "generator.cutoff"),
        GeneratorKind.CLASSICAL: (False, False, 0, False, False, "generator.hidden"),
    }
    assert all(i.kind is k for k, i in KINDS.items())


def test_every_capacity_key_is_a_config_key():
    cfg = Config()
    keys = {f"{section.name}.{f.name}" for section in dataclasses.fields(cfg)
            for f in dataclasses.fields(getattr(cfg, section.name))}
    assert {i.capacity for i in KINDS.values()} <= keys


def test_info_of_a_config_and_of_a_run_config_agree():
    cfg = Config()
    assert info(cfg.generator) is KINDS[GeneratorKind.QUANTUM]
    cfg.generator.output = "homodyne"
    assert info(cfg.generator) is KINDS[GeneratorKind.HOMODYNE]
    assert info_of_config({"generator.kind": "quantum", "generator.output": "homodyne"}) \
        is KINDS[GeneratorKind.HOMODYNE]
    assert info_of_config({"generator.kind": "classical"}) is KINDS[GeneratorKind.CLASSICAL]
    assert info_of_config({"generator.kind": ["quantum"]}) is None  # a damaged config.toml
    assert info_of_config({}) is None
    cfg.generator.kind = "nonsense"
    with pytest.raises(ValueError, match="unknown generator.kind 'nonsense'"):
        info(cfg.generator)


def test_no_layer_compares_generator_kind_strings():
    """Code asks the registry; spelling `generator.kind == "quantum"` again would bring back
    the scattered comparisons issue 23 removed."""
    pattern = re.compile(r'(generator|\bg)\.(kind|output)\s*[!=]=|generator\.(kind|output)"\)'
                         r'\s*[!=]=|\bgen\s*[!=]=\s*"')
    found = [f"{p.relative_to(ROOT)}:{n}" for package in ("qgan", "analysis", "reports", "jobs")
             for p in sorted((ROOT / package).rglob("*.py")) if p.name != "generator_kinds.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
