"""The few calls whose Slicer API differs between 5.8 and 5.10, done the way both support (no Qt imports).

Each function names the Slicer difference it covers; Testing/slicer/slicer_api_5_8_5_10.txt lists
every Slicer API the module uses, checked against Slicer's sources at v5.8.0, v5.8.1 and v5.10.0.
"""
from __future__ import annotations

from typing import Iterable

#: Dynamic property naming a widget's parameter (slicer.parameterNodeWrapper.SlicerParameterNamePropertyName).
PARAMETER_PROPERTY = "SlicerParameterName"


def setSegmentTerminology(segment, entry: str) -> None:
    """Store a serialized terminology entry on a vtkSegment (SetTerminology exists only from Slicer 5.10)."""
    segment.SetTag(segment.GetTerminologyEntryTagName(), entry)


def segmentTerminology(segment) -> str:
    """The serialized terminology entry of a vtkSegment ("" if none), on Slicer 5.8 and 5.10."""
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(segment.GetTerminologyEntryTagName(), value) else ""


def parameterWidgets(widgets: Iterable) -> dict:
    """{parameter name: widget} of the widgets carrying a SlicerParameterName property.

    For `connectParametersToGui`, which returns its tag on every Slicer; `connectGui` returns None on
    Slicer 5.8 (fixed by Slicer commit b5a65a49a0, in 5.10), so its connections could never be removed.
    """
    mapping = {}
    for widget in widgets:
        name = widget.property(PARAMETER_PROPERTY) if hasattr(widget, "property") else None
        if name:
            mapping[str(name)] = widget
    return mapping


def tableRowOfIndex(tableView, index) -> int:
    """The vtkMRMLTableNode row of a qMRMLTableView index (through its sort proxy; titles are the header)."""
    sourceIndex = tableView.sortFilterProxyModel().mapToSource(index)
    model = tableView.tableModel()
    if hasattr(model, "mrmlTableRowIndex"):
        return int(model.mrmlTableRowIndex(sourceIndex))
    return int(sourceIndex.row())  # equal when UseColumnTitleAsColumnHeader is on and the view is not transposed
