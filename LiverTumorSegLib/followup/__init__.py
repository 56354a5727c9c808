"""Follow-up comparison of two time points: registration, lesion matching, change and response.

`compare(baseline, followup, ...)` returns a `Comparison`; `write_comparison(comparison, out_dir, name)` writes it.
"""
from .compare import Comparison, compare, registered_followup
from .config import AlignmentThresholds, CompareConfig, MatchingConfig, RegistrationConfig, ResponseConfig
from .matching import STATUSES, Track
from .outputs import comparison_paths, write_comparison
from .registration import RegistrationError

__all__ = ["compare", "registered_followup", "write_comparison", "comparison_paths", "Comparison", "CompareConfig", "RegistrationConfig",
           "AlignmentThresholds", "MatchingConfig", "ResponseConfig", "STATUSES", "Track", "RegistrationError"]
