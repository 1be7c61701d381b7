"""Clean a table: trim text, mark missing values, infer types, drop duplicates and constant
columns, and impute by an explicit policy, reporting every change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, listing

MISSING_MARKERS = ("", "na", "n/a", "nan", "null", "none", "-", "?")
POLICIES = ("none", "mean", "median", "most_frequent", "drop_rows")
_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})
_DATE_HINT = r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"
_LEADING_ZERO = r"^[+-]?0\d"


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.copy()
    if isinstance(data, Mapping):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"data: columns differ in length: {lengths}")
        return pd.DataFrame(dict(data))
    raise TypeError(
        f"data must be a pandas DataFrame or a dict of columns, got {type(data).__name__}"
    )


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s) or (
        s.dtype == object and s.dropna().map(lambda v: isinstance(v, str)).all()
    )


def _infer(s: pd.Series, date_format: str | None) -> tuple[pd.Series, str | None, str | None]:
    """(column, new kind, why it stayed text) for a text column whose missing values are NA."""
    mask = s.notna().to_numpy()
    present = pd.Series(s.to_numpy(dtype=object)[mask]).astype(str)
    if present.empty:
        return s, None, None

    def spread(values: np.ndarray, fill: Any, dtype: Any) -> pd.Series:
        full = np.full(len(s), fill, dtype=dtype)
        full[mask] = values
        return pd.Series(full, index=s.index, name=s.name)

    lowered = present.str.lower()
    if set(lowered) <= _TRUE | _FALSE:
        flags = lowered.isin(_TRUE).to_numpy()
        if mask.all():
            return spread(flags, False, bool), "boolean", None
        return spread(flags, None, object).astype("boolean"), "boolean", None
    numbers = pd.to_numeric(present.str.replace(r"^\+", "", regex=True), errors="coerce")
    if numbers.notna().all():
        if present.str.match(_LEADING_ZERO).any():
            return s, None, "leading zeros (an identifier or code?)"
        full = spread(numbers.to_numpy(dtype=float), np.nan, float)
        if present.str.contains(r"[.eEnN]").any():  # decimals, exponents, inf
            return full, "float", None
        return full.astype("int64" if mask.all() else "Int64"), "integer", None
    if date_format is not None or present.str.match(_DATE_HINT).all():
        dates = pd.to_datetime(present, format=date_format or "ISO8601", errors="coerce")
        if dates.notna().all():
            full = pd.Series(pd.NaT, index=s.index, name=s.name, dtype=dates.dtype)
            full.iloc[np.flatnonzero(mask)] = dates.to_numpy()
            return full, "datetime", None
    return s, None, None


def _display(report: dict[str, Any]) -> Result:
    def pairs(mapping: Mapping[str, Any]) -> str:
        return listing(f"{k}: {v}" for k, v in mapping.items())

    changes = {
        "converted": pairs(report["converted"]),
        "kept as text": pairs(report["kept_as_text"]),
        "whitespace trimmed": pairs(report["trimmed"]),
        "missing markers": pairs(report["missing_markers"]),
        "duplicate rows dropped": str(report["duplicate_rows_dropped"]),
        "constant columns dropped": listing(report["constant_columns_dropped"]),
        "mostly-missing columns dropped": listing(report["missing_columns_dropped"]),
        "missing values": pairs(report["missing"]),
        "imputed": pairs({c: i["policy"] for c, i in report["imputed"].items()}),
        "rows dropped for missing values": str(report["rows_dropped_missing"]),
    }
    done = {k: v for k, v in changes.items() if v not in ("none", "0")}  # only what happened
    return Result(
        report,
        title="clean_dataset",
        summary=[
            f"{report['rows_before']} → {report['rows_after']} rows, "
            f"{report['columns_before']} → {report['columns_after']} columns"
        ],
        tables=[Table("Changes", ["details"], [[v] for v in done.values()], index=list(done))],
    )


def _impute_value(s: pd.Series, policy: str, column: str) -> Any:
    present = s.dropna()
    if present.empty:
        raise ValueError(f"impute: column {column!r} has no values to compute a {policy} from")
    if policy in ("mean", "median"):
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise ValueError(f"impute: {policy} needs a numeric column; {column!r} is {s.dtype}")
        value = present.mean() if policy == "mean" else present.median()
        if pd.api.types.is_integer_dtype(s):
            value = round(value)
        return value.item() if hasattr(value, "item") else value
    # most_frequent: ties go to the smallest value so the result does not depend on row order
    counts = present.value_counts()
    top = counts[counts == counts.max()].index
    value = sorted(top, key=str)[0]
    return value.item() if hasattr(value, "item") else value


@expects(
    data="your raw table (a pandas DataFrame or a dict of columns)",
)
def clean_dataset(
    data: Any,
    trim_whitespace: bool = True,
    missing_markers: Iterable[str] | None = MISSING_MARKERS,
    infer_types: bool = True,
    date_format: str | None = None,
    drop_duplicates: bool = True,
    drop_constant: bool = True,
    max_missing_fraction: float | None = None,
    impute: str | Mapping[str, Any] = "none",
    keep: Iterable[str] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return ``(cleaned_frame, report)``; the input is never modified.

    Steps, in order: trim whitespace in text; turn ``missing_markers`` (case-insensitive)
    into missing values; infer types of text columns (true/false/yes/no -> bool, numbers
    -> int64/Int64/float64, ISO dates or ``date_format`` -> datetime; numbers with leading
    zeros such as postcodes stay text); drop duplicate rows (the first is kept; the index is
    kept so labels held elsewhere still align); drop constant columns (one value, or all
    missing); drop columns missing more than ``max_missing_fraction``; impute.

    ``impute`` is one policy for every column with missing values (``none``, ``mean``,
    ``median``, ``most_frequent``, ``drop_rows``) or a dict ``{column: policy or a constant
    fill value}``. Statistics come from ``data`` itself: on data you will split for model
    evaluation, impute inside the model pipeline instead (encode_features), fitted on the
    training rows only, or test rows leak into training. Columns in ``keep`` are never
    dropped. The report lists each change: ``converted``, ``trimmed``, ``missing_markers``,
    ``duplicate_rows_dropped``, ``constant_columns_dropped``, ``missing_columns_dropped``,
    ``missing`` (per column, before imputation), ``imputed``, ``rows_dropped_missing``,
    ``kept_as_text`` and the row and column counts before and after.
    """
    frame = _as_frame(data)
    keep = set(keep)
    unknown = sorted(keep - set(map(str, frame.columns)))
    if unknown:
        raise KeyError(f"keep: no columns {unknown}; columns: {', '.join(map(str, frame))}")
    if max_missing_fraction is not None and not 0 <= max_missing_fraction <= 1:
        raise ValueError(
            f"max_missing_fraction must be between 0 and 1, got {max_missing_fraction}"
        )
    if isinstance(impute, str):
        if impute not in POLICIES:
            raise ValueError(
                f"impute must be one of {', '.join(POLICIES)} or a dict, got {impute!r}"
            )
    elif isinstance(impute, Mapping):
        missing_cols = sorted(set(impute) - set(map(str, frame.columns)))
        if missing_cols:
            raise KeyError(
                f"impute: no columns {missing_cols}; columns: {', '.join(map(str, frame))}"
            )
    else:
        raise TypeError(f"impute must be a policy name or a dict, got {type(impute).__name__}")
    markers = {m.lower() for m in (missing_markers or ())}
    report: dict[str, Any] = {
        "rows_before": len(frame),
        "columns_before": len(frame.columns),
        "trimmed": {},
        "missing_markers": {},
        "converted": {},
        "kept_as_text": {},
    }

    for col in frame.columns:
        s = frame[col]
        if not _is_text(s):
            continue
        if trim_whitespace:
            trimmed = s.str.strip()
            changed = int((trimmed.fillna("") != s.fillna("")).sum())
            if changed:
                report["trimmed"][col] = changed
            s = trimmed
        if markers:
            is_marker = s.str.lower().isin(markers) & s.notna()
            if is_marker.any():
                report["missing_markers"][col] = int(is_marker.sum())
                s = s.mask(is_marker)
        if infer_types:
            before = str(s.dtype)
            s, kind, why = _infer(s, date_format)
            if kind:
                report["converted"][col] = f"{before} -> {s.dtype}"
            elif why:
                report["kept_as_text"][col] = why
        frame[col] = s

    if drop_duplicates:
        dup = frame.duplicated(keep="first")
        report["duplicate_rows_dropped"] = int(dup.sum())
        frame = frame[~dup]
    else:
        report["duplicate_rows_dropped"] = 0

    constant = []
    if drop_constant:
        constant = [
            c for c in frame.columns if c not in keep and frame[c].nunique(dropna=False) <= 1
        ]
        frame = frame.drop(columns=constant)
    report["constant_columns_dropped"] = constant

    too_missing = []
    if max_missing_fraction is not None and len(frame):
        fraction = frame.isna().mean()
        too_missing = [
            c for c in frame.columns if c not in keep and fraction[c] > max_missing_fraction
        ]
        frame = frame.drop(columns=too_missing)
    report["missing_columns_dropped"] = too_missing

    missing = frame.isna().sum()
    report["missing"] = {c: int(n) for c, n in missing.items() if n}
    policies = (
        {c: impute for c in report["missing"]}
        if isinstance(impute, str)
        else {c: p for c, p in impute.items() if c in frame.columns}
    )
    imputed: dict[str, dict[str, Any]] = {}
    drop_rows = pd.Series(False, index=frame.index)
    for col, policy in policies.items():
        n = int(missing.get(col, 0))
        if policy == "none" or not n:
            continue
        if policy == "drop_rows":
            drop_rows |= frame[col].isna()
            imputed[col] = {"policy": "drop_rows", "count": n}
            continue
        if isinstance(policy, str) and policy in POLICIES:
            value = _impute_value(frame[col], policy, col)
        else:
            value, policy = policy, "constant"
        frame[col] = frame[col].fillna(value)
        imputed[col] = {"policy": policy, "value": value, "count": n}
    report["imputed"] = imputed
    report["rows_dropped_missing"] = int(drop_rows.sum())
    frame = frame[~drop_rows]
    report["rows_after"] = len(frame)
    report["columns_after"] = len(frame.columns)
    return frame, _display(report)
