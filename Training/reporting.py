"""Run logs a person can read: CSV per epoch, TensorBoard, PNG learning curves and validation overlays."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from LiverTumorSegLib.windowing import PRESETS, WindowPreset, apply_window  # noqa: E402


def write_history_csv(history: list[dict], path: Path) -> None:
    """All epochs so far as CSV (rewritten each epoch, so a resumed run has no duplicate rows)."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and validation-metric curves per epoch as a PNG."""
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend(), ax1.grid(alpha=0.3)
    for key in sorted({k for h in history for k in h if k.startswith("val_")}):
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) not in (None, "")]
        if pts:
            ax2.plot(*zip(*pts), marker="o", label=key)
    ax2.set_xlabel("epoch"), ax2.set_ylabel("validation Dice (model grid)"), ax2.set_ylim(0, 1), ax2.grid(alpha=0.3)
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def best_slice(ref: np.ndarray, pred: np.ndarray) -> int:
    """Axial slice with the most tumor (else liver) voxels in reference or prediction."""
    for cls in (2, 1):
        counts = ((ref == cls) | (pred == cls)).sum(axis=(1, 2))
        if counts.max() > 0:
            return int(counts.argmax())
    return ref.shape[0] // 2


def radiological(slice_yx: np.ndarray, direction: tuple[float, ...] | None) -> np.ndarray:
    """An axial slice flipped so that anterior is up and the patient's right is on the left (axis-aligned grids)."""
    if direction is None:
        return slice_yx
    out = slice_yx[:, ::-1] if direction[0] < 0 else slice_yx
    return out[::-1, :] if direction[4] < 0 else out


def save_overlay(hu: np.ndarray, ref: np.ndarray, pred: np.ndarray, spacing_xyz, path: Path, title: str,
                 direction: tuple[float, ...] | None = None, window: WindowPreset | None = None) -> None:
    """CT slice in the liver window (or `window`, e.g. for an MR) with reference (green/yellow) and predicted
    (red/magenta) contours."""
    z = best_slice(ref, pred)
    hu, ref, pred = (radiological(a[z], direction) for a in (hu, ref, pred))
    img = apply_window(hu, window or PRESETS["liver"])
    aspect = spacing_xyz[1] / spacing_xyz[0]
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] * aspect / img.shape[1] + 0.5))
    ax.imshow(img, cmap="gray", aspect=aspect, vmin=0, vmax=1)
    for arr, colors, style in ((ref, ("lime", "yellow"), "-"), (pred, ("red", "magenta"), "--")):
        for cls, color in zip((1, 2), colors):
            mask = (arr >= cls) if cls == 1 else (arr == cls)
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=1.2, linestyles=style)
    ax.set_title(f"{title}  z={z}\nreference: green liver / yellow tumor; prediction: red / magenta (dashed)", fontsize=8)
    ax.axis("off")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


class TensorBoardLog:
    """A TensorBoard writer that degrades to nothing if tensorboard is unavailable."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))
        except ImportError:  # pragma: no cover
            self.writer = None

    def scalars(self, row: dict, step: int) -> None:
        """Log every numeric value of an epoch row."""
        if self.writer is None:
            return
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "epoch":
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close."""
        if self.writer is not None:
            self.writer.close()
