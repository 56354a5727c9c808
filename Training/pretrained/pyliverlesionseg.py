"""pyliverlesionseg 0.3 (Tang et al. 2020): its wheel, its Keras HDF5 weights, and PyTorch networks holding them.

The wheel is fetched with pip (its metadata pins Python 3.6, but it holds plain Python and HDF5 files) and
read with `zipfile` + `h5py`; nothing of TensorFlow is needed. The networks are `deepvoxnet_unet` rebuilds.
"""
from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from LiverTumorSegLib.manifest import sha256_of

from .deepvoxnet_unet import LESION_SPEC, LIVER_SPEC, DeepVoxNetUNet, UNetSpec

PACKAGE, VERSION = "pyliverlesionseg", "0.3"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
MODELS_IN_WHEEL = f"{PACKAGE}/trained_models/"
LICENCE = "Apache-2.0"
CITATION = ("Tang X, Jafargholi Rangraz E, Coudyzer W, Bertels J, Robben D, Schramm G, Deckers W, Maleux G, "
            "Baete K, Verslype C, Gooding MJ, Deroose CM, Nuyts J. Whole liver segmentation based on deep learning "
            "and manual adjustment for clinical use in SIRT. Eur J Nucl Med Mol Imaging 47, 2742-2752 (2020). "
            "doi:10.1007/s00259-020-04800-3. Networks built with DeepVoxNet (Robben D, Bertels J, et al., KU Leuven).")
SOURCE = ("PyPI package pyliverlesionseg 0.3 (wheel pyliverlesionseg-0.3-py3-none-any.whl; "
          "project home github.com/KUL-recon-lab/pyliverlesionseg, authors Xikai Tang and Georg Schramm)")


@dataclass(frozen=True)
class PublishedNetwork:
    """One trained network inside the wheel: file, architecture, input patch (x, y, z) and voxel size."""

    stage: str
    member: str  # file name under trained_models/
    spec: UNetSpec
    input_xyz: tuple[int, int, int]
    output_xyz: tuple[int, int, int]


LIVER = PublishedNetwork(
    "liver", "model_unet_ct_mr_liv_seg_resize_1.5mm_med_3_resize_3mm_20201011_dice_loss_val_binary_dice_mean.hdf5",
    LIVER_SPEC, (189, 162, 162), (163, 136, 136))
LESION = PublishedNetwork(
    "tumor", "model_unet_ct_mr_lesion_seg_resize_1mm_1mm_3mm_20220207_dice_loss_val_binary_dice_mean.hdf5",
    LESION_SPEC, (180, 172, 86), (92, 84, 42))


def download_wheel(cache_dir: Path) -> Path:
    """The pyliverlesionseg 0.3 wheel in `cache_dir`, downloaded with pip (no dependencies) if absent."""
    wheel = Path(cache_dir) / WHEEL_NAME
    if not wheel.is_file():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.6", "-d", str(cache_dir), f"{PACKAGE}=={VERSION}"], check=True)
    return wheel


def _text(value) -> str:
    """An HDF5 attribute string (bytes in Keras 2.2 files)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras_weights(wheel: Path, member: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[float, ...]]:
    """(kernel (kx, ky, kz, c_in, c_out), bias) of every `conv3d_k` in creation order, and the voxel size (mm)."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MODELS_IN_WHEEL + member)
    with h5py.File(io.BytesIO(data), "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        layers = [_text(n) for n in group.attrs["layer_names"] if _text(n).startswith("conv3d_")]
        weights = []
        for name in sorted(layers, key=lambda n: int(n.rsplit("_", 1)[1])):
            names = [_text(w) for w in group[name].attrs["weight_names"]]
            kernel = next(np.array(group[name][w]) for w in names if "kernel" in w)
            bias = next(np.array(group[name][w]) for w in names if "bias" in w)
            weights.append((kernel, bias))
        voxel = tuple(float(v) for v in np.array(f["header/voxel_size"]))
    return weights, voxel


def load_keras_weights(net: DeepVoxNetUNet, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Copy Keras kernels/biases into the rebuilt network, checking every shape."""
    if len(weights) != len(net.convs):
        raise ValueError(f"the HDF5 file has {len(weights)} convolutions, the rebuilt network {len(net.convs)}")
    with torch.no_grad():
        for k, (conv, (kernel, bias)) in enumerate(zip(net.convs, weights), start=1):
            w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
            if tuple(w.shape) != tuple(conv.weight.shape) or bias.shape != tuple(conv.bias.shape):
                raise ValueError(f"conv3d_{k}: HDF5 {kernel.shape} does not fit {tuple(conv.weight.shape)}")
            conv.weight.copy_(w)
            conv.bias.copy_(torch.from_numpy(bias))


class LPSInput(nn.Module):
    """Wraps a network that works on RAS (N, C, x, y, z) arrays so that it takes/returns LPS (N, C, z, y, x)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, z', y', x') for normalised CT (N, 1, z, y, x) in canonical LPS order."""
        ras = torch.flip(image.permute(0, 1, 4, 3, 2), dims=(2, 3))  # (z,y,x) LPS -> (x,y,z), L->R, P->A
        out = self.net(ras)
        return torch.flip(out, dims=(2, 3)).permute(0, 1, 4, 3, 2)


def build_network(network: PublishedNetwork, wheel: Path) -> tuple[DeepVoxNetUNet, tuple[float, ...]]:
    """The rebuilt network with its published weights (eval mode) and its voxel size (x, y, z) mm."""
    net = DeepVoxNetUNet(network.spec)
    weights, voxel = read_keras_weights(wheel, network.member)
    load_keras_weights(net, weights)
    return net.eval(), voxel


def licence_text(wheel: Path) -> bytes:
    """The Apache-2.0 licence file shipped in the wheel (travels with the exported weights)."""
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(f"{PACKAGE}-{VERSION}.dist-info/LICENSE")


def wheel_provenance(wheel: Path) -> dict:
    """Licence, citation and source of the weights, with the wheel's checksum."""
    return {"licence": LICENCE, "citation": CITATION, "source": SOURCE, "wheel_sha256": sha256_of(wheel),
            "authors": "KU Leuven (Tang X, Nuyts J, et al.)", "ported_by": "LiverTumorSeg Training.import_pretrained"}
