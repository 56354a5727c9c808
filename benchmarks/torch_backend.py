"""PyTorch backend for the library's cascade: Training's own network with the weights of the shipped ONNX file.

The benchmark swaps the library's ONNX Runtime sessions for this (in its own process only), so
"ONNX Runtime vs PyTorch" compares the same weights and the same pipeline, only the runtime differs.
The network is Training/network.py's UNet3D (what training ran); its size is read from the ONNX
weight shapes, its weights are the ONNX initializers (the exporter keeps PyTorch parameter names),
and the logits are checked against ONNX Runtime on one patch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import REPO

sys.path.insert(0, str(REPO))


def onnx_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """Parameter name -> array, including parameters the exporter de-duplicated behind Identity nodes."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    return weights


def unet_from_onnx(onnx_path: Path):
    """Training's UNet3D (eval mode) rebuilt from an exported ONNX file's weights."""
    import torch
    from Training.network import UNet3D

    w = onnx_weights(onnx_path)
    n_enc = len({k.split(".")[1] for k in w if k.startswith("encoders.")})
    feats = [w[f"encoders.{i}.conv1.weight"].shape[0] for i in range(n_enc)]
    net = UNet3D(num_classes=w["head.weight"].shape[0], base_features=feats[0], depth=n_enc - 1,
                 max_features=max(feats), residual="encoders.0.skip.0.weight" in w)
    state = {k: torch.from_numpy(np.array(w[k])) for k in net.state_dict()}
    net.load_state_dict(state, strict=True)
    return net.eval()


class TorchSession:
    """Duck-types the one ONNX Runtime session call the library makes: run(["logits"], {"image": x})."""

    def __init__(self, net) -> None:
        self.net = net

    def run(self, names, feeds):
        import torch

        with torch.inference_mode():
            return [self.net(torch.from_numpy(feeds["image"])).numpy()]


def parity(net, onnx_path: Path, patch_zyx: tuple[int, int, int]) -> float:
    """Max |PyTorch - ONNX Runtime| logit difference on one random normalised patch."""
    import onnxruntime as ort

    x = np.random.default_rng(0).normal(size=(1, 1, *patch_zyx)).astype(np.float32)
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["logits"], {"image": x})[0]
    return float(np.abs(TorchSession(net).run(None, {"image": x})[0] - ref).max())


def check_parity(models_dir: Path) -> list[dict]:
    """PyTorch vs ONNX Runtime logits for each stage's model (run before any timed case)."""
    from LiverTumorSegLib.manifest import load_manifest, verified_onnx_path

    checks = []
    for stage in ("liver", "tumor"):
        manifest_path = Path(models_dir) / f"{stage}.json"
        onnx_path = verified_onnx_path(manifest_path, load_manifest(manifest_path))
        diff = parity(unet_from_onnx(onnx_path), onnx_path, (32, 32, 32))
        checks.append({"stage": stage, "max_abs_logit_diff_vs_onnxruntime": diff})
    return checks


def install(threads: int | None) -> None:
    """Make `LiverTumorSegLib.api.segment` load PyTorch models instead of ONNX Runtime sessions."""
    import torch

    import LiverTumorSegLib.api as api
    from LiverTumorSegLib.manifest import load_manifest, verified_onnx_path
    from LiverTumorSegLib.runtime import Model

    torch.set_num_threads(int(threads or torch.get_num_threads()))

    def load_model(models_dir: Path, stage: str, runtime) -> Model:
        manifest_path = Path(models_dir) / f"{stage}.json"
        manifest = load_manifest(manifest_path)
        return Model(manifest, TorchSession(unet_from_onnx(verified_onnx_path(manifest_path, manifest))), "cpu")

    api.load_model = load_model
