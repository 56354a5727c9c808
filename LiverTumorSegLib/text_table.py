"""Plain-text tables for the command line (shared by its sub-commands)."""
from __future__ import annotations


def print_summary(rows: list[dict]) -> None:
    """A plain-text table of per-case results on stdout."""
    if not rows:
        return
    heads = list(rows[0])
    table = [heads] + [[row[c] for c in heads] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(heads))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
