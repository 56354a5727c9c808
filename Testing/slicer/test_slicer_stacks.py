"""The engine under the Python stacks that Slicer itself bundles, run through the module's engine process.

Slicer 5.8 ships Python 3.9.10 with numpy 1.26.4, scipy 1.13.1 and SimpleITK 2.3.1; Slicer 5.10 ships
Python 3.12.10 with numpy 2.0.2, scipy 1.13.1 and SimpleITK 2.5.2 (Slicer's CMakeLists.txt and
SuperBuild/External_*.cmake at v5.8.0 and v5.10.0). `.ci/run` builds one virtual environment per stack
(.venv-slicer5.8, .venv-slicer5.10) with the slicer-runtime pins (OpenVINO included where its marker holds)
and sets LIVERTUMORSEG_REQUIRE_SLICER_STACKS=1, so that these tests run there instead of skipping;
LIVERTUMORSEG_SLICER5_8_PYTHON / ..._5_10_PYTHON point elsewhere.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from packaging.requirements import Requirement

from LiverTumorSegLib import Geometry, segment
from LiverTumorSegLib.data import DEMO_CT
from LiverTumorSegLogic import EngineRun
from LiverTumorSegLogic import dependencies
from LiverTumorSegLogic.engine_process import WORKER_SCRIPT, engineEnvironment, probeDevices, probeEngine

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

REPO = Path(__file__).resolve().parents[2]


def _stacks() -> dict[str, dict[str, str]]:
    """Slicer version -> {"python": "3.9", "numpy": "1.26.4", ...} from pyproject.toml's slicer-stacks table."""
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["livertumorseg"]["slicer-stacks"]
    return {slicer: {"python": stack["python"], **dict(r.split("==") for r in stack["packages"])}
            for slicer, stack in table.items()}


STACKS = _stacks()
VERSIONS = ("import json, sys, numpy, scipy, SimpleITK; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
            "'numpy': numpy.__version__, 'scipy': scipy.__version__, 'SimpleITK': SimpleITK.Version.VersionString()}))")


def stack_python(slicer: str) -> str:
    """The Python of the virtual environment holding Slicer `slicer`'s bundled stack (skip if there is none)."""
    variable = "LIVERTUMORSEG_SLICER" + slicer.replace(".", "_") + "_PYTHON"
    path = Path(os.environ.get(variable, REPO / f".venv-slicer{slicer}" / "bin" / "python"))
    if not path.exists():
        if os.environ.get("LIVERTUMORSEG_REQUIRE_SLICER_STACKS") == "1":
            pytest.fail(f"no Python with Slicer {slicer}'s stack at {path} (see .ci/run)")
        pytest.skip(f"no Python with Slicer {slicer}'s stack at {path}: build it as .ci/run does, or set {variable}")
    return str(path)


@pytest.fixture(scope="module")
def demo_reference():
    """The demo CT and the main environment's segmentation of it, on ONNX Runtime as Slicer's first-use install runs it."""
    image = sitk.ReadImage(str(DEMO_CT))
    return image, segment(image, cpu_engine="onnxruntime")


@pytest.mark.parametrize("slicer", list(STACKS))
def test_stack_is_the_one_slicer_bundles(slicer):
    out = subprocess.run([stack_python(slicer), "-c", VERSIONS], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == STACKS[slicer]


@pytest.mark.parametrize("slicer", list(STACKS))
def test_every_module_and_library_file_compiles_under_the_slicer_python(slicer):
    files = sorted((REPO / "LiverTumorSegLib").rglob("*.py")) + sorted((REPO / "LiverTumorSeg").rglob("*.py"))
    code = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f, encoding='utf-8').read(), f, 'exec')"
    out = subprocess.run([stack_python(slicer), "-c", code, *map(str, files)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


#: Imports the library (all of it) and the logic modules that need no Slicer, skipping the logic package's
#: __init__ (it imports slicer, which has no wheel for these Pythons).
IMPORTS = """
import sys, types
logic = types.ModuleType("LiverTumorSegLogic")
logic.__path__ = [sys.argv[1]]
sys.modules["LiverTumorSegLogic"] = logic
import LiverTumorSegLib, LiverTumorSegLib.cli, LiverTumorSegLib.evaluation, LiverTumorSegLib.metrics
import LiverTumorSegLogic.engine_process, LiverTumorSegLogic.presets, LiverTumorSegLogic.dependencies
import LiverTumorSegLogic.slicercompat
"""


@pytest.mark.parametrize("slicer", list(STACKS))
def test_library_and_engine_modules_import_under_the_slicer_python(slicer):
    out = subprocess.run([stack_python(slicer), "-c", IMPORTS, str(WORKER_SCRIPT.parent)], capture_output=True,
                         text=True, env=engineEnvironment())
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("slicer", list(STACKS))
def test_engine_process_under_the_slicer_stack_gives_the_main_environment_labels(slicer, demo_reference):
    image, reference = demo_reference
    command = [stack_python(slicer), str(WORKER_SCRIPT)]
    # ONNX Runtime on both sides: labels are compared exactly, and OpenVINO's differ from ONNX Runtime's by a few
    # voxels (measured on the demo CT: 40395 vs 40450 liver voxels with OpenVINO 2025.3.0 / ONNX Runtime 1.19.2).
    kwargs = {"cpu_engine": "onnxruntime"}
    run = EngineRun(sitk.GetArrayFromImage(image), asdict(Geometry.of(image)), kwargs, command).start()
    final = run.wait(600)
    assert final.done and final.error is None, final.error
    assert np.array_equal(final.result.labels, reference.labels)
    assert (final.result.labels == 1).sum() > 1000
    assert [lesion.row() for lesion in final.result.lesions] == [lesion.row() for lesion in reference.lesions]
    assert probeDevices(command) == (["cpu"], "ONNX Runtime has no CUDA provider here")


#: Runs LiverTumorSegLib.runtime.OpenVinoModel (every OpenVINO call the engine makes: Core, read_model, reshape,
#: compile_model with its CPU properties, a run, release_memory) on the worker's 69-byte identity model.
OPENVINO_API = """
import sys, tempfile, os, numpy as np
sys.path.insert(0, sys.argv[1])
from engine_worker import PROBE_MODEL
from LiverTumorSegLib.runtime import OpenVinoModel, resolve_cpu_engine
assert resolve_cpu_engine("auto") == "openvino"
path = os.path.join(tempfile.mkdtemp(), "identity.onnx")
open(path, "wb").write(PROBE_MODEL)
model = OpenVinoModel(path, 1)
batch = np.arange(24, dtype=np.float32).reshape(1, 1, 2, 3, 4)
assert np.array_equal(model.run(batch), batch) and np.array_equal(model.run(batch[:, :, :1]), batch[:, :, :1])
model.release_memory()
print(model.engine)
"""


@pytest.mark.parametrize("slicer", list(STACKS))
def test_the_pinned_openvino_runs_the_engine_under_the_slicer_python(slicer):
    python = stack_python(slicer)
    version = tuple(int(v) for v in STACKS[slicer]["python"].split("."))
    (requirement,) = [dependencies.pinFor(pins, version) for pins in dependencies.OPTIONAL_PINS.values()]
    if not dependencies.markerHolds(requirement):
        pytest.skip(f"no OpenVINO wheel for this platform ({requirement})")
    out = subprocess.run([python, "-c", OPENVINO_API, str(WORKER_SCRIPT.parent)], capture_output=True, text=True,
                         env=engineEnvironment())
    assert out.returncode == 0, out.stderr
    engine = out.stdout.split()
    assert engine[0] == "openvino" and engine[1] in Requirement(dependencies.withoutMarker([requirement])[0]).specifier
    assert probeEngine([python, str(WORKER_SCRIPT)]).cpuEngine.startswith(f"OpenVINO {engine[1]} (float32")


def test_real_onnxruntime_gpu_without_cuda_libraries_is_reported_as_cpu():
    """Opt-in (a 440 MB wheel): LIVERTUMORSEG_ORT_GPU_PYTHON = a Python with onnxruntime-gpu but no CUDA libraries."""
    python = os.environ.get("LIVERTUMORSEG_ORT_GPU_PYTHON")
    if not python:
        pytest.skip("set LIVERTUMORSEG_ORT_GPU_PYTHON to a Python with onnxruntime-gpu and no CUDA libraries")
    devices, reason = probeDevices([python, str(WORKER_SCRIPT)])
    assert devices == ["cpu"] and "onnxruntime-gpu is installed" in reason
