"""Write the pymirc zoom3d / ndimage.zoom reference values `Testing/lib/test_zoom.py` checks our `zoom.py` against.

Runs under the reference tool's Python (`../shared/tools/pyliverlesionseg-original/`, which has pymirc and numba):

    $D/venv/bin/python Training/pretrained/zoom_reference.py Testing/data/pymirc_zoom3d_reference.npz
"""
from __future__ import annotations

import sys

import numpy as np
from pymirc.image_operations import zoom3d
from scipy import ndimage

#: (shape, zooms) pairs: CT-like downsampling (0.8 mm -> 1 mm in plane, 1.5 -> 3 mm in z), upsampling, mixed.
CASES = [((19, 21, 11), (0.8, 0.8, 0.5)), ((12, 13, 9), (1.3, 0.7421875, 1.0)), ((7, 9, 10), (2.5, 1.0, 0.3))]


def main() -> int:
    """Random volumes, their zoom3d and the corner-aligned linear zoom of a binary mask back, into one npz."""
    rng = np.random.default_rng(17)
    out = {}
    for i, (shape, zooms) in enumerate(CASES):
        volume = rng.normal(size=shape)
        zoomed = zoom3d(volume, list(zooms), cval=0)
        mask = (rng.random(zoomed.shape) > 0.7).astype(np.float64)
        back = ndimage.zoom(mask, np.array(shape) / np.array(mask.shape), order=1, prefilter=False)
        out.update({f"volume_{i}": volume, f"zooms_{i}": np.array(zooms), f"zoomed_{i}": zoomed,
                    f"mask_{i}": mask, f"back_{i}": back})
    np.savez_compressed(sys.argv[1], **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
