"""Checkpoints: atomic save of best/last, and safe loading with `weights_only=True`."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(state: dict, path: Path) -> None:
    """Write `state` atomically (a kill -9 during the write leaves the previous file intact)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str = "cpu") -> dict:
    """A checkpoint written by `save_checkpoint`, loaded without unpickling arbitrary objects."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_weights(path: Path, model: torch.nn.Module) -> dict:
    """Load a checkpoint's model weights into `model`; returns the checkpoint."""
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt["model"])
    return ckpt
