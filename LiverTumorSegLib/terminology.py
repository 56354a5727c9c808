"""Segment names, colours and SNOMED CT codes for the two output labels (shared with the Slicer module)."""
from __future__ import annotations

from dataclasses import dataclass

from .result import LIVER, TUMOR


@dataclass(frozen=True)
class Code:
    """A coded concept (scheme, value, meaning), e.g. SCT 10200004 Liver."""

    scheme: str
    value: str
    meaning: str

    def slicer(self) -> str:
        """`scheme^value^meaning`, the form used inside Slicer terminology strings."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


EMPTY = Code("", "", "")
LIVER_CODE = Code("SCT", "10200004", "Liver")


@dataclass(frozen=True)
class SegmentSpec:
    """How one label value is presented as a segment."""

    label: int
    name: str
    color_rgb: tuple[int, int, int]
    category: Code
    type: Code
    region: Code = EMPTY

    @property
    def color_float(self) -> tuple[float, float, float]:
        """Colour as three floats in [0, 1]."""
        return tuple(c / 255.0 for c in self.color_rgb)  # type: ignore[return-value]

    def terminology_entry(self) -> str:
        """Slicer terminology entry string (category/type/region) for segment tags."""
        context = "Segmentation category and type - DICOM master list"
        region_context = "Anatomic codes - DICOM master list"
        return (f"{context}~{self.category.slicer()}~{self.type.slicer()}~^^~"
                f"{region_context}~{self.region.slicer()}~^^")


SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(LIVER, "Liver", (221, 130, 101),
                Code("SCT", "123037004", "Anatomical Structure"), LIVER_CODE),
    SegmentSpec(TUMOR, "Liver tumor", (144, 238, 144),
                Code("SCT", "49755003", "Morphologically Altered Structure"),
                Code("SCT", "108369006", "Neoplasm"), LIVER_CODE),
)
