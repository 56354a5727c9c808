"""The CLI over folders of cases: no case lost to a name clash, resumable re-runs, usage errors up front,
messages a new user can act on, and a summary that says what ran and where everything went."""
import csv
import json
import shutil

import pytest

from LiverTumorSegLib.cli import main
from LiverTumorSegLib.result import lesion_columns

LIVER_ONLY = ["--liver-only", "--threads", "2"]


@pytest.fixture
def ct(shared_data):
    """The small real abdominal CT (3 mm, no tumor found in it)."""
    return shared_data / "totalseg_example/ct.nii.gz"


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def test_two_inputs_with_the_same_file_name_both_keep_their_outputs(ct, tmp_path, capsys):
    a, b = _copy(ct, tmp_path / "A/ct.nii.gz"), _copy(ct, tmp_path / "B/ct.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), "-o", str(out), *LIVER_ONLY]) == 0
    assert {p.name for p in out.iterdir()} == {f"{c}_{s}" for c in ("A_ct", "B_ct")
                                               for s in ("seg.nii.gz", "lesions.csv", "lesions.json")}
    assert json.loads((out / "B_ct_lesions.json").read_text())["input"] == str(b)


def test_rerun_skips_complete_cases_and_redoes_incomplete_ones(ct, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(ct), "-o", str(out), *LIVER_ONLY]) == 0
    seg = out / "ct_seg.nii.gz"
    seg.write_bytes(seg.read_bytes() + b"")  # unchanged content, fresh mtime to compare with
    stamp = seg.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["predict", str(ct), "-o", str(out), *LIVER_ONLY]) == 0
    captured = capsys.readouterr()
    assert "ct: skipped" in captured.err and "--overwrite" in captured.err and "1 skipped" in captured.out
    assert seg.stat().st_mtime_ns == stamp
    (out / "ct_lesions.json").unlink()
    assert main(["predict", str(ct), "-o", str(out), *LIVER_ONLY]) == 0
    assert (out / "ct_lesions.json").is_file() and seg.stat().st_mtime_ns != stamp


def test_only_the_json_left_from_an_earlier_run_is_redone_cleanly(ct, tmp_path, capsys):
    out = tmp_path / "out"; out.mkdir()
    (out / "ct_lesions.json").write_text(json.dumps({"case": "ct", "input": str(ct), "lesions": [], "stale": True}))
    assert main(["predict", str(ct), "-o", str(out), *LIVER_ONLY]) == 0
    assert "failed" not in capsys.readouterr().err
    record = json.loads((out / "ct_lesions.json").read_text())
    assert "stale" not in record and record["liver_volume_ml"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["ct_lesions.csv", "ct_lesions.json", "ct_seg.nii.gz"]


def test_case_names_stay_stable_across_runs_into_one_folder(ct, tmp_path, capsys):
    a, b = _copy(ct, tmp_path / "A/ct.nii.gz"), _copy(ct, tmp_path / "B/ct.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", str(a), "-o", str(out), *LIVER_ONLY]) == 0
    before = (out / "ct_lesions.json").read_text()
    capsys.readouterr()
    assert main(["predict", str(a), str(b), "-o", str(out), *LIVER_ONLY]) == 0  # A keeps "ct"; B is told apart
    assert "ct: skipped" in capsys.readouterr().err and (out / "ct_lesions.json").read_text() == before
    assert json.loads((out / "B_ct_lesions.json").read_text())["input"] == str(b)
    capsys.readouterr()
    assert main(["predict", str(b), "-o", str(out), *LIVER_ONLY]) == 0  # alone, B still has its own name
    assert "B_ct: skipped" in capsys.readouterr().err
    assert not [p for p in out.iterdir() if p.name.startswith("A_")]


def test_a_record_of_another_input_under_the_case_name_is_neither_skipped_nor_replaced(ct, tmp_path, capsys):
    from LiverTumorSegLib.caseplan import output_paths, plan_case
    from LiverTumorSegLib.errors import OutputExistsError

    paths = output_paths(tmp_path, "ct", ["nifti"])
    for p in paths.values():
        p.write_text("{}")
    paths["json"].write_text(json.dumps({"input": str(tmp_path / "elsewhere/ct.nii.gz")}))
    with pytest.raises(OutputExistsError, match="another input"):
        plan_case(ct, paths, overwrite=False)
    assert paths["json"].read_text().startswith('{"input"')


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--threads", "-3"], ["--min-lesion-mm3", "-5"],
                                 ["--min-lesion-mm3", "nan"], ["--format", "png"]])
def test_out_of_range_options_are_usage_errors(ct, tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(ct), "-o", str(tmp_path), *bad])
    assert exit_.value.code == 2 and "usage:" in capsys.readouterr().err


def test_verbose_works_after_the_subcommand_and_device_has_help(capsys):
    from LiverTumorSegLib.cli import _parser

    for argv in (["-v", "predict", "--demo", "-o", "x"], ["predict", "--demo", "-o", "x", "-v"], ["info", "-v"]):
        assert _parser().parse_args(argv).verbose is True, argv
    assert _parser().parse_args(["predict", "--demo", "-o", "x"]).verbose is False
    with pytest.raises(SystemExit):
        main(["predict", "-v", "--help"])
    text = capsys.readouterr().out
    assert "--verbose" in text and "where the networks run" in text


@pytest.mark.parametrize("option,message", [(["--models-dir", "/nonexistent/models"], "models folder not found"),
                                            (["--device", "cuda"], "CUDA requested")])
def test_bad_models_or_unavailable_cuda_is_one_usage_error_before_any_case(ct, tmp_path, option, message, capsys):
    from LiverTumorSegLib.runtime import available_devices

    if option[1] == "cuda" and "cuda" in available_devices():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(ct), str(ct.with_name("ct_full.nii.gz")), "-o", str(tmp_path / "out"), *option])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count(message) == 1 and "failed" not in err and "predict" in err
    assert not (tmp_path / "out").exists()


def test_output_pointing_at_a_file_is_a_usage_error(ct, tmp_path, capsys):
    target = tmp_path / "out.txt"; target.write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(ct), "-o", str(target)])
    assert exit_.value.code == 2 and "is a file" in capsys.readouterr().err and target.read_text() == "keep me"


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]])
def test_an_unwritable_output_folder_is_a_usage_error_before_any_case(ct, tmp_path, extra, capsys, monkeypatch):
    """A file where a parent folder should be (chmod does not stop root, who runs CI): no case is segmented."""
    import LiverTumorSegLib.caserun

    def no_segmentation(*args, **kwargs):
        raise AssertionError("a case was segmented although its outputs cannot be written")

    monkeypatch.setattr(LiverTumorSegLib.caserun, "segment", no_segmentation)
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(ct), "-o", str(tmp_path / "blocker" / "out"), *extra])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "cannot write to output folder" in err and "usage:" in err


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]])
def test_an_empty_input_folder_says_no_ct_images_were_found_there(tmp_path, extra, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), *extra]) == 2
    assert f"no CT images found in {tmp_path / 'empty'}" in capsys.readouterr().err


def test_mr_refusal_names_the_cli_flag(shared_data, tmp_path, capsys):
    assert main(["predict", str(shared_data / "totalseg_example/mr.nii.gz"), "-o", str(tmp_path), *LIVER_ONLY]) == 1
    err = capsys.readouterr().err
    assert "--force" in err and "force=True" not in err


def test_summary_says_what_ran_where_the_json_went_and_that_no_tumor_was_found(ct, tmp_path, capsys):
    assert main(["predict", str(ct), "-o", str(tmp_path), "--device", "cpu", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "models: liver livertumorseg-liver" in out and "tumor livertumorseg-tumor" in out and "device: cpu" in out
    assert str(tmp_path / "ct_lesions.json") in out and "none found" in out
    with open(tmp_path / "ct_lesions.csv", newline="") as f:
        assert list(csv.reader(f)) == [lesion_columns()]


def test_info_is_human_readable_and_lists_devices_not_providers(capsys):
    assert main(["info", "-v"]) == 0
    out = capsys.readouterr().out
    assert "devices: cpu" in out and "AzureExecutionProvider" not in out and "{" not in out
    assert "parity_with_original:" in out


def test_info_is_a_short_table_by_default_with_one_accuracy_and_one_speed_line_per_set(capsys):
    from LiverTumorSegLib.config import models_dir
    from LiverTumorSegLib.model_sets import list_model_sets

    sets = list_model_sets(models_dir())  # the folder `info` lists (the tests' own, see conftest)
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 + 3 * len(sets) + 1  # versions, devices, models folder; 3 per set; the -v hint
    assert lines[0].startswith("livertumorseg ") and "onnxruntime" in lines[0] and lines[1].startswith("devices: ")
    for mset in sets:
        i = lines.index(f"model set {mset.name}{' (default)' if mset.default else ''}: {mset.description}")
        assert lines[i + 1].startswith("  accuracy: ") and lines[i + 2].startswith("  speed: ")


def test_evaluate_says_where_it_writes_and_refuses_to_overwrite(shared_data, tmp_path, capsys):
    ref = str(shared_data / "lits117_roi/label.nii.gz")
    out = tmp_path / "eval"
    assert main(["evaluate", ref, ref, "-o", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().err
    before = (out / "metrics.csv").read_text()
    assert main(["evaluate", ref, ref, "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "metrics.csv").read_text() == before
    assert main(["evaluate", ref, ref, "-o", str(out), "--overwrite"]) == 0


def test_no_liver_says_the_tumor_stage_did_not_run_lists_no_tumor_model_and_warns_once(tmp_path, capsys, caplog):
    import logging

    import numpy as np
    import SimpleITK as sitk

    from ..model_fixtures import models_folder

    a = np.full((40, 80, 80), -1000, np.int16)
    yy, xx = np.mgrid[:80, :80]
    a[:, (yy - 40) ** 2 + (xx - 40) ** 2 < 30 ** 2] = -80  # a cylinder of fat: the rule liver model's candidate is no liver
    img = sitk.GetImageFromArray(a); img.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "fat.nii.gz"))
    models = models_folder(tmp_path / "models")
    with caplog.at_level(logging.WARNING):  # what the terminal shows besides the CLI's own lines
        assert main(["predict", str(tmp_path / "fat.nii.gz"), "-o", str(tmp_path / "out"), "--models-dir", str(models),
                     "--force", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert not [r for r in caplog.records if "no liver" in r.getMessage()]  # the CLI prints the warning, once
    row = next(line for line in captured.out.splitlines() if line.startswith("fat "))
    assert "not run (no liver)" in row and "none found" not in row
    assert (captured.out + captured.err).count("no liver found in this image") == 1
    record = json.loads((tmp_path / "out" / "fat_lesions.json").read_text())
    assert list(record["models"]) == ["liver"] and "tumor" not in captured.out.split("models:")[1].split(";")[0]
