"""Training patches: random crops with foreground oversampling, synthetic tumors, augmentation."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..augment import augment, augment_soft, build_augmentation, context_size
from ..config import Config
from ..synthetic_tumors import insert_tumors
from .cache import CachedCase

AIR_HU = -1024


def foreground_index(labels: np.ndarray, classes: int, seed: int, limit: int = 100_000,
                     hu: np.ndarray | None = None, hard_hu: tuple[float, float] = (-50.0, 200.0),
                     hard_mask: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Up to `limit` voxel coordinates (z, y, x) per foreground class present in `labels`; with `hu`,
    key 0 holds background voxels whose HU lies in `hard_hu` (hard negatives); a `hard_mask` (organs
    next to the liver) replaces that HU rule for its case."""
    rng = np.random.default_rng(seed)
    labels = np.minimum(np.asarray(labels), classes - 1)  # liver stage: tumor counts as liver
    masks = {c: labels == c for c in range(1, classes)}
    if hu is not None:
        hu = np.asarray(hu)
        masks[0] = (labels == 0) & (hu >= hard_hu[0]) & (hu <= hard_hu[1])
    if hard_mask is not None:
        masks[0] = np.asarray(hard_mask) > 0
    out = {}
    for c, mask in masks.items():
        idx = np.argwhere(mask)
        if len(idx) > limit:
            idx = idx[rng.choice(len(idx), limit, replace=False)]
        if len(idx):
            out[c] = idx
    return out


def crop_padded(arr: np.ndarray, center: np.ndarray, size: tuple[int, int, int], fill: float) -> np.ndarray:
    """A `size` box of `arr` centred at `center`, padded with `fill` where it leaves the array."""
    out = np.full(size, fill, dtype=arr.dtype)
    lo = np.asarray(center) - np.asarray(size) // 2
    src = tuple(slice(max(0, a), min(n, a + s)) for a, s, n in zip(lo, size, arr.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    out[dst] = arr[src]
    return out


class PatchDataset(Dataset):
    """`length` random training patches per epoch; patch i of epoch e is a pure function of (seed, e, rank, i)."""

    def __init__(self, cases: list[CachedCase], cfg: Config, length: int, rank: int = 0) -> None:
        self.cases, self.cfg, self.length, self.rank, self.epoch = cases, cfg, length, rank, 0
        self.n_classes = len(cfg.stage.classes)
        hard = cfg.train.hard_negative_prob > 0
        self.fg = [foreground_index(c.labels, self.n_classes, cfg.train.seed, hu=c.image if hard else None,
                                    hard_hu=cfg.train.hard_negative_hu, hard_mask=c.hard if hard else None)
                   for c in cases]
        self.patch = tuple(cfg.stage.train_patch_size)
        self.context = context_size(self.patch, cfg.augment)
        self.transform = build_augmentation(cfg.augment, self.patch, soft_labels=cfg.distill.enabled)
        self.norm = cfg.stage.normalization()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes every patch, reproducibly)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _center(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """Patch centre: a hard-negative voxel, a foreground voxel, or uniform, with the configured probabilities."""
        fg, shape = self.fg[k], np.array(self.cases[k].image.shape)
        u = rng.random()
        if 0 in fg and u < self.cfg.train.hard_negative_prob:
            return fg[0][rng.integers(len(fg[0]))]
        if u < self.cfg.train.hard_negative_prob + self.cfg.train.fg_prob and any(c > 0 for c in fg):
            classes = sorted(c for c in fg if c > 0)
            p = self.cfg.train.fg_class_probs
            probs = np.array([p[c - 1] if p else 1.0 for c in classes], dtype=float)
            c = classes[rng.choice(len(classes), p=probs / probs.sum())]
            return fg[c][rng.integers(len(fg[c]))] + rng.integers(-4, 5, size=3)
        return np.array([rng.integers(0, n) for n in shape])

    def _synthetic(self, k: int, hu: np.ndarray, lab: np.ndarray, rng: np.random.Generator):
        """Maybe insert synthetic tumors (`prob` in cases without real tumor labels, else `prob_real_cases`)."""
        syn, case = self.cfg.synthetic, self.cases[k]
        prob = syn.prob_real_cases if 2 in self.fg[k] else syn.prob
        if syn.enabled and (lab == 1).any() and rng.random() < prob:
            spacing_zyx = np.array(case.geometry.spacing[::-1])
            return insert_tumors(hu, lab, spacing_zyx, syn, rng)
        return hu, lab

    def _soft_target(self, k: int, center: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """Class probabilities (C, z, y, x) float32 of a context crop: the teacher's where the case has one, else one-hot labels."""
        case = self.cases[k]
        if case.soft is not None:
            p = crop_padded(case.soft, center, self.context, 0).astype(np.float32)
            fg = [p]  # liver stage: channel 1 = teacher liver probability
        else:
            fg = [(lab == c).astype(np.float32) for c in range(1, self.n_classes)]
        if case.hard is not None and self.cfg.distill.zero_hard_negatives:
            organ = crop_padded(case.hard, center, self.context, 0) > 0
            fg = [np.where(organ, 0.0, f).astype(np.float32) for f in fg]
        return np.stack([1.0 - np.sum(fg, axis=0)] + fg)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image (1, z, y, x) float32 normalised, labels (z, y, x) int64), or with distillation
        (image, target class probabilities (C, z, y, x) float32)."""
        rng = np.random.default_rng([self.cfg.train.seed, self.epoch, self.rank, i])
        k = int(rng.integers(len(self.cases)))
        case = self.cases[k]
        center = self._center(k, rng)
        hu = crop_padded(case.image, center, self.context, AIR_HU).astype(np.float32)
        lab = crop_padded(case.labels, center, self.context, 0)
        hu, lab = self._synthetic(k, hu, lab, rng)
        lab = np.minimum(lab, self.n_classes - 1)
        if self.cfg.distill.enabled:
            return augment_soft(self.transform, self.norm(hu), self._soft_target(k, center, lab), int(rng.integers(2**31)))
        return augment(self.transform, self.norm(hu), lab, int(rng.integers(2**31)))
