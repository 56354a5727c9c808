"""Architecture rules: the library stands alone (no Slicer, Qt, VTK, Training) and is fully importable."""
import ast
import importlib
import pkgutil
from pathlib import Path

import LiverTumorSegLib

FORBIDDEN = {"slicer", "qt", "ctk", "vtk", "Training", "torch"}
LIB = Path(LiverTumorSegLib.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_slicer_qt_vtk_training_or_torch():
    offenders = {p.name: _imported_roots(p) & FORBIDDEN for p in LIB.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_library_module_imports_cleanly():
    for mod in pkgutil.walk_packages([str(LIB)], prefix="LiverTumorSegLib."):
        importlib.import_module(mod.name)


PACKAGES = ("LiverTumorSegLib", "LiverTumorSeg/LiverTumorSegLogic", "Training")  # folders below the repository root


def _module_name(path: Path, root: Path) -> str:
    """Dotted module name of a source file below `root` (a package's `__init__` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_targets(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of `known` that the file imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets |= {f"{module}.{a.name}" for a in node.names} | {module}
    return {t for t in targets if t in known and t != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports, over the project's own packages (packages' `__init__` left out)."""
    files = {_module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    packages = {_module_name(p, root) for p in files.values() if p.name == "__init__.py"}
    modules = set(files) - packages
    return {name: _import_targets(files[name], name, modules) for name in modules}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan): each one is an import circle."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v), on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_imports_run_one_way_no_circles_between_modules():
    """The CLI on top, case running and cohorts below it; the Slicer batch below its logic; adapters above sources."""
    graph = import_graph(LIB.parent)
    assert {"LiverTumorSegLib.cli", "LiverTumorSegLib.caserun", "Training.data.adapters"} <= set(graph)
    assert import_cycles(graph) == []


def test_every_typed_error_is_exported_at_the_package_top():
    from LiverTumorSegLib import errors

    classes = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.LiverTumorSegError)}
    assert classes == {"LiverTumorSegError", "InvalidInputError", "NotCTError", "ModelError", "CancelledError",
                       "OutputExistsError", "EvaluationError"}
    for name in classes:
        assert getattr(LiverTumorSegLib, name) is getattr(errors, name) and name in LiverTumorSegLib.__all__
