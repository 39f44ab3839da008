"""Import TensorFlow without matplotlib: imported for that effect before anything else loads TF.

Why: `import tensorflow` loads Keras, and Keras (keras/src/visualization) imports
`matplotlib.pyplot` whenever matplotlib is installed, which adds ~0.6 s to every attempt of
every run (BENCHMARKS.md, "Attempt start-up"). The trainer never draws, but matplotlib is in
the environment as soon as `qgan figures` is wanted (the `[figures]` extra). So while
TensorFlow is first imported, `matplotlib` is made unimportable (a None entry in sys.modules
makes `import matplotlib` raise ImportError, which Keras catches and then leaves its image
plotting helpers without pyplot); the entry is removed right after, so a later
`import matplotlib` in the same process works as usual. A process that already imported
matplotlib is left alone (there is nothing left to save).
"""

from __future__ import annotations

import sys

BLOCKED = ("matplotlib",)


def import_tensorflow():
    """The tensorflow module, imported (once) without matplotlib."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    blocked = [name for name in BLOCKED if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import tensorflow
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return tensorflow


import_tensorflow()
