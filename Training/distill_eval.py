"""Score a distilled student against its teacher on cached cases (the students' 3 mm grid).

`python -m Training.distill_eval --checkpoint Training/runs/liver_student/best.pt --cases chaos_ct3 totalseg_pelvis`
Per case (one JSON row): Dice of student vs teacher (p > 0.5; vs the expert label where the case has
one), student and teacher liver ml, student ml outside the teacher's liver (leaks), the same for the
student's largest component (what the cascade keeps), seconds, threads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from LiverTumorSegLib.postprocess import largest_component

from .checkpoint import load_checkpoint
from .config import Config, from_dict
from .data.adapters import list_cases
from .data.cache import CachedCase, build_cache, load_cached
from .network import build_network
from .validate import dice, predict_volume


def load_student(path: Path) -> tuple[torch.nn.Module, Config]:
    """(model with the checkpoint's weights, its training config); weights_only loading."""
    ckpt = load_checkpoint(path)
    cfg = from_dict(Config, ckpt["config"])
    model = build_network(cfg.network, len(cfg.stage.classes))
    model.load_state_dict(ckpt["model"])
    return model, cfg


def reference_mask(case: CachedCase) -> np.ndarray:
    """Teacher liver (p > 0.5) where the case has a teacher probability, else its labels >= 1 (z, y, x) bool."""
    return np.asarray(case.soft) > 0.5 if case.soft is not None else np.asarray(case.labels) >= 1


def score_case(model: torch.nn.Module, case: CachedCase, cfg: Config, device: torch.device) -> dict:
    """One JSON-ready row comparing the student's liver (p > 0.5) with the case's reference."""
    t0 = time.perf_counter()
    probs = predict_volume(model, cfg.stage.normalization()(case.image), cfg, device)
    seconds = time.perf_counter() - t0
    pred, ref = probs[1] > 0.5, reference_mask(case)
    kept = largest_component(pred)  # what the cascade keeps of a stage-1 liver
    ml = float(np.prod(case.geometry.spacing)) / 1000
    return {"case": case.case_id, "reference": "teacher" if case.soft is not None else "labels",
            "dice": round(dice(pred, ref), 4), "student_ml": round(pred.sum() * ml, 1), "reference_ml": round(ref.sum() * ml, 1),
            "student_ml_outside_reference": round((pred & ~ref).sum() * ml, 1),
            "largest_component_dice": round(dice(kept, ref), 4), "largest_component_ml_outside": round((kept & ~ref).sum() * ml, 1),
            "seconds": round(seconds, 2),
            "shape_zyx": list(case.image.shape), "device": str(device), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: one JSON row per case."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--cases", nargs="+", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, cfg = load_student(Path(a.checkpoint))
    cases = [c for c in list_cases(cfg.data.sources) if c.case_id in set(a.cases)]
    folder = build_cache(cases, cfg.stage, cfg.data.cache_dir)
    device = torch.device(a.device)
    model.to(device)
    for case in cases:
        cached = load_cached(case, folder)
        if cached is not None:
            print(json.dumps(score_case(model, cached, cfg, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
