"""Built-in demo CT (TotalSegmentator's abdominal example, Apache-2.0; see README.md here)."""
from pathlib import Path

DEMO_CT = Path(__file__).with_name("demo_ct.nii.gz")
