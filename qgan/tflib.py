"""TensorFlow, imported without the optional libraries Keras would pull in with it.

Keras 3 imports scikit-learn (its estimator wrappers) and matplotlib (its plotting helpers)
at `import tensorflow` whenever they are installed: 0.6 s each, paid by every requeued
attempt before its first step (measured in issue 14 and issue 20). The trainer uses neither
through Keras, so they are hidden for the duration of the import and importable as usual
afterwards. Every TensorFlow module of the trainer imports `tf` (and `keras`) from here, so whichever comes
first pays only for TensorFlow.
"""

from __future__ import annotations

import sys

# what Keras imports optionally at start-up (a `try: import ...` each) and the trainer never
# needs through Keras
KERAS_OPTIONAL = ("sklearn", "matplotlib")


def _import_tensorflow():
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return sys.modules["tensorflow"], sys.modules["keras"]
    hidden = [name for name in KERAS_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError while this holds
    try:
        import keras  # lazy: with Keras' optional imports hidden
        import tensorflow  # lazy: with Keras' optional imports hidden
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return tensorflow, keras


tf, keras = _import_tensorflow()


def configure_tensorflow() -> None:
    """Deterministic CPU ops, quiet logs. Called once per process before any model exists
    (the trainer, `qgan sample`)."""
    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
