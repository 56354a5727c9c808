"""Segmentation losses: weighted cross-entropy or focal, plus soft Dice over the foreground classes."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over classes 1..C-1 (batch-pooled), logits (N, C, z, y, x), target (N, z, y, x) int."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), probs.shape[1]).permute(0, 4, 1, 2, 3).to(probs.dtype)
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return 1.0 - dice[1:].mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, weight: torch.Tensor | None) -> torch.Tensor:
    """Multi-class focal loss (Lin et al. 2017) with optional class weights."""
    logp = F.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
    loss = -((1 - logp_t.exp()) ** gamma) * logp_t
    if weight is not None:
        loss = loss * weight[target.long()]
    return loss.mean()


class SegLoss(nn.Module):
    """ce_weight * (weighted CE or focal) + dice_weight * soft Dice."""

    def __init__(self, cfg: LossConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        w = torch.tensor(cfg.class_weights, dtype=torch.float32) if cfg.class_weights else None
        if w is not None and len(w) != num_classes:
            raise ValueError(f"loss.class_weights needs {num_classes} values, got {len(w)}")
        self.register_buffer("weight", w if w is not None else torch.ones(num_classes))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits (N, C, z, y, x) and integer target (N, z, y, x)."""
        if self.cfg.focal_gamma > 0:
            ce = focal_loss(logits, target, self.cfg.focal_gamma, self.weight)
        else:
            ce = F.cross_entropy(logits.float(), target.long(), weight=self.weight)
        return self.cfg.ce_weight * ce + self.cfg.dice_weight * soft_dice_loss(logits, target)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over voxels of -sum_c t_c log softmax(logits)_c; logits and target (N, C, z, y, x), target rows sum to 1.

    Equals KL(target || student) plus the target's entropy, so it has the same gradients as KL.
    """
    return -(target.float() * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def soft_target_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over classes 1..C-1 (batch-pooled) against probability targets (N, C, z, y, x)."""
    probs = logits.float().softmax(dim=1)
    t = target.float()
    dims = (0, 2, 3, 4)
    dice = (2 * (probs * t).sum(dims) + eps) / (probs.sum(dims) + t.sum(dims) + eps)
    return 1.0 - dice[1:].mean()


class DistillLoss(nn.Module):
    """ce_weight * soft-target cross-entropy + dice_weight * soft Dice, for teacher probabilities (N, C, z, y, x)."""

    def __init__(self, cfg: LossConfig, num_classes: int) -> None:
        super().__init__()
        if cfg.class_weights or cfg.focal_gamma > 0:
            raise ValueError("distillation loss takes no loss.class_weights or loss.focal_gamma")
        self.cfg, self.num_classes = cfg, num_classes

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits and soft targets of the same shape (N, C, z, y, x)."""
        if target.shape != logits.shape:
            raise ValueError(f"soft target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}")
        return self.cfg.ce_weight * soft_cross_entropy(logits, target) + \
            self.cfg.dice_weight * soft_target_dice_loss(logits, target)


def build_loss(cfg: LossConfig, num_classes: int, distill: bool) -> nn.Module:
    """DistillLoss when distilling, else SegLoss."""
    return DistillLoss(cfg, num_classes) if distill else SegLoss(cfg, num_classes)
