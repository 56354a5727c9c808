"""pyliverlesionseg's tiling of the dilated liver: where its fixed-size lesion network's windows sit.

pyliverlesionseg (DeepVoxNet) crops its masked input to the bounding box of the dilated liver, feeds zeros beyond
that box, and tiles the box with output windows starting at 0, `out`, 2 `out`, ... plus one window ending at the far
edge when `out` does not divide the box; later windows overwrite earlier ones. Its arrays are RAS, so along y and x its
grid starts at the far end of our LPS arrays. The lesion network normalises each window's features over the whole
window (instance normalisation), so where the windows sit changes what it calls: on the original's saved input of
lits117_roi this grid agrees with the original's output to tumor Dice 0.991 (`python -m Training.pipeline_parity
network`), a cover of the liver with fewer windows (rows fitted to the liver; a one-off experiment) only to 0.956.
"""
from __future__ import annotations

import threading
from itertools import product
from typing import Callable

import numpy as np

from .errors import CancelledError

Start = tuple[int, int, int]
Progress = Callable[[float, str], None]
#: Axes (z, y, x) along which pyliverlesionseg's RAS arrays run against our canonical LPS arrays.
RAS_FLIPPED = (False, True, True)


def deepvoxnet_starts(size: int, out: int) -> list[int]:
    """pyliverlesionseg's window starts along one axis that reach its output: 0, out, 2 out, ... and, when `out` does
    not divide `size`, a last window ending at `size`; an axis shorter than the window gets one window centred on it.

    The original also runs the windows from k out up to size - out, but the last window overwrites all of their output,
    so they change nothing and are left out here.
    """
    if size < out:  # DeepVoxNet samples the axis' centre voxel ceil((size - 1) / 2) and centres the window there
        return [-(-(size - 1) // 2) - out // 2]
    if size % out == 0:
        return list(range(0, size, out))
    last = size - out
    return [s for s in range(0, size, out) if s < last] + [last]


def liver_grid(box_shape: tuple[int, int, int], out: tuple[int, int, int]) -> list[Start]:
    """Output-window starts (z, y, x) of pyliverlesionseg's grid over a (z, y, x) box of a canonical LPS array, in its
    order (x outermost, z innermost, each ascending in RAS)."""
    per_axis = [[n - s - o for s in deepvoxnet_starts(n, o)] if flipped else deepvoxnet_starts(n, o)
                for n, o, flipped in zip(box_shape, out, RAS_FLIPPED)]
    return [(z, y, x) for x, y, z in product(per_axis[2], per_axis[1], per_axis[0])]


def predict_tiles(
    volume: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    patch: tuple[int, int, int],
    starts: list[Start],
    *,
    output_crop: tuple[int, int, int],
    pad_value: float = 0.0,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Class probabilities (C, z, y, x) float32 of a (z, y, x) volume from output windows at `starts`, each later
    window overwriting earlier ones where they overlap; voxels no window reaches are background.

    `predict` maps one input patch (z, y, x) to probabilities (C, *output window); a window's input is its output
    window grown by `output_crop` on each side, `pad_value` beyond the volume.
    """
    out_patch = tuple(p - 2 * c for p, c in zip(patch, output_crop))
    lo = [min([0] + [s[a] - output_crop[a] for s in starts]) for a in range(3)]
    hi = [max([n] + [s[a] + patch[a] - output_crop[a] for s in starts]) for a, n in enumerate(volume.shape)]
    padded = np.pad(volume, [(-a, b - n) for a, b, n in zip(lo, hi, volume.shape)], constant_values=pad_value)
    probs: np.ndarray | None = None
    for i, start in enumerate(starts):
        if cancel is not None and cancel.is_set():
            raise CancelledError("segmentation cancelled")
        src = tuple(slice(s - c - a, s - c - a + p) for s, c, a, p in zip(start, output_crop, lo, patch))
        tile = predict(padded[src])
        if tile.shape[1:] != out_patch:
            raise ValueError(f"the network returned {tile.shape[1:]} voxels for a {patch} patch, expected {out_patch}")
        if probs is None:
            probs = np.zeros((tile.shape[0],) + volume.shape, dtype=np.float32)
            probs[0] = 1.0
        dst = tuple(slice(max(s, 0), min(s + o, n)) for s, o, n in zip(start, out_patch, volume.shape))
        part = tuple(slice(d.start - s, d.stop - s) for d, s in zip(dst, start))
        probs[(slice(None),) + dst] = tile[(slice(None),) + part]
        if progress:
            progress((i + 1) / len(starts), f"tile {i + 1}/{len(starts)}")
    if probs is None:
        raise ValueError("no window to run")
    return probs
