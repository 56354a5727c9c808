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
from LiverTumorSegLib.resample import resample_labels

from ..config import StageConfig
from ..stage import stage_manifest
from .adapters import Case, load_case

CACHE_VERSION = 1  # bump when the preprocessing code changes


@dataclass
class CachedCase:
    """A preprocessed case: HU (z, y, x) int16, labels (z, y, x) uint8 0/1/2, and its grid."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    tumors_annotated: bool


def settings_key(stage: StageConfig) -> str:
    """Hash of every setting that changes the preprocessed arrays."""
    d = {"v": CACHE_VERSION, "pre": PREPROCESSING_VERSION, "stage": stage.stage, "spacing": list(stage.spacing), "roi": stage.roi_margin_mm}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def case_key(case: Case) -> str:
    """Hash of a case's source files (paths, sizes, modification times) and label mapping."""
    items = [case.image] + [p.path for p in case.labels]
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


def _paths(folder: Path, case: Case) -> dict[str, Path]:
    """Files of one cached case."""
    stem = f"{case.case_id}-{case_key(case)}"
    return {k: folder / f"{stem}.{k}" for k in ("image.npy", "labels.npy", "json")}


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
        np.save(paths["labels.npy"], sitk.GetArrayViewFromImage(labels).astype(np.uint8))
        meta["geometry"] = asdict(Geometry.of(ct))
    else:
        for key in ("image.npy", "labels.npy"):
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
    return CachedCase(case.case_id, image, labels, geometry, meta["tumors_annotated"])
