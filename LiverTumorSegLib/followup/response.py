"""Per-track change rows, the two time points' totals, and a RECIST 1.1-style liver assessment (an automated aid)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..result import Lesion
from .config import ResponseConfig
from .matching import STATUSES, Track

AID_NOTE = ("automated aid computed from the segmentations, not a radiological read: targets, diameters and new "
            "lesions must be confirmed by a radiologist (RECIST 1.1 also weighs non-target and extrahepatic disease)")


def _ids(lesions: tuple[Lesion, ...]) -> str:
    """Lesion ids joined by ';' ('' for none)."""
    return ";".join(str(lesion.id) for lesion in lesions)


def _centroid(lesions: tuple[Lesion, ...], key: str) -> list[float | None]:
    """Volume-weighted centroid (mm) of lesions in the frame `key` ('centroid_lps' or 'centroid_ras'); Nones if none."""
    if not lesions:
        return [None] * 3
    w = np.array([lesion.volume_ml for lesion in lesions])
    c = np.array([getattr(lesion, key) for lesion in lesions])
    return [round(float(v), 2) for v in (w[:, None] * c).sum(0) / max(w.sum(), 1e-12)]


def change_row(track: Track) -> dict:
    """One CSV row: ids, volumes (ml), change, longest axial diameters (mm; summed over a track's pieces), centroids."""
    before = sum(lesion.volume_ml for lesion in track.baseline)
    after = sum(lesion.volume_ml for lesion in track.followup)
    row = {"track_id": track.id, "status": track.status, "baseline_id": _ids(track.baseline), "followup_id": _ids(track.followup),
           "baseline_ml": round(before, 3), "followup_ml": round(after, 3), "change_ml": round(after - before, 3),
           "change_percent": round(100.0 * (after - before) / before, 1) if before > 0 else None,
           "baseline_diameter_mm": round(sum(lesion.longest_axial_diameter_mm for lesion in track.baseline), 1),
           "followup_diameter_mm": round(sum(lesion.longest_axial_diameter_mm for lesion in track.followup), 1)}
    for when, lesions in (("baseline", track.baseline), ("followup", track.followup)):
        for frame in ("ras", "lps"):
            for axis, value in zip(frame.upper(), _centroid(lesions, f"centroid_{frame}")):
                row[f"{when}_{axis}_{frame}"] = value
    return row


def target_diameters(tracks: list[Track], cfg: ResponseConfig) -> list[tuple[int, int, float, float]]:
    """RECIST-style targets: (track id, baseline lesion id, baseline mm, follow-up mm), largest baseline diameter first.

    Up to `max_targets` baseline lesions of >= `min_target_mm`. A split lesion's follow-up diameter is the sum of
    its fragments; a merged lesion's goes to the largest target of the merge and 0 to the others.
    """
    candidates = [(t, lesion) for t in tracks for lesion in t.baseline if lesion.longest_axial_diameter_mm >= cfg.min_target_mm]
    candidates.sort(key=lambda tl: -tl[1].longest_axial_diameter_mm)
    targets, credited = [], set()
    for track, lesion in candidates[: cfg.max_targets]:
        after = 0.0 if track.id in credited else sum(f.longest_axial_diameter_mm for f in track.followup)
        credited.add(track.id)
        targets.append((track.id, lesion.id, lesion.longest_axial_diameter_mm, after))
    return targets


def recist(tracks: list[Track], cfg: ResponseConfig = ResponseConfig()) -> dict:
    """Liver-only RECIST 1.1-style category (CR / PR / SD / PD, or NE without targets) with its numbers."""
    targets = target_diameters(tracks, cfg)
    before = sum(t[2] for t in targets)
    after = sum(t[3] for t in targets)
    change = 100.0 * (after - before) / before if before > 0 else None
    new_tracks = [t for t in tracks if t.status == "new"]
    new = sum(max(f.longest_axial_diameter_mm for f in t.followup) >= cfg.min_new_lesion_mm for t in new_tracks)
    remaining = sum(bool(t.followup) for t in tracks)
    unseen = {t.id for t in tracks if t.status == "out of view"}
    if new or (change is not None and change >= cfg.progression_percent and after - before >= cfg.progression_mm):
        category = "PD"
    elif not targets or unseen & {t[0] for t in targets}:
        category = "NE"  # no measurable lesion, or a target outside the follow-up's field of view
    elif remaining == 0:
        category = "CR"
    elif change <= cfg.partial_response_percent:
        category = "PR"
    else:
        category = "SD"
    return {"category": category, "note": AID_NOTE, "new_lesions": new, "new_lesions_below_threshold": len(new_tracks) - new,
            "targets": [{"track_id": t, "baseline_id": b, "baseline_mm": round(bd, 1), "followup_mm": round(fd, 1)}
                        for t, b, bd, fd in targets],
            "sum_diameters_baseline_mm": round(before, 1), "sum_diameters_followup_mm": round(after, 1),
            "sum_diameters_change_percent": None if change is None else round(change, 1)}


def status_counts(tracks: list[Track]) -> dict[str, int]:
    """How many tracks have each status (every status listed, zeros included)."""
    counts = Counter(t.status for t in tracks)
    return {s: counts.get(s, 0) for s in STATUSES}


def totals(liver_ml: tuple[float, float], tumor_ml: tuple[float, float]) -> dict:
    """Liver and tumor volume (ml) and burden (% of liver) at both times, and their changes."""
    burden = [100.0 * t / l if l > 0 else 0.0 for l, t in zip(liver_ml, tumor_ml)]
    return {"baseline_liver_ml": round(liver_ml[0], 1), "followup_liver_ml": round(liver_ml[1], 1),
            "baseline_tumor_ml": round(tumor_ml[0], 2), "followup_tumor_ml": round(tumor_ml[1], 2),
            "tumor_change_ml": round(tumor_ml[1] - tumor_ml[0], 2),
            "tumor_change_percent": round(100.0 * (tumor_ml[1] - tumor_ml[0]) / tumor_ml[0], 1) if tumor_ml[0] > 0 else None,
            "baseline_burden_percent": round(burden[0], 2), "followup_burden_percent": round(burden[1], 2),
            "burden_change_points": round(burden[1] - burden[0], 2)}
