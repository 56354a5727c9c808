"""Dataset adapters read each public layout into (CT in HU, labels 0/1/2 on the CT grid)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.geometry import same_grid
from Training.config import SourceConfig
from Training.data.adapters import csv_cases, ircadb_cases, list_cases, lits_cases, load_case, msd_cases


def _assert_same_case(loaded, expected) -> None:
    (ct, lab), (ct_ref, lab_ref) = loaded, expected
    assert same_grid(ct, ct_ref, tol=1e-3)
    np.testing.assert_allclose(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(ct_ref), atol=1.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lab), sitk.GetArrayFromImage(lab_ref))


def test_lits_layout_pairs_volumes_with_segmentations(lits_root: Path, small_lits) -> None:
    cases = lits_cases(lits_root)
    assert [c.case_id for c in cases] == ["lits_003"]
    _assert_same_case(load_case(cases[0]), small_lits)


def test_msd_layout_uses_dataset_json_and_skips_macos_junk(msd_root: Path, small_lits) -> None:
    cases = msd_cases(msd_root)
    assert [c.case_id for c in cases] == ["msd_liver_7"]
    _assert_same_case(load_case(cases[0]), small_lits)


def test_ircadb_dicom_masks_merge_numbered_tumors_into_label_2(ircadb_root: Path, small_lits) -> None:
    cases = ircadb_cases(ircadb_root)
    assert [c.case_id for c in cases] == ["ircadb_05"]
    assert [Path(p.path).name for p in cases[0].labels] == ["liver", "livertumor01", "livertumor02"]
    ct, lab = load_case(cases[0])
    assert ct.GetSpacing() == small_lits[0].GetSpacing()
    _assert_same_case((ct, lab), small_lits)


def test_csv_manifest_maps_labels_and_keeps_split(csv_file: Path, small_lits) -> None:
    cases = csv_cases(csv_file)
    assert [(c.case_id, c.split) for c in cases] == [("a", "train"), ("b", "val")]
    _assert_same_case(load_case(cases[0]), small_lits)


def test_shared_source_lists_the_real_cases_with_liver_labels(shared_data: Path) -> None:
    cases = list_cases([SourceConfig("shared", str(shared_data), ["chaos_ct3", "lits117_roi"])])
    assert [c.case_id for c in cases] == ["chaos_ct3", "lits117_roi"]
    ct, lab = load_case(cases[1])
    assert set(np.unique(sitk.GetArrayViewFromImage(lab))) == {0, 1, 2}
