"""A tiny training set-up on the shared real data (seconds per epoch on 2 CPU cores)."""
from __future__ import annotations

from pathlib import Path


def tiny_overrides(shared: Path, out_dir: Path, cache: Path, epochs: int = 2, iters: int = 2) -> list[str]:
    """Overrides of Training/configs/liver.yaml for a 16x32x32-patch, 4-feature, depth-2 network."""
    return [
        f"data.sources=[{{kind: shared, root: '{shared}', cases: [totalseg_ct, lits117_roi]}}]",
        f"data.cache_dir={cache}", "data.train_on_all=false", "data.val_cases=[lits117_roi]",
        "stage.patch_size=[16,32,32]", "stage.train_patch_size=[16,32,32]",
        "network.base_features=4", "network.depth=2", "network.max_features=16",
        f"train.epochs={epochs}", f"train.iters_per_epoch={iters}", "train.batch_size=1", "train.threads=1",
        f"train.out_dir={out_dir}", "train.progress=false", "train.overlays=1",
    ]
