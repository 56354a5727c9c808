"""Model manifests: everything inference needs to know about a model, and its checksum."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from itertools import product
from math import prod
from pathlib import Path


from .errors import ModelError
from .modality import ModalityInput
from .sliding_window import window_starts
from .windowing import Normalization

MANIFEST_SCHEMA = 1
#: Threshold a model's output is compared with after resampling to the input grid, per `output_resampling`:
#: 0.5 on resampled probabilities, or "any" (above a rounding floor) on a resampled binary mask.
OUTPUT_RESAMPLING = {"probability": 0.5, "binary_any": 1e-6}
RESAMPLING = ("linear", "zoom3d")
TILE_PLACEMENTS = ("spread", "liver_grid")


@dataclass
class ModelManifest:
    """One model: its ONNX file and the preprocessing it was trained with.

    `spacing` is (x, y, z) mm; `patch_size` is (z, y, x) voxels; `classes` maps output channel
    index to name (channel 0 is background). The network takes (N, 1, z, y, x) float32 normalised
    CT in canonical LPS axis order and returns (N, C, z', y', x') logits.

    Optional fields (defaults describe the project's own U-Nets) let a third-party network travel with
    everything inference needs: `output_activation` "softmax" (C channels) or "sigmoid" (one channel,
    the probability of `classes[1]`); `output_crop` (z, y, x) voxels that a network with "valid"
    convolutions loses on each side (its output is the centred crop of its input patch);
    `pad_value` (normalised units) outside the image, default the normalised value of air;
    `tile_overlap` overriding the run's sliding-window overlap; `median_prefilter` {"spacing": (x, y, z)
    mm, "size": voxels} smoothing the CT before resampling to `spacing`; `liver_mask` {"dilation_voxels": n,
    "fill_value": v}: a tumor network sees the CT only inside the stage-1 liver dilated by n voxels
    (18-connected steps) and `v` (normalised) elsewhere; `liver_opening_voxels` erodes the stage-1
    liver mask before its largest component is taken and dilates it back (cuts thin leaks);
    `flexible_patch`: a fully convolutional network accepts any input of `multiple * k + offset` voxels
    per axis, so the engine sizes each run's patch to the volume instead of tiling with `patch_size`: of
    the valid patches of at most `max_voxels`, the one whose tiling feeds the network the fewest voxels;
    `min_right_fraction` (liver models): a stage-1 candidate with less of its volume on the patient's right of the body midline is rejected as "no liver"
    (a network that takes the urinary bladder of a pelvis-only CT for a liver says so here);
    `output_resampling` how the model's output reaches the input grid: "probability" (resample probabilities
    linearly, threshold at 0.5 there) or "binary_any" (threshold at 0.5 on the model grid, then keep every input
    voxel that the linear interpolation of that binary mask touches: each object grows by up to one model voxel,
    as pyliverlesionseg's own post-processing does); `window_on_body`: the network runs on the body's bounding box
    (HU > -300, largest component, + 2 voxels) instead of the whole image, padded beyond it like beyond any image: a
    wide field of view of air costs no extra window and does not change what the network sees;
    `resampling` how the CT reaches the model grid and the output comes back: "linear" (SimpleITK linear point
    sampling onto a grid from the image corner, the output as `output_resampling` says) or "zoom3d" (pyliverlesionseg's
    own: normalise on the CT grid, then pymirc zoom3d onto a grid centred on the whole CT (area average down, linear
    up), the liver mask likewise (> 0.5); the binary output goes back by corner-aligned linear zoom, any value > 0:
    `zoom.py`; tumor models with `liver_mask` only); `tile_placement`: "spread" (windows spread evenly over the whole
    grid, overlaps blended) or "liver_grid" (pyliverlesionseg's grid over the dilated liver's bounding box, zeros beyond
    it, later windows overwriting: `tiling.py`);
    `modalities`: the input modalities the network accepts ("ct", "mr"), each with how to prepare it
    ({"normalization": ..., "background": ..., "n4_bias_field": ...}; an empty entry = `normalization`, see
    modality.ModalityInput): a network without an "mr" entry refuses MR.
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
    output_activation: str = "softmax"
    output_crop: tuple[int, int, int] = (0, 0, 0)
    pad_value: float | None = None
    tile_overlap: float | None = None
    median_prefilter: dict | None = None
    liver_mask: dict | None = None
    liver_opening_voxels: int = 0
    credit: dict = field(default_factory=dict)  # licence, citation, source of third-party weights
    flexible_patch: dict | None = None  # {"multiple": (z, y, x), "offset": (z, y, x), "max_voxels": n}
    min_right_fraction: float = 0.0
    output_resampling: str = "probability"  # or "binary_any"
    window_on_body: bool = False
    resampling: str = "linear"  # or "zoom3d"
    tile_placement: str = "spread"  # or "liver_grid"
    modalities: dict = field(default_factory=lambda: {"ct": {}})

    def __post_init__(self) -> None:
        """Reject settings inference could not honour."""
        if self.output_activation not in ("softmax", "sigmoid"):
            raise ModelError(f"model '{self.name}': unknown output_activation '{self.output_activation}'")
        if self.output_resampling not in OUTPUT_RESAMPLING:
            raise ModelError(f"model '{self.name}': unknown output_resampling '{self.output_resampling}' "
                             f"(use one of {', '.join(OUTPUT_RESAMPLING)})")
        if self.resampling not in RESAMPLING or self.tile_placement not in TILE_PLACEMENTS:
            raise ModelError(f"model '{self.name}': unknown resampling '{self.resampling}' or tile_placement "
                             f"'{self.tile_placement}' (use {'/'.join(RESAMPLING)} and {'/'.join(TILE_PLACEMENTS)})")
        pls_stage = (self.resampling == "zoom3d", self.tile_placement == "liver_grid")
        if any(pls_stage) and (not all(pls_stage) or self.liver_mask is None or self.output_resampling != "binary_any"):
            raise ModelError(f"model '{self.name}': resampling 'zoom3d' and tile_placement 'liver_grid' go together, "
                             "with a liver_mask and output_resampling 'binary_any' (pyliverlesionseg's lesion stage)")
        if self.output_activation == "sigmoid" and len(self.classes) != 2:
            raise ModelError(f"model '{self.name}': a sigmoid model has exactly two classes (background and one)")
        if any(c < 0 or 2 * c >= p for c, p in zip(self.output_crop, self.patch_size)):
            raise ModelError(f"model '{self.name}': output_crop {self.output_crop} does not fit patch {self.patch_size}")

    def patch_for(self, volume_zyx: tuple[int, ...], overlap: float = 0.0) -> tuple[int, int, int]:
        """Input patch (z, y, x) to tile a volume with: `patch_size`, or with `flexible_patch` the valid patch
        of at most `max_voxels` whose tiling of the volume (windows overlapping by `overlap`) feeds the
        network the fewest input voxels (the smallest valid patch if none fits)."""
        if not self.flexible_patch:
            return self.patch_size
        # Per axis: the valid sizes whose output splits the volume into n = 1..64 windows.
        sizes = [sorted({self._valid_input(-(-v // n) + 2 * c, a) for n in range(1, min(max(v, 1), 64) + 1)}, reverse=True)
                 for a, (v, c) in enumerate(zip(volume_zyx, self.output_crop))]
        fitting = [p for p in product(*sizes) if prod(p) <= int(self.flexible_patch["max_voxels"])]
        smallest = tuple(self._valid_input(2 * c + 1, a) for a, c in enumerate(self.output_crop))
        return min(fitting or [smallest], key=lambda p: self._tiling_cost(volume_zyx, p, overlap))

    def _valid_input(self, n: int, axis: int) -> int:
        """Smallest input size >= n that `flexible_patch` allows along `axis` (z, y, x)."""
        mult, off = self.flexible_patch["multiple"][axis], self.flexible_patch["offset"][axis]
        return off + mult * max(0, -(-(n - off) // mult))

    def _tiling_cost(self, volume_zyx: tuple[int, ...], patch: tuple[int, ...], overlap: float) -> tuple[int, int]:
        """(input voxels fed to the network, window count) when `patch` tiles the volume with `overlap`."""
        windows = prod(len(window_starts(v, p - 2 * c, overlap)) for v, p, c in zip(volume_zyx, patch, self.output_crop))
        return prod(patch) * windows, windows

    def accepts(self, modality: str) -> bool:
        """True when the network takes input of `modality` ("ct" or "mr")."""
        return modality in self.modalities

    def input_for(self, modality: str) -> ModalityInput:
        """How to prepare `modality` input for this network; ModelError when it does not accept that modality."""
        if not self.accepts(modality):
            raise ModelError(f"model '{self.name}' does not accept {modality.upper()} input "
                             f"(it accepts {', '.join(m.upper() for m in self.modalities)})")
        return ModalityInput.from_manifest(modality, self.modalities[modality], self.normalization)

    @property
    def resampled_threshold(self) -> float:
        """What a resampled output of this model must exceed to count as foreground (see `output_resampling`)."""
        return OUTPUT_RESAMPLING[self.output_resampling]

    @property
    def output_size(self) -> tuple[int, int, int]:
        """(z, y, x) voxels of one output patch: the input patch less `output_crop` on both sides."""
        return tuple(p - 2 * c for p, c in zip(self.patch_size, self.output_crop))

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
        if "output_crop" in d:
            d["output_crop"] = tuple(int(s) for s in d["output_crop"])
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
