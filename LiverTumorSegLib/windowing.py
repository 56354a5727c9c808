"""HU window presets (display) and the model input normalisation (from a manifest)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowPreset:
    """A display window in Hounsfield units: centre (level) and width."""

    name: str
    level: float
    width: float

    @property
    def lower(self) -> float:
        """Lowest HU shown (black)."""
        return self.level - self.width / 2

    @property
    def upper(self) -> float:
        """Highest HU shown (white)."""
        return self.level + self.width / 2


#: Named presets shared by the CLI, the training overlays and the Slicer module's buttons.
PRESETS: dict[str, WindowPreset] = {
    p.name: p
    for p in (
        WindowPreset("liver", level=60.0, width=160.0),
        WindowPreset("abdomen", level=40.0, width=400.0),
        WindowPreset("bone", level=400.0, width=1800.0),
        WindowPreset("lung", level=-600.0, width=1500.0),
    )
}


def apply_window(hu: np.ndarray, preset: WindowPreset | str) -> np.ndarray:
    """Map HU to [0, 1] float32 through a display window (clipped outside it)."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    out = (np.asarray(hu, dtype=np.float32) - p.lower) / p.width
    return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class Normalization:
    """Model input normalisation: clip HU to [clip_low, clip_high], then (x - mean) / std."""

    clip_low: float
    clip_high: float
    mean: float
    std: float

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of an HU array (any shape)."""
        out = np.clip(np.asarray(hu, dtype=np.float32), self.clip_low, self.clip_high)
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form for a manifest."""
        return {"clip_low": self.clip_low, "clip_high": self.clip_high, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        """Inverse of `to_dict`."""
        return cls(float(d["clip_low"]), float(d["clip_high"]), float(d["mean"]), float(d["std"]))


@dataclass(frozen=True)
class RangeNormalization:
    """Image-adaptive input normalisation for intensities without a fixed scale (MR).

    lower = the `low_percentile` of the image, top = its `high_percentile`, upper = lower + `upper_fraction` *
    (top - lower); intensities are clipped to [lower, upper] and mapped linearly onto [out_low, out_high].
    pyliverlesionseg's liver network was trained on MR so normalised with percentiles 0 / 100 and fraction 0.8
    (the lowest 80 % of the image's range onto [-0.5, 0.5]).
    """

    low_percentile: float = 0.0
    high_percentile: float = 100.0
    upper_fraction: float = 0.8
    out_low: float = -0.5
    out_high: float = 0.5
    kind: str = "range"

    def bounds(self, values: np.ndarray) -> tuple[float, float]:
        """(lower, upper) intensities of an image (any shape) under this normalisation."""
        lower, top = np.percentile(np.asarray(values, dtype=np.float32), [self.low_percentile, self.high_percentile])
        return float(lower), float(lower + self.upper_fraction * (top - lower))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of an image (any shape); a constant image maps to `out_low`."""
        lower, upper = self.bounds(values)
        out = np.clip(np.asarray(values, dtype=np.float32), lower, upper)
        out -= np.float32(lower)
        out *= np.float32((self.out_high - self.out_low) / max(upper - lower, 1e-6))
        out += np.float32(self.out_low)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form for a manifest."""
        return {"kind": self.kind, "low_percentile": self.low_percentile, "high_percentile": self.high_percentile,
                "upper_fraction": self.upper_fraction, "out_low": self.out_low, "out_high": self.out_high}


def normalization_from_dict(d: dict) -> Normalization | RangeNormalization:
    """A manifest's normalisation entry: fixed HU clip + standardise (CT), or `"kind": "range"` (image-adaptive, MR)."""
    if d.get("kind", "fixed") == "range":
        return RangeNormalization(**{k: float(v) for k, v in d.items() if k != "kind"})
    return Normalization.from_dict(d)
