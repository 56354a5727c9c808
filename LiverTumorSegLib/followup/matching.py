"""Lesion matching between two time points: components, an overlap graph after registration, an assignment
of what is left by distance, and a status per lesion track (stable, grown, shrunk, new, disappeared, merged, split).

Arrays are (z, y, x); lesion ids are those of `measure_lesions` (largest first, from 1) on each CT's own grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..geometry import Geometry
from ..lesions import measure_lesions
from ..result import TUMOR, Lesion
from .config import MatchingConfig
from .registration import in_view, warp_labels

# Nearest-neighbour resampling and an affine's scaling change a carried lesion's volume by up to ~20 %: a follow-up
# lesion counts as in the baseline's view when its carried volume is at least this fraction of `min_in_view`.
CARRY_LOSS = 0.8
STATUSES = ("stable", "grown", "shrunk", "new", "disappeared", "merged", "split", "out of view")


@dataclass(frozen=True)
class Track:
    """One lesion followed over time: the baseline and follow-up lesions (ids) it joins, and its status."""

    id: int
    status: str
    baseline: tuple[Lesion, ...]
    followup: tuple[Lesion, ...]


def lesion_map(labels: np.ndarray, hu: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, list[Lesion]]:
    """(uint32 (z, y, x) map of lesion ids, lesions) of a 0/1/2 label map; ids as `measure_lesions` numbers them."""
    lesions = measure_lesions(labels, hu, geometry)
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26)
    counts = np.bincount(comps.ravel())[1:]
    order = sorted(range(len(counts)), key=lambda i: -counts[i])  # stable, like measure_lesions' sort
    rank = np.zeros(len(counts) + 1, np.uint32)
    rank[np.array(order, dtype=np.int64) + 1] = np.arange(1, len(order) + 1, dtype=np.uint32)
    return rank[comps], lesions


def _overlaps(base_ids: np.ndarray, warped_ids: np.ndarray, n_base: int, n_follow: int) -> np.ndarray:
    """(n_base + 1, n_follow + 1) voxel counts of every (baseline id, follow-up id) pair on one grid."""
    codes = base_ids.astype(np.int64) * (n_follow + 1) + warped_ids
    return np.bincount(codes.ravel(), minlength=(n_base + 1) * (n_follow + 1)).reshape(n_base + 1, n_follow + 1)


def overlap_edges(counts: np.ndarray, cfg: MatchingConfig) -> list[tuple[int, int]]:
    """(baseline id, follow-up id) pairs whose overlap is at least `min_overlap_fraction` of the smaller lesion."""
    sizes_b, sizes_f = counts[1:, :].sum(1), counts[:, 1:].sum(0)
    inter = counts[1:, 1:]
    smaller = np.minimum(sizes_b[:, None], sizes_f[None, :])
    frac = np.divide(inter, smaller, out=np.zeros(inter.shape), where=smaller > 0)
    return [(int(b) + 1, int(f) + 1) for b, f in np.argwhere((inter > 0) & (frac >= cfg.min_overlap_fraction))]


def _centroids_mm(ids: np.ndarray, n: int, geometry: Geometry) -> np.ndarray:
    """(n, 3) LPS centroids of ids 1..n on a grid (nan where an id has no voxel)."""
    zyx = np.argwhere(ids > 0)
    label = ids[ids > 0].astype(np.int64)
    count = np.bincount(label, minlength=n + 1)[1:].astype(float)
    sums = np.stack([np.bincount(label, weights=zyx[:, a], minlength=n + 1)[1:] for a in (2, 1, 0)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ijk = sums / count[:, None]
    m = geometry.ijk_to_lps()
    return ijk @ m[:3, :3].T + m[:3, 3]


def distance_pairs(base_mm: np.ndarray, follow_mm: np.ndarray, free_b: list[int], free_f: list[int],
                   cfg: MatchingConfig) -> list[tuple[int, int]]:
    """One-to-one pairs of unmatched lesions (ids) by least total centroid distance, each within `max_distance_mm`."""
    if not free_b or not free_f:
        return []
    d = np.linalg.norm(base_mm[np.array(free_b) - 1][:, None] - follow_mm[np.array(free_f) - 1][None], axis=-1)
    d = np.where(np.isfinite(d) & (d <= cfg.max_distance_mm), d, 1e9)
    rows, cols = linear_sum_assignment(d)
    return [(free_b[r], free_f[c]) for r, c in zip(rows, cols) if d[r, c] < 1e9]


def status_of(baseline: tuple[Lesion, ...], followup: tuple[Lesion, ...], cfg: MatchingConfig, seen: bool = True) -> str:
    """The status of a track from how many lesions it joins at each time and how its volume changed.

    `seen`: False when part of the track lies outside the other CT's field of view (no change can be measured).
    """
    if not seen:
        return "out of view"
    if not followup:
        return "disappeared"
    if not baseline:
        return "new"
    parts = [sum(lesion.volume_ml >= cfg.min_part_ml for lesion in side) for side in (baseline, followup)]
    if max(parts) > 1:
        return "merged" if parts[0] >= parts[1] else "split"
    before = sum(lesion.volume_ml for lesion in baseline)
    after = sum(lesion.volume_ml for lesion in followup)
    change = after - before
    if abs(change) < cfg.change_ml or abs(change) < before * cfg.change_percent / 100:
        return "stable"
    return "grown" if change > 0 else "shrunk"


def group(n_base: int, n_follow: int, edges: list[tuple[int, int]]) -> list[tuple[list[int], list[int]]]:
    """Connected components of the bipartite lesion graph as (baseline ids, follow-up ids)."""
    n = n_base + n_follow
    rows = [b - 1 for b, _ in edges]
    cols = [n_base + f - 1 for _, f in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))
    k, comp = connected_components(graph, directed=False)
    groups = [([i + 1 for i in range(n_base) if comp[i] == c], [j + 1 for j in range(n_follow) if comp[n_base + j] == c])
              for c in range(k)]
    return groups


def match(base_ids: np.ndarray, base_lesions: list[Lesion], base_grid: sitk.Image,
          follow_ids: np.ndarray, follow_lesions: list[Lesion], follow_grid: sitk.Image,
          transform: sitk.Transform, cfg: MatchingConfig = MatchingConfig()) -> list[Track]:
    """Lesion tracks: follow-up lesions carried onto the baseline grid, joined by overlap, then by distance.

    `*_grid` are images carrying each CT's geometry; `transform` maps baseline points to follow-up points.
    A track is kept when one of its lesions has at least `min_lesion_ml`.
    """
    follow_img = sitk.GetImageFromArray(follow_ids)
    follow_img.CopyInformation(follow_grid)
    warped = sitk.GetArrayFromImage(warp_labels(follow_img, transform, base_grid))
    nb, nf = len(base_lesions), len(follow_lesions)
    edges = overlap_edges(_overlaps(base_ids, warped, nb, nf), cfg)
    linked_b, linked_f = {b for b, _ in edges}, {f for _, f in edges}
    geometry = Geometry.of(base_grid)
    edges += distance_pairs(_centroids_mm(base_ids, nb, geometry), _centroids_mm(warped, nf, geometry),
                            [b for b in range(1, nb + 1) if b not in linked_b],
                            [f for f in range(1, nf + 1) if f not in linked_f], cfg)
    seen = _seen(base_ids, nb, warped, follow_lesions, in_view(follow_grid, transform, base_grid), geometry, cfg)
    return _tracks(group(nb, nf, edges), base_lesions, follow_lesions, seen, cfg)


def _seen(base_ids: np.ndarray, nb: int, warped: np.ndarray, follow_lesions: list[Lesion], view: np.ndarray,
          geometry: Geometry, cfg: MatchingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per lesion id (index 0 unused): True when at least `min_in_view` of it lies in the other CT's field of view."""
    total = np.bincount(base_ids.ravel(), minlength=nb + 1)
    inside = np.bincount(base_ids[view].ravel(), minlength=nb + 1)
    base_seen = inside >= cfg.min_in_view * np.maximum(total, 1)
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0  # a follow-up lesion carried over keeps ~ its volume
    carried_ml = np.bincount(warped.ravel(), minlength=len(follow_lesions) + 1) * voxel_ml
    follow_seen = np.r_[True, [carried_ml[i + 1] >= cfg.min_in_view * CARRY_LOSS * f.volume_ml for i, f in enumerate(follow_lesions)]]
    return base_seen, follow_seen


def _tracks(groups: list[tuple[list[int], list[int]]], base_lesions: list[Lesion], follow_lesions: list[Lesion],
            seen: tuple[np.ndarray, np.ndarray], cfg: MatchingConfig) -> list[Track]:
    """Tracks numbered from 1: those with a baseline lesion by baseline id, then new ones by follow-up id."""
    groups = sorted(groups, key=lambda g: (not g[0], min(g[0] or g[1])))
    tracks = []
    for b_ids, f_ids in groups:
        base = tuple(base_lesions[i - 1] for i in b_ids)
        follow = tuple(follow_lesions[i - 1] for i in f_ids)
        if max(lesion.volume_ml for lesion in base + follow) < cfg.min_lesion_ml:
            continue
        visible = all(seen[0][i] for i in b_ids) and all(seen[1][i] for i in f_ids)
        tracks.append(Track(len(tracks) + 1, status_of(base, follow, cfg, visible), base, follow))
    return tracks


def track_maps(tracks: list[Track], base_ids: np.ndarray, follow_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two lesion id maps relabelled with track ids (uint16 (z, y, x)); lesions in no track become 0."""
    lut_b = np.zeros(int(base_ids.max()) + 1, np.uint16)
    lut_f = np.zeros(int(follow_ids.max()) + 1, np.uint16)
    for t in tracks:
        lut_b[[lesion.id for lesion in t.baseline]] = t.id
        lut_f[[lesion.id for lesion in t.followup]] = t.id
    return lut_b[base_ids], lut_f[follow_ids]
