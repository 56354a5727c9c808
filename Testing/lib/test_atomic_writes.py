"""Outputs are written atomically: a write that fails or is interrupted half-way leaves no final-named file,
no temp file, and any previous output exactly as it was."""
from __future__ import annotations

import os

import pytest
import SimpleITK as sitk

from LiverTumorSegLib.io import write_image, write_json, write_table


def _half_writer(exc: BaseException):
    """A stand-in for sitk.WriteImage that writes part of the file it is given, then raises `exc`."""
    seen = []

    def write(image, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x1f\x8b half a file")
        seen.append(path)
        raise exc
    return write, seen


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_an_image_write_failing_half_way_leaves_the_previous_output_untouched(tmp_path, phantom, monkeypatch, exc):
    out = tmp_path / "case_seg.nii.gz"
    write_image(phantom, out)
    before = out.read_bytes()
    writer, seen = _half_writer(exc)
    monkeypatch.setattr(sitk, "WriteImage", writer)
    with pytest.raises(type(exc)):
        write_image(phantom + 1, out, overwrite=True)
    assert seen and seen[0] != str(out), "the writer must be handed a temp file, never the final name"
    assert os.listdir(tmp_path) == [out.name] and out.read_bytes() == before


def test_a_first_image_write_failing_half_way_leaves_nothing(tmp_path, phantom, monkeypatch):
    writer, seen = _half_writer(RuntimeError("disk full"))
    monkeypatch.setattr(sitk, "WriteImage", writer)
    with pytest.raises(RuntimeError):
        write_image(phantom, tmp_path / "case_seg.nii.gz")
    assert seen and os.listdir(tmp_path) == []


def test_a_json_write_failing_after_its_temp_file_exists_leaves_the_previous_json(tmp_path):
    out = write_json({"lesions": []}, tmp_path / "case_lesions.json")
    before = out.read_bytes()
    with pytest.raises(TypeError):
        write_json({"lesions": [object()]}, out, overwrite=True)  # not serialisable: fails inside the write
    assert os.listdir(tmp_path) == [out.name] and out.read_bytes() == before


def test_a_csv_write_failing_mid_table_leaves_the_previous_csv_and_json(tmp_path):
    csv_path, json_path = write_table([{"id": 1, "volume_ml": 2.0}], tmp_path / "case_lesions.csv")
    before = {p.name: p.read_bytes() for p in (csv_path, json_path)}
    rows = [{"id": 1, "volume_ml": 3.0}, {"id": 2, "volume_ml": 1.0, "surprise": 1}]  # the 2nd row fails after the 1st is written
    with pytest.raises(ValueError):
        write_table(rows, csv_path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == sorted(before)
    assert {p.name: p.read_bytes() for p in (csv_path, json_path)} == before
