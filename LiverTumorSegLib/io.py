"""Reading CT (NIfTI, NRRD, MetaImage, DICOM series) and writing outputs atomically."""
from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import SimpleITK as sitk

from .config import InputCheckConfig
from .errors import InvalidInputError, LiverTumorSegError, OutputExistsError
from .modality import DICOM_MODALITY_TAG
from .result import lesion_columns
from .terminology import SEGMENTS

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def case_name(path: Path) -> str:
    """File or folder name without its image suffix (`ct.nii.gz` -> `ct`)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_image_file(path: Path) -> bool:
    """True for a file with a supported image suffix (NIfTI, NRRD, MetaImage)."""
    return Path(path).is_file() and Path(path).name.lower().endswith(IMAGE_SUFFIXES[1:])


@contextmanager
def _quiet_itk() -> Iterator[None]:
    """Silence ITK/GDCM warnings printed straight to the terminal (errors still raise)."""
    before = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(before)


def dicom_series_files(folder: Path) -> list[str]:
    """Files of the largest DICOM series in `folder`, in slice order (warns when there are several)."""
    reader = sitk.ImageSeriesReader()
    with _quiet_itk():
        series = reader.GetGDCMSeriesIDs(str(folder))
        if not series:
            raise InvalidInputError(f"no DICOM series found in folder {folder} (and no image files)")
        files = max((reader.GetGDCMSeriesFileNames(str(folder), s) for s in series), key=len)
    if len(series) > 1:
        log.warning("%s holds %d DICOM series; reading the largest (%d files)", folder, len(series), len(files))
    return list(files)


def read_dicom_series(folder: Path) -> sitk.Image:
    """The largest DICOM series in `folder` as one 3-D image, carrying its DICOM Modality tag (0008|0060) as metadata."""
    reader = sitk.ImageSeriesReader()
    files = dicom_series_files(folder)
    reader.SetFileNames(files)
    image = reader.Execute()  # its warnings (e.g. missing slices) stay visible
    header = _header(Path(files[0]))
    if header.HasMetaDataKey(DICOM_MODALITY_TAG) and header.GetMetaData(DICOM_MODALITY_TAG).strip():
        image.SetMetaData(DICOM_MODALITY_TAG, header.GetMetaData(DICOM_MODALITY_TAG).strip())
    return image


def _header(path: Path) -> sitk.ImageFileReader:
    """A reader that has read only the header of `path`."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def check_not_huge(path: Path, max_voxels: int) -> None:
    """Refuse, from the header alone, an image too large to segment in memory."""
    n = int(np.prod(_header(path).GetSize()))
    if n > max_voxels:
        raise InvalidInputError(f"{path} is too large: {n:,} voxels (limit {max_voxels:,}); crop or downsample it first")


def _nifti_payload_bytes(path: Path) -> int:
    """Bytes of voxel data a NIfTI header promises (size x pixel size)."""
    reader = _header(path)
    n = int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents()
    return n * np.dtype(sitk.GetArrayViewFromImage(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())).dtype).itemsize


def check_nifti_complete(path: Path) -> None:
    """Raise InvalidInputError for a truncated .nii/.nii.gz (ITK reads those silently as zeros)."""
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    need = _nifti_payload_bytes(path) + 348
    if name.endswith(".nii"):
        have = path.stat().st_size
    else:
        have = 0
        try:
            with gzip.open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    have += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise InvalidInputError(f"cannot read {path}: the file is corrupt or truncated ({exc})") from exc
    if have < need:
        raise InvalidInputError(f"cannot read {path}: the file is truncated ({have:,} of {need:,} bytes)")


def read_image(path: str | Path, max_voxels: int = InputCheckConfig.max_voxels) -> sitk.Image:
    """Read a CT from an image file or a DICOM series folder, with a clear error when it cannot."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidInputError(f"input file is empty: {path}")
    try:
        if path.is_dir():
            return read_dicom_series(path)
        check_not_huge(path, max_voxels)
        check_nifti_complete(path)
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InvalidInputError(f"cannot read {path}: the file is corrupt, truncated or not an image ({itk_reason(exc)})") from exc


def itk_reason(exc: RuntimeError) -> str:
    """The human part of a SimpleITK exception: its last line, without source paths and `sitk::ERROR:`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else ""
    reason = re.sub(r"\S+\.(cxx|cpp|hxx|h|txx)(:\d+)*:?", "", reason).replace("sitk::ERROR:", "").strip(" :")
    return reason[:200] or "unreadable"


def _umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_target(path: Path, overwrite: bool) -> Path:
    """Check that `path` may be written; return a temp path beside it."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path} (use overwrite=True to replace it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix="".join(Path(path.name).suffixes), dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for colleagues and PACS shares too
    except OSError as exc:
        raise LiverTumorSegError(f"cannot write to output folder {path.parent}: {exc.strerror}") from exc
    return Path(tmp)


def check_output_folder(folder: Path) -> None:
    """Create `folder` if needed and check that files can be written there (before any case runs)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(prefix=".livertumorseg-probe.", dir=folder):
            pass
    except OSError as exc:
        raise LiverTumorSegError(f"cannot write to output folder {folder}: {exc.strerror}") from exc


@contextmanager
def atomic_write(path: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success move it into place, on failure delete it."""
    tmp = _atomic_target(path, overwrite)
    try:
        yield tmp
        os.replace(tmp, path)  # atomic on one filesystem
    finally:
        tmp.unlink(missing_ok=True)


def write_image(image: sitk.Image, path: Path, *, overwrite: bool = False) -> Path:
    """Write `image` to `path` (compressed) atomically; refuse to replace a file unless `overwrite`."""
    path = Path(path)
    with atomic_write(path, overwrite) as tmp:
        sitk.WriteImage(image, str(tmp), True)
    return path


def seg_nrrd_image(labels: sitk.Image) -> sitk.Image:
    """The label map with 3D Slicer segmentation metadata (names, colours, terminology)."""
    out = sitk.Cast(labels, sitk.sitkUInt8)
    size = out.GetSize()
    extent = f"0 {size[0] - 1} 0 {size[1] - 1} 0 {size[2] - 1}"
    out.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    out.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    out.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    for i, spec in enumerate(SEGMENTS):
        meta = {
            "ID": f"Segment_{spec.label}", "Name": spec.name, "NameAutoGenerated": "0",
            "Color": " ".join(f"{c:.6f}" for c in spec.color_float), "ColorAutoGenerated": "0",
            "LabelValue": str(spec.label), "Layer": "0", "Extent": extent,
            "Tags": f"TerminologyEntry:{spec.terminology_entry()}|",
        }
        for key, value in meta.items():
            out.SetMetaData(f"Segment{i}_{key}", value)
    return out


def write_table(rows: list[dict], csv_path: Path, *, overwrite: bool = False, extra: dict | None = None) -> tuple[Path, Path]:
    """Write `rows` as CSV and (with `extra` fields) as JSON beside it, atomically."""
    csv_path = Path(csv_path)
    json_path = csv_path.with_suffix(".json")
    fields = list(rows[0]) if rows else lesion_columns()
    with atomic_write(csv_path, overwrite) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    write_json({**(extra or {}), "lesions": rows}, json_path, overwrite=overwrite)
    return csv_path, json_path


def write_json(data: dict, path: Path, *, overwrite: bool = False) -> Path:
    """Write `data` as indented JSON atomically."""
    path = Path(path)
    with atomic_write(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Cases named by `inputs`: image files, DICOM series folders, and the cases inside plain folders
    (each file or folder once, however often it is named)."""
    out: list[Path] = []
    for p in map(Path, inputs):
        out.extend(_cases_in(p) if p.is_dir() else [p])
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)  # the first spelling of each file or folder
    return list(unique.values())


def no_inputs_message(inputs: Iterable[str | Path]) -> str:
    """What to tell a user whose inputs named no case: the folders that hold no CT image, or that none were given."""
    folders = [str(p) for p in map(Path, inputs) if p.is_dir()]
    return f"no CT images found in {', '.join(folders)}" if folders else "no inputs (give CT files or folders, or --demo)"


def _cases_in(folder: Path) -> list[Path]:
    """Image files in `folder`; else the folder itself if it holds files (a DICOM series); else its sub-folders."""
    entries = sorted(e for e in folder.iterdir() if not e.name.startswith("."))
    images = [e for e in entries if is_image_file(e)]
    if images:
        return images
    if any(e.is_file() for e in entries):
        return [folder]
    return [c for sub in entries if sub.is_dir() for c in _cases_in(sub)]
