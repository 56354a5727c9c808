"""Typed configuration of a follow-up comparison: registration, lesion matching, change and response thresholds."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistrationConfig:
    """Follow-up-to-baseline registration with SimpleITK (rigid, affine, then B-spline inside the liver)."""

    margin_mm: float = 20.0  # the liver's bounding box grown by this much is what is registered
    clamp_hu: tuple[float, float] = (-200.0, 400.0)  # intensities outside are clipped (bone, air do not steer)
    histogram_bins: int = 32  # Mattes mutual information: robust to a different contrast phase
    working_spacing_mm: float = 3.0  # both liver regions are smoothed and resampled to this isotropic grid first
    samples: int = 20000  # random voxels (inside the masked region) the metric samples per iteration
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (3.0, 0.0)
    linear_iterations: int = 100
    deformable: bool = True  # B-spline stage inside the liver; off: affine only
    bspline_spacing_mm: float = 50.0  # control-point spacing of the B-spline grid
    bspline_iterations: int = 20
    bspline_samples: int = 5000  # fewer samples for the B-spline stage: each costs a 64-point kernel
    seed: int = 7  # the metric's random sampling: same inputs, same result


@dataclass(frozen=True)
class AlignmentThresholds:
    """When the registration is reported as poor (a warning, not an error)."""

    min_liver_dice: float = 0.85  # liver Dice (baseline vs registered follow-up) below this: warn
    max_liver_assd_mm: float = 4.0  # average symmetric surface distance above this: warn
    fail_liver_dice: float = 0.3  # below this the registration failed: RegistrationError


@dataclass(frozen=True)
class MatchingConfig:
    """Which lesions are counted, when two lesions are the same lesion, and what counts as a change."""

    min_lesion_ml: float = 0.05  # components smaller than this start no track of their own (predict drops < 50 mm3)
    min_overlap_fraction: float = 0.2  # an overlap edge needs this fraction of the smaller lesion (registered space)
    max_distance_mm: float = 10.0  # lesions left unmatched by overlap pair up by centroid distance up to this
    min_part_ml: float = 0.5  # merged / split only when two or more of the joined lesions have this much each;
    # a small satellite fused with (or broken off) a large lesion is judged by the total volume change instead
    min_in_view: float = 0.9  # a lesion with less of its volume inside the other CT's field of view is "out of view"
    change_percent: float = 20.0  # grown / shrunk: volume change of at least +-20 % ...
    change_ml: float = 0.5  # ... and of at least 0.5 ml; otherwise stable


@dataclass(frozen=True)
class ResponseConfig:
    """RECIST 1.1-style thresholds for the automated liver assessment (an aid, not a read)."""

    max_targets: int = 2  # RECIST 1.1: at most two target lesions per organ
    min_target_mm: float = 10.0  # measurable: longest axial diameter of at least 10 mm
    partial_response_percent: float = -30.0  # PR: sum of diameters down by at least 30 %
    progression_percent: float = 20.0  # PD: sum up by at least 20 % ...
    progression_mm: float = 5.0  # ... and by at least 5 mm, or an unequivocal new lesion:
    min_new_lesion_mm: float = 10.0  # a new lesion counts towards PD from this longest axial diameter; smaller ones
    # (often segmentation noise between two scans) are listed but left to the reader


@dataclass(frozen=True)
class CompareConfig:
    """Everything one `compare` call needs besides the two time points."""

    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    alignment: AlignmentThresholds = field(default_factory=AlignmentThresholds)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    force: bool = False  # compare even when the DICOM tags name two different patients
