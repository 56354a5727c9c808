"""A headless Slicer built from the `slicer-core` wheel: real MRML scene, module logics and slicer.util.

`slicer-core` has the scene, nodes, storage nodes and module logics but no Qt application, no
`slicer.app` and no `slicer.modules`. HeadlessSlicer wires the logics to an application logic,
publishes `slicer.mrmlScene`, `slicer.modules.<name>.logic()` and a minimal `slicer.app` whose only
job is the file loading that `slicer.util.loadVolume` / `loadSegmentation` / `loadTable` delegate to
qSlicerCoreIOManager. Nothing here imitates the LiverTumorSeg code under test.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path

import slicer

#: (module name in slicer.modules, application-logic registration name, logic class)
MODULE_LOGICS = (
    ("subjecthierarchy", "SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
    ("volumes", "Volumes", slicer.vtkSlicerVolumesLogic),
    ("segmentations", "Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
    ("tables", "Tables", slicer.vtkSlicerTablesLogic),
    ("data", "Data", slicer.vtkSlicerDataModuleLogic),
)


class CoreIOManager:
    """The slice of qSlicerCoreIOManager that slicer.util's load helpers call, backed by module logics."""

    def __init__(self, logics: dict) -> None:
        """Load through the given module logics (keyed by slicer.modules name)."""
        self.logics = logics

    def fileType(self, filename) -> str:
        """Reader type of a file, from its name."""
        name = str(filename).lower()
        if name.endswith(".seg.nrrd"):
            return "SegmentationFile"
        return "TableFile" if name.endswith((".csv", ".tsv")) else "VolumeFile"

    def loadNodes(self, fileType: str, properties: dict, loadedNodes, userMessages) -> bool:
        """Load one file into the scene; add the node to `loadedNodes`; False on failure."""
        fileName, name = properties["fileName"], properties.get("name")
        if fileType == "VolumeFile":
            options = 1 if properties.get("labelmap") else 0
            node = self.logics["volumes"].AddArchetypeVolume(fileName, name or _stem(fileName), options)
        elif fileType == "SegmentationFile":
            node = self.logics["segmentations"].LoadSegmentationFromFile(fileName, True, name or _stem(fileName))
        elif fileType == "TableFile":
            node = self.logics["tables"].AddTable(fileName, name or _stem(fileName))
        else:
            raise NotImplementedError(f"the test IO manager cannot load '{fileType}'")
        if node is None:
            userMessages.AddMessage(0, f"cannot read {fileName}")
            return False
        loadedNodes.AddItem(node)
        return True


def _stem(fileName: str) -> str:
    """File name without image suffixes, as Slicer names loaded nodes."""
    name = Path(fileName).name
    for suffix in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".csv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class MinimalApp:
    """Stand-in for slicer.app: an IO manager, and testing mode on (no dialogs)."""

    def __init__(self, ioManager: CoreIOManager, appLogic) -> None:
        """Wrap the IO manager and the application logic."""
        self._ioManager, self._appLogic = ioManager, appLogic

    def coreIOManager(self) -> CoreIOManager:
        """The file IO manager used by slicer.util.load*."""
        return self._ioManager

    def applicationLogic(self):
        """The vtkSlicerApplicationLogic."""
        return self._appLogic

    def testingEnabled(self) -> bool:
        """Always True: slicer.util shows no dialogs in tests."""
        return True


@dataclass
class HeadlessSlicer:
    """One scene with its application logic and module logics."""

    scene: object
    appLogic: object
    logics: dict = field(default_factory=dict)

    @classmethod
    def create(cls) -> "HeadlessSlicer":
        """A fresh scene with default colour nodes and the Volumes, Segmentations, SubjectHierarchy, Tables and Data logics."""
        scene = slicer.vtkMRMLScene()
        appLogic = slicer.vtkSlicerApplicationLogic()
        appLogic.SetMRMLScene(scene)
        colorLogic = slicer.vtkSlicerColorLogic()
        colorLogic.SetMRMLApplicationLogic(appLogic)
        colorLogic.SetMRMLScene(scene)  # adds the default colour tables
        appLogic.SetColorLogic(colorLogic)
        appLogic.SetModuleLogic("Colors", colorLogic)
        env = cls(scene, appLogic, {"colors": colorLogic})
        for moduleName, registeredName, logicClass in MODULE_LOGICS:
            logic = logicClass()
            logic.SetMRMLScene(scene)
            logic.SetMRMLApplicationLogic(appLogic)
            appLogic.SetModuleLogic(registeredName, logic)
            env.logics[moduleName] = logic
        return env

    def publish(self, monkeypatch) -> None:
        """Make slicer.mrmlScene, slicer.modules.<name>.logic() and slicer.app point at this scene."""
        modules = types.SimpleNamespace(**{name: types.SimpleNamespace(logic=lambda lg=lg: lg)
                                           for name, lg in self.logics.items()})
        monkeypatch.setattr(slicer, "mrmlScene", self.scene, raising=False)
        monkeypatch.setattr(slicer, "modules", modules, raising=False)
        monkeypatch.setattr(slicer, "app", MinimalApp(CoreIOManager(self.logics), self.appLogic), raising=False)

    def nodeCount(self) -> int:
        """Number of nodes in the scene."""
        return self.scene.GetNumberOfNodes()


