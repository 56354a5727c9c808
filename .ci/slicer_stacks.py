"""Print what .ci/run needs to build the virtual environment of one Slicer stack, from pyproject.toml.

`python .ci/slicer_stacks.py 5.8 python` prints the Python version ("3.9"); `... 5.8 requirements`
prints the pip requirements: Slicer's bundled packages plus the slicer-runtime pins for that Python.
"""
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
slicer, what = sys.argv[1], sys.argv[2]
stack = pyproject["tool"]["livertumorseg"]["slicer-stacks"][slicer]
if what == "python":
    print(stack["python"])
else:
    env = {"python_version": stack["python"], "python_full_version": stack["python"] + ".0"}
    runtime = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["slicer-runtime"]]
    bundled = {Requirement(r).name.lower() for r in stack["packages"]}
    extra = [f"{r.name}{r.specifier}" for r in runtime if (r.marker is None or r.marker.evaluate(env))
             and r.name.lower() not in bundled]
    print(" ".join(stack["packages"] + extra))
