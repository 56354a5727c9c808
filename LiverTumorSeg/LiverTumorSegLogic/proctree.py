"""Stop an engine process and everything it started, without waiting (no Qt, no MRML).

In Slicer the engine is started as `PythonSlicer engine_worker.py`: PythonSlicer is a CTKAppLauncher
that runs `python-real` as its child, shares its pipes, forwards no signal and uses no job object, so
terminating the launcher leaves the real engine running. `snapshot()` lists the launcher and all its
descendants (psutil, a first-use dependency: Slicer 5.8 / 5.10 do not bundle it) plus any process the
worker reported itself as; `killAll()` kills them at once; `survivors()` says, without blocking, which
are still alive. On POSIX the launcher also leads its own process group (`popenOptions()`), which is
killed as a whole as well, so the tree stops even where psutil is missing.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Iterable

try:
    import psutil
except ImportError:  # before the first-use install; the process-group kill still works on POSIX
    psutil = None


def popenOptions() -> dict:
    """subprocess.Popen options for the engine: its own process group (POSIX) and no console window (Windows)."""
    if os.name == "nt":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        return {"startupinfo": info}
    return {"start_new_session": True}


def snapshot(rootPid: int, extraPids: Iterable[int] = ()) -> list:
    """psutil.Process objects of `rootPid`, its descendants and `extraPids` (those alive now; [] without psutil)."""
    if psutil is None:
        return []
    found: dict[int, object] = {}
    for pid in [rootPid, *extraPids]:
        try:
            process = psutil.Process(pid)
            found.setdefault(process.pid, process)
            for child in process.children(recursive=True):
                found.setdefault(child.pid, child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def killAll(processes: list, groupId: int | None = None) -> None:
    """Send SIGKILL (TerminateProcess on Windows) to every process and to process group `groupId`; never blocks."""
    if groupId is not None and os.name != "nt":
        try:
            os.killpg(groupId, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in processes:
        try:
            process.kill()
        except Exception:  # psutil.NoSuchProcess / AccessDenied: already gone or not ours
            continue


def survivors(processes: list) -> list:
    """The processes of `processes` still running (zombies count as gone); does not wait."""
    if psutil is None:
        return []
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def allGone(processes: list, groupId: int | None = None) -> bool:
    """True once none of `processes` runs (psutil), or without psutil once POSIX group `groupId` is empty."""
    if psutil is not None:
        return not survivors(processes)
    if groupId is None or os.name == "nt":
        return True
    try:
        os.killpg(groupId, 0)
    except (ProcessLookupError, PermissionError):
        return True
    return False
