"""Load a CSV or Parquet file into a pandas DataFrame, with column selection and dtype hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlfactory.components.placeholders import expects

FORMATS = ("csv", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_DATES = ("date", "datetime")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] in ([".gz"], [".bz2"], [".zip"], [".xz"], [".zst"]):
        suffixes = suffixes[:-1]  # pandas decompresses CSV by suffix
    found = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise ValueError(f"{path.name}: cannot tell the format from the suffix; pass format=")
    return found


def _is_date(dtype: Any) -> bool:
    return isinstance(dtype, str) and (dtype in _DATES or dtype.startswith("datetime64"))


def _cast(series: pd.Series, dtype: Any, column: str) -> pd.Series:
    try:
        if _is_date(dtype):
            out = pd.to_datetime(series, format="ISO8601")
            return out.dt.normalize() if dtype == "date" else out
        if dtype in ("bool", "boolean", bool) and not pd.api.types.is_bool_dtype(series):
            text = series.astype("string").str.strip().str.lower()
            bad = text.notna() & ~text.isin(_TRUE | _FALSE)
            if bad.any():
                raise ValueError(f"{text[bad].iloc[0]!r} is not a boolean")
            if dtype == "bool" and text.isna().any():
                raise ValueError("has missing values; use the 'boolean' dtype for those")
            return text.isin(_TRUE).astype(dtype).where(text.notna())
        return series.astype(dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"column {column!r} cannot be read as {dtype!r}: {e}") from None


def _check_columns(path: Path, available: list[str], wanted: list[str], what: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(
            f"{path.name}: {what} name missing columns {missing}; columns: {', '.join(available)}"
        )


@expects(
    path='the CSV or Parquet file to read (a path such as "data/train.parquet")',
)
def load_table(
    path: str | Path,
    format: str | None = None,
    columns: list[str] | None = None,
    dtypes: dict[str, Any] | None = None,
    delimiter: str = ",",
    max_rows: int | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a CSV (also ``.tsv``/``.txt``, optionally compressed) or Parquet file.

    ``format`` is taken from the suffix unless given (``"csv"`` or ``"parquet"``).
    ``columns`` keeps only those columns, in that order; a name the file lacks raises
    KeyError listing the file's columns. ``dtypes`` maps a column to a pandas dtype
    (``"int64"``, ``"Int64"`` for integers with gaps, ``"float64"``, ``"string"``,
    ``"category"``, ``"bool"``/``"boolean"`` from true/false/yes/no/1/0 text, ``"date"`` or
    ``"datetime64[ns]"`` from ISO 8601 text); a value that does not fit raises ValueError
    naming the column. CSV columns with a hint are read as text first, so ``"string"``
    keeps leading zeros (postcodes, account numbers). ``max_rows`` reads only the first
    rows. The result is a DataFrame with a fresh RangeIndex.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if max_rows is not None and max_rows < 0:
        raise ValueError(f"max_rows must be 0 or more, got {max_rows}")
    dtypes = dict(dtypes or {})
    if fmt == "csv":
        tsv = ".tsv" in [x.lower() for x in path.suffixes[-2:]]
        sep = "\t" if delimiter == "," and tsv else delimiter
        header = list(pd.read_csv(path, sep=sep, nrows=0, encoding=encoding).columns)
    else:
        header = list(pq.read_schema(path).names)
    if columns is not None:
        if len(set(columns)) != len(columns):
            raise ValueError(f"columns repeat a name: {columns}")
        _check_columns(path, header, list(columns), "columns")
    keep = list(columns) if columns is not None else header
    _check_columns(path, keep, list(dtypes), "dtypes")

    if fmt == "csv":
        frame = pd.read_csv(
            path,
            sep=sep,
            usecols=keep,
            dtype={c: "str" for c in dtypes},  # hinted columns are cast below, by name
            nrows=max_rows,
            encoding=encoding,
        )
    else:
        parquet = pq.ParquetFile(path)
        if max_rows is None:
            table = parquet.read(columns=keep)
        else:
            batches = []
            remaining = max_rows
            for batch in parquet.iter_batches(
                batch_size=max(1, min(max_rows, 65536)), columns=keep
            ):
                batches.append(batch.slice(0, remaining))
                remaining -= batches[-1].num_rows
                if remaining <= 0:
                    break
            table = (
                pa.Table.from_batches(batches)
                if batches
                else parquet.schema_arrow.empty_table().select(keep)
            )
        frame = table.to_pandas()
    frame = frame[keep]
    for column, dtype in dtypes.items():
        frame[column] = _cast(frame[column], dtype, column)
    return frame.reset_index(drop=True)
