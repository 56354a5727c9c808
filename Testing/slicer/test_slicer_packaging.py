"""Extension packaging: the CMake install lists against the files on disk, and the ExtensionsIndex entry."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "LiverTumorSeg"
LIBRARY_DIR = REPO / "LiverTumorSegLib"
#: Files in the module folder that are deliberately not installed (the screenshot is served from the repository).
NOT_INSTALLED = {"CMakeLists.txt"}
NOT_INSTALLED_DIRS = {"Resources/Screenshots"}
#: Keys allowed by slicer-extension-catalog-entry-schema-v1.0.1.json ("additionalProperties": false).
CATALOG_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                "build_subdirectory", "enabled", "tier"}
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}


def _cmake_sets(path: Path) -> dict[str, list[str]]:
    """`set(NAME values...)` blocks of a CMakeLists.txt, with ${MODULE_NAME} expanded."""
    text = re.sub(r"#.*", "", path.read_text())
    sets = {m.group(1): m.group(2).split() for m in re.finditer(r"set\(\s*(\w+)\s+([^)]*)\)", text)}
    name = sets.get("MODULE_NAME", [""])[0]
    return {k: [v.replace("${MODULE_NAME}", name).strip('"') for v in vals] for k, vals in sets.items()}


def _cmake_value(path: Path, name: str) -> str:
    """The quoted value of `set(NAME "value")`."""
    match = re.search(rf'set\(\s*{name}\s+"([^"]*)"', path.read_text())
    assert match, f"{name} not set in {path}"
    return match.group(1)


def _files(root: Path) -> set[str]:
    """Files under `root` relative to it (POSIX), without Python caches."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _installable(root: Path) -> set[str]:
    """Module files that must appear in its install lists."""
    return {f for f in _files(root) if f not in NOT_INSTALLED and not any(f.startswith(d + "/") for d in NOT_INSTALLED_DIRS)}


def test_module_install_lists_match_the_module_folder():
    sets = _cmake_sets(MODULE_DIR / "CMakeLists.txt")
    listed = sets["MODULE_PYTHON_SCRIPTS"] + sets["MODULE_PYTHON_RESOURCES"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = _installable(MODULE_DIR)
    assert not on_disk - set(listed), f"missing from LiverTumorSeg/CMakeLists.txt: {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"listed but not on disk: {sorted(set(listed) - on_disk)}"
    assert all(f.endswith(".py") for f in sets["MODULE_PYTHON_SCRIPTS"])


def test_library_install_lists_match_the_library_package_and_its_models():
    sets = _cmake_sets(REPO / "CMakeLists.txt")
    scripts, resources = sets["LIBRARY_PYTHON_SCRIPTS"], sets["LIBRARY_PYTHON_RESOURCES"]
    on_disk = {f"LiverTumorSegLib/{f}" for f in _files(LIBRARY_DIR)}
    listed = set(scripts) | set(resources)
    assert not on_disk - listed, f"missing from CMakeLists.txt: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"listed but not on disk: {sorted(listed - on_disk)}"
    assert {f for f in on_disk if f.endswith(".py")} == set(scripts)


def test_bundled_models_are_installed():
    resources = set(_cmake_sets(REPO / "CMakeLists.txt")["LIBRARY_PYTHON_RESOURCES"])
    models = {f"LiverTumorSegLib/{p.relative_to(LIBRARY_DIR).as_posix()}" for p in (LIBRARY_DIR / "models").rglob("*")
              if p.suffix in (".onnx", ".json")}
    assert {m for m in models if m.endswith(".onnx")}, "no ONNX model in LiverTumorSegLib/models yet"
    assert models <= resources
    assert "LiverTumorSegLib/models/sets.json" in models


def test_module_cmake_uses_the_scripted_module_macros():
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert re.search(r"slicerMacroBuildScriptedModule\([^)]*WITH_GENERIC_TESTS", text, re.S)
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    top = (REPO / "CMakeLists.txt").read_text()
    assert "add_subdirectory(LiverTumorSeg)" in top and "find_package(Slicer REQUIRED)" in top


def test_extension_metadata_is_complete():
    top = REPO / "CMakeLists.txt"
    assert re.search(r"^project\(LiverTumorSeg\)", top.read_text(), re.M)
    for name in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert _cmake_value(top, f"EXTENSION_{name}"), name
    assert _cmake_value(top, "EXTENSION_CATEGORY") == "Segmentation"
    assert _cmake_value(top, "EXTENSION_DEPENDS") == "NA"


@pytest.mark.parametrize("name", ["EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"])
def test_icon_and_screenshot_urls_are_raw_files_of_this_repository(name):
    for url in _repository_urls()[name].split():
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc == "raw.githubusercontent.com", url
        owner, repo, _revision, *path = parsed.path.strip("/").split("/")
        assert f"github.com/{owner}/{repo}" in _repository_urls()["EXTENSION_HOMEPAGE"]
        assert (REPO / "/".join(path)).is_file(), f"{url} points to a file that is not in the repository"


def test_icon_is_a_128_pixel_png():
    header = (MODULE_DIR / "Resources" / "Icons" / "LiverTumorSeg.png").read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (128, 128)


def test_extensions_index_entry_follows_the_catalog_schema():
    path = REPO / "LiverTumorSeg.json"
    entry = json.loads(path.read_text())
    assert CATALOG_REQUIRED <= set(entry) <= CATALOG_KEYS
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/")
    assert entry["category"] == _cmake_value(REPO / "CMakeLists.txt", "EXTENSION_CATEGORY")
    assert path.stem == re.search(r"^project\((\w+)\)", (REPO / "CMakeLists.txt").read_text(), re.M).group(1)
    assert entry.get("tier", 5) in (1, 3, 5) and isinstance(entry.get("build_dependencies", []), list)
    homepage = urlparse(_repository_urls()["EXTENSION_HOMEPAGE"])
    assert urlparse(entry["scm_url"]).path.removesuffix(".git") == homepage.path


def test_repository_has_a_license_and_the_shipped_files_stay_small():
    assert (REPO / "LICENSE").is_file(), "the ExtensionsIndex requires a LICENSE file at the repository root"
    listed = (_cmake_sets(REPO / "CMakeLists.txt")["LIBRARY_PYTHON_RESOURCES"]
              + _cmake_sets(REPO / "CMakeLists.txt")["LIBRARY_PYTHON_SCRIPTS"])
    module = _cmake_sets(MODULE_DIR / "CMakeLists.txt")
    shipped = [REPO / f for f in listed] + [MODULE_DIR / f for f in module["MODULE_PYTHON_SCRIPTS"] + module["MODULE_PYTHON_RESOURCES"]]
    assert sum(p.stat().st_size for p in shipped) < 100 * 2**20


def _repository_urls() -> dict[str, str]:
    """The extension's URLs in CMakeLists.txt with EXTENSION_GITHUB_* expanded (as CMake does)."""
    text = (REPO / "CMakeLists.txt").read_text()
    values = {"EXTENSION_GITHUB_REPOSITORY": _cmake_value(REPO / "CMakeLists.txt", "EXTENSION_GITHUB_REPOSITORY"),
              "EXTENSION_GITHUB_BRANCH": _cmake_value(REPO / "CMakeLists.txt", "EXTENSION_GITHUB_BRANCH")}
    values["_raw"] = re.search(r'set\(_raw "([^"]+)"\)', text).group(1)
    expand = lambda v: re.sub(r"\$\{(\w+)\}", lambda m: expand(values[m.group(1)]), v)  # noqa: E731
    return {name: expand(_cmake_value(REPO / "CMakeLists.txt", name))
            for name in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS")}


def test_the_repository_is_named_in_one_place_and_every_url_is_made_from_it():
    text = (REPO / "CMakeLists.txt").read_text()
    repository = _cmake_value(REPO / "CMakeLists.txt", "EXTENSION_GITHUB_REPOSITORY")
    assert text.count(repository) == 1, "name the repository once (EXTENSION_GITHUB_REPOSITORY)"
    owner, name = repository.split("/")
    assert name.startswith("Slicer"), name
    assert owner == "OWNER", "keep the explicit placeholder until the organisation is known (README: what to fill in)"
    urls = _repository_urls()
    assert urlparse(urls["EXTENSION_HOMEPAGE"]).path.strip("/") == repository
    for url in [urls["EXTENSION_ICONURL"], *urls["EXTENSION_SCREENSHOTURLS"].split()]:
        path = urlparse(url).path.split("/", 4)[-1]  # /OWNER/Repo/branch/<file>
        assert url.startswith(f"https://raw.githubusercontent.com/{repository}/") and (REPO / path).is_file(), url
    scm = urlparse(json.loads((REPO / "LiverTumorSeg.json").read_text())["scm_url"])
    assert scm.path.removesuffix(".git").strip("/") == repository
