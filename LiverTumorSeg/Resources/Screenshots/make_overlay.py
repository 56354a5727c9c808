"""Render overlay.png: LiverTumorSeg's result on the built-in demo CT, drawn with matplotlib.

This is not a screenshot of 3D Slicer. It shows the label map that the module imports as the
"Liver" / "Liver tumor" segments (identical to LiverTumorSegLib.segment's, as Testing/slicer checks),
over the CT in the library's liver window, with the numbers the module's panel and lesion table show.
Run from the repository root:  python LiverTumorSeg/Resources/Screenshots/make_overlay.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from LiverTumorSegLib import PRESETS, apply_window, segment  # noqa: E402
from LiverTumorSegLib.data import DEMO_CT  # noqa: E402
from LiverTumorSegLib.terminology import SEGMENTS  # noqa: E402

OUT = Path(__file__).with_name("overlay.png")


def radiological(slice2d: np.ndarray, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    """Flip a slice so that it reads like a radiological view."""
    out = slice2d[::-1] if flip_rows else slice2d
    return out[:, ::-1] if flip_cols else out


def overlay(ax, ct: np.ndarray, labels: np.ndarray, aspect: float, title: str) -> None:
    """The CT slice in the liver window with translucent segment colours and outlines."""
    ax.imshow(apply_window(ct, "liver"), cmap="gray", aspect=aspect, interpolation="nearest")
    for spec in SEGMENTS:
        mask = labels == spec.label
        if mask.any():
            rgba = np.zeros(mask.shape + (4,))
            rgba[mask] = (*spec.color_float, 0.45)
            ax.imshow(rgba, aspect=aspect, interpolation="nearest")
            ax.contour(mask, levels=[0.5], colors=[spec.color_float], linewidths=1.2)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def main() -> None:
    """Segment the demo CT and write overlay.png."""
    image = sitk.ReadImage(str(DEMO_CT))
    result = segment(image)
    hu, labels = sitk.GetArrayFromImage(image).astype(np.float32), result.labels
    direction = np.reshape(image.GetDirection(), (3, 3))
    sx, sy, sz = image.GetSpacing()
    flip_lr, flip_ap = direction[0, 0] < 0, direction[1, 1] < 0  # show patient right on the left, anterior up
    tumor_per_slice = (labels == 2).sum(axis=(1, 2))
    z = int(tumor_per_slice.argmax() if tumor_per_slice.any() else (labels > 0).sum(axis=(1, 2)).argmax())
    y = int((labels > 0).sum(axis=(0, 2)).argmax())

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.1, 1.1, 1.0]})
    overlay(axes[0], radiological(hu[z], flip_ap, flip_lr), radiological(labels[z], flip_ap, flip_lr),
            sy / sx, f"axial slice {z}")
    overlay(axes[1], radiological(hu[:, y], direction[2, 2] > 0, flip_lr),
            radiological(labels[:, y], direction[2, 2] > 0, flip_lr), sz / sx, f"coronal slice {y}")
    summary_panel(axes[2], result)
    fig.suptitle("LiverTumorSeg on the built-in demo CT (liver window "
                 f"{PRESETS['liver'].level:.0f}/{PRESETS['liver'].width:.0f} HU). "
                 "Matplotlib rendering of the module's output, not a 3D Slicer screenshot.", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT, dpi=100)
    print(f"wrote {OUT}: {result.summary()}")


def summary_panel(ax, result) -> None:
    """Legend, headline numbers and the first lesion rows, as the module's Results section shows them."""
    s = result.summary()
    lines = [f"Liver volume (incl. tumors): {s['liver_volume_ml']:.1f} ml",
             f"Tumor volume: {s['tumor_volume_ml']:.2f} ml",
             f"Tumor burden: {s['tumor_burden_percent']:.2f} %",
             f"Lesions: {s['lesions']}", "",
             "id  volume ml  diameter mm  centroid RAS mm"]
    for lesion in result.lesions[:8]:
        r, a, sup = lesion.centroid_ras
        lines.append(f"{lesion.id:>2}  {lesion.volume_ml:9.2f}  {lesion.longest_axial_diameter_mm:11.1f}"
                     f"  ({r:.0f}, {a:.0f}, {sup:.0f})")
    if not result.lesions:
        lines.append("(no lesion found)")
    ax.text(0.0, 0.95, "\n".join(lines), family="monospace", fontsize=9, va="top", transform=ax.transAxes)
    for i, spec in enumerate(SEGMENTS):
        ax.add_patch(plt.Rectangle((0.0, 0.12 - 0.08 * i), 0.05, 0.05, color=spec.color_float, transform=ax.transAxes))
        ax.text(0.07, 0.14 - 0.08 * i, spec.name, fontsize=10, va="center", transform=ax.transAxes)
    ax.axis("off")


if __name__ == "__main__":
    main()
