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


def predict_probabilities(
    volume: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    patch: tuple[int, int, int],
    *,
    overlap: float = 0.5,
    sigma_fraction: float = 0.125,
    pad_value: float = 0.0,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Class probabilities (C, z, y, x) float32 for a normalised (z, y, x) volume.

    `run` maps a (1, 1, *patch) batch to (1, C, *patch) logits. Volumes smaller than the patch
    are padded with `pad_value`; overlapping windows are blended with Gaussian weights.
    """
    shape = volume.shape
    padded = _pad_to(volume, tuple(max(s, p) for s, p in zip(shape, patch)), pad_value)
    weights = gaussian_weights(patch, sigma_fraction)
    starts = list(product(*[window_starts(s, p, overlap) for s, p in zip(padded.shape, patch)]))
    acc: np.ndarray | None = None
    norm = np.zeros(padded.shape, dtype=np.float32)
    for i, (z, y, x) in enumerate(starts):
        if cancel is not None and cancel.is_set():
            raise CancelledError("segmentation cancelled")
        sl = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
        probs = softmax(run(padded[sl][None, None])[0])
        if acc is None:
            acc = np.zeros((probs.shape[0],) + padded.shape, dtype=np.float32)
        acc[(slice(None),) + sl] += probs * weights
        norm[sl] += weights
        if progress:
            progress((i + 1) / len(starts), f"patch {i + 1}/{len(starts)}")
    acc /= norm[None]
    return acc[:, : shape[0], : shape[1], : shape[2]]
