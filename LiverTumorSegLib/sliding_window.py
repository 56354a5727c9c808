"""Sliding-window inference with Gaussian blending, cancellable between patches."""
from __future__ import annotations

import threading
from itertools import product
from typing import Callable

import numpy as np

from .errors import CancelledError

Progress = Callable[[float, str], None]


def gaussian_weights(patch: tuple[int, int, int], sigma_fraction: float) -> np.ndarray:
    """(z, y, x) float32 weights peaking at the patch centre, never zero."""
    axes = []
    for n in patch:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2
        axes.append(np.exp(-0.5 * (x / max(n * sigma_fraction, 1e-6)) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    w = w / w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start offsets along one axis so that windows of `patch` cover `size` with `overlap`."""
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    n = int(np.ceil((size - patch) / step)) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def _pad_to(volume: np.ndarray, shape: tuple[int, ...], value: float) -> np.ndarray:
    """`volume` padded at the end of each axis up to `shape` with `value`."""
    pads = [(0, max(0, s - v)) for s, v in zip(shape, volume.shape)]
    return np.pad(volume, pads, constant_values=value) if any(p[1] for p in pads) else volume


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax along `axis`, float32."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def sigmoid_two_class(logits: np.ndarray) -> np.ndarray:
    """(2, ...) float32 [1 - p, p] from one-channel logits (1, ...): p = logistic(logit)."""
    p = (1.0 / (1.0 + np.exp(-np.clip(logits[0], -60.0, 60.0)))).astype(np.float32)
    return np.stack([1.0 - p, p])


ACTIVATIONS = {"softmax": softmax, "sigmoid": sigmoid_two_class}


def mirror_sets(axes: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every subset of `axes` (z=0, y=1, x=2), the empty one (no mirroring) first."""
    return [tuple(a for i, a in enumerate(axes) if mask >> i & 1) for mask in range(1 << len(axes))]


def mirrored_probabilities(run: Callable[[np.ndarray], np.ndarray], patch: np.ndarray, to_probs,
                           mirror_axes: tuple[int, ...]) -> np.ndarray:
    """Class probabilities (C, z', y', x') of one (z, y, x) patch, averaged over its mirror images along
    `mirror_axes` (test-time augmentation, as nnU-Net does; none = one plain run)."""
    total = None
    flips = mirror_sets(mirror_axes)
    for axes in flips:
        x = np.flip(patch, axes) if axes else patch
        probs = to_probs(run(np.ascontiguousarray(x)[None, None])[0])
        probs = np.flip(probs, tuple(a + 1 for a in axes)) if axes else probs
        total = probs if total is None else total + probs
    return total / len(flips) if len(flips) > 1 else total


def predict_probabilities(
    volume: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    patch: tuple[int, int, int],
    *,
    output_crop: tuple[int, int, int] = (0, 0, 0),
    activation: str = "softmax",
    overlap: float = 0.5,
    sigma_fraction: float = 0.125,
    pad_value: float = 0.0,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    mirror_axes: tuple[int, ...] = (),
    settle: Callable[[np.ndarray, int], bool] | None = None,
) -> np.ndarray:
    """Class probabilities (C, z, y, x) float32 for a normalised (z, y, x) volume.

    `run` maps a (1, 1, *patch) batch to (1, C', *out) logits, where `out` is `patch` less `output_crop`
    on each side (a network with "valid" convolutions predicts the centre of its input). Output windows
    tile the volume with `overlap` and are blended with Gaussian weights; whatever an input window needs
    beyond the volume is `pad_value`. `activation` turns logits into probabilities ("sigmoid": one
    channel → [background, foreground]). `mirror_axes` (z=0, y=1, x=2) averages each window over its mirror
    images along those axes (2^n network runs per window). With `settle`, the topmost row of windows along z runs
    first; `settle(probabilities so far, first z of that row's output)` (background where no window reached) may end
    the run there by returning True.
    """
    shape = volume.shape
    out_patch = tuple(p - 2 * c for p, c in zip(patch, output_crop))
    out_shape = tuple(max(s, o) for s, o in zip(shape, out_patch))
    pads = [(c, c + o - s) for c, o, s in zip(output_crop, out_shape, shape)]
    padded = np.pad(volume, pads, constant_values=pad_value) if any(a or b for a, b in pads) else volume
    weights = gaussian_weights(out_patch, sigma_fraction)
    starts = list(product(*[window_starts(s, o, overlap) for s, o in zip(out_shape, out_patch)]))
    top = max(z for z, _, _ in starts)
    if settle is not None:  # the top row first (stable sort: the rest in their usual order)
        starts.sort(key=lambda s: s[0] != top)
    to_probs = ACTIVATIONS[activation]
    acc: np.ndarray | None = None
    norm = np.zeros(out_shape, dtype=np.float32)
    for i, (z, y, x) in enumerate(starts):
        if settle is not None and z != top and i and starts[i - 1][0] == top:
            if settle(_blended(acc, norm)[:, : shape[0], : shape[1], : shape[2]], top):
                break
        if cancel is not None and cancel.is_set():
            raise CancelledError("segmentation cancelled")
        src = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
        dst = (slice(z, z + out_patch[0]), slice(y, y + out_patch[1]), slice(x, x + out_patch[2]))
        probs = mirrored_probabilities(run, padded[src], to_probs, mirror_axes)
        if probs.shape[1:] != out_patch:
            raise ValueError(f"the network returned {probs.shape[1:]} voxels for a {patch} patch, expected {out_patch}")
        if acc is None:
            acc = np.zeros((probs.shape[0],) + out_shape, dtype=np.float32)
        acc[(slice(None),) + dst] += probs * weights
        norm[dst] += weights
        if progress:
            progress((i + 1) / len(starts), f"patch {i + 1}/{len(starts)}")
    return _blended(acc, norm)[:, : shape[0], : shape[1], : shape[2]]


def _blended(acc: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Weighted sums over their weights, (C, z, y, x) float32; background (channel 0 = 1) where no window reached."""
    reached = norm > 0
    out = np.divide(acc, norm[None], out=np.zeros_like(acc), where=reached[None])
    out[0][~reached] = 1.0
    return out
