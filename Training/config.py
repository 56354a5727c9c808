"""Typed training configuration: YAML -> nested dataclasses, with `key.sub=value` command-line overrides."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from LiverTumorSegLib.windowing import Normalization


@dataclass
class SourceConfig:
    """One dataset on disk: `kind` is shared | lits | msd | ircadb | csv; `cases` filters case ids."""

    kind: str = "shared"
    root: str = "../shared/data"
    cases: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the cases come from, how they are split, where the preprocessing cache lives."""

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    cache_dir: str = "Training/.cache"
    cache_workers: int = 1
    seed: int = 0
    val_fraction: float = 0.2
    n_folds: int = 0  # > 0: k-fold cross-validation, `fold` selects the validation fold
    fold: int = 0
    val_cases: list[str] = field(default_factory=list)  # explicit validation cases (override the split)
    exclude_cases: list[str] = field(default_factory=list)  # never used (held out)
    train_on_all: bool = False  # no validation split: every case trains


@dataclass
class StageConfig:
    """What the model is: its stage, classes, spacing (x, y, z) mm, patch sizes (z, y, x), normalisation."""

    stage: str = "liver"
    classes: dict[int, str] = field(default_factory=lambda: {0: "background", 1: "liver"})
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    patch_size: tuple[int, int, int] = (64, 128, 128)  # inference sliding-window patch
    train_patch_size: tuple[int, int, int] = (48, 96, 96)
    roi_margin_mm: float = 10.0
    # Liver models: reject a stage-1 candidate with less of its volume on the patient's right of the body midline
    # (manifest `min_right_fraction`; 0 = off). The shared livers lie 79-95 % on the right, a pelvis "liver" 54 %.
    min_right_fraction: float = 0.0
    clip_low: float = -200.0
    clip_high: float = 250.0
    mean: float = 25.0
    std: float = 112.5

    def normalization(self) -> Normalization:
        """The library normalisation object for this stage."""
        return Normalization(self.clip_low, self.clip_high, self.mean, self.std)


@dataclass
class NetworkConfig:
    """3D U-Net size: `depth` down-samplings (inputs must be multiples of 2**depth)."""

    base_features: int = 8
    depth: int = 3
    max_features: int = 128
    residual: bool = True


@dataclass
class LossConfig:
    """Weighted cross-entropy (or focal when focal_gamma > 0) plus soft Dice over foreground classes."""

    ce_weight: float = 1.0
    dice_weight: float = 1.0
    class_weights: list[float] = field(default_factory=list)  # empty = uniform
    focal_gamma: float = 0.0


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (plateau | poly | none)."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    schedule: str = "poly"
    poly_power: float = 0.9
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    grad_clip: float = 12.0


@dataclass
class AugmentConfig:
    """Spatial and intensity augmentation (MONAI transforms)."""

    enabled: bool = True
    prob_affine: float = 0.8
    rotate_deg: tuple[float, float, float] = (15.0, 15.0, 15.0)  # about z, y, x axes
    scale: tuple[float, float] = (0.8, 1.25)
    prob_elastic: float = 0.1
    flip_axes: list[int] = field(default_factory=list)  # array axes (0=z, 1=y, 2=x) flipped at random
    prob_intensity: float = 0.5
    noise_std: float = 0.1
    gamma: tuple[float, float] = (0.7, 1.5)
    blur_sigma: tuple[float, float] = (0.25, 1.0)
    shift: float = 0.2


@dataclass
class SyntheticTumorConfig:
    """Synthetic hypo-dense tumors inserted into liver voxels of training patches."""

    enabled: bool = False
    prob: float = 0.5  # per patch that contains liver (cases without real tumors)
    prob_real_cases: float = 0.0  # per patch of cases that have real tumor labels
    max_tumors: int = 3
    radius_mm: tuple[float, float] = (4.0, 20.0)
    contrast_hu: tuple[float, float] = (20.0, 80.0)
    texture_hu: float = 10.0


@dataclass
class DistillConfig:
    """Distillation: train on soft targets (teacher probabilities where a case has them, else its labels)."""

    enabled: bool = False  # soft-target loss (DistillLoss) and float (C, z, y, x) targets
    zero_hard_negatives: bool = True  # target 0 on hard-negative organ voxels (their silver label is not liver)


@dataclass
class TrainLoopConfig:
    """Loop length, batch, sampling, checkpoints, early stopping, threads."""

    epochs: int = 20
    iters_per_epoch: int = 25
    batch_size: int = 2
    fg_prob: float = 0.67  # fraction of patches centred on a foreground voxel
    fg_class_probs: list[float] = field(default_factory=list)  # over classes 1..C-1; empty = uniform
    hard_negative_prob: float = 0.0  # fraction of patches centred on background voxels with soft-tissue HU
    hard_negative_hu: tuple[float, float] = (-50.0, 200.0)  # (muscle, bowel, kidney: what tumors are mistaken for)
    val_every: int = 1
    early_stop_patience: int = 0  # epochs without improvement; 0 = off
    seed: int = 0
    threads: int = 2
    workers: int = 0
    amp: bool = True  # only takes effect on CUDA
    out_dir: str = "Training/runs/liver"
    resume: bool = True
    overlays: int = 2  # validation overlay PNGs per validation
    progress: bool = True


@dataclass
class Config:
    """A full training run."""

    name: str = "liver"
    stage: StageConfig = field(default_factory=StageConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticTumorConfig = field(default_factory=SyntheticTumorConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)


def _convert(tp: Any, value: Any) -> Any:
    """`value` converted to the annotated type `tp` (dataclasses, lists, tuples, dicts, scalars)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {})
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is tuple:
        args = typing.get_args(tp)
        items = list(value)
        types = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(types) != len(items):
            raise ValueError(f"expected {len(types)} values, got {items}")
        return tuple(_convert(t, v) for t, v in zip(types, items))
    if origin is dict:
        kt, vt = typing.get_args(tp)
        return {_convert(kt, k): _convert(vt, v) for k, v in value.items()}
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {value}")
        return tp(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true/false, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict) -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)} (known: {sorted(names)})")
    return cls(**{k: _convert(hints[k], v) for k, v in data.items()})


def apply_override(raw: dict, override: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to the nested dict `raw`."""
    if "=" not in override:
        raise ValueError(f"override must look like key=value, got {override!r}")
    key, text = override.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(text)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Config from a YAML file (or defaults when `path` is None) plus command-line overrides."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    raw = raw or {}
    for ov in overrides:
        apply_override(raw, ov)
    return from_dict(Config, raw)


def to_dict(cfg: Config) -> dict:
    """Plain nested dict of a config (YAML-ready; tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))


def _plain(obj: Any) -> Any:
    """Tuples to lists, recursively, for YAML output."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the effective config as YAML (so a run documents itself)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
