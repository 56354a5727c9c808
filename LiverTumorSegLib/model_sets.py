"""Model sets: a named pair of stage manifests (liver, tumor), listed in a models folder's `sets.json`.

A models folder either holds `sets.json` ({"default": NAME, "sets": {NAME: {"liver": PATH, "tumor": PATH,
"description": ..., "accuracy": ..., "speed": ...}}}, paths relative to the folder, so one set may mix the
stages of two others), or directly `liver.json` (+ `tumor.json`): a single set named after the folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

SETS_FILE = "sets.json"


@dataclass(frozen=True)
class ModelSet:
    """One selectable cascade: where its two manifests are, and what it was measured to do."""

    name: str
    liver: Path
    tumor: Path | None
    description: str = ""
    accuracy: str = ""  # one line, measured (data, metric, reference kind)
    speed: str = ""  # one line, measured (machine, threads)
    default: bool = False


def _from_entry(folder: Path, name: str, entry: dict, default: bool) -> ModelSet:
    """A ModelSet from one `sets.json` entry."""
    try:
        liver = folder / entry["liver"]
    except (KeyError, TypeError) as exc:
        raise ModelError(f"model set '{name}' in {folder / SETS_FILE} names no liver manifest") from exc
    tumor = folder / entry["tumor"] if entry.get("tumor") else None
    return ModelSet(name, liver, tumor, str(entry.get("description", "")), str(entry.get("accuracy", "")),
                    str(entry.get("speed", "")), default)


def list_model_sets(folder: str | Path) -> list[ModelSet]:
    """Every model set of a models folder, the default first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"models folder not found: {folder}")
    sets_file = folder / SETS_FILE
    if sets_file.is_file():
        try:
            data = json.loads(sets_file.read_text())
            default, entries = data["default"], data["sets"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{sets_file} is malformed: {exc}") from exc
        if default not in entries:
            raise ModelError(f"{sets_file}: default set '{default}' is not among {sorted(entries)}")
        sets = [_from_entry(folder, n, e, n == default) for n, e in entries.items()]
        return sorted(sets, key=lambda s: not s.default)
    if (folder / "liver.json").is_file():
        tumor = folder / "tumor.json"
        return [ModelSet(folder.name, folder / "liver.json", tumor if tumor.is_file() else None,
                         description=f"models in {folder}", default=True)]
    raise ModelError(f"no models in {folder}: expected {SETS_FILE} or liver.json (+ tumor.json) with their .onnx files")


def resolve_model_set(folder: str | Path, name: str | None = None) -> ModelSet:
    """The set called `name` in `folder` (its default set when `name` is None)."""
    sets = list_model_sets(folder)
    if name is None:
        return sets[0]
    for s in sets:
        if s.name == name:
            return s
    raise ModelError(f"no model set '{name}' in {folder}: available {', '.join(s.name for s in sets)}")
