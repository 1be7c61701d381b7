"""Load a delimited text file into columns with inferred types (no pandas needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from mlfactory.components.placeholders import expects

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})


def _infer(values: list[str]) -> np.ndarray:
    # Try the narrowest type that holds every non-missing value: bool, int, float, then text.
    present = [v for v in values if v.strip().lower() not in MISSING]
    lowered = {v.strip().lower() for v in present}
    if present and lowered <= {"true", "false"}:
        if len(present) == len(values):
            return np.array([v.strip().lower() == "true" for v in values])
        return np.array(
            [None if v.strip().lower() in MISSING else v.strip().lower() == "true" for v in values],
            dtype=object,
        )
    try:
        ints = [int(v) for v in present]
        if len(present) == len(values):
            return np.array(ints, dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array(
            [np.nan if v.strip().lower() in MISSING else float(v) for v in values], dtype=float
        )
    except ValueError:
        return np.array([None if v.strip().lower() in MISSING else v for v in values], dtype=object)


@expects(
    path='the CSV file to read (a path such as "data/train.csv")',
)
def load_csv(
    path: str | Path,
    delimiter: str = ",",
    columns: list[str] | None = None,
    max_rows: int | None = None,
) -> dict[str, np.ndarray]:
    """Read a CSV file with a header row into ``{column: 1-d array}``.

    Types are inferred per column (bool, int64, float64 with NaN for missing, else object
    with None for missing); an integer column with missing values becomes float64.
    ``columns`` keeps only those columns (a missing one raises KeyError naming it) and
    ``max_rows`` stops early on large files. ``pandas.DataFrame(result)`` gives a frame.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file, expected a header row") from None
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: duplicate column names in header {header}")
        rows: list[list[str]] = []
        for lineno, row in enumerate(reader, start=2):
            if max_rows is not None and len(rows) >= max_rows:
                break
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: line {lineno} has {len(row)} fields, header has {len(header)}"
                )
            rows.append(row)
    wanted = columns if columns is not None else header
    for name in wanted:
        if name not in header:
            raise KeyError(f"{path}: no column {name!r}; columns: {', '.join(header)}")
    return {name: _infer([r[header.index(name)] for r in rows]) for name in wanted}
