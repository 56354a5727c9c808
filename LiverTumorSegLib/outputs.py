"""Batch outputs: unique case names within a run, and when an earlier run's outputs count as complete.

One rule for the CLI and the Slicer batch (`processFiles`), so both name and resume cases alike.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .io import case_name

SKIPPED = "skipped"  # the status word of a case whose outputs are complete already
RECORD_SUFFIX = "_lesions.json"  # the CLI's per-case record: it names the input the case was made from


def _qualified(path: Path, depth: int) -> str:
    """The case name of `path` prefixed by its `depth` nearest parent folder names (`a_b_ct`)."""
    parents = [p for p in path.parent.parts if p not in (path.anchor, "")]
    return "_".join(parents[len(parents) - depth:] + [case_name(path)]) if depth else case_name(path)


def _clashing(names: Sequence[str]) -> set[int]:
    """Indices of names that occur more than once (compared case-insensitively, as on macOS and Windows)."""
    counts = Counter(n.casefold() for n in names)
    return {i for i, n in enumerate(names) if counts[n.casefold()] > 1}


def _parent_tells_apart(i: int, clash: set[int], names: list[str], paths: list[Path]) -> bool:
    """True when parent folder names can tell input `i` apart from another input of the same name."""
    def key(j: int) -> tuple[str, str]:
        return names[j].casefold(), str(paths[j].parent).casefold()
    return any(key(j)[0] == key(i)[0] and key(j)[1] != key(i)[1] for j in clash if j != i)


def case_names(paths: Sequence[str | Path]) -> list[str]:
    """Output base names of `paths`, unique within the run: the file name without its image suffix,
    prefixed by as many parent folder names as it takes where names clash (`a/ct.nii.gz`, `b/ct.nii.gz`
    -> `a_ct`, `b_ct`). The result does not depend on the order of the inputs.
    """
    absolute = [Path(p).absolute() for p in paths]
    depth = [0] * len(absolute)
    while True:
        names = [_qualified(p, d) for p, d in zip(absolute, depth)]
        clash = _clashing(names)
        grow = [i for i in clash if depth[i] < len(absolute[i].parent.parts) - 1
                and _parent_tells_apart(i, clash, names, absolute)]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    taken: Counter[str] = Counter()
    for i in sorted(_clashing(names), key=lambda i: str(absolute[i])):  # same folders, names differing in case only
        taken[names[i].casefold()] += 1
        names[i] = f"{names[i]}_{taken[names[i].casefold()]}"
    return names


def existing(outputs: Iterable[Path]) -> list[Path]:
    """The outputs that exist already."""
    return [p for p in outputs if Path(p).exists()]


def is_complete(outputs: Iterable[Path]) -> bool:
    """True when every output of a case exists and is not empty: an earlier run finished it."""
    outputs = list(outputs)
    return bool(outputs) and all(Path(p).is_file() and Path(p).stat().st_size > 0 for p in outputs)


def recorded_inputs(out_dir: str | Path) -> dict[Path, str]:
    """Case names by input (resolved path) as recorded in the `<case>_lesions.json` files of an output folder."""
    recorded: dict[Path, str] = {}
    for path in sorted(Path(out_dir).glob(f"*{RECORD_SUFFIX}")) if Path(out_dir).is_dir() else []:
        try:
            source = json.loads(path.read_text()).get("input")
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: that case is incomplete and will be redone
        if source:
            recorded.setdefault(Path(source).resolve(), path.name[: -len(RECORD_SUFFIX)])
    return recorded


def case_names_in(out_dir: str | Path, paths: Sequence[str | Path]) -> list[str]:
    """`case_names`, stable across runs into one folder: an input recorded there keeps its recorded name,
    and the others are named as if the recorded inputs were part of this run too."""
    recorded = recorded_inputs(out_dir)
    resolved = [Path(p).resolve() for p in paths]
    others = [source for source in recorded if source not in set(resolved)]
    names = case_names(list(paths) + others)[: len(paths)]
    names = [recorded.get(r, n) for r, n in zip(resolved, names)]
    taken = Counter(n.casefold() for n in names) + Counter(recorded[o].casefold() for o in others)
    return [n if taken[n.casefold()] == 1 else f"{n}_{i + 1}" for i, n in enumerate(names)]
