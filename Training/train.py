"""Train one cascade stage: `python -m Training.train --config Training/configs/liver.yaml [key=value ...]`.

Multi-process: `torchrun --nproc_per_node=N -m Training.train --config ...` (DDP; gloo on CPU).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, from_dict, load_config, save_config, to_dict
from .data.adapters import list_cases
from .data.cache import build_cache, load_cached
from .data.sampler import PatchDataset
from .data.splits import split_cases
from .losses import build_loss
from .network import build_network
from .reporting import TensorBoardLog, plot_curves, save_overlay, write_history_csv
from .validate import validate_case


@dataclass
class RunState:
    """What a checkpoint restores besides weights."""

    epoch: int = 0  # epochs completed
    best_metric: float = float("-inf")
    best_epoch: int = -1
    stale_epochs: int = 0
    history: list[dict] = field(default_factory=list)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def prepare_data(cfg: Config, info: D.DistInfo) -> tuple[list, list]:
    """(train CachedCases, validation CachedCases): cache built by rank 0, split by case."""
    cases = list_cases(cfg.data.sources)
    train_ids, val_ids = split_cases(cases, cfg.data)
    used = [c for c in cases if c.case_id in set(train_ids) | set(val_ids)]
    if info.is_main:
        build_cache(used, cfg.stage, cfg.data.cache_dir, cfg.data.cache_workers)
    D.barrier(info)
    folder = build_cache([], cfg.stage, cfg.data.cache_dir)
    by_id = {c.case_id: c for c in used}
    load = lambda ids: [x for x in (load_cached(by_id[i], folder) for i in ids) if x is not None]  # noqa: E731
    train, val = load(train_ids), load(val_ids)
    if not train:
        raise ValueError("no training case with a liver label")
    if cfg.distill.enabled and not any(np.asarray(c.labels).any() for c in train):
        raise ValueError("distillation needs at least one training case with liver (teacher or expert)")
    return train, val


def make_optimizer(model: torch.nn.Module, cfg: Config) -> tuple[torch.optim.Optimizer, object | None]:
    """Optimiser and, for the plateau schedule, its scheduler (poly is applied per epoch by `set_lr`)."""
    opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[cfg.optim.name]
    opt = opt_cls(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = None
    if cfg.optim.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.optim.plateau_factor,
                                                           patience=cfg.optim.plateau_patience)
    return opt, sched


def set_lr(opt: torch.optim.Optimizer, cfg: Config, epoch: int) -> None:
    """Poly learning-rate decay lr0 * (1 - epoch/epochs)^power (only for schedule 'poly')."""
    if cfg.optim.schedule == "poly":
        lr = cfg.optim.lr * (1 - epoch / cfg.train.epochs) ** cfg.optim.poly_power
        for group in opt.param_groups:
            group["lr"] = lr


def train_epoch(model, loader, opt, loss_fn, scaler, device, cfg: Config, epoch: int, show: bool) -> float:
    """One epoch of optimisation; returns the mean training loss."""
    model.train()
    total, n = 0.0, 0
    for image, label in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not show, leave=False):
        image, label = image.to(device), label.to(device)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = loss_fn(model(image), label)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        scaler.step(opt)
        scaler.update()
        total, n = total + float(loss.detach()), n + 1
    return total / max(n, 1)


def run_validation(model, val_cases, cfg: Config, device, out_dir: Path, epoch: int) -> dict:
    """Mean per-class Dice over validation cases (model grid) and overlay PNGs for the first few."""
    if not val_cases:
        return {}
    rows = []
    for k, case in enumerate(val_cases):
        scores, pred = validate_case(model, case, cfg, device)
        rows.append(scores)
        if k < cfg.train.overlays:
            path = out_dir / "overlays" / f"epoch{epoch + 1:03d}_{case.case_id}.png"
            save_overlay(np.asarray(case.image), np.asarray(case.labels), pred, case.geometry.spacing, path,
                         f"{case.case_id} epoch {epoch + 1}", case.geometry.direction)
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


RESUMABLE_CHANGES = {"train.epochs", "train.progress", "train.resume", "train.threads", "train.workers",
                     "train.out_dir", "data.cache_workers", "data.cache_dir",
                     "stage.min_right_fraction"}  # an inference-time gate written into the manifest; training ignores it


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b, name = old.get(k), new.get(k), f"{prefix}{k}"
        keys += config_changes(a, b, name + ".") if isinstance(a, dict) and isinstance(b, dict) else [name] * (a != b)
    return keys


def resume_state(out_dir: Path, model, opt, sched, cfg: Config) -> RunState:
    """Restore from `last.pt` when resuming is enabled and it exists (refusing a run with other settings)."""
    path = out_dir / "last.pt"
    if not (cfg.train.resume and path.is_file()):
        return RunState()
    ckpt = load_checkpoint(path)
    saved = to_dict(from_dict(Config, ckpt["config"]))  # settings added since then take their defaults
    changed = [k for k in config_changes(saved, to_dict(cfg)) if k not in RESUMABLE_CHANGES]
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(changed)}): "
                         "use another train.out_dir, or train.resume=false to start over")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if sched is not None and ckpt.get("scheduler"):
        sched.load_state_dict(ckpt["scheduler"])
    return RunState(**ckpt["state"])


def checkpoint_dict(model, opt, sched, state: RunState, cfg: Config) -> dict:
    """Everything needed to resume, as plain tensors/containers (loadable with weights_only=True)."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else {},
            "state": vars(state), "config": to_dict(cfg)}


def end_of_epoch(row: dict, state: RunState, cfg: Config) -> bool:
    """Update best/stale counters from the epoch row; True when this epoch is the new best."""
    metric = np.mean([v for k, v in row.items() if k.startswith("val_dice")]) if any(
        k.startswith("val_dice") for k in row) else -row["train_loss"]
    row["score"] = float(metric)
    state.history.append(row)
    if metric > state.best_metric:
        state.best_metric, state.best_epoch, state.stale_epochs = float(metric), row["epoch"], 0
        return True
    state.stale_epochs += 1
    return False


def fit(cfg: Config, device: torch.device, info: D.DistInfo) -> RunState:
    """The training loop (resumable); returns the final run state."""
    out = Path(cfg.train.out_dir)
    train_cases, val_cases = prepare_data(cfg, info)
    model = build_network(cfg.network, len(cfg.stage.classes)).to(device)
    opt, sched = make_optimizer(model, cfg)
    state = resume_state(out, model, opt, sched, cfg)
    net = DistributedDataParallel(model) if info.world_size > 1 else model
    data = PatchDataset(train_cases, cfg, cfg.train.iters_per_epoch * cfg.train.batch_size, info.rank)
    loader = DataLoader(data, batch_size=cfg.train.batch_size, num_workers=cfg.train.workers)
    loss_fn = build_loss(cfg.loss, len(cfg.stage.classes), cfg.distill.enabled).to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp and device.type == "cuda")
    tb = TensorBoardLog(out / "tensorboard") if info.is_main else None
    for epoch in range(state.epoch, cfg.train.epochs):
        t0 = time.time()
        data.set_epoch(epoch)
        set_lr(opt, cfg, epoch)
        loss = D.all_reduce_mean(train_epoch(net, loader, opt, loss_fn, scaler, device, cfg, epoch,
                                             cfg.train.progress and info.is_main), info)
        stop = False
        if info.is_main:
            stop = log_epoch(cfg, model, opt, sched, state, val_cases, device, out, tb, epoch, loss, t0)
        if D.broadcast_flag(stop, info):
            break
        state.epoch = epoch + 1
    if tb is not None:
        tb.close()
    return state


def log_epoch(cfg, model, opt, sched, state: RunState, val_cases, device, out: Path, tb, epoch: int, loss: float, t0: float) -> bool:
    """Validate, log, checkpoint (rank 0); True when early stopping triggers."""
    row = {"epoch": epoch + 1, "train_loss": loss, "lr": opt.param_groups[0]["lr"]}
    if val_cases and (epoch + 1) % cfg.train.val_every == 0 or epoch + 1 == cfg.train.epochs:
        row.update(run_validation(model, val_cases, cfg, device, out, epoch))
    row["seconds"] = round(time.time() - t0, 1)
    is_best = end_of_epoch(row, state, cfg)
    if sched is not None:
        sched.step(row["score"])
    state.epoch = epoch + 1
    ckpt = checkpoint_dict(model, opt, sched, state, cfg)
    save_checkpoint(ckpt, out / "last.pt")
    if is_best:
        save_checkpoint(ckpt, out / "best.pt")
    write_history_csv(state.history, out / "history.csv")
    plot_curves(state.history, out / "learning_curves.png")
    tb.scalars(row, epoch + 1)
    print(json.dumps(row), flush=True)
    patience = cfg.train.early_stop_patience
    return bool(patience and state.stale_epochs >= patience)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line: --config FILE and any number of key=value overrides."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (defaults when omitted)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5 optim.lr=3e-4")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: train a stage, write checkpoints and logs into `train.out_dir`."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    info0 = D.setup(torch.device("cuda" if want_cuda else "cpu"))
    device = torch.device(f"cuda:{info0.local_rank}" if want_cuda else "cpu")
    torch.set_num_threads(max(1, cfg.train.threads // info0.world_size))
    seed_everything(cfg.train.seed + info0.rank)
    out = Path(cfg.train.out_dir)
    if info0.is_main:
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    D.barrier(info0)
    try:
        state = fit(cfg, device, info0)
    finally:
        D.cleanup(info0)
    if info0.is_main:
        print(f"done: {state.epoch} epochs, best score {state.best_metric:.4f} at epoch {state.best_epoch}; "
              f"checkpoints in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
