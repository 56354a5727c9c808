"""The model manifest a stage config implies (used for preprocessing, export and evaluation)."""
from __future__ import annotations

from LiverTumorSegLib.manifest import ModelManifest

from .config import StageConfig


def stage_manifest(stage: StageConfig, name: str = "", version: str = "0") -> ModelManifest:
    """A manifest for `stage` without file or checksum yet (filled in by `write_manifest`)."""
    return ModelManifest(
        name=name or f"livertumorseg-{stage.stage}",
        stage=stage.stage,
        version=version,
        onnx_file=f"{stage.stage}.onnx",
        sha256="",
        classes=dict(stage.classes),
        spacing=tuple(stage.spacing),
        patch_size=tuple(stage.patch_size),
        normalization=stage.normalization(),
        roi_margin_mm=stage.roi_margin_mm,
        min_right_fraction=stage.min_right_fraction if stage.stage == "liver" else 0.0,
    )
