"""How to run the cascade from Slicer: shared by the logic and the batch (so the batch need not import the logic)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    """How to run the cascade: device ("auto" | "cpu" | "cuda"), liver only, smallest lesion kept, model set."""

    device: str = "auto"
    liverOnly: bool = False
    minLesionMm3: float | None = None  # None: the library's default
    modelSet: str = ""  # a model set of the library's models folder (its sets.json); "" = its default
    modality: str = ""  # "ct" | "mr"; "" = the library's choice (CT for voxels without DICOM tags)

    def segmentKwargs(self) -> dict:
        """The keyword options of LiverTumorSegLib.segment for this run: the one place to add a new option."""
        kwargs = {"device": self.device, "liver_only": self.liverOnly}
        if self.modelSet:
            kwargs["model_set"] = self.modelSet
        if self.modality:
            kwargs["modality"] = self.modality
        if self.minLesionMm3 is not None:
            kwargs["min_lesion_mm3"] = float(self.minLesionMm3)
        return kwargs
