"""Run the segmentation engine in a child Python process that the GUI polls (no Qt, no MRML in here).

As the Slicer AI extensions do, the engine runs out of process: Slicer's own Python (`PythonSlicer`)
runs engine_worker.py on a work folder holding the voxels and a request; a reader thread collects the
child's `LIVERTUMORSEG {json}` progress lines; `state()` is polled from the main thread (a QTimer in
the widget), which also loads the result files. Nothing here blocks the caller: `cancel()` closes the
child's stdin and kills the launcher's whole process tree (proctree.py) and returns at once; the run
reports done only once every process of it is gone, and then deletes the work folder. A crash or
out-of-memory kill of the child becomes an EngineError with a clear message (the worker announces its
own pid, so a launcher's "exit abnormally" exit code 1 is recognised as the engine dying).
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
from . import proctree

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
WORKER_SCRIPT = Path(protocol.__file__).resolve()
READER_GRACE_S = 5.0  # after the child ended, how long its output may still be arriving
STDERR_TAIL_LINES = 15
OOM_ADVICE = "close other programs, or segment the liver only, or run on a computer with more memory"
OOM_HINT = f"most likely it ran out of memory: {OOM_ADVICE}"
#: What CTKAppLauncher (Slicer's PythonSlicer) prints when the program it launched crashed or was killed.
LAUNCHER_ABNORMAL_EXIT = "exit abnormally"


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


@dataclass(frozen=True)
class EngineProbe:
    """What the engine can use here: its devices (["cpu"] or ["cpu", "cuda"]), why CUDA cannot ("" when it can),
    and what runs the networks on the CPU (e.g. "OpenVINO 2025.3.0 (float32; ONNX Runtime 1.19.2 as fallback)")."""

    devices: list[str]
    reason: str
    cpuEngine: str = ""


def probeEngine(command: list[str] | None = None, timeout: float = 120.0) -> EngineProbe:
    """The engine's devices and CPU engine, from `engine_worker.py --probe` (run once: it starts the engine)."""
    argv = (list(command) if command else [enginePython(), str(WORKER_SCRIPT)]) + ["--probe"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=engineEnvironment(),
                              timeout=timeout, **proctree.popenOptions())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return EngineProbe(["cpu"], f"the device check did not run: {exc}")
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        event = parseLine(line)
        if event and event["event"] == "devices" and isinstance(event.get("devices"), list):
            return EngineProbe([str(d) for d in event["devices"]], str(event.get("reason", "")),
                               str(event.get("cpuEngine", "")))
    return EngineProbe(["cpu"], "the device check failed: " + done.stderr.decode("utf-8", "replace").strip()[-300:])


def probeDevices(command: list[str] | None = None, timeout: float = 120.0) -> tuple[list[str], str]:
    """(devices that really work for the engine, why CUDA does not), from `engine_worker.py --probe`."""
    probe = probeEngine(command, timeout)
    return probe.devices, probe.reason


@dataclass(frozen=True)
class EngineTask:
    """What the engine does beyond `segment(volume, **kwargs)`: inside a given liver, or one lesion at a point.

    `liverMask` (z, y, x, non-zero = liver) replaces the liver stage (Find tumors, Add lesion);
    `lesionAt` (x, y, z voxel index) asks for the one lesion there (Add lesion): the result is a bool mask.
    """

    liverMask: np.ndarray | None = None
    lesionAt: tuple[int, int, int] | None = None


def writeRequest(workDir: Path, voxels: np.ndarray, geometry: dict, segmentKwargs: dict,
                 task: EngineTask = EngineTask()) -> None:
    """Put the voxels (z, y, x), any liver mask and the request (geometry + `segment` options) into `workDir`."""
    np.save(workDir / protocol.INPUT, np.ascontiguousarray(voxels))
    if task.liverMask is not None:
        np.save(workDir / protocol.LIVER_MASK, np.ascontiguousarray(task.liverMask, dtype=np.uint8))
    request = {"geometry": geometry, "segment": segmentKwargs,
               "lesion_at": [int(v) for v in task.lesionAt] if task.lesionAt is not None else None}
    (workDir / protocol.REQUEST).write_text(json.dumps(request))


def readResult(workDir: Path, geometry: dict):
    """The SegmentationResult the child wrote into `workDir` (labels on the input grid); a bool mask for lesion_at."""
    from LiverTumorSegLib import Geometry, Lesion, SegmentationResult

    info = json.loads((workDir / protocol.RESULT).read_text())
    if info.get("lesion_at"):
        return np.load(workDir / protocol.LABELS).astype(bool)
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


def exitError(returncode: int, stderrTail: str, launched: bool = False) -> EngineError:
    """A clear message for a child that ended without reporting a result or an error.

    `launched`: the child was a launcher (PythonSlicer) whose own child, the engine, died: its exit code
    says nothing, and an engine that dies without reporting an error was killed or crashed.
    """
    if launched or LAUNCHER_ABNORMAL_EXIT in stderrTail:
        text = ("the segmentation engine stopped abruptly without reporting an error: it crashed or the "
                f"system killed it; {OOM_HINT}")
    elif returncode < 0:
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
                 command: list[str] | None = None, task: EngineTask = EngineTask()) -> None:
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
        self._workerPid: int | None = None  # the engine's own pid, as the worker reported it (not the launcher's)
        self._doomed: list = []  # the processes cancel() killed (psutil), until they are all gone
        self._endedAt: float | None = None
        try:
            writeRequest(self._workDir, voxels, self._geometry, segmentKwargs, task)
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
    def workerPid(self) -> int | None:
        """Process id of the engine itself (under Slicer the launcher's child), once it has reported it."""
        return self._workerPid

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
                env=engineEnvironment(), cwd=str(self._workDir), **proctree.popenOptions())
        except OSError as exc:
            self._removeWorkDir()
            raise EngineError(f"cannot start the segmentation engine ({self._command[0]}): {exc}") from exc
        finally:
            stderr.close()
        self._reader = threading.Thread(target=self._readOutput, name="LiverTumorSeg-engine-reader", daemon=True)
        self._reader.start()
        return self

    def cancel(self) -> None:
        """Kill the engine's whole process tree now, without waiting; the run ends with CancelledError.

        Poll `state()` (or `wait()`) until it is done: that happens once no process of the run is left.
        """
        if self._cancelled:
            return
        self._cancelled = True
        proc = self._proc
        if proc is None:
            self._finalize()
            return
        self._doomed = proctree.snapshot(proc.pid, [self._workerPid] if self._workerPid else [])
        proctree.killAll(self._doomed, self._groupId())
        self._closeStdin()  # the worker's guard: it exits when its stdin closes, whoever else holds the pipe

    def _groupId(self) -> int | None:
        """The POSIX process group of the run (the launcher leads its own; see proctree.popenOptions)."""
        return self._proc.pid if self._proc is not None and os.name != "nt" else None

    def _closeStdin(self) -> None:
        """Close our end of the child's stdin (ignored if already closed)."""
        try:
            if self._proc is not None and self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass

    def _ended(self) -> bool:
        """True once the child has exited, its output is read, and (after a cancel) none of its processes runs."""
        if self._proc is None or self._proc.poll() is None:
            return False
        if self._cancelled and not proctree.allGone(self._doomed, self._groupId()):
            return False
        if self._endedAt is None:
            self._endedAt = time.monotonic()
        readerDone = self._reader is None or not self._reader.is_alive()
        return readerDone or time.monotonic() - self._endedAt > READER_GRACE_S

    def state(self) -> RunState:
        """The latest progress; once the run has ended, its result or error (never blocks; main thread)."""
        if not self._finalized and self._ended():
            self._finalize()
        with self._lock:
            return self._state

    def wait(self, timeout: float | None = None) -> RunState:
        """Block until the run is done (or `timeout` seconds pass); return the state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state()
            if state.done or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(0.02 if deadline is None else max(0.0, min(0.02, deadline - time.monotonic())))

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
            elif event["event"] == "started" and isinstance(event.get("pid"), int):
                self._workerPid = event["pid"]
            elif event["event"] in ("done", "error"):
                self._event = event
        self._proc.stdout.close()

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
            self._closeStdin()
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
        launched = self._workerPid is not None and self._workerPid != self._proc.pid
        return {"error": exitError(self._proc.returncode, self._stderrTail(), launched)}

    def _stderrTail(self) -> str:
        """The last lines the child wrote to stderr."""
        path = self._workDir / "stderr.txt"
        if not path.is_file():
            return ""
        lines = path.read_bytes().decode("utf-8", "replace").strip().splitlines()
        return "\n".join(deque(lines, maxlen=STDERR_TAIL_LINES))

    def _removeWorkDir(self) -> None:
        """Delete the work folder and everything the child wrote."""
        for attempt in range(5):  # Windows may hold a file of a just-ended child for a moment
            shutil.rmtree(self._workDir, ignore_errors=True)
            if not self._workDir.exists():
                return
            time.sleep(0.1)


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
