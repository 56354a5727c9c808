"""The cases of a batch: inputs, CSV manifests of inputs with optional case ids, and per-case options."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import InvalidInputError
from .io import expand_inputs
from .outputs import case_names, case_names_in

PATH_COLUMNS = ("path", "input")
CASE_COLUMNS = ("case", "case_id")


@dataclass(frozen=True)
class CaseJob:
    """One case of a batch: its input (image file or DICOM folder) and the name its outputs get."""

    input: Path
    case: str


@dataclass(frozen=True)
class CaseOptions:
    """How every case of a batch is segmented and written (the `predict` options)."""

    output: Path = Path("outputs")  # run_cohort sets it from its `output` argument
    formats: tuple[str, ...] = ("nifti",)  # "nifti" | "seg.nrrd" | "dicom-seg" (DICOM series inputs)
    overwrite: bool = False
    device: str = "auto"
    threads: int | None = None  # ONNX Runtime intra-op threads per case; None = chosen per worker
    model_set: str | None = None  # None: the models folder's default set
    liver_only: bool = False
    min_lesion_mm3: float | None = None
    force: bool = False
    models_dir: Path | None = None
    cpu_engine: str = "auto"
    tta: bool = False
    modality: str | None = None  # "ct" | "mr"; None: a DICOM series' Modality tag, else CT


def is_manifest(path: Path) -> bool:
    """True for a CSV manifest of inputs (a `.csv` file)."""
    return Path(path).suffix.lower() == ".csv"


def read_manifest(path: Path) -> list[CaseJob]:
    """Cases from a CSV manifest, rows without a case id named as the CLI names inputs (see `_read_manifest_rows`)."""
    return name_cases(_read_manifest_rows(path))


def _read_manifest_rows(path: Path) -> list[CaseJob]:
    """Cases from a CSV manifest: one row per case, input path and optional case id ("" when none is given).

    A header row naming the columns (`path` or `input`; `case` or `case_id`) is optional; without one
    the first column is the path and the second, if any, the case id. Relative paths are taken from
    the manifest's folder. Blank lines and lines starting with `#` are ignored.
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read manifest {path}: {exc}") from exc
    head = [c.strip().lower() for c in rows[0]] if rows else []
    if head and head[0] in PATH_COLUMNS + CASE_COLUMNS:
        p_col = next((head.index(c) for c in PATH_COLUMNS if c in head), None)
        c_col = next((head.index(c) for c in CASE_COLUMNS if c in head), None)
        rows = rows[1:]
        if p_col is None:
            raise InvalidInputError(f"manifest {path} has no 'path' column (header: {', '.join(head)})")
    else:
        p_col, c_col = 0, 1
    jobs = [_manifest_job(path, i, row, p_col, c_col) for i, row in enumerate(rows, start=1)]
    if not jobs:
        raise InvalidInputError(f"manifest {path} lists no cases")
    return jobs


def _manifest_job(manifest: Path, line: int, row: list[str], p_col: int, c_col: int | None) -> CaseJob:
    """One manifest row as a CaseJob, with a clear error for a malformed row."""
    cell = row[p_col].strip() if p_col < len(row) else ""
    if not cell:
        raise InvalidInputError(f"manifest {manifest}, case {line}: no input path")
    source = Path(cell).expanduser()
    source = source if source.is_absolute() else manifest.parent / source
    case = row[c_col].strip() if c_col is not None and c_col < len(row) else ""
    return CaseJob(source, check_case_id(case, f"manifest {manifest}, case {line}") if case else "")


def check_case_id(case: str, where: str) -> str:
    """`case` if it is usable as a file name prefix, else InvalidInputError."""
    if case in (".", "..") or case.startswith(".") or any(c in case for c in "/\\\0"):
        raise InvalidInputError(f"{where}: case id '{case}' is not a plain file name (no '/', '\\' or leading '.')")
    return case


def name_cases(jobs: list[CaseJob], out_dir: Path | None = None) -> list[CaseJob]:
    """`jobs` with the ones without a case id named by the CLI's rule (outputs.case_names_in: parent folder names
    tell equal file names apart, and names stay stable across runs into `out_dir`); the same input unnamed twice is one case."""
    unnamed: dict[Path, Path] = {}
    for job in jobs:
        if not job.case:
            unnamed.setdefault(Path(job.input).resolve(), job.input)
    names = dict(zip(unnamed, case_names_in(out_dir, list(unnamed.values())) if out_dir else case_names(list(unnamed.values()))))
    named, seen = [], set()
    for job in jobs:
        key = Path(job.input).resolve()
        if job.case:
            named.append(job)
        elif key not in seen:
            seen.add(key)
            named.append(CaseJob(job.input, names[key]))
    return named


def collect_jobs(inputs: Iterable[str | Path], out_dir: Path | None = None) -> list[CaseJob]:
    """Cases from image files, folders and CSV manifests, in order, named as the serial CLI names them (see
    `name_cases`; a manifest's case ids are kept); refuse two cases with one name."""
    jobs: list[CaseJob] = []
    for item in map(Path, inputs):
        if is_manifest(item):
            jobs.extend(_read_manifest_rows(item))
        else:
            jobs.extend(CaseJob(p, "") for p in expand_inputs([item]))
    jobs = name_cases(jobs, out_dir)
    seen: dict[str, Path] = {}
    for job in jobs:
        if job.case.casefold() in seen:
            raise InvalidInputError(f"two inputs give the case name '{job.case}' ({seen[job.case.casefold()]} and {job.input}): "
                                    "their outputs would collide; give case ids in a CSV manifest (path,case)")
        seen[job.case.casefold()] = job.input
    return jobs
