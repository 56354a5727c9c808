"""Preprocessing cache: each case resampled to a stage's grid (stage 2 cropped to the liver ROI as
the cascade crops it), stored as .npy, reused across runs and rebuilt when the settings change."""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.geometry import Geometry
from LiverTumorSegLib.preprocess import PREPROCESSING_VERSION, stage2_case, to_model_grid
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.resample import resample_labels, resample_like

from ..config import StageConfig
from ..stage import stage_manifest
from .adapters import Case, _mapped, load_case
from .teacher_store import load_teacher_image

CACHE_VERSION = 1  # bump when the preprocessing code changes


@dataclass
class CachedCase:
    """A preprocessed case: HU (z, y, x) int16, labels (z, y, x) uint8 0/1/2, and its grid; for distillation
    `soft` (z, y, x) float16 teacher liver probability and `hard` (z, y, x) uint8 hard-negative organ mask."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    tumors_annotated: bool
    soft: np.ndarray | None = None
    hard: np.ndarray | None = None


def settings_key(stage: StageConfig) -> str:
    """Hash of every setting that changes the preprocessed arrays."""
    d = {"v": CACHE_VERSION, "pre": PREPROCESSING_VERSION, "stage": stage.stage, "spacing": list(stage.spacing), "roi": stage.roi_margin_mm}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def case_key(case: Case) -> str:
    """Hash of a case's source files (paths, sizes, modification times) and label mapping."""
    extra = [case.soft_target] if case.soft_target else []
    extra += [case.hard_negatives.path] if case.hard_negatives is not None else []
    items = [case.image] + [p.path for p in case.labels] + extra
    stats = []
    for item in items:
        p = Path(item)
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        stats += [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    d = {"case": asdict(case), "files": stats}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def preprocess_case(case: Case, stage: StageConfig) -> tuple[sitk.Image, sitk.Image] | None:
    """(CT HU, labels) on the stage's model grid; stage 2 cropped to the labelled liver ROI; None if no liver."""
    ct, labels = load_case(case)
    manifest = stage_manifest(stage)
    if stage.stage == "tumor":
        return stage2_case(ct, labels, manifest)
    ct_grid = to_model_grid(ct, manifest)
    return ct_grid, resample_labels(labels, ct_grid)


def distill_arrays(case: Case, ct_grid: sitk.Image, stage: StageConfig) -> dict[str, np.ndarray]:
    """{'soft.npy': teacher liver probability float16, 'hard.npy': organ mask uint8} on `ct_grid`, as the case has them."""
    out = {}
    if case.soft_target:
        if stage.stage != "liver":
            raise ValueError(f"{case.case_id}: soft teacher targets are only implemented for the liver stage")
        soft = resample_like(load_teacher_image(case.soft_target), ct_grid, interpolator=sitk.sitkLinear,
                             default=0.0, pixel_type=sitk.sitkFloat32)
        out["soft.npy"] = np.clip(sitk.GetArrayViewFromImage(soft), 0, 1).astype(np.float16)
    if case.hard_negatives is not None:
        organs = resample_labels(read_image(case.hard_negatives.path), ct_grid)
        out["hard.npy"] = _mapped(case.hard_negatives, sitk.GetArrayViewFromImage(organs))
    return out


def _keys(case: Case) -> tuple[str, ...]:
    """Cache file kinds of one case (the distillation arrays only where the case has them)."""
    return ("image.npy", "labels.npy") + ("soft.npy",) * bool(case.soft_target) + \
        ("hard.npy",) * (case.hard_negatives is not None) + ("json",)


def _paths(folder: Path, case: Case) -> dict[str, Path]:
    """Files of one cached case."""
    stem = f"{case.case_id}-{case_key(case)}"
    return {k: folder / f"{stem}.{k}" for k in _keys(case)}


def build_one(case: Case, stage: StageConfig, folder: Path) -> str:
    """Preprocess and store one case unless cached already; returns the case id."""
    paths = _paths(folder, case)
    if all(p.is_file() for p in paths.values()):
        return case.case_id
    out = preprocess_case(case, stage)
    meta = {"case_id": case.case_id, "empty": out is None, "tumors_annotated": case.tumors_annotated}
    if out is not None:
        ct, labels = out
        hu = np.clip(np.rint(sitk.GetArrayViewFromImage(ct)), -32768, 32767).astype(np.int16)
        np.save(paths["image.npy"], hu)
        extra = distill_arrays(case, ct, stage)
        lab = (extra["soft.npy"] >= 0.5).astype(np.uint8) if "soft.npy" in extra else sitk.GetArrayViewFromImage(labels)
        np.save(paths["labels.npy"], np.asarray(lab, np.uint8))
        for key, arr in extra.items():
            np.save(paths[key], arr)
        meta["geometry"] = asdict(Geometry.of(ct))
    else:
        for key in _keys(case)[:-1]:
            np.save(paths[key], np.zeros((0, 0, 0), np.uint8))
    tmp = paths["json"].with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, paths["json"])  # written last: marks the entry complete
    return case.case_id


def cache_folder(cache_dir: str | Path, stage: StageConfig) -> Path:
    """The cache folder for this stage's settings (a new folder whenever the settings change)."""
    folder = Path(cache_dir) / f"{stage.stage}-{settings_key(stage)}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_cache(cases: list[Case], stage: StageConfig, cache_dir: str | Path, workers: int = 1) -> Path:
    """Preprocess every case not cached yet (in `workers` processes); returns the cache folder."""
    folder = cache_folder(cache_dir, stage)
    todo = [c for c in cases if not all(p.is_file() for p in _paths(folder, c).values())]
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(build_one, todo, [stage] * len(todo), [folder] * len(todo)))
    else:
        for case in todo:
            build_one(case, stage, folder)
    return folder


def load_cached(case: Case, folder: Path) -> CachedCase | None:
    """A cached case (arrays memory-mapped), or None when it has no liver for this stage."""
    paths = _paths(folder, case)
    meta = json.loads(paths["json"].read_text())
    if meta["empty"]:
        return None
    geo = meta["geometry"]
    geometry = Geometry(tuple(geo["spacing"]), tuple(geo["origin"]), tuple(geo["direction"]))
    image = np.load(paths["image.npy"], mmap_mode="r")
    labels = np.load(paths["labels.npy"], mmap_mode="r")
    soft = np.load(paths["soft.npy"], mmap_mode="r") if "soft.npy" in paths else None
    hard = np.load(paths["hard.npy"], mmap_mode="r") if "hard.npy" in paths else None
    return CachedCase(case.case_id, image, labels, geometry, meta["tumors_annotated"], soft, hard)
