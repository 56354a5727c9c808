"""Shared benchmark helpers: the clinical-size test CT, the machine description, isolated runs with peak RSS.

Nothing here is a test: numbers are printed and saved, never asserted.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / "cache"  # git-ignored
RESULTS = BENCH / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data"
SOURCE_CT = Path("totalseg_example") / "ct_full.nii.gz"  # whole-body CT, 122 x 101 x 112 at 3 mm
QUICK_SOURCE_CT = Path("totalseg_example") / "ct.nii.gz"  # its 30-slice abdominal slab, for --quick
#: A typical LiTS case: 0.8 x 0.8 mm in-plane, 1.5 mm slices (x, y, z).
CLINICAL_SPACING = (0.8, 0.8, 1.5)
RESULT_PREFIX = "BENCH-RESULT "


def data_root(override: str | Path | None = None) -> Path:
    """The shared data folder: `override`, else $LIVERTUMORSEG_SHARED_DATA, else ../shared/data."""
    return Path(override or os.environ.get("LIVERTUMORSEG_SHARED_DATA") or DEFAULT_DATA)


def scaled_spacing(scale: float) -> tuple[float, float, float]:
    """Spacing (x, y, z) mm giving `scale` times the voxels of the clinical grid over the same field of view."""
    f = scale ** (-1.0 / 3.0)
    return tuple(round(s * f, 4) for s in CLINICAL_SPACING)  # type: ignore[return-value]


def clinical_ct(scale: float = 1.0, data: str | Path | None = None, quick: bool = False) -> Path:
    """Path of the test CT (int16 HU, .nii.gz) with `scale` x the clinical voxel count, made once and cached.

    Made from the real shared whole-body CT (3 mm) by linear resampling: scale 1 is
    0.8 x 0.8 x 1.5 mm, 458 x 379 x 224 voxels, the size of a typical LiTS case. `quick` uses the
    30-slice abdominal slab instead (458 x 379 x 60), for smoke runs.
    """
    import SimpleITK as sitk

    out = CACHE / f"{'quick' if quick else 'clinical'}_ct_{scale:g}x.nii.gz"
    if out.is_file():
        return out
    src = data_root(data) / (QUICK_SOURCE_CT if quick else SOURCE_CT)
    if not src.is_file():
        raise FileNotFoundError(f"shared CT not found: {src} (pass --data or set LIVERTUMORSEG_SHARED_DATA)")
    ct = sitk.Cast(sitk.ReadImage(str(src)), sitk.sitkFloat32)
    spacing = scaled_spacing(scale)
    size = [max(1, round(n * s / t)) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing)]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetOrigin(ct.GetOrigin())
    ref.SetDirection(ct.GetDirection())
    img = sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.nii.gz")
    sitk.WriteImage(sitk.Cast(sitk.Round(img), sitk.sitkInt16), str(tmp), True)
    os.replace(tmp, out)
    return out


def image_info(path: Path) -> dict:
    """Size (x, y, z), spacing (x, y, z) mm and voxel count of an image file, read from its header."""
    import SimpleITK as sitk

    r = sitk.ImageFileReader()
    r.SetFileName(str(path))
    r.ReadImageInformation()
    size = list(r.GetSize())
    return {"file": str(path), "size_xyz": size, "spacing_xyz_mm": [round(s, 4) for s in r.GetSpacing()],
            "voxels": int(size[0] * size[1] * size[2]), "megabytes_on_disk": round(path.stat().st_size / 1e6, 1)}


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    """Version of an installed distribution, or "not installed"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    """CPU model, cores, RAM, OS and the versions of everything that affects the numbers."""
    import psutil

    libs = ["livertumorseg", "onnxruntime", "openvino", "torch", "numpy", "SimpleITK", "scipy", "connected-components-3d",
            "dynamic-network-architectures", "onnx"]
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in libs},
    }


def other_load(seconds: float = 1.0, threshold: float = 10.0) -> list[dict]:
    """Other processes using more than `threshold` % of a core over `seconds` (empty = machine idle)."""
    import psutil

    me = {os.getpid(), os.getppid()}
    procs = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(seconds)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct > threshold:
            busy.append({"pid": p.pid, "cpu_percent": round(pct), "cmd": " ".join(p.info["cmdline"] or [])[:120]})
    return busy


def run_isolated(args: list[str], timeout: float = 1800.0, env: dict | None = None) -> dict:
    """Run `python args...` in a fresh process; its result JSON plus wall time and the process's own peak RSS.

    The child prints one line `BENCH-RESULT {json}`. Peak RSS comes from wait4() on that child
    only, so no number leaks from one configuration into the next.
    """
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, cwd=REPO, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark process failed ({proc.returncode}): {' '.join(args)}\n{stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["process_wall_s"] = round(wall, 3)
    result["peak_rss_mb"] = round(usage.ru_maxrss * 1024 / 1e6, 1)  # Linux reports KiB; MB = 10^6 bytes
    return result


def emit(result: dict) -> None:
    """Print a worker's result line for `run_isolated`."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def peak_rss_so_far_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)
