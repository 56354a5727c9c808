"""Run one long computation in a worker thread that a GUI timer polls (no Qt in here).

The worker must not touch the MRML scene: it gets a progress callback and a cancel event, and its
result (or exception) is handed back through `state()` for the main thread to apply.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

Progress = Callable[[float, str], None]
Work = Callable[[Progress, threading.Event], Any]


@dataclass(frozen=True)
class RunState:
    """A snapshot of a background run: progress (0..1 and stage text), and once done its result or error."""

    fraction: float = 0.0
    message: str = ""
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class BackgroundRun:
    """`work(progress, cancel)` in a daemon thread; poll `state()`, stop it with `cancel()`."""

    def __init__(self, work: Work, name: str = "LiverTumorSeg") -> None:
        """Prepare (not start) a run of `work`."""
        self._work = work
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._state = RunState()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "BackgroundRun":
        """Start the worker thread; returns self."""
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop (it raises CancelledError at its next progress check)."""
        self._cancel.set()

    @property
    def cancelRequested(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancel.is_set()

    def state(self) -> RunState:
        """The latest progress, and the outcome once the work has finished."""
        with self._lock:
            return self._state

    def wait(self, timeout: float | None = None) -> RunState:
        """Block until the work finishes (or `timeout` seconds pass); return the state."""
        self._thread.join(timeout)
        return self.state()

    def _progress(self, fraction: float, message: str) -> None:
        """Progress callback handed to the work (called from the worker thread)."""
        with self._lock:
            self._state = replace(self._state, fraction=float(fraction), message=str(message))

    def _run(self) -> None:
        """Thread body: run the work and record its result or exception."""
        try:
            outcome = {"result": self._work(self._progress, self._cancel)}
        except BaseException as exc:  # handed to the GUI thread, which reports it
            outcome = {"error": exc}
        with self._lock:
            self._state = replace(self._state, done=True, **outcome)
