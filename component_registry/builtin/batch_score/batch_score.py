"""Score a large dataset with a fitted model batch by batch, optionally straight to CSV or
Parquet, so memory holds one batch at a time."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, listing

FORMATS = ("csv", "parquet")


def _chunks(data: Any, batch_size: int) -> Iterator[pd.DataFrame | np.ndarray]:
    """Batches of at most batch_size rows from a frame, a dict, an array or an iterable."""
    if isinstance(data, pd.DataFrame | np.ndarray):
        parts: Iterable[Any] = [data]
    elif isinstance(data, Mapping):
        parts = [pd.DataFrame(dict(data))]
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        parts = data
    else:
        raise TypeError(
            "data must be a DataFrame, a dict of columns, a 2-d array or an iterable of those "
            f"chunks, got {type(data).__name__}"
        )
    for i, part in enumerate(parts):
        if isinstance(part, Mapping):
            part = pd.DataFrame(dict(part))
        if isinstance(part, np.ndarray):
            if part.ndim != 2:
                raise ValueError(
                    f"chunk {i} is an array of shape {part.shape}; rows x features needed"
                )
        elif not isinstance(part, pd.DataFrame):
            raise TypeError(f"chunk {i} is a {type(part).__name__}, not a DataFrame, dict or array")
        for start in range(0, len(part), batch_size):
            yield (
                part.iloc[start : start + batch_size]
                if isinstance(part, pd.DataFrame)
                else part[start : start + batch_size]
            )


def _classes(model: Any) -> list[Any]:
    classes = getattr(model, "classes_", None)
    if classes is None and hasattr(model, "steps"):  # a Pipeline: the final step's classes
        classes = getattr(model.steps[-1][1], "classes_", None)
    if classes is None:
        raise ValueError("the model has predict_proba but no classes_ to name its columns")
    return list(classes)


def _features(batch: Any, model: Any, feature_columns: list[str] | None, keep: list[str]) -> Any:
    if isinstance(batch, np.ndarray):
        return batch
    wanted = feature_columns
    if wanted is None and getattr(model, "feature_names_in_", None) is not None:
        wanted = [str(c) for c in model.feature_names_in_]
    if wanted is None:
        wanted = [c for c in batch.columns if c not in keep]
    missing = [c for c in wanted if c not in batch.columns]
    if missing:
        raise KeyError(
            f"data has no feature columns {missing}; columns: {', '.join(map(str, batch))}"
        )
    return batch[wanted]


def _writer_for(path: Path, fmt: str) -> tuple[Any, Any]:
    """(write(frame), close()) writing to ``path`` in ``fmt``."""
    state: dict[str, Any] = {}

    def write(frame: pd.DataFrame) -> None:
        if fmt == "csv":
            frame.to_csv(path, mode="a" if state else "w", header=not state, index=False)
            state["started"] = True
            return
        if "writer" not in state:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            state["schema"] = table.schema
            state["writer"] = pq.ParquetWriter(path, table.schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=state["schema"], preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise ValueError(
                    f"a later batch does not match the first one's column types: {e}"
                ) from None
        state["writer"].write_table(table)

    def close() -> None:
        if "writer" in state:
            state["writer"].close()

    return write, close


@expects(
    model="your fitted model or pipeline (e.g. result.model from train_classifier_cv)",
    data="the rows to score (a DataFrame, dict of columns, 2-d array or iterable of chunks)",
)
def batch_score(
    model: Any,
    data: Any,
    batch_size: int = 10_000,
    output_path: str | Path | None = None,
    format: str | None = None,
    probabilities: bool | None = None,
    feature_columns: list[str] | None = None,
    keep_columns: list[str] | None = None,
    prediction_column: str = "prediction",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run ``model.predict`` (and ``predict_proba``) over ``data`` in batches.

    ``data`` is a DataFrame or dict of columns (cut into ``batch_size`` rows), a 2-d array,
    or any iterable of such chunks, e.g. a generator reading a file piece by piece
    (``pd.read_csv(path, chunksize=...)``); large chunks are cut to ``batch_size`` too.
    Features are ``feature_columns``, else the model's ``feature_names_in_``, else every
    column not in ``keep_columns``. ``keep_columns`` (ids, keys) are copied to the output
    next to ``prediction_column`` and, when ``probabilities`` (default: whenever the model
    has ``predict_proba``), one ``proba_<class>`` column per class.

    With ``output_path`` the rows are written as they are scored (``format`` csv or parquet,
    from the suffix when None) to a temporary file in the same folder that replaces
    ``output_path`` only when every batch succeeded, so a failed run never leaves a partial
    file; an existing file is kept unless ``overwrite``. Without it the scored rows come
    back in memory as ``predictions``. Returns ``{"rows", "batches", "output_path",
    "columns", "predictions"}``.
    """
    if not hasattr(model, "predict"):
        raise TypeError(
            f"model must be a fitted estimator with predict, got {type(model).__name__}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    keep = list(keep_columns or [])
    if probabilities is None:
        probabilities = hasattr(model, "predict_proba")
    elif probabilities and not hasattr(model, "predict_proba"):
        raise ValueError(f"probabilities=True but {type(model).__name__} has no predict_proba")
    classes = _classes(model) if probabilities else []
    proba_columns = [f"proba_{c}" for c in classes]
    clash = sorted({prediction_column, *proba_columns} & set(keep))
    if clash:
        raise ValueError(f"keep_columns {clash} would be overwritten by prediction columns")

    target: Path | None = None
    write = close = None
    tmp_name = None
    if output_path is not None:
        target = Path(output_path)
        fmt = format or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(
            target.suffix.lower()
        )
        if fmt not in FORMATS:
            raise ValueError(
                f"format must be one of {', '.join(FORMATS)} (or a .csv/.parquet path), "
                f"got {format!r}"
            )
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        if not target.parent.is_dir():
            raise FileNotFoundError(f"output folder {target.parent} does not exist")
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
        os.close(fd)
        write, close = _writer_for(Path(tmp_name), fmt)

    rows = batches = 0
    kept: list[pd.DataFrame] = []
    columns: list[str] = []
    try:
        for batch in _chunks(data, batch_size):
            if not len(batch):
                continue
            if keep and isinstance(batch, np.ndarray):
                raise ValueError("keep_columns needs DataFrame or dict chunks, not arrays")
            missing = [c for c in keep if c not in batch.columns] if keep else []
            if missing:
                raise KeyError(f"batch {batches}: no keep_columns {missing}")
            X = _features(batch, model, feature_columns, keep)
            out = batch[keep].reset_index(drop=True) if keep else pd.DataFrame()
            out[prediction_column] = np.asarray(model.predict(X))
            if probabilities:
                proba = np.asarray(model.predict_proba(X))
                for k, name in enumerate(proba_columns):
                    out[name] = proba[:, k]
            if write is not None:
                write(out)
            else:
                kept.append(out)
            columns = list(out.columns)
            rows += len(out)
            batches += 1
        if rows == 0:
            raise ValueError("data has no rows to score")
        if close is not None:
            close()
            close = None
            os.replace(tmp_name, target)
            tmp_name = None
    finally:
        if close is not None:
            close()
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    out = {
        "rows": rows,
        "batches": batches,
        "output_path": None if target is None else str(target),
        "columns": columns,
        "predictions": pd.concat(kept, ignore_index=True) if target is None else None,
    }
    where = (
        f"written to {out['output_path']}"
        if target is not None
        else "in result.predictions (a DataFrame)"
    )
    return Result(
        out,
        title=f"batch_score: {type(model).__name__}",
        summary=[
            f"Scored {rows} rows in {batches} batches, {where}",
            f"Columns: {listing(columns)}",
        ],
    )
