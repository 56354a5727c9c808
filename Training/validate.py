"""Validation on the model grid: sliding-window prediction of cached cases and per-class Dice."""
from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from .config import Config
from .data.cache import CachedCase


def pad_to_multiple(x: torch.Tensor, multiple: int, value: float) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(N, C, z, y, x) padded at the end so every spatial size is a multiple; returns it and the old size."""
    size = tuple(x.shape[2:])
    pads = [(-s) % multiple for s in size]
    if any(pads):
        x = torch.nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), value=value)
    return x, size  # type: ignore[return-value]


@torch.no_grad()
def predict_volume(model: torch.nn.Module, image_zyx: np.ndarray, cfg: Config, device: torch.device) -> np.ndarray:
    """Per-class probabilities (C, z, y, x) float32 for a normalised volume, Gaussian-blended windows."""
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image_zyx, dtype=np.float32))[None, None].to(device)
    low = float(cfg.stage.normalization()(np.array([-1024.0]))[0])
    x, size = pad_to_multiple(x, 2**cfg.network.depth, low)
    roi = tuple(min(p, s) for p, s in zip(cfg.stage.patch_size, x.shape[2:]))
    logits = sliding_window_inference(x, roi, 1, model, overlap=0.25, mode="gaussian", padding_mode="replicate")
    probs = torch.as_tensor(logits).softmax(1)[0, :, : size[0], : size[1], : size[2]]
    return probs.float().cpu().numpy()


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = pred.sum() + ref.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, ref).sum() / total)


def validate_case(model: torch.nn.Module, case: CachedCase, cfg: Config, device: torch.device) -> tuple[dict, np.ndarray]:
    """({'dice_<class>': ...}, predicted labels (z, y, x) uint8) for one cached case."""
    probs = predict_volume(model, cfg.stage.normalization()(case.image), cfg, device)
    pred = probs.argmax(0).astype(np.uint8)
    ref = np.asarray(case.labels)
    scores = {}
    for c, name in cfg.stage.classes.items():
        if c == 0:
            continue
        # liver Dice counts tumor as liver (whole organ), as the benchmarks do
        p, r = (pred >= c, ref >= c) if c == 1 else (pred == c, ref == c)
        scores[f"dice_{name}"] = dice(p, r)
    return scores, pred
