"""Every Slicer API the module uses exists in Slicer 5.8.0, 5.8.1 and 5.10.0 (list checked against Slicer's sources)."""
from __future__ import annotations

from .slicer_api import listed, used_names

SUPPORTED = ["v5.8.0", "v5.8.1", "v5.10.0"]


def test_every_slicer_api_the_module_uses_was_found_in_every_supported_slicer():
    have = listed()
    missing = sorted(n for n in used_names() if have.get(n) != SUPPORTED)
    assert not missing, (f"not checked against Slicer {', '.join(SUPPORTED)}: {missing}; run "
                         "`python Testing/slicer/slicer_api.py SLICER_GIT_DIR v5.8.0 v5.8.1 v5.10.0` and use only what it finds")


def test_the_api_extraction_sees_the_calls_that_broke_before():
    used = used_names()
    assert {"SetTag", "GetTerminologyEntryTagName", "SetUseColumnTitleAsColumnHeader", "slicer.util.errorDisplay",
            "widget.connectParametersToGui", "ui:qMRMLTableView"} <= used
    assert "SetTerminology" not in listed(), "vtkSegment.SetTerminology does not exist before Slicer 5.10"
