"""How much graph optimisation (Grappler) the compiled training step gets: `train.graph_optimization`.

Why it matters: every requeued attempt traces the step again, and TensorFlow optimises the
traced graph at its first call. With TensorFlow's defaults that optimisation (two rounds of
~15 Grappler passes over a ~5,000-node graph) was ~0.85 s of the ~2.4 s between an attempt's
start and its first trained step (issue 14). The passes that cost most here are built for
GPUs and large convolutional graphs: the memory optimizer (recomputation and swapping), the
layout optimizer (NHWC/NCHW), the remapper (oneDNN fusions, which did not make this small step
faster) and the second round. "light" turns those off for the step's calls only, keeping
pruning, common-subgraph elimination, constant folding, arithmetic and dependency
optimisation; "full" is TensorFlow's default. Figures: BENCHMARKS.md, issue 14,
`benchmarks/startup.py --graph-options`.

TensorFlow has no public per-function Grappler setting (`tf.config.optimizer` is process-wide
and cannot set the rounds or the memory optimizer), so the setting travels as the call's
`config_proto` attribute, through `tensorflow.python.eager.context.function_call_options`,
thread-local and restored after the call; the tests check that the step's first call really
runs one round.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

_RC = rewriter_config_pb2.RewriterConfig


def light_config(base: bytes) -> config_pb2.ConfigProto:
    """`base` (a serialized ConfigProto) with the "light" Grappler settings."""
    proto = config_pb2.ConfigProto()
    proto.ParseFromString(base)
    rw = proto.graph_options.rewrite_options
    rw.meta_optimizer_iterations = _RC.ONE
    rw.memory_optimization = _RC.NO_MEM_OPT
    rw.layout_optimizer = _RC.OFF
    rw.remapping = _RC.OFF
    return proto


@contextlib.contextmanager
def graph_optimization(level: str) -> Iterator[None]:
    """Calls of tf.functions inside this block get `level`'s Grappler settings ("light" or
    "full"); the thread's previous call options are restored on exit."""
    if level == "full":
        yield
        return
    if level != "light":
        raise ValueError(f"graph optimization level must be 'light' or 'full', not {level!r}")
    ctx = context.context()
    old = ctx.function_call_options
    new = copy.copy(old)
    new.config_proto_serialized = light_config(old.config_proto_serialized)
    ctx.function_call_options = new
    try:
        yield
    finally:
        ctx.function_call_options = old
