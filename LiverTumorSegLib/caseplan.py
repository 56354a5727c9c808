"""When a case's files count as done: where they go, the settings its JSON records, and skip or redo.

One rule for the serial CLI and the cohort runner (serial or on Dask workers): a case is skipped only when
its files are complete, its JSON records the settings asked for now, and every wanted label file was
written by the run that wrote that JSON; otherwise it is redone, all its files together.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .api import make_config, selected_model_set
from .cases import CaseOptions
from .dicom_seg import SEG_SUFFIX
from .dicom_sr import SR_SUFFIX
from .errors import OutputExistsError
from .manifest import load_manifest
from .outputs import SKIPPED, existing, is_complete
from .runtable import LABEL_KEYS

SUFFIX = {"nifti": "_seg.nii.gz", "seg.nrrd": ".seg.nrrd", "dicom-seg": SEG_SUFFIX}


def output_paths(out_dir: Path, case: str, fmts: list[str] | str) -> dict[str, Path]:
    """Where one case's outputs go, by kind; the lesion JSON comes last (written last, it marks a complete case)."""
    fmts = [fmts] if isinstance(fmts, str) else fmts
    paths = {fmt: out_dir / f"{case}{SUFFIX[fmt]}" for fmt in fmts}
    if "dicom-seg" in paths:  # the lesion measurements go to PACS too, as a report referencing the SEG
        paths["dicom-sr"] = out_dir / f"{case}{SR_SUFFIX}"
    return {**paths, "lesions": out_dir / f"{case}_lesions.csv", "json": out_dir / f"{case}_lesions.json"}


def case_settings(options: argparse.Namespace | CaseOptions) -> dict:
    """The settings that shape a case's result (model set, models, liver only, smallest lesion), as its JSON records them."""
    cfg = make_config(model_set=options.model_set, models_dir=options.models_dir,
                      liver_only=options.liver_only, min_lesion_mm3=options.min_lesion_mm3)
    mset = selected_model_set(cfg)
    stages = {"liver": mset.liver} if cfg.liver_only or mset.tumor is None else {"liver": mset.liver, "tumor": mset.tumor}
    models = {stage: _model_id(path) for stage, path in stages.items()}
    return {"model_set": mset.name, "models": models, "liver_only": cfg.liver_only,
            "min_lesion_mm3": cfg.postprocess.min_lesion_mm3, "tta": bool(getattr(options, "tta", False)),
            "modality": getattr(options, "modality", None) or "auto"}


def _model_id(manifest_path: Path) -> str:
    """"name version sha256-prefix" of a model: a retrained model under the same name counts as another model."""
    m = load_manifest(manifest_path)
    return f"{m.name} {m.version} {m.sha256[:12]}"


def _read_record(json_path: Path) -> dict | None:
    """The case's lesion JSON as a dict, or None when it is missing or unreadable (the case is then redone)."""
    try:
        record = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _check_earlier_run(record: dict | None, json_path: Path, path: Path) -> None:
    """OutputExistsError when the case's JSON was made from another input that has the same case name."""
    recorded = (record or {}).get("input")
    if recorded and Path(recorded).resolve() != Path(path).resolve():
        raise OutputExistsError(f"{json_path} holds the results of another input ({recorded}) with the same case name; "
                                "use another output folder, or overwrite=True to replace them")


def settings_changes(recorded: dict | None, settings: dict) -> list[str]:
    """What differs between the settings a case's JSON records and `settings` ("liver_only False -> True", ...)."""
    if not isinstance(recorded, dict):
        return ["not recorded by the run that made the outputs"]
    return [f"{key} {recorded.get(key)} -> {value}" for key, value in settings.items() if recorded.get(key) != value]


def _unrecorded_outputs(record: dict, paths: dict[str, Path]) -> list[str]:
    """Label files wanted now that the run which wrote the JSON did not write (they come from another run)."""
    written = record.get("outputs") or {}
    return [paths[kind].name for kind in paths if kind in LABEL_KEYS and written.get(kind) != paths[kind].name]


def plan_case(path: Path, paths: dict[str, Path], overwrite: bool, settings: dict | None = None) -> tuple[str, str]:
    """(plan, why): "skipped" when an earlier run finished this case with these settings, "redo" when its files
    are partial, from another run or made with other settings, else "new"; `why` says why a case is redone."""
    if overwrite:
        return ("redo", "") if existing(paths.values()) else ("new", "")
    record = _read_record(paths["json"])
    _check_earlier_run(record, paths["json"], path)
    if not is_complete(paths.values()) or record is None:
        return ("redo", "its outputs were incomplete") if existing(paths.values()) else ("new", "")
    changed = settings_changes(record.get("settings"), settings) if settings is not None else []
    if changed:
        return "redo", f"settings changed ({'; '.join(changed)})"
    unrecorded = _unrecorded_outputs(record, paths)
    if unrecorded:
        return "redo", f"{', '.join(unrecorded)} did not come from the run that wrote its lesion table"
    return SKIPPED, ""


def earlier_formats(json_path: Path) -> list[str]:
    """Label formats that the run which wrote the case's JSON wrote, and whose files are still there."""
    written = (_read_record(json_path) or {}).get("outputs") or {}
    return [fmt for fmt in SUFFIX if isinstance(written.get(fmt), str) and (Path(json_path).parent / written[fmt]).exists()]
