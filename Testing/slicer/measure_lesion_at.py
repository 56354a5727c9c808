"""Measure "Add lesion" (LiverTumorSegLib.lesion_at) on lits117_roi's expert lesions: one point per lesion.

For each 26-connected expert lesion of >= 0.5 ml (spacing 1 x 1 x 2.5 mm assumed, as MODEL_CARD.md does),
the point is the lesion voxel deepest inside it (where a reader would click); the liver given is the expert
liver with its tumors. Prints, per threshold, the Dice of the grown lesion with that expert lesion.
Run: LIVERTUMORSEG_MODEL_SET=pyliverlesionseg PYTHONPATH=$PWD python Testing/slicer/measure_lesion_at.py [threads] [half_box_mm]
"""
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LiverTumorSegLib.lesion_at import LesionAtConfig, lesion_at

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "lits117_roi"


def main(threads: int = 1, half_box_mm: float = LesionAtConfig.half_box_mm) -> None:
    ct = sitk.ReadImage(str(DATA / "ct.nii.gz"))
    ct.SetSpacing((1.0, 1.0, 2.5))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "label.nii.gz"))).astype(np.uint8)
    lesions, count = ndimage.label(labels == 2, structure=np.ones((3, 3, 3), bool))
    liver = labels > 0
    rows = []
    for k in range(1, count + 1):
        lesion = lesions == k
        if lesion.sum() * 2.5 / 1000 < 0.5:
            continue
        depth = ndimage.distance_transform_edt(lesion, sampling=(2.5, 1, 1))
        point_zyx = np.unravel_index(int(np.argmax(depth)), depth.shape)
        dice = {}
        for threshold in (0.5, 0.3, 0.15):
            start = time.perf_counter()
            grown = lesion_at(ct, liver, tuple(int(v) for v in point_zyx[::-1]), threads=threads,
                              config=LesionAtConfig(half_box_mm=half_box_mm, threshold=threshold))
            seconds = time.perf_counter() - start
            dice[threshold] = 2 * (grown & lesion).sum() / max(1, grown.sum() + lesion.sum())
        rows.append((k, lesion.sum() * 2.5 / 1000, dice, seconds))
        print(f"lesion {k}: {rows[-1][1]:.2f} ml, Dice " + ", ".join(f"t={t}: {d:.3f}" for t, d in dice.items())
              + f", {seconds:.1f} s", flush=True)
    for threshold in (0.5, 0.3, 0.15):
        values = [r[2][threshold] for r in rows]
        print(f"threshold {threshold}: mean Dice {np.mean(values):.3f}, median {np.median(values):.3f}, "
              f"found (Dice > 0.2) {sum(v > 0.2 for v in values)} of {len(values)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1,
         float(sys.argv[2]) if len(sys.argv) > 2 else LesionAtConfig.half_box_mm)
