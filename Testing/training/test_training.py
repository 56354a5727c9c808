"""A tiny real training run: logs, checkpoints, resume (also after kill -9 mid-epoch), DDP with gloo."""
from __future__ import annotations

import csv
import os
import signal
import socket
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from Training import train
from Training.checkpoint import load_checkpoint

from .tiny import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
LIVER_YAML = str(REPO / "Training/configs/liver.yaml")


def _epochs(out: Path) -> list[int]:
    with open(out / "history.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_tiny_training_writes_checkpoints_logs_and_pictures(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train.main(["--config", LIVER_YAML, *tiny_overrides(shared_data, out, tmp_path / "cache")]) == 0
    for name in ("best.pt", "last.pt", "history.csv", "learning_curves.png", "config.yaml"):
        assert (out / name).is_file(), name
    assert list((out / "overlays").glob("epoch002_lits117_roi.png"))
    assert list((out / "tensorboard").iterdir())
    ckpt = load_checkpoint(out / "last.pt")  # weights_only=True
    assert ckpt["state"]["epoch"] == 2 and _epochs(out) == [1, 2]
    with open(out / "history.csv") as f:
        row = next(csv.DictReader(f))
    assert 0.0 <= float(row["val_dice_liver"]) <= 1.0


def test_resume_continues_from_the_last_epoch(shared_data: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    train.main(["--config", LIVER_YAML, *tiny_overrides(shared_data, out, cache, epochs=1)])
    first = load_checkpoint(out / "last.pt")["model"]
    train.main(["--config", LIVER_YAML, *tiny_overrides(shared_data, out, cache, epochs=3)])
    assert _epochs(out) == [1, 2, 3]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["epoch"] == 3
    assert any((ckpt["model"][k] != first[k]).any() for k in first)


def test_resume_refuses_a_run_with_other_settings(shared_data: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    train.main(["--config", LIVER_YAML, *tiny_overrides(shared_data, out, cache, epochs=1, iters=1)])
    with pytest.raises(ValueError, match="optim.lr"):
        train.main(["--config", LIVER_YAML, *tiny_overrides(shared_data, out, cache, epochs=2, iters=1), "optim.lr=0.1"])


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_loses_at_most_one_epoch(shared_data: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = tiny_overrides(shared_data, out, cache, epochs=30, iters=6) + ["data.val_cases=[]", "data.train_on_all=true"]
    cmd = [sys.executable, "-m", "Training.train", "--config", LIVER_YAML, *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "history.csv").is_file():
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(out / "last.pt")["state"]
    done = state["epoch"]
    assert 1 <= done < 30
    assert [h["epoch"] for h in state["history"]] == list(range(1, done + 1))  # only the running epoch is lost
    args2 = [a if not a.startswith("train.epochs=") else f"train.epochs={done + 1}" for a in args]
    assert train.main(["--config", LIVER_YAML, *args2]) == 0
    assert _epochs(out) == list(range(1, done + 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_on_gloo(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "Training.train", "--config", LIVER_YAML,
           *tiny_overrides(shared_data, out, tmp_path / "cache", epochs=1, iters=2), "train.threads=2"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "terminate called without an active exception" in proc.stderr:
        # A gloo thread still alive at interpreter exit aborts a rank now and then on a loaded 2-core machine
        # (seen once in three full-suite runs, 2026-12-01); one fresh retry, the assertions below stay strict.
        shutil.rmtree(out, ignore_errors=True)
        cmd[cmd.index(next(a for a in cmd if a.startswith("--master_port=")))] = f"--master_port={_free_port()}"
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(out / "last.pt")["state"]["epoch"] == 1
    assert _epochs(out) == [1]
