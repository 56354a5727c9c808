"""Model manifests: everything inference needs to know about a model, and its checksum."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ModelError
from .windowing import Normalization

MANIFEST_SCHEMA = 1


@dataclass
class ModelManifest:
    """One model: its ONNX file and the preprocessing it was trained with.

    `spacing` is (x, y, z) mm; `patch_size` is (z, y, x) voxels; `classes` maps output channel
    index to name (channel 0 is background). The network takes (N, 1, z, y, x) float32 normalised
    CT and returns (N, C, z, y, x) logits.
    """

    name: str
    stage: str  # "liver" or "tumor"
    version: str
    onnx_file: str
    sha256: str
    classes: dict[int, str]
    spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    normalization: Normalization
    roi_margin_mm: float = 10.0
    training_data: str = ""
    training_command: str = ""
    metrics: dict = field(default_factory=dict)
    created: str = ""
    schema: int = MANIFEST_SCHEMA

    def class_index(self, name: str) -> int:
        """Output channel of the class called `name`."""
        for idx, cname in self.classes.items():
            if cname == name:
                return idx
        raise ModelError(f"model '{self.name}' has no class '{name}' (has {sorted(self.classes.values())})")

    def to_json(self) -> str:
        """Serialise to JSON text."""
        d = asdict(self)
        d["normalization"] = self.normalization.to_dict()
        d["classes"] = {str(k): v for k, v in self.classes.items()}
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ModelManifest":
        """Parse JSON text written by `to_json`."""
        d = json.loads(text)
        d["normalization"] = Normalization.from_dict(d["normalization"])
        d["classes"] = {int(k): v for k, v in d["classes"].items()}
        d["spacing"] = tuple(float(s) for s in d["spacing"])
        d["patch_size"] = tuple(int(s) for s in d["patch_size"])
        return cls(**d)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path) -> ModelManifest:
    """Read a manifest JSON file, with a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model manifest not found: {path}")
    try:
        return ModelManifest.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model manifest {path} is malformed: {exc}") from exc


def verified_onnx_path(manifest_path: Path, manifest: ModelManifest) -> Path:
    """Path of the manifest's ONNX file after checking it exists and matches its SHA-256."""
    onnx_path = Path(manifest_path).parent / manifest.onnx_file
    if not onnx_path.is_file():
        raise ModelError(f"model file missing: {onnx_path} (named in {manifest_path})")
    actual = sha256_of(onnx_path)
    if actual != manifest.sha256:
        raise ModelError(
            f"model file {onnx_path} does not match its manifest checksum "
            f"(expected sha256 {manifest.sha256[:16]}..., found {actual[:16]}...): "
            "the file is corrupt or was modified; reinstall or re-export the model"
        )
    return onnx_path


def write_manifest(manifest: ModelManifest, onnx_path: Path) -> Path:
    """Fill in the checksum of `onnx_path` and write `<stage>.json` beside it."""
    onnx_path = Path(onnx_path)
    manifest.onnx_file = onnx_path.name
    manifest.sha256 = sha256_of(onnx_path)
    out = onnx_path.with_suffix(".json")
    out.write_text(manifest.to_json())
    return out
