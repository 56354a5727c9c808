"""The scaling plot: end-to-end time and peak RSS against voxel count."""
from __future__ import annotations

from pathlib import Path


def plot_scaling(rows: list[dict], png: Path) -> Path:
    """Two panels (seconds, MB) vs million voxels, each with a line through the origin and the 1x point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mvox = [r["voxels"] / 1e6 for r in rows]
    ref = next((r for r in rows if r["scale"] == 1.0), rows[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "end_to_end_s", "end to end (s)"), (axes[1], "peak_rss_mb", "peak RSS (MB)")):
        ys = [r[key] for r in rows]
        ax.plot(mvox, ys, "o-", label="measured")
        k = ref[key] / (ref["voxels"] / 1e6)
        ax.plot([0, max(mvox)], [0, k * max(mvox)], "--", color="grey", label="proportional to voxels (through 1x)")
        for x, y, r in zip(mvox, ys, rows):
            ax.annotate(f"{r['scale']:g}x", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
        ax.set_xlabel("input voxels (millions)")
        ax.set_ylabel(label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("LiverTumorSeg: ONNX Runtime, 2 threads, normal mode; same anatomy at finer/coarser spacing")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
