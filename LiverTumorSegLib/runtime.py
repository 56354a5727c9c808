"""Inference engines: device choice, verified model loading, session reuse.

On the CPU a model runs on OpenVINO when it is installed and usable (measured faster than ONNX Runtime for these
3-D networks: `benchmarks/bench_engines.py`), else on ONNX Runtime; CUDA always runs on ONNX Runtime.
"""
from __future__ import annotations

import functools
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RuntimeConfig
from .errors import LiverTumorSegError, ModelError
from .manifest import ModelManifest, load_manifest, verified_onnx_path

log = logging.getLogger(__name__)


def _ort():
    """onnxruntime, imported lazily with a clear error when missing."""
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
    return onnxruntime


def available_devices() -> list[str]:
    """Devices ONNX Runtime can use here: always "cpu", plus "cuda" with a CUDA provider."""
    providers = _ort().get_available_providers()
    return ["cpu", "cuda"] if "CUDAExecutionProvider" in providers else ["cpu"]


def resolve_device(device: str) -> str:
    """"cpu" or "cuda" for a requested "auto" | "cpu" | "cuda", logging any fallback."""
    if device not in ("auto", "cpu", "cuda"):
        raise LiverTumorSegError(f"unknown device '{device}': use auto, cpu or cuda")
    have = available_devices()
    if device == "cuda" and "cuda" not in have:
        raise LiverTumorSegError("CUDA requested, but ONNX Runtime has no CUDA provider here (install onnxruntime-gpu and a CUDA driver)")
    if device == "auto":
        if "cuda" in have:
            return "cuda"
        log.info("device auto: using CPU (ONNX Runtime has no CUDAExecutionProvider here)")
        return "cpu"
    return device


@dataclass
class Model:
    """A verified ONNX model with its manifest and a ready inference session (ONNX Runtime or OpenVINO)."""

    manifest: ModelManifest
    session: object
    device: str
    engine: str = "onnxruntime"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, C, z, y, x) for a normalised batch (N, 1, z, y, x) float32."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if isinstance(self.session, OpenVinoModel):
            return self.session.run(batch)
        return self.session.run(["logits"], {"image": batch}, _run_options())[0]

    def release_memory(self) -> None:
        """Give back the engine's working buffers (OpenVINO keeps them between runs; ONNX Runtime's arena already
        shrinks after every run), so the next stage's network does not stack its peak on this one's."""
        if isinstance(self.session, OpenVinoModel):
            self.session.release_memory()


@functools.lru_cache(maxsize=1)
def _run_options():
    """Run options that give the CPU arena's memory back after every run (see `_session`)."""
    options = _ort().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


@functools.lru_cache(maxsize=8)
def _session(onnx_path: str, sha256: str, device: str, threads: int | None):
    """One cached session per (file, content, device, threads): reused across cases."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # CPU memory arena on, shrunk back at the end of every run (`_run_options`): a run reuses its own freed
    # tensors instead of asking the kernel for fresh zeroed pages (measured on 2 threads: liver window 10.7 -> 8.7 s,
    # first 5.4 M-voxel lesion patch 10.7 -> 7.7 s), and nothing stays allocated between runs or cases
    # (peak RSS of the accurate set on the clinical-size benchmark CT 3.5 -> 4.6 GB; without the shrinkage the arena
    # kept every shape's peak: 10.6 GB).
    opts.enable_cpu_mem_arena = True
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")  # as OpenVINO's: see OpenVinoModel
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(onnx_path, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc


def verified_manifest(manifest_path: Path, stage: str | None = None) -> tuple[ModelManifest, Path]:
    """(manifest, its checksum-verified ONNX path); `stage` (if given) must match the manifest's (ModelError if not)."""
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise ModelError(f"model manifest not found: {manifest_path} (expected it beside its .onnx file)")
    manifest = load_manifest(manifest_path)
    if stage is not None and manifest.stage != stage:
        raise ModelError(f"{manifest_path} is a '{manifest.stage}' model, not a '{stage}' model")
    return manifest, verified_onnx_path(manifest_path, manifest)


def load_model_file(manifest_path: Path, runtime: RuntimeConfig, stage: str | None = None) -> Model:
    """Load a manifest + its ONNX file, checksum verified; `stage` (if given) must match the manifest's."""
    manifest, onnx_path = verified_manifest(manifest_path, stage)
    device = resolve_device(runtime.device)
    if device == "cpu" and resolve_cpu_engine(runtime.cpu_engine) == "openvino":
        model = _openvino_model(str(onnx_path.resolve()), manifest.sha256, runtime.threads)
        return Model(manifest, model, "cpu", model.engine)
    session = _session(str(onnx_path.resolve()), manifest.sha256, device, runtime.threads)
    return Model(manifest, session, session_device(session, device), f"onnxruntime {_ort().__version__}")


def session_device(session, requested: str) -> str:
    """The device a session really runs on: ONNX Runtime drops to CPU when its CUDA provider cannot start."""
    if requested == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        log.warning("CUDA was chosen, but ONNX Runtime could not start its CUDA provider (driver or CUDA/cuDNN "
                    "libraries missing?): running on the CPU")
        return "cpu"
    return requested


def load_model(models_dir: Path, stage: str, runtime: RuntimeConfig) -> Model:
    """Load `<stage>.json` + its ONNX file from `models_dir`, checksum verified."""
    manifest_path = Path(models_dir) / f"{stage}.json"
    if not manifest_path.is_file():
        raise ModelError(f"no '{stage}' model in {models_dir} (expected {manifest_path.name} and its .onnx file)")
    return load_model_file(manifest_path, runtime, stage)


CPU_ENGINES = ("auto", "openvino", "onnxruntime")


def _openvino():
    """openvino, or None when it is not installed or cannot load here (with the reason logged once)."""
    # OpenVINO's ONNX reader loads its model-conversion tools, which send usage telemetry from a forked process unless
    # `openvino_telemetry` is missing: a segmentation sends nothing anywhere (and that fork hung engine processes).
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except Exception as exc:  # ImportError, or a wheel that does not load on this CPU / OS
        _log_once(f"OpenVINO is not usable here ({exc.__class__.__name__}: {exc}): running on ONNX Runtime")
        return None
    return openvino


@functools.lru_cache(maxsize=None)
def _log_once(message: str) -> None:
    """Log an engine-choice message once per process."""
    log.info(message)


def resolve_cpu_engine(engine: str) -> str:
    """"openvino" or "onnxruntime" for a requested "auto" | "openvino" | "onnxruntime" on the CPU."""
    if engine not in CPU_ENGINES:
        raise LiverTumorSegError(f"unknown CPU engine '{engine}': use {', '.join(CPU_ENGINES)}")
    if engine == "onnxruntime":
        return engine
    if _openvino() is None:
        if engine == "openvino":
            raise LiverTumorSegError("the OpenVINO engine was requested, but OpenVINO is not installed or not usable "
                                     "here (pip install openvino)")
        return "onnxruntime"
    return "openvino"


def cpu_engine_description() -> str:
    """What `--cpu-engine auto` runs on here, with versions, e.g. "OpenVINO 2026.4.1 (float32; ONNX Runtime ... as fallback)"."""
    ov = _openvino()
    if ov is None:
        return f"ONNX Runtime {_ort().__version__} (OpenVINO not installed)"
    return f"OpenVINO {ov.__version__.split('-')[0]} (float32; ONNX Runtime {_ort().__version__} as fallback)"


class OpenVinoModel:
    """An ONNX model on OpenVINO's CPU plugin, compiled for the static input shape of the current run.

    Static shapes measured faster than a dynamic-shape model; one compiled shape is kept (windows of one stage share
    a shape; a new shape recompiles in about a second), so memory stays that of one network. Precision is float32:
    bf16 is not used (the lesion network is ill-conditioned and bf16 was not measured to keep its accuracy).
    """

    def __init__(self, onnx_path: str, threads: int | None) -> None:
        ov = _openvino()
        self._core = ov.Core()
        self._model = self._core.read_model(onnx_path)
        # Denormal floats flushed to zero: the lesion network's zero-padded windows produce them (measured: 3.4 -> 2.1 s
        # per window on lits117_roi, logits identical).
        self._config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                        "CPU_DENORMALS_OPTIMIZATION": "YES"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._shape: tuple[int, ...] | None = None
        self._compiled = None
        self._lock = threading.Lock()
        self.engine = f"openvino {ov.__version__.split('-')[0]}"

    def _compiled_for(self, shape: tuple[int, ...]):
        """The model compiled for `shape` (N, 1, z, y, x), recompiled when the shape changes."""
        if shape != self._shape:
            self._compiled = None  # free the previous shape's buffers before compiling the next
            model = self._model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            self._compiled = self._core.compile_model(model, "CPU", self._config)
            self._shape = shape
        return self._compiled

    def release_memory(self) -> None:
        """Free the compiled model's intermediate buffers (reallocated by the next run; the compiled shape is kept)."""
        with self._lock:
            if self._compiled is not None:
                self._compiled.release_memory()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 batch (N, 1, z, y, x)."""
        with self._lock:  # one compiled model per shape: runs of one Model are serialised
            compiled = self._compiled_for(tuple(batch.shape))
            return np.array(compiled(batch)[0], copy=True)


@functools.lru_cache(maxsize=8)
def _openvino_model(onnx_path: str, sha256: str, threads: int | None) -> OpenVinoModel:
    """One cached OpenVINO model per (file, content, threads): reused across cases."""
    try:
        return OpenVinoModel(onnx_path, threads)
    except Exception as exc:  # openvino raises its own exception types
        raise ModelError(f"OpenVINO cannot load {onnx_path}: {exc}") from exc
