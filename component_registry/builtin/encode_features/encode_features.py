"""Build the scikit-learn ColumnTransformer that turns a table into model features:
imputation, scaling, one-hot (with an "infrequent" bucket) and high-cardinality encodings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, listing
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)

SCALERS = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
HIGH_CARDINALITY = ("ordinal", "target")
MISSING = "__missing__"  # the category missing text becomes, so it can carry signal


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"data: columns differ in length: {lengths}")
        return pd.DataFrame(dict(data))
    raise TypeError(
        f"data must be a pandas DataFrame or a dict of columns, got {type(data).__name__}"
    )


def _target_encoder(random_state: int) -> TargetEncoder:
    # scikit-learn 1.9 takes the shuffled folds as a splitter and deprecates shuffle=.
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 9):
        return TargetEncoder(cv=KFold(5, shuffle=True, random_state=random_state))
    return TargetEncoder(shuffle=True, random_state=random_state)


def _names(given: Iterable[str] | None, columns: list[str], what: str) -> list[str] | None:
    if given is None:
        return None
    given = list(given)
    missing = [c for c in given if c not in columns]
    if missing:
        raise KeyError(f"{what}: no columns {missing}; columns: {', '.join(columns)}")
    return given


@expects(
    data="your training table (a pandas DataFrame or a dict of columns)",
    y="the target (one value per row), or None",
)
def encode_features(
    data: Any,
    target: str | None = None,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    high_cardinality: list[str] | None = None,
    drop: list[str] | None = None,
    max_onehot_categories: int = 15,
    min_frequency: float | int = 0.01,
    high_cardinality_encoding: str = "ordinal",
    scale: str | None = "standard",
    numeric_imputation: str = "median",
    add_missing_indicator: bool = True,
    output: str = "pandas",
    fit: bool = False,
    y: Any = None,
    random_state: int = 0,
) -> dict[str, Any]:
    """Decide each column's encoding from ``data`` and build a ColumnTransformer.

    Roles, unless given: numbers and booleans are ``numeric`` (imputed with
    ``numeric_imputation``, plus a was-missing indicator, then scaled by ``scale``:
    standard, robust, minmax or None); text and categories with at most
    ``max_onehot_categories`` values are ``categorical`` (missing -> its own category, then
    one-hot; categories rarer than ``min_frequency`` (a share, or a count when an int) and
    categories unseen in training share one "infrequent" column); other text is
    ``high_cardinality`` (``ordinal``: integer codes, unseen -> -1, for tree models;
    ``target``: scikit-learn's TargetEncoder, which cross-fits during ``fit_transform`` so
    a row's own label never encodes it). Text where every value is unique (identifiers) and
    datetime columns are dropped with the reason; derive features from dates first.

    Leakage: everything learned (medians, scales, categories, target means) must come from
    training rows only. Pass training data here, and fit the transformer on training rows,
    best inside a ``Pipeline`` with the model so cross-validation refits it in each fold.
    By default the transformer comes back unfitted; ``fit=True`` fits it on ``data`` (with
    ``y``, or the ``target`` column, for target encoding).

    Returns ``{"transformer", "numeric", "categorical", "high_cardinality", "dropped"
    ({column: reason}), "fitted", "feature_names" (when fitted)}``.
    """
    frame = _as_frame(data)
    columns = [str(c) for c in frame.columns]
    if scale is not None and scale not in SCALERS:
        raise ValueError(f"scale must be one of {', '.join(SCALERS)} or None, got {scale!r}")
    if high_cardinality_encoding not in HIGH_CARDINALITY:
        raise ValueError(
            f"high_cardinality_encoding must be one of {', '.join(HIGH_CARDINALITY)}, "
            f"got {high_cardinality_encoding!r}"
        )
    if output not in ("pandas", "numpy"):
        raise ValueError(f"output must be 'pandas' or 'numpy', got {output!r}")
    if max_onehot_categories < 1:
        raise ValueError(f"max_onehot_categories must be at least 1, got {max_onehot_categories}")
    if target is not None and target not in columns:
        raise KeyError(f"target: no column {target!r}; columns: {', '.join(columns)}")
    numeric = _names(numeric, columns, "numeric")
    categorical = _names(categorical, columns, "categorical")
    high_cardinality = _names(high_cardinality, columns, "high_cardinality")
    drop = _names(drop, columns, "drop") or []
    given = [*(numeric or []), *(categorical or []), *(high_cardinality or [])]
    twice = sorted({c for c in given if given.count(c) > 1})
    if twice:
        raise ValueError(f"columns given more than one role: {twice}")

    dropped: dict[str, str] = {c: "asked to drop" for c in drop}
    if target is not None:
        dropped[target] = "target"
    roles = {"numeric": [], "categorical": [], "high_cardinality": []}
    explicit = {
        c: r
        for r, cols in (
            ("numeric", numeric),
            ("categorical", categorical),
            ("high_cardinality", high_cardinality),
        )
        for c in (cols or [])
    }
    for col in columns:
        if col in dropped:
            continue
        if col in explicit:
            roles[explicit[col]].append(col)
            continue
        if any(x is not None for x in (numeric, categorical, high_cardinality)):
            dropped[col] = "not listed in numeric, categorical or high_cardinality"
            continue
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or (
            pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype)
        ):
            roles["numeric"].append(col)
        elif pd.api.types.is_datetime64_any_dtype(s) or isinstance(s.dtype, pd.PeriodDtype):
            dropped[col] = "datetime: derive features (month, weekday, age) before encoding"
        else:
            present = s.dropna()
            n_unique = present.nunique()
            if n_unique == 0:
                dropped[col] = "no values"
            elif n_unique <= max_onehot_categories:
                roles["categorical"].append(col)
            elif n_unique == len(present):
                dropped[col] = "every value unique (an identifier?)"
            else:
                roles["high_cardinality"].append(col)
    if not any(roles.values()):
        raise ValueError(f"no columns left to encode; dropped: {dropped}")

    parts = []
    if roles["numeric"]:
        steps = [
            (
                "impute",
                SimpleImputer(strategy=numeric_imputation, add_indicator=add_missing_indicator),
            )
        ]
        if scale is not None:
            steps.append(("scale", SCALERS[scale]()))
        parts.append(("numeric", Pipeline(steps), roles["numeric"]))
    if roles["categorical"]:
        onehot = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=min_frequency, sparse_output=False
        )
        impute = SimpleImputer(strategy="constant", fill_value=MISSING)
        parts.append(
            (
                "categorical",
                Pipeline([("impute", impute), ("onehot", onehot)]),
                roles["categorical"],
            )
        )
    if roles["high_cardinality"]:
        impute = SimpleImputer(strategy="constant", fill_value=MISSING)
        if high_cardinality_encoding == "target":
            encoder: Any = _target_encoder(random_state)
        else:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64
            )
        parts.append(
            (
                "high_cardinality",
                Pipeline([("impute", impute), ("encode", encoder)]),
                roles["high_cardinality"],
            )
        )
    transformer = ColumnTransformer(parts, remainder="drop")
    if output == "pandas":
        transformer.set_output(transform="pandas")
    result: dict[str, Any] = {
        "transformer": transformer,
        **roles,
        "dropped": dropped,
        "fitted": False,
        "feature_names": None,
    }
    if fit:
        if y is None and target is not None:
            y = frame[target]
        if roles["high_cardinality"] and high_cardinality_encoding == "target" and y is None:
            raise ValueError("target encoding needs y (or target=) to fit")
        transformer.fit(frame, y)
        result["fitted"] = True
        result["feature_names"] = [str(n) for n in transformer.get_feature_names_out()]
    counts = ", ".join(f"{len(roles[r])} {r.replace('_', '-')}" for r in roles)
    fitted = (
        f"fitted: {len(result['feature_names'])} output features"
        if result["fitted"]
        else "not fitted: put result.transformer first in your model's Pipeline"
    )
    return Result(
        result,
        title="encode_features",
        summary=[f"{counts}, {len(dropped)} dropped; {fitted}"],
        tables=[
            Table(
                "Encodings",
                ["columns"],
                [[listing(roles[r])] for r in roles]
                + [[listing(f"{c} ({why})" for c, why in dropped.items())]],
                index=[*roles, "dropped"],
                corner="encoding",
            )
        ],
    )
