"""Case-level train/validation splits and k-fold cross-validation, fixed by a seed (no patient on both sides)."""
from __future__ import annotations

import math

import numpy as np

from ..config import DataConfig
from .adapters import Case


def kfold(case_ids: list[str], n_folds: int, seed: int) -> list[list[str]]:
    """`n_folds` disjoint folds covering `case_ids`, shuffled by `seed` (order of input ignored)."""
    if not 2 <= n_folds <= len(case_ids):
        raise ValueError(f"n_folds must be between 2 and the number of cases ({len(case_ids)}), got {n_folds}")
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return [sorted(shuffled[f::n_folds]) for f in range(n_folds)]


def split_cases(cases: list[Case], cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(train ids, validation ids) following `cfg`: explicit list, all-train, k-fold, source split, or fraction."""
    ids = sorted(c.case_id for c in cases if c.case_id not in set(cfg.exclude_cases))
    if cfg.val_cases:
        unknown = set(cfg.val_cases) - set(ids)
        if unknown:
            raise ValueError(f"validation cases not available: {sorted(unknown)}")
        val = sorted(cfg.val_cases)
    elif cfg.train_on_all:
        val = []
    elif cfg.n_folds > 0:
        val = kfold(ids, cfg.n_folds, cfg.seed)[cfg.fold]
    elif any(c.split for c in cases):
        val = sorted(c.case_id for c in cases if c.split in ("val", "validation") and c.case_id in ids)
        ids = [i for i in ids if i in {c.case_id for c in cases if c.split not in ("test",)}]
    else:
        n_val = max(1, math.ceil(cfg.val_fraction * len(ids))) if len(ids) > 1 else 0
        order = np.random.default_rng(cfg.seed).permutation(len(ids))
        val = sorted(ids[i] for i in order[:n_val])
    train = [i for i in ids if i not in set(val)]
    return train, val
