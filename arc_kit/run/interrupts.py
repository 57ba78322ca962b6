"""Ctrl-C and SIGTERM during a run: the first one stops it, later ones wait until what finished is written."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from arc_kit.errors import Terminated

log = logging.getLogger(__name__)


class StopSignals:
    """A scope in which SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` (a ``KeyboardInterrupt``
    too), once: the run stops its workers and writes what finished, as after Ctrl-C. Every later one, until the
    scope ends, is logged and ignored. Ctrl-C in a shell signals the whole process group (under ``timeout`` the run
    gets it twice), and users press it again; whatever arrives, the file and the reports of what finished get
    written. Stopping is bounded all the same: a worker slow to stop is killed, the report's pictures stop at the
    budget.

    Once the solving is over (``finishing``), nothing raises any more: what is left is writing what finished.

    Scopes nest: a scope opened inside another (the runner's inside the dry run's, which writes the reports after
    the run) leaves the signals to the outer one, and ``with`` gives the outer one, so an interrupt raised inside
    keeps later ones away until the outer scope ends. On leaving, the previous handlers are back. Only the main
    thread can take signals: elsewhere this does nothing, and a signal ignored when the scope opens (SIGINT in a
    background job) stays ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stopping = False  # an interrupt was raised, or the run is finishing: later ones are ignored
        self.previous: dict[int, Any] = {}  # the handlers this scope replaced

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        handlers = [signal.getsignal(signum) for signum in self.SIGNALS]
        for handler in handlers:
            if isinstance(outer := getattr(handler, "__self__", None), StopSignals):
                return outer
        for signum, handler in zip(self.SIGNALS, handlers, strict=True):
            if handler is not signal.SIG_IGN:
                self.previous[signum] = signal.signal(signum, self._take)
        return self

    def finishing(self) -> None:
        """The solving is over: from now on an interrupt is ignored (the rest is writing what finished)."""
        self.stopping = True

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _take(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            log.warning("%s while stopping: ignored, the file and the reports of what finished are being written",
                        signal.Signals(signum).name)
            return
        self.stopping = True
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
