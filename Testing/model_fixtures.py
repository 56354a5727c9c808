"""Tiny rule-based ONNX models with real manifests, and a lesion of known size and place in a real CT.

The tumor model marks every voxel brighter than TUMOR_THRESHOLD_HU as tumor; the lesion inserted here
is LESION_HU, far above any tissue of the shared CTs (their maximum is about 1900 HU). So the right
answer of the whole cascade is known in advance, whatever a trained model would predict.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.config import models_dir
from LiverTumorSegLib.manifest import ModelManifest, load_manifest, write_manifest
from LiverTumorSegLib.windowing import Normalization

LESION_HU = 3000.0
TUMOR_THRESHOLD_HU = 1600.0  # about midway between liver (~100 HU) and the lesion: the edge survives linear resampling
TISSUE_HU = (-100.0, 5000.0)  # the tiny liver model: everything denser than fat is "liver"
IDENTITY_HU = Normalization(clip_low=-1024.0, clip_high=4000.0, mean=0.0, std=1.0)  # the networks see HU
OPSET = 17


def default_liver_manifest() -> Path:
    """The liver manifest the library uses by default (the one place to adapt when the models layout changes):
    that of the model set a call without options selects (the tests' conftest makes it the fast set)."""
    from LiverTumorSegLib.api import make_config, selected_model_set

    return selected_model_set(make_config()).liver


def bands_onnx(path: Path, bands: list[tuple[float, float]], sharpness: float = 0.05) -> Path:
    """An ONNX network with logits (background 0, then one channel per band): channel c wins where its band holds."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, value: float):
        return helper.make_tensor(name, TensorProto.FLOAT, [], [value])

    nodes, consts, channels = [], [const("k", sharpness), const("zero", 0.0)], ["bg"]
    nodes.append(helper.make_node("Mul", ["image", "zero"], ["bg"]))  # background logit 0, same shape as the input
    for c, (lo, hi) in enumerate(bands, start=1):
        consts += [const(f"lo{c}", lo), const(f"hi{c}", hi)]
        nodes += [
            helper.make_node("Sub", ["image", f"lo{c}"], [f"above{c}"]),
            helper.make_node("Sub", [f"hi{c}", "image"], [f"below{c}"]),
            helper.make_node("Min", [f"above{c}", f"below{c}"], [f"margin{c}"]),
            helper.make_node("Mul", [f"margin{c}", "k"], [f"class{c}"]),
        ]
        channels.append(f"class{c}")
    nodes.append(helper.make_node("Concat", channels, ["logits"], axis=1))
    graph = helper.make_graph(
        nodes, "bands", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, "z", "y", "x"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", len(channels), "z", "y", "x"])], initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_rule_model(folder: Path, stage: str, classes: dict[str, tuple[float, float]],
                     spacing: tuple[float, float, float], patch: tuple[int, int, int]) -> Path:
    """`<stage>.onnx` + `<stage>.json` in `folder`: class i (from 1) is where HU lies in the i-th band of `classes`."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = bands_onnx(folder / f"{stage}.onnx", list(classes.values()))
    manifest = ModelManifest(
        name=f"test-rule-{stage}", stage=stage, version="0.0.0", onnx_file=onnx_path.name, sha256="",
        classes={0: "background", **{i: name for i, name in enumerate(classes, start=1)}}, spacing=spacing,
        patch_size=patch, normalization=IDENTITY_HU, metrics={},
        training_data="none: " + ", ".join(f"{n} where {lo:g} < HU < {hi:g}" for n, (lo, hi) in classes.items()),
    )
    return write_manifest(manifest, onnx_path)


def tiny_tumor_model(folder: Path, with_liver: bool = False) -> Path:
    """The rule tumor model (HU above TUMOR_THRESHOLD_HU) at 2 mm; `with_liver` adds a liver class as the shipped one has."""
    classes = {"liver": (TISSUE_HU[0], TUMOR_THRESHOLD_HU)} if with_liver else {}
    classes["tumor"] = (TUMOR_THRESHOLD_HU, 1e6)
    return write_rule_model(folder, "tumor", classes, (2.0, 2.0, 2.0), (48, 48, 48))


def tiny_liver_model(folder: Path) -> Path:
    """The rule liver model (soft tissue and denser) at 3 mm."""
    return write_rule_model(folder, "liver", {"liver": TISSUE_HU}, (3.0, 3.0, 3.0), (32, 64, 64))


def copy_default_liver(folder: Path) -> Path:
    """Copy the library's default liver model (manifest + ONNX file) into `folder`."""
    src = default_liver_manifest()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.parent / load_manifest(src).onnx_file, folder)
    return Path(shutil.copy2(src, folder / "liver.json"))


def models_folder(folder: Path, liver: str = "tiny", tumor_with_liver: bool = False) -> Path:
    """A models folder with the tiny tumor model beside a liver model: "tiny" (rule) or "default" (shipped)."""
    tiny_tumor_model(folder, with_liver=tumor_with_liver)
    (tiny_liver_model if liver == "tiny" else copy_default_liver)(folder)
    return folder


@dataclass(frozen=True)
class Lesion:
    """A ball of LESION_HU inserted into a CT: its centre (LPS mm), radius and voxel mask (z, y, x)."""

    image: sitk.Image
    center_lps: np.ndarray
    radius_mm: float
    mask: np.ndarray

    def within(self, distance_mm: float) -> np.ndarray:
        """Voxels whose centre lies within `distance_mm` of the lesion centre."""
        return distance_map(self.image, self.center_lps) <= distance_mm

    @property
    def slices(self) -> np.ndarray:
        """Axial (z) indices the lesion spans."""
        return np.flatnonzero(self.mask.any(axis=(1, 2)))


def distance_map(image: sitk.Image, point_lps: np.ndarray) -> np.ndarray:
    """Physical distance (mm) of every voxel centre of `image` from `point_lps`, as a (z, y, x) array."""
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in image.GetSize()[::-1]], indexing="ij")
    ijk = np.stack([i, j, k], -1)
    m = np.reshape(image.GetDirection(), (3, 3)) @ np.diag(image.GetSpacing())
    lps = ijk @ m.T + np.array(image.GetOrigin())
    return np.linalg.norm(lps - point_lps, axis=-1)


def rule_liver(image: sitk.Image) -> np.ndarray:
    """What the rule models call liver or tumor on the input grid: the largest tissue component, holes filled."""
    import cc3d
    from scipy import ndimage

    tissue = (sitk.GetArrayViewFromImage(image) > TISSUE_HU[0]).astype(np.uint8)
    return ndimage.binary_fill_holes(cc3d.largest_k(tissue, k=1, connectivity=26) > 0)


def insert_lesion(ct: sitk.Image, center_lps, radius_mm: float) -> Lesion:
    """A copy of `ct` with a ball of LESION_HU of `radius_mm` around `center_lps` (physical, any grid)."""
    center = np.asarray(center_lps, dtype=float)
    mask = distance_map(ct, center) <= radius_mm
    hu = sitk.GetArrayFromImage(ct).astype(np.int16)
    hu[mask] = int(LESION_HU)
    out = sitk.GetImageFromArray(hu)
    out.CopyInformation(ct)
    return Lesion(out, center, radius_mm, mask)


def deep_liver_index(liver_reference: sitk.Image) -> tuple[int, int, int]:
    """(i, j, k) index of the reference liver voxel farthest from the liver's surface and the image border."""
    from scipy import ndimage

    liver = np.pad(sitk.GetArrayFromImage(liver_reference) > 0, 1)
    depth = ndimage.distance_transform_edt(liver, sampling=liver_reference.GetSpacing()[::-1])[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(i), int(j), int(k)
