"""Dataset adapters: LiTS, MSD Task03, 3D-IRCADb-01 (DICOM), a generic CSV, and the shared real data.

Each adapter lists `Case`s; `load_case` reads one into (CT in HU, labels 0/1/2 on the CT grid).
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.geometry import same_grid
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.resample import resample_labels

from ..config import SourceConfig
from .case import Case, LabelPart
from .distill_sources import negative_cases, teacher_cases


def _mapped(part: LabelPart, arr: np.ndarray) -> np.ndarray:
    """Label array (uint8, 0 where unmapped) for one part."""
    if not part.mapping:
        return np.where(arr != 0, part.value, 0).astype(np.uint8)
    out = np.zeros(arr.shape, np.uint8)
    for src, dst in part.mapping.items():
        out[arr == src] = dst
    return out


def load_case(case: Case) -> tuple[sitk.Image, sitk.Image]:
    """(CT float32 HU, labels uint8 0/1/2 on the CT grid) of a case; later label parts win where > 0."""
    ct = sitk.Cast(read_image(case.image), sitk.sitkFloat32)
    if case.z_slices is not None:
        ct = ct[:, :, case.z_slices[0]:case.z_slices[1]]
    merged = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    for part in case.labels:
        lab = read_image(part.path)
        if not same_grid(lab, ct, tol=1e-3):
            lab = resample_labels(lab, ct)
        mapped = _mapped(part, sitk.GetArrayViewFromImage(lab))
        merged = np.where(mapped > 0, mapped, merged)
    labels = sitk.GetImageFromArray(merged)
    labels.CopyInformation(ct)
    return ct, labels


def _nii(folder: Path, stem: str) -> Path | None:
    """`stem`.nii or `stem`.nii.gz in `folder`, if present."""
    for ext in (".nii", ".nii.gz"):
        if (folder / (stem + ext)).is_file():
            return folder / (stem + ext)
    return None


def lits_cases(root: Path) -> list[Case]:
    """LiTS: `volume-N.nii[.gz]` beside `segmentation-N.nii[.gz]` (any sub-folder; 1 liver, 2 tumor)."""
    cases = []
    for vol in sorted(root.rglob("volume-*.nii*")):
        num = re.match(r"volume-(\d+)\.nii", vol.name)
        seg = _nii(vol.parent, f"segmentation-{num.group(1)}") if num else None
        if seg is not None:
            cases.append(Case(f"lits_{int(num.group(1)):03d}", str(vol), (LabelPart(str(seg), {1: 1, 2: 2}),), True, "", "lits"))
    return sorted(cases, key=lambda c: c.case_id)


def msd_cases(root: Path) -> list[Case]:
    """MSD Task03_Liver: `dataset.json` training pairs from `imagesTr/` and `labelsTr/` (1 liver, 2 cancer)."""
    meta = json.loads((root / "dataset.json").read_text())
    names = {int(k): v.lower() for k, v in meta.get("labels", {"1": "liver", "2": "cancer"}).items()}
    mapping = {k: (1 if "liver" in v else 2) for k, v in names.items() if k > 0}
    cases = []
    for pair in meta["training"]:
        img, lab = root / pair["image"], root / pair["label"]
        if img.name.startswith("._") or not img.is_file():
            continue
        cid = "msd_" + img.name.split(".nii")[0]
        cases.append(Case(cid, str(img), (LabelPart(str(lab), mapping),), True, "", "msd"))
    return cases


def ircadb_cases(root: Path) -> list[Case]:
    """3D-IRCADb-01: per patient `PATIENT_DICOM/` and `MASKS_DICOM/{liver, livertumor*}` merged (1 liver, 2 tumor)."""
    cases = []
    for patient in sorted(p for p in root.iterdir() if (p / "PATIENT_DICOM").is_dir()):
        masks = patient / "MASKS_DICOM"
        parts = [LabelPart(str(masks / "liver"), {}, 1)] if (masks / "liver").is_dir() else []
        tumors = sorted(m for m in masks.iterdir() if m.is_dir() and m.name.lower().startswith("livertumor"))
        parts += [LabelPart(str(m), {}, 2) for m in tumors]
        if parts:
            cid = "ircadb_" + patient.name.split(".")[-1].zfill(2)
            cases.append(Case(cid, str(patient / "PATIENT_DICOM"), tuple(parts), True, "", "ircadb"))
    return cases


def _parse_mapping(text: str) -> dict[int, int]:
    """'1:1;2:2' -> {1: 1, 2: 2}; empty -> {1: 1, 2: 2}."""
    if not text.strip():
        return {1: 1, 2: 2}
    return {int(a): int(b) for a, b in (item.split(":") for item in text.replace(",", ";").split(";") if item.strip())}


def csv_cases(csv_path: Path) -> list[Case]:
    """Generic CSV with columns image, label[, label_map '1:1;2:2'][, split][, case_id][, tumors_annotated]."""
    cases = []
    with open(csv_path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            img = (csv_path.parent / row["image"]).resolve()
            lab = (csv_path.parent / row["label"]).resolve()
            annotated = row.get("tumors_annotated", "true").strip().lower() not in ("0", "false", "no")
            cid = row.get("case_id") or f"csv_{i:03d}"
            part = LabelPart(str(lab), _parse_mapping(row.get("label_map", "")))
            cases.append(Case(cid, str(img), (part,), annotated, row.get("split", "").strip(), "csv"))
    return cases


def shared_cases(root: Path) -> list[Case]:
    """The project's shared real data (see ../shared/data/README.md): CTs with a liver label."""
    return [
        Case("chaos_ct3", str(root / "chaos_ct3/ct.nii.gz"), (LabelPart(str(root / "chaos_ct3/liver_silver.nii.gz"), {1: 1}),),
             True, "", "shared"),  # healthy liver donor: no tumors
        Case("totalseg_ct", str(root / "totalseg_example/ct.nii.gz"),
             (LabelPart(str(root / "totalseg_example/liver_reference.nii.gz"), {1: 1}),), False, "", "shared"),
        Case("lits117_roi", str(root / "lits117_roi/ct.nii.gz"), (LabelPart(str(root / "lits117_roi/label.nii.gz"), {1: 1, 2: 2}),),
             True, "", "shared"),
        Case("dcmqi_ct3slice", str(root / "dcmqi_ct3slice/dicom"), (LabelPart(str(root / "dcmqi_ct3slice/liver_seg.nrrd"), {1: 1}),),
             False, "", "shared"),
    ]


ADAPTERS = {"lits": lits_cases, "msd": msd_cases, "ircadb": ircadb_cases, "csv": csv_cases, "shared": shared_cases}


def all_adapters() -> dict:
    """ADAPTERS plus the distillation sources."""
    return {**ADAPTERS, "teacher": teacher_cases, "negatives": negative_cases}


def list_cases(sources: list[SourceConfig]) -> list[Case]:
    """All cases of all sources, filtered by each source's `cases` list; ids must be unique."""
    cases: list[Case] = []
    adapters = all_adapters()
    for src in sources:
        if src.kind not in adapters:
            raise ValueError(f"unknown data source kind {src.kind!r} (known: {sorted(adapters)})")
        found = adapters[src.kind](Path(src.root))
        if src.cases:
            missing = set(src.cases) - {c.case_id for c in found}
            if missing:
                raise ValueError(f"cases {sorted(missing)} not found in {src.kind} source {src.root}")
            found = [c for c in found if c.case_id in src.cases]
        cases += found
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate case ids across sources: {sorted({i for i in ids if ids.count(i) > 1})}")
    return cases
