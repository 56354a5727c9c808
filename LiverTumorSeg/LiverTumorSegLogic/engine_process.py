"""Run the segmentation engine in a child Python process that the GUI polls (no Qt, no MRML in here).

As the Slicer AI extensions do, the engine runs out of process: Slicer's own Python (`PythonSlicer`)
runs engine_worker.py on a work folder holding the voxels and a request; a reader thread collects the
child's `LIVERTUMORSEG {json}` progress lines; `state()` is polled from the main thread (a QTimer in
the widget), which also loads the result files. `cancel()` terminates the child and deletes the work
folder; a crash or out-of-memory kill of the child becomes an EngineError with a clear message.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import engine_worker as protocol

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
WORKER_SCRIPT = Path(protocol.__file__).resolve()
STOP_TIMEOUT_S = 2.0
STDERR_TAIL_LINES = 15
OOM_ADVICE = "close other programs, or try fast mode or liver only"
OOM_HINT = f"most likely it ran out of memory: {OOM_ADVICE}"


class EngineError(RuntimeError):
    """The engine process failed without a library error: it crashed, was killed or broke the protocol."""

    def __init__(self, message: str, output: str = "") -> None:
        """`message` says what happened; `output` holds the child's last stderr lines, if any."""
        super().__init__(message + (f". Its last output:\n{output}" if output else ""))
        self.message, self.output = message, output


@dataclass(frozen=True)
class RunState:
    """A snapshot of a run: progress (0..1 and stage text), and once done its result or error."""

    fraction: float = 0.0
    message: str = ""
    done: bool = False
    result: Any = None
    error: BaseException | None = None


def enginePython() -> str:
    """The Python that runs the engine: Slicer's `PythonSlicer` when on the PATH (in Slicer), else this one."""
    return shutil.which("PythonSlicer") or sys.executable


def libraryParentDir() -> str:
    """The folder holding the LiverTumorSegLib package (found without importing it)."""
    spec = importlib.util.find_spec("LiverTumorSegLib")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("cannot find the LiverTumorSegLib package that runs the segmentation")
    return str(Path(list(spec.submodule_search_locations)[0]).parent)


def engineEnvironment() -> dict:
    """This process's environment with LiverTumorSegLib importable and unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([libraryParentDir()] + [p for p in [env.get("PYTHONPATH", "")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def probeDevices(command: list[str] | None = None, timeout: float = 120.0) -> tuple[list[str], str]:
    """(devices that really work for the engine, why CUDA does not), from `engine_worker.py --probe`."""
    argv = (list(command) if command else [enginePython(), str(WORKER_SCRIPT)]) + ["--probe"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=engineEnvironment(),
                              timeout=timeout, **_hiddenConsole())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ["cpu"], f"the device check did not run: {exc}"
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        event = parseLine(line)
        if event and event["event"] == "devices" and isinstance(event.get("devices"), list):
            return [str(d) for d in event["devices"]], str(event.get("reason", ""))
    return ["cpu"], "the device check failed: " + done.stderr.decode("utf-8", "replace").strip()[-300:]


def writeRequest(workDir: Path, voxels: np.ndarray, geometry: dict, segmentKwargs: dict) -> None:
    """Put the voxels (z, y, x) and the request (geometry + `segment` keyword options) into `workDir`."""
    np.save(workDir / protocol.INPUT, np.ascontiguousarray(voxels))
    request = {"geometry": geometry, "segment": segmentKwargs}
    (workDir / protocol.REQUEST).write_text(json.dumps(request))


def readResult(workDir: Path, geometry: dict):
    """The SegmentationResult the child wrote into `workDir` (labels on the input grid)."""
    from LiverTumorSegLib import Geometry, Lesion, SegmentationResult

    info = json.loads((workDir / protocol.RESULT).read_text())
    lesions = [Lesion(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) for d in info["lesions"]]
    return SegmentationResult(
        labels=np.load(workDir / protocol.LABELS), geometry=Geometry(**{k: tuple(v) for k, v in geometry.items()}),
        lesions=lesions, liver_volume_ml=info["liver_volume_ml"], tumor_volume_ml=info["tumor_volume_ml"],
        slice_has_tumor=np.asarray(info["slice_has_tumor"], bool), timings=info["timings"],
        warnings=info["warnings"], device=info["device"], model_set=info.get("model_set", ""),
        models=info.get("models", {}), modality=info.get("modality", "ct"))


def parseLine(line: str) -> dict | None:
    """The event of one protocol line, or None for any other output (logged, never fatal)."""
    if not line.startswith(protocol.PREFIX):
        return None
    try:
        event = json.loads(line[len(protocol.PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def libraryError(kind: str, message: str) -> BaseException:
    """The exception to raise in the parent for an error the child reported."""
    from LiverTumorSegLib import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.LiverTumorSegError):
        return cls(message)
    if kind == "MemoryError" or "Failed to allocate memory" in message:
        return EngineError(f"the segmentation engine ran out of memory ({message or kind}); {OOM_ADVICE}")
    return EngineError(f"the segmentation engine failed: {kind}: {message}")


def exitError(returncode: int, stderrTail: str) -> EngineError:
    """A clear message for a child that ended without reporting a result or an error."""
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        cause = OOM_HINT if -returncode == getattr(signal, "SIGKILL", 9) else "it crashed"
        text = f"the segmentation engine was stopped by signal {name}; {cause}"
    elif returncode == 0:
        text = "the segmentation engine ended without a result"
    else:
        text = f"the segmentation engine exited with code {returncode} without a result"
    return EngineError(text, stderrTail)


class EngineRun:
    """One engine child process on one volume; poll `state()`, stop it with `cancel()`.

    `geometry` holds the library Geometry's fields (spacing, origin, direction) of the (z, y, x) `voxels`.
    """

    def __init__(self, voxels: np.ndarray, geometry: dict, segmentKwargs: dict,
                 command: list[str] | None = None) -> None:
        """Prepare (not start) a run; `command` replaces `[enginePython(), engine_worker.py]` (tests)."""
        self._geometry = {key: [float(v) for v in value] for key, value in geometry.items()}
        self._command = list(command) if command else [enginePython(), str(WORKER_SCRIPT)]
        self._workDir = Path(tempfile.mkdtemp(prefix="LiverTumorSeg-"))
        self._lock = threading.Lock()
        self._state = RunState(message="starting")
        self._event: dict | None = None  # the final "done" / "error" event of the child
        self._cancelled = False
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._finalized = False
        self._progressEvents: deque = deque()  # every (fraction, message) not yet taken by takeProgress()
        try:
            writeRequest(self._workDir, voxels, self._geometry, segmentKwargs)
        except BaseException:
            self._removeWorkDir()
            raise

    @property
    def workDir(self) -> Path:
        """The temporary folder exchanged with the child (removed when the run ends)."""
        return self._workDir

    @property
    def pid(self) -> int | None:
        """Process id of the child once started."""
        return self._proc.pid if self._proc else None

    @property
    def cancelRequested(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancelled

    def start(self) -> "EngineRun":
        """Start the child and its output reader; returns self."""
        stderr = open(self._workDir / "stderr.txt", "wb")
        try:
            self._proc = subprocess.Popen(
                self._command + [str(self._workDir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                env=engineEnvironment(), cwd=str(self._workDir), **_hiddenConsole())
        except OSError as exc:
            self._removeWorkDir()
            raise EngineError(f"cannot start the segmentation engine ({self._command[0]}): {exc}") from exc
        finally:
            stderr.close()
        self._reader = threading.Thread(target=self._readOutput, name="LiverTumorSeg-engine-reader", daemon=True)
        self._reader.start()
        return self

    def cancel(self) -> None:
        """Stop the child now (terminate, then kill after 2 s); the run ends with CancelledError."""
        self._cancelled = True
        self._stopChild()

    def state(self) -> RunState:
        """The latest progress; once the child has ended, its result or error (call from the main thread)."""
        if self._proc is not None and self._proc.poll() is not None and self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)  # output fully read: the final event is known
            self._finalize()
        with self._lock:
            return self._state

    def wait(self, timeout: float | None = None) -> RunState:
        """Block until the child ends (or `timeout` seconds pass); return the state."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.state()

    def _readOutput(self) -> None:
        """Reader thread: turn the child's protocol lines into state; log anything else."""
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            event = parseLine(line)
            if event is None:
                if line.strip():
                    log.info("engine: %s", line)
            elif event["event"] == "progress":
                self._onProgress(event)
            elif event["event"] in ("done", "error"):
                self._event = event
        self._proc.stdout.close()
        self._proc.wait()

    def _onProgress(self, event: dict) -> None:
        """Record a progress event (ignoring malformed ones)."""
        try:
            fraction, message = min(max(float(event["fraction"]), 0.0), 1.0), str(event.get("message", ""))
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._state = replace(self._state, fraction=max(fraction, self._state.fraction), message=message)
            self._progressEvents.append((self._state.fraction, message))

    def takeProgress(self) -> list[tuple[float, str]]:
        """Every progress report since the last call, in order (for callers that want each stage)."""
        with self._lock:
            events = list(self._progressEvents)
            self._progressEvents.clear()
        return events

    def _finalize(self) -> None:
        """Once the child ended: load its result (or build its error), then delete the work folder."""
        if self._finalized:
            return
        self._finalized = True
        outcome: dict = {}
        try:
            outcome = self._outcome()
        except Exception as exc:  # a result that cannot be read is an engine failure, not a crash of Slicer
            outcome = {"error": EngineError(f"cannot read the segmentation engine's result: {exc}")}
        finally:
            self._removeWorkDir()
        with self._lock:
            self._state = replace(self._state, done=True, **outcome)

    def _outcome(self) -> dict:
        """{"result": ...} or {"error": ...} of the ended child."""
        from LiverTumorSegLib.errors import CancelledError

        if self._cancelled:
            return {"error": CancelledError("cancelled: the scene was not changed")}
        event = self._event or {}
        if event.get("event") == "done":
            return {"result": readResult(self._workDir, self._geometry), "fraction": 1.0}
        if event.get("event") == "error":
            log.info("engine traceback:\n%s", event.get("traceback", ""))
            return {"error": libraryError(str(event.get("type", "")), str(event.get("message", "")))}
        return {"error": exitError(self._proc.returncode, self._stderrTail())}

    def _stderrTail(self) -> str:
        """The last lines the child wrote to stderr."""
        path = self._workDir / "stderr.txt"
        if not path.is_file():
            return ""
        lines = path.read_bytes().decode("utf-8", "replace").strip().splitlines()
        return "\n".join(deque(lines, maxlen=STDERR_TAIL_LINES))

    def _stopChild(self) -> None:
        """Terminate the child, kill it if it has not gone within STOP_TIMEOUT_S, and reap it."""
        proc = self._proc
        if proc is None:
            self._finalize()
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.state()

    def _removeWorkDir(self) -> None:
        """Delete the work folder and everything the child wrote."""
        for attempt in range(5):  # Windows may hold a file of a just-ended child for a moment
            shutil.rmtree(self._workDir, ignore_errors=True)
            if not self._workDir.exists():
                return
            time.sleep(0.1)


def _hiddenConsole() -> dict:
    """Popen options that hide the console window of the child on Windows."""
    if os.name != "nt":
        return {}
    info = subprocess.STARTUPINFO()
    info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    return {"startupinfo": info}


def runToCompletion(run: EngineRun, progress: Progress | None = None, cancel: threading.Event | None = None,
                    pollSeconds: float = 0.1):
    """Start `run`, relay progress and honour `cancel` until it ends; return its result or raise its error."""
    run.start()
    while True:
        state = run.wait(pollSeconds)
        for fraction, message in run.takeProgress() if progress is not None else []:
            progress(fraction, message)
            if cancel is not None and cancel.is_set():
                break
        if cancel is not None and cancel.is_set() and not state.done:
            run.cancel()
            state = run.state()
        if state.done:
            if state.error is not None:
                raise state.error
            return state.result
