"""train.graph_optimization: the step's first call really runs the Grappler passes it says."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tensorflow.python.eager import context

from qgan.graph_options import graph_optimization

ROOT = Path(__file__).resolve().parents[1]

# A small graph with a matmul + bias + relu (what the remapper fuses), optimised under `level`;
# TensorFlow logs every Grappler pass it runs (meta_optimizer.cc, VLOG 1).
_PROBE = textwrap.dedent("""
    import sys
    import tensorflow as tf
    from qgan.graph_options import graph_optimization

    @tf.function
    def f(x, w, b):
        return tf.nn.relu(tf.matmul(x, w) + b) * 2.0 + 1.0

    with graph_optimization(sys.argv[1]):
        f(tf.ones([4, 3]), tf.ones([3, 5]), tf.ones([5])).numpy()
""")


def _passes(level: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="0",
               TF_CPP_VMODULE="meta_optimizer=1")
    done = subprocess.run([sys.executable, "-c", _PROBE, level], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line.split("] ", 1)[1].split(":", 1)[0] for line in done.stderr.splitlines()
            if "meta_optimizer.cc" in line and "Graph size after" in line]


@pytest.mark.slow
def test_light_runs_one_round_without_the_gpu_passes_and_full_runs_tensorflows_default():
    light, full = _passes("light"), _passes("full")
    assert light.count("model_pruner") == 1
    assert {"memory_optimizer", "remapper", "layout"}.isdisjoint(light)
    assert {"common_subgraph_elimination", "constant_folding", "arithmetic_optimizer",
            "dependency_optimizer"} <= set(light)
    assert full.count("model_pruner") == 2
    assert {"memory_optimizer", "remapper", "layout"} <= set(full)


def test_call_options_are_restored_after_the_block_and_on_errors():
    ctx = context.context()
    before = ctx.function_call_options.config_proto_serialized
    with graph_optimization("light"):
        inside = ctx.function_call_options.config_proto_serialized
    assert inside != before
    assert ctx.function_call_options.config_proto_serialized == before
    with pytest.raises(RuntimeError, match="boom"):
        with graph_optimization("light"):
            raise RuntimeError("boom")
    assert ctx.function_call_options.config_proto_serialized == before
    with graph_optimization("full"):
        assert ctx.function_call_options.config_proto_serialized == before


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="'light' or 'full'"):
        with graph_optimization("aggressive"):
            pass
