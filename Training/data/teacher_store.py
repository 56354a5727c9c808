"""Storage of cached teacher probabilities: one .npz per case (float16 (z, y, x) arrays + their grid)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def save_teacher_npz(path: Path, arrays: dict[str, np.ndarray], grid: sitk.Image) -> None:
    """Write (z, y, x) probability arrays as float16 plus the grid (spacing x, y, z mm, origin, direction), atomically."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{k: v.astype(np.float16) for k, v in arrays.items()},
                        spacing=np.array(grid.GetSpacing()), origin=np.array(grid.GetOrigin()),
                        direction=np.array(grid.GetDirection()))
    tmp.replace(path)


def load_teacher_image(path: str | Path, key: str = "prob") -> sitk.Image:
    """One cached probability array as a float32 image on its grid."""
    with np.load(path) as z:
        img = sitk.GetImageFromArray(z[key].astype(np.float32))
        img.SetSpacing(tuple(map(float, z["spacing"])))
        img.SetOrigin(tuple(map(float, z["origin"])))
        img.SetDirection(tuple(map(float, z["direction"])))
    return img
