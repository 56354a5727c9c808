"""Patch augmentation with MONAI dictionary transforms (image and label move together).

MONAI rather than hand-written transforms: its 3-D affine/elastic resampling, flips and intensity
transforms are maintained and tested upstream, and the wheel is pure Python on top of torch + numpy.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from monai.data import set_track_meta
from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    Rand3DElasticd,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandShiftIntensityd,
    SpatialPadd,
)

from .config import AugmentConfig

set_track_meta(False)  # plain tensors: faster, and nothing downstream needs MONAI metadata


def context_size(patch_zyx: tuple[int, int, int], cfg: AugmentConfig) -> tuple[int, int, int]:
    """Crop size to sample before spatial augmentation, so rotations and zoom-out keep real context."""
    if not cfg.enabled or cfg.prob_affine <= 0:
        return tuple(patch_zyx)
    grow = 1.15 * max(1.0, 1.0 / cfg.scale[0])
    return tuple(int(math.ceil(p * grow)) for p in patch_zyx)


def build_augmentation(cfg: AugmentConfig, patch_zyx: tuple[int, int, int], soft_labels: bool = False) -> Compose:
    """Transforms for {'image': (1, z, y, x) float, 'label': (C, z, y, x)} ending at `patch_zyx`;
    `soft_labels`: labels are probabilities, interpolated linearly instead of nearest."""
    keys = ("image", "label")
    label_mode = "bilinear" if soft_labels else "nearest"
    spatial = []
    if cfg.enabled:
        rot = tuple(math.radians(r) for r in cfg.rotate_deg)
        scale = tuple((cfg.scale[0] - 1.0, cfg.scale[1] - 1.0) for _ in range(3))
        spatial.append(RandAffined(keys, prob=cfg.prob_affine, rotate_range=rot, scale_range=scale,
                                   spatial_size=patch_zyx, mode=("bilinear", label_mode), padding_mode="border"))
        if cfg.prob_elastic > 0:
            spatial.append(Rand3DElasticd(keys, sigma_range=(5, 8), magnitude_range=(40, 120), prob=cfg.prob_elastic,
                                          mode=("bilinear", label_mode), padding_mode="border"))
        spatial += [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in cfg.flip_axes]
    spatial += [CenterSpatialCropd(keys, roi_size=patch_zyx), SpatialPadd(keys, spatial_size=patch_zyx, mode="edge")]
    intensity = []
    if cfg.enabled and cfg.prob_intensity > 0:
        p = cfg.prob_intensity
        intensity = [
            RandGaussianSmoothd("image", sigma_x=cfg.blur_sigma, sigma_y=cfg.blur_sigma, sigma_z=cfg.blur_sigma, prob=p / 2),
            RandAdjustContrastd("image", gamma=cfg.gamma, prob=p),
            RandShiftIntensityd("image", offsets=cfg.shift, prob=p),
            RandGaussianNoised("image", std=cfg.noise_std, prob=p),
        ]
    return Compose(spatial + intensity)


def augment(transform: Compose, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply `transform` reproducibly (seeded) to a (z, y, x) image and label; returns (1, z, y, x), (z, y, x)."""
    transform.set_random_state(seed=seed % (2**32))
    out = transform({"image": torch.from_numpy(image[None].astype(np.float32)),
                     "label": torch.from_numpy(label[None].astype(np.float32))})
    return torch.as_tensor(out["image"]).float(), torch.as_tensor(out["label"])[0].round().long()


def augment_soft(transform: Compose, image: np.ndarray, target: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `augment` for soft targets: (z, y, x) image and (C, z, y, x) class probabilities -> (1, z, y, x), (C, z, y, x) float32."""
    transform.set_random_state(seed=seed % (2**32))
    out = transform({"image": torch.from_numpy(image[None].astype(np.float32)),
                     "label": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))})
    return torch.as_tensor(out["image"]).float(), torch.as_tensor(out["label"]).float().clamp(0.0, 1.0)
