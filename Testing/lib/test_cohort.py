"""Cohort batches on Dask: same outputs as the serial run, worker deaths, resumable re-runs, bad cases."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from distributed import WorkerPlugin

from LiverTumorSegLib import runtime
from LiverTumorSegLib.caserun import usable_cores
from LiverTumorSegLib.cases import CaseOptions, collect_jobs, read_manifest
from LiverTumorSegLib.cli import main
from LiverTumorSegLib.cohort import cluster_threads, local_cluster, local_threads, run_cohort
from LiverTumorSegLib.data import DEMO_CT
from LiverTumorSegLib.errors import InvalidInputError
from LiverTumorSegLib.outputs import case_names_in

from ..model_fixtures import models_folder

RUN_FILES = {"run.csv", "run.json"}


@pytest.fixture(scope="module")
def four_cts(shared_data, tmp_path_factory) -> Path:
    """A folder of links to 4 small real CTs with distinct names (the shared files are never copied)."""
    folder = tmp_path_factory.mktemp("cohort_inputs")
    sources = {"a_abdomen": shared_data / "totalseg_example/ct.nii.gz", "b_lits117": shared_data / "lits117_roi/ct.nii.gz",
               "c_demo": DEMO_CT, "d_wholebody": shared_data / "totalseg_example/ct_full.nii.gz"}
    for name, src in sources.items():
        (folder / f"{name}.nii.gz").symlink_to(src)
    return folder


@pytest.fixture(scope="module")
def rule_models(tmp_path_factory) -> Path:
    """Rule models (tissue = liver, > 1600 HU = tumor): the cohort plumbing does not depend on what a model
    predicts, and these cost a fraction of a trained model's time per case."""
    return models_folder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def serial_out(four_cts, rule_models, tmp_path_factory) -> Path:
    """The plain serial `predict` run over the 4 CTs: the reference every cohort run must match."""
    out = tmp_path_factory.mktemp("serial")
    assert main(["predict", str(four_cts), "-o", str(out), "--models-dir", str(rule_models)]) == 0
    return out


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 case at a time each) and its client, for the module."""
    from distributed import Client

    with local_cluster(2, 1) as cluster, Client(cluster) as c:
        yield c


def _outputs(folder: Path) -> set[str]:
    """Names of the case outputs in `folder` (not the run table)."""
    return {p.name for p in folder.iterdir()} - RUN_FILES


def _assert_same_outputs(a: Path, b: Path, cases: tuple[str, ...] | None = None) -> None:
    """Same file names (of `cases`, default all), voxel-identical label maps on the same grid, same lesion tables."""
    names_a = {n for n in _outputs(a) if cases is None or n.startswith(cases)}
    assert names_a == _outputs(b) and names_a
    for name in sorted(names_a):
        if name.endswith("_seg.nii.gz"):
            ia, ib = sitk.ReadImage(str(a / name)), sitk.ReadImage(str(b / name))
            assert ia.GetSize() == ib.GetSize() and ia.GetSpacing() == ib.GetSpacing() and ia.GetOrigin() == ib.GetOrigin()
            assert np.array_equal(sitk.GetArrayFromImage(ia), sitk.GetArrayFromImage(ib)), name
        elif name.endswith(".csv"):
            assert (a / name).read_text() == (b / name).read_text(), name
        elif name.endswith(".json"):
            ja, jb = json.loads((a / name).read_text()), json.loads((b / name).read_text())
            assert ja["lesions"] == jb["lesions"] and ja["liver_volume_ml"] == jb["liver_volume_ml"], name


def _table(out: Path) -> list[dict]:
    """Rows of OUT/run.csv."""
    with open(out / "run.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_local_workers_give_the_serial_outputs_voxel_for_voxel(four_cts, serial_out, rule_models, tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["predict", str(four_cts), "-o", str(out), "--models-dir", str(rule_models), "--workers", "2"]) == 0
    _assert_same_outputs(serial_out, out)
    rows = _table(out)
    assert [r["case"] for r in rows] == ["a_abdomen", "b_lits117", "c_demo", "d_wholebody"]
    assert {r["status"] for r in rows} == {"done"} and len({r["worker"] for r in rows}) >= 1
    for r in rows:
        assert "test-rule-liver" in r["model_set"] and r["device"] == "cpu" and float(r["liver_ml"]) > 0
        assert float(r["seconds_stage1_liver"]) > 0 and Path(r["labels"]).is_file() and Path(r["lesion_json"]).is_file()
    summary = json.loads((out / "run.json").read_text())
    assert summary["done"] == 4 and summary["failed"] == 0 and len(summary["rows"]) == 4
    assert "4 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_killing_a_worker_mid_run_loses_nothing_and_every_case_is_done_once(four_cts, serial_out, rule_models, client,
                                                                            tmp_path):
    out = tmp_path / "cohort"
    pids = client.run(os.getpid)
    killed: dict = {}

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                worker, keys = next(iter(busy.items()))
                time.sleep(0.5)  # into the middle of the case, if it is still running
                if client.processing().get(worker) == keys:
                    killed.update(worker=worker, key=keys[0], pid=pids[worker])
                    os.kill(pids[worker], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    rows = run_cohort([four_cts], out, client=client, options=CaseOptions(output=out, models_dir=rule_models), progress=False)
    killer.join()
    assert killed, "no worker was busy to kill"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    assert [r["status"] for r in rows] == ["done"] * 4 and [r["status"] for r in _table(out)] == ["done"] * 4
    victim = next(r for r in rows if killed["key"].endswith(f"-{r['case']}"))
    assert victim["worker"] != killed["worker"]  # it was re-run on another worker
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    _assert_same_outputs(serial_out, out)
    client.wait_for_workers(2, timeout=120)  # the module's cluster whole again (its nanny restarts the killed worker)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


class _DieOnCase(WorkerPlugin):
    """Worker plugin: the worker process exits at once when it starts the task of case `case`."""

    name = "die-on-case"

    def __init__(self, case: str):
        self.case = case

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and str(key).endswith(f"-{self.case}"):
            os._exit(1)


def test_a_case_whose_worker_dies_twice_is_recorded_failed_and_the_run_goes_on(four_cts, client, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for name, src in (("a_good", four_cts / "b_lits117.nii.gz"), ("b_crash", DEMO_CT), ("c_good", DEMO_CT)):
        shutil.copyfile(src, cases / f"{name}.nii.gz")  # copies: two links to one file are one input (one case)
    out = tmp_path / "out"
    client.register_plugin(_DieOnCase("b_crash"))
    try:
        rows = run_cohort([cases], out, client=client, options=CaseOptions(output=out, liver_only=True), progress=False)
    finally:
        client.unregister_worker_plugin(_DieOnCase.name)
    assert [(r["case"], r["status"]) for r in rows] == [("a_good", "done"), ("b_crash", "failed"), ("c_good", "done")]
    assert "worker died 2 times" in rows[1]["reason"]
    assert not [p.name for p in out.iterdir() if p.name.startswith("b_crash") or p.name.startswith(".")]
    client.wait_for_workers(2, timeout=60)


def test_a_rerun_skips_finished_cases_and_redoes_a_deleted_output(serial_out, four_cts, rule_models, client, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(serial_out, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    options = CaseOptions(output=out, models_dir=rule_models)
    rows = run_cohort([four_cts], out, client=client, options=options, progress=False)
    assert [r["status"] for r in rows] == ["skipped"] * 4
    assert rows[1]["liver_ml"] == json.loads((out / "b_lits117_lesions.json").read_text())["liver_volume_ml"]
    assert all(before[n] == out.joinpath(n).stat().st_mtime_ns for n in before)
    (out / "b_lits117_seg.nii.gz").unlink()
    rows = run_cohort([four_cts], out, client=client, options=options, progress=False)
    assert [r["status"] for r in rows] == ["skipped", "done", "skipped", "skipped"]
    assert "redone" in rows[1]["reason"]
    _assert_same_outputs(serial_out, out)
    assert [r["status"] for r in _table(out)] == ["skipped", "done", "skipped", "skipped"]


def test_a_corrupt_file_and_an_mr_are_one_failed_row_each_and_the_rest_finish(shared_data, client, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    data = (shared_data / "totalseg_example/ct.nii.gz").read_bytes()
    (cases / "a_good.nii.gz").symlink_to(shared_data / "lits117_roi/ct.nii.gz")
    (cases / "b_truncated.nii.gz").write_bytes(data[: len(data) // 3])
    (cases / "c_mr.nii.gz").symlink_to(shared_data / "totalseg_example/mr.nii.gz")
    (cases / "d_good.nii.gz").symlink_to(DEMO_CT)
    out = tmp_path / "out"
    rows = run_cohort([cases], out, client=client, options=CaseOptions(output=out, liver_only=True), progress=False)
    status = {r["case"]: (r["status"], r["reason"]) for r in rows}
    assert status["a_good"][0] == status["d_good"][0] == "done"
    assert status["b_truncated"][0] == "failed" and "truncated" in status["b_truncated"][1]
    assert status["c_mr"][0] == "failed" and "does not look like a CT" in status["c_mr"][1]
    assert _outputs(out) == {f"{c}{s}" for c in ("a_good", "d_good") for s in ("_seg.nii.gz", "_lesions.csv", "_lesions.json")}
    assert len(_table(out)) == 4


def test_each_worker_creates_its_sessions_once_and_reuses_them(four_cts, client, tmp_path):
    caches = (runtime._session, runtime._openvino_model)  # ONNX Runtime sessions, or OpenVINO models where installed
    client.run(lambda: [c.cache_clear() for c in caches])
    out = tmp_path / "out"
    small = [four_cts / f"{c}.nii.gz" for c in ("a_abdomen", "b_lits117", "c_demo")]
    run_cohort(small, out, client=client, options=CaseOptions(output=out, liver_only=True), progress=False)

    def counts() -> dict:
        infos = [c.cache_info() for c in caches]
        return {"misses": sum(i.misses for i in infos), "hits": sum(i.hits for i in infos)}
    info = client.run(counts)
    assert sum(i["misses"] + i["hits"] for i in info.values()) == 3  # one liver model per case
    assert all(i["misses"] <= 1 for i in info.values())  # 3 cases on 2 workers: one of them reused its session


def test_threads_per_case_keep_workers_times_threads_within_the_cores(client):
    client.wait_for_workers(2, timeout=60)
    assert local_threads(2, cores=2) == 1 and local_threads(3, cores=16) == 5 and local_threads(4, cores=2) == 1
    assert cluster_threads(client) == max(1, usable_cores() // 2)


def test_serial_cohort_run_without_dask_writes_the_same_outputs_and_table(four_cts, serial_out, rule_models, tmp_path):
    out = tmp_path / "out"
    small = [four_cts / "b_lits117.nii.gz", four_cts / "c_demo.nii.gz"]
    rows = run_cohort(small, out, options=CaseOptions(output=out, models_dir=rule_models), progress=False)
    assert [r["status"] for r in rows] == ["done"] * 2 and [r["case"] for r in _table(out)] == ["b_lits117", "c_demo"]
    _assert_same_outputs(serial_out, out, cases=("b_lits117", "c_demo"))


def test_scheduler_option_runs_the_cases_on_an_existing_cluster(shared_data, client, tmp_path, capsys):
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"{shared_data / 'lits117_roi/ct.nii.gz'},p1\n{DEMO_CT},p2\n")
    out = tmp_path / "out"
    assert main(["predict", str(manifest), "-o", str(out), "--liver-only", "--scheduler", client.scheduler.address]) == 0
    rows = _table(out)
    assert [(r["case"], r["status"]) for r in rows] == [("p1", "done"), ("p2", "done")]
    assert {r["worker"] for r in rows} <= set(client.scheduler_info(n_workers=-1)["workers"])
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_csv_manifest_gives_case_ids_and_relative_paths(shared_data, tmp_path):
    (tmp_path / "scan.nii.gz").symlink_to(shared_data / "lits117_roi/ct.nii.gz")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"path,case\n# a comment\nscan.nii.gz,patient-007\n{shared_data / 'totalseg_example/ct.nii.gz'},\n")
    jobs = read_manifest(manifest)
    assert [(j.input, j.case) for j in jobs] == [(tmp_path / "scan.nii.gz", "patient-007"),
                                                 (shared_data / "totalseg_example/ct.nii.gz", "ct")]
    headerless = tmp_path / "plain.csv"
    headerless.write_text("scan.nii.gz,p1\nscan.nii.gz,p2\n")
    assert [j.case for j in read_manifest(headerless)] == ["p1", "p2"]


def test_manifest_cli_run_names_outputs_by_case_id(shared_data, tmp_path):
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"path,case\n{shared_data / 'lits117_roi/ct.nii.gz'},patient-007\n")
    out = tmp_path / "out"
    assert main(["predict", str(manifest), "-o", str(out), "--liver-only"]) == 0
    assert (out / "patient-007_seg.nii.gz").is_file() and _table(out)[0]["case"] == "patient-007"


@pytest.mark.parametrize("text, message", [
    ("path,case\na.nii.gz,x\nb.nii.gz,x\n", "two inputs give the case name 'x'"),
    ("path,case\na.nii.gz,../escape\n", "not a plain file name"),
    ("case\nx\n", "no 'path' column"),
    ("path,case\n", "lists no cases"),
])
def test_bad_manifests_are_refused_with_a_clear_message(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        collect_jobs([manifest])


def test_cohort_names_inputs_with_one_file_name_as_the_serial_run_does(shared_data, tmp_path):
    ct = shared_data / "totalseg_example/ct.nii.gz"
    inputs = []
    for folder in ("A", "B", "C"):
        (tmp_path / folder).mkdir()
        inputs.append(tmp_path / folder / "ct.nii.gz")
        shutil.copyfile(ct, inputs[-1])
    out = tmp_path / "out"
    assert [j.case for j in collect_jobs(inputs, out)] == case_names_in(out, inputs) == ["A_ct", "B_ct", "C_ct"]
    assert [j.case for j in collect_jobs([*inputs, inputs[0]])] == ["A_ct", "B_ct", "C_ct"]  # one input named twice: one case
    models = models_folder(tmp_path / "models")
    rows = run_cohort(inputs[:2], out, options=CaseOptions(models_dir=models, threads=1, liver_only=True), progress=False)
    assert [(r["case"], r["status"]) for r in rows] == [("A_ct", "done"), ("B_ct", "done")]
    assert json.loads((out / "B_ct_lesions.json").read_text())["input"] == str(inputs[1].absolute())
    manifest = tmp_path / "m.csv"  # a manifest's rows without case ids are named by the same rule
    manifest.write_text(f"path\n{inputs[0]}\n{inputs[2]}\n")
    assert [j.case for j in collect_jobs([manifest], out)] == ["A_ct", "C_ct"]


def test_workers_and_scheduler_are_exclusive_and_workers_must_be_positive(tmp_path):
    for extra in (["--workers", "0"], ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]):
        with pytest.raises(SystemExit) as exc:
            main(["predict", "--demo", "-o", str(tmp_path), *extra])
        assert exc.value.code == 2


def test_an_unexpected_error_is_retried_once_then_the_case_is_failed_and_the_run_goes_on(tmp_path, monkeypatch):
    import LiverTumorSegLib.cohort as cohort

    calls: dict[str, int] = {}

    def flaky(job, options):
        calls[job.case] = calls.get(job.case, 0) + 1
        if job.case == "always" or calls[job.case] == 1:
            raise RuntimeError(f"boom {calls[job.case]}")
        return {"case": job.case, "status": "done", "reason": ""}

    monkeypatch.setattr(cohort, "process_case", flaky)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,case\nx.nii.gz,once\ny.nii.gz,always\n")
    rows = run_cohort([manifest], tmp_path / "out", progress=False)
    assert calls == {"once": 2, "always": 2}
    assert [(r["case"], r["status"]) for r in rows] == [("once", "done"), ("always", "failed")]
    assert "failed 2 times: RuntimeError: boom 2" in rows[1]["reason"]


def test_the_plain_serial_predict_never_imports_dask(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from LiverTumorSegLib.cli import main; "
            f"rc = main(['predict', '--demo', '-o', {str(tmp_path)!r}, '--liver-only']); "
            "print(rc, 'dask' in sys.modules or 'distributed' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stderr
    assert not (tmp_path / "run.csv").exists()
