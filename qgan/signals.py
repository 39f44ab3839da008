"""The one piece of global state: which stop signal arrived.

SLURM preempts with SIGTERM and warns of a time limit with the `--signal` signal (USR2 under
submitit). Python runs handlers between bytecodes only, so the handler just records the signal;
the trainer acts on it at the next step boundary.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGUSR1, signal.SIGINT)


class StopFlag:
    """Installed for the length of a training attempt; restores the previous handlers after."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.received_at: float | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            self.received_at = time.time()

    @property
    def is_set(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> "StopFlag":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
