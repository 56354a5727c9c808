"""An overlay picture of a comparison: the baseline and the registered follow-up at the same axial slice, each lesion
outlined in its track's colour and labelled with its track id and status.

    python benchmarks/plot_compare.py BASELINE_CT FOLLOWUP_CT OUT/<name>_lesion_changes.json PNG [--slice Z]

Reads the outputs of `livertumorseg compare` (track maps, transform, change table); needs matplotlib.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _slices(report: dict, base_ct: Path, follow_ct: Path) -> tuple[np.ndarray, ...]:
    """(baseline HU, baseline tracks, registered follow-up HU, registered follow-up tracks) as (z, y, x) arrays."""
    files = report["files"]
    base = sitk.ReadImage(str(base_ct), sitk.sitkFloat32)
    transform = sitk.ReadTransform(files["transform"])
    follow = sitk.Resample(sitk.ReadImage(str(follow_ct), sitk.sitkFloat32), base, transform, sitk.sitkLinear, -1024.0)
    follow_tracks = sitk.Resample(sitk.ReadImage(files["followup_tracks"]), base, transform, sitk.sitkNearestNeighbor)
    return tuple(sitk.GetArrayFromImage(i) for i in (base, sitk.ReadImage(files["baseline_tracks"]), follow, follow_tracks))


def plot(base_ct: Path, follow_ct: Path, report_path: Path, png: Path, zs: list[int] | None = None) -> Path:
    """Write the overlay PNG, one row per axial slice; the default slice is the one showing the most kinds of change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(Path(report_path).read_text())
    hu0, tr0, hu1, tr1 = _slices(report, base_ct, follow_ct)
    status = {r["track_id"]: r["status"] for r in report["lesions"]}
    changed = [t for t, s in status.items() if s != "stable"]
    if not zs:
        shown = [set(np.unique(tr0[k])) | set(np.unique(tr1[k])) for k in range(len(tr0))]
        zs = [int(np.argmax([len({status[t] for t in changed if t in ids}) for ids in shown]))]  # most kinds of change
    fig, axes = plt.subplots(len(zs), 2, figsize=(7, 3.6 * len(zs)), dpi=72, squeeze=False)
    for row, z in zip(axes, zs):
        _panels(row, z, (hu0, tr0, hu1, tr1), status)
    fig.tight_layout()
    fig.savefig(png)
    return png


def _panels(axes, z: int, arrays: tuple[np.ndarray, ...], status: dict[int, str]) -> None:
    """Baseline and registered follow-up at slice z, lesions outlined and labelled by track id (and status if changed)."""
    import matplotlib.pyplot as plt

    hu0, tr0, hu1, tr1 = arrays
    colours = plt.get_cmap("tab20")
    for ax, hu, tracks, title in ((axes[0], hu0, tr0, "baseline"), (axes[1], hu1, tr1, "follow-up (registered)")):
        ax.imshow(np.clip(hu[z], -160, 240), cmap="gray", origin="upper")
        for t in np.unique(tracks[z])[1:]:
            ax.contour(tracks[z] == t, levels=[0.5], colors=[colours(int(t) % 20)], linewidths=1.2)
            y, x = np.argwhere(tracks[z] == t).mean(0)
            label = f"{t}" if status.get(int(t)) == "stable" else f"{t} {status.get(int(t), '')}"
            ax.text(x + 4, y - 4, label, color="yellow", fontsize=7)
        ax.set_title(f"{title}, slice {z}", fontsize=9)
        ax.axis("off")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline_ct", type=Path)
    p.add_argument("followup_ct", type=Path)
    p.add_argument("report", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--slice", type=int, action="append", default=None, help="axial slice (repeat for more rows)")
    a = p.parse_args()
    print(plot(a.baseline_ct, a.followup_ct, a.report, a.png, a.slice))
