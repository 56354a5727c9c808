"""The change and response rules on hand-made lesions: statuses at their thresholds, RECIST-style categories."""
from __future__ import annotations

import pytest

from LiverTumorSegLib import Lesion
from LiverTumorSegLib.followup import MatchingConfig, ResponseConfig, Track
from LiverTumorSegLib.followup.matching import status_of
from LiverTumorSegLib.followup.response import recist, target_diameters

CFG = MatchingConfig()


def lesion(i: int, ml: float, mm: float = 5.0) -> Lesion:
    """A lesion with a volume (ml) and a longest axial diameter (mm)."""
    return Lesion(i, ml, mm, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 40.0, int(ml * 1000))


@pytest.mark.parametrize("before, after, status", [
    (10.0, 12.1, "grown"), (10.0, 11.9, "stable"), (10.0, 7.9, "shrunk"), (10.0, 8.1, "stable"),
    (1.0, 1.45, "stable"),  # +45 % but under 0.5 ml
    (1.0, 1.6, "grown"), (2.0, 1.4, "shrunk"),
])
def test_volume_change_needs_twenty_percent_and_half_a_millilitre(before, after, status):
    assert status_of((lesion(1, before),), (lesion(1, after),), CFG) == status


def test_counts_of_lesions_decide_new_disappeared_merged_split():
    a, b, c = lesion(1, 3.0), lesion(2, 2.0), lesion(3, 0.1)
    assert status_of((a,), (), CFG) == "disappeared"
    assert status_of((), (a,), CFG) == "new"
    assert status_of((a, b), (a,), CFG) == "merged"
    assert status_of((a,), (a, b), CFG) == "split"
    assert status_of((a, c), (lesion(4, 3.1),), CFG) == "stable"  # a crumb joining a lesion is no merge
    assert status_of((a,), (a,), CFG, seen=False) == "out of view"


def _track(i: int, status: str, before: list[Lesion], after: list[Lesion]) -> Track:
    return Track(i, status, tuple(before), tuple(after))


def test_recist_categories_from_the_sum_of_target_diameters():
    def category(after_mm: list[float], extra: list[Track] = ()) -> str:
        tracks = [_track(i + 1, "stable", [lesion(i + 1, 5.0, mm)], [lesion(i + 1, 5.0, a)] if a else [])
                  for i, (mm, a) in enumerate(zip([40.0, 20.0], after_mm))]
        return recist(tracks + list(extra))["category"]

    assert category([40.0, 20.0]) == "SD"
    assert category([28.0, 14.0]) == "PR"  # -30 %
    assert category([29.0, 14.0]) == "SD"
    assert category([48.0, 24.0]) == "PD"  # +20 % and +12 mm
    assert category([0.0, 0.0]) == "CR"
    assert category([40.0, 20.0], [_track(3, "new", [], [lesion(3, 0.9, 12.0)])]) == "PD"
    assert category([40.0, 20.0], [_track(3, "new", [], [lesion(3, 0.1, 6.0)])]) == "SD"  # equivocal: left to the reader


def test_targets_are_the_two_largest_of_ten_mm_and_a_merge_credits_one():
    big, mid, small, tiny = lesion(1, 9.0, 50.0), lesion(2, 5.0, 30.0), lesion(3, 4.0, 20.0), lesion(4, 0.1, 8.0)
    merged = _track(1, "merged", [big, mid], [lesion(1, 14.0, 70.0)])
    targets = target_diameters([merged, _track(2, "stable", [small], [small]), _track(3, "stable", [tiny], [tiny])],
                               ResponseConfig())
    assert [(t[1], t[2], t[3]) for t in targets] == [(1, 50.0, 70.0), (2, 30.0, 0.0)]
    assert recist([_track(1, "stable", [tiny], [tiny])])["category"] == "NE"
