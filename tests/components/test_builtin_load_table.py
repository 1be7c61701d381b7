from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "zip": ["00123", "04000", "10115", "75001"],
            "signup": ["2026-01-05", "2026-02-10", "2026-03-15", "2026-04-20"],
            "active": ["yes", "no", "yes", ""],
            "score": [0.5, None, 1.5, 2.0],
        }
    )


def test_csv_columns_in_order_and_dtype_hints(component, tmp_path, frame):
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    out = component("load_table")(
        path,
        columns=["zip", "signup", "active", "id"],
        dtypes={"zip": "string", "signup": "date", "active": "boolean"},
    )
    assert list(out.columns) == ["zip", "signup", "active", "id"]
    assert out["zip"].tolist() == ["00123", "04000", "10115", "75001"]  # leading zeros kept
    assert out["signup"].dtype.kind == "M" and out["signup"][1] == pd.Timestamp("2026-02-10")
    assert out["active"].tolist()[:3] == [True, False, True] and pd.isna(out["active"][3])
    assert out["id"].dtype == "int64"


def test_parquet_round_trip_with_max_rows(component, tmp_path, frame):
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path, index=False)
    load = component("load_table")
    out = load(path, columns=["score", "id"], max_rows=3, dtypes={"id": "Int64"})
    assert list(out.columns) == ["score", "id"] and len(out) == 3
    assert str(out["id"].dtype) == "Int64" and pd.isna(out["score"][1])
    assert len(load(path)) == 4 and list(load(path).columns) == list(frame.columns)
    assert len(load(path, max_rows=0)) == 0


def test_tsv_and_explicit_format(component, tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("a\tb\n1\tx\n2\ty\n")
    assert component("load_table")(path)["b"].tolist() == ["x", "y"]
    packed = tmp_path / "data.tsv.gz"
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_csv(packed, sep="\t", index=False)
    assert component("load_table")(packed)["b"].tolist() == ["x", "y"]
    odd = tmp_path / "export.dat"
    odd.write_text("a;b\n1;x\n")
    with pytest.raises(ValueError, match="pass format="):
        component("load_table")(odd)
    assert component("load_table")(odd, format="csv", delimiter=";")["a"].tolist() == [1]


def test_errors_name_the_column(component, tmp_path, frame):
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    load = component("load_table")
    with pytest.raises(KeyError, match=r"missing columns \['plan'\]; columns: id, zip"):
        load(path, columns=["id", "plan"])
    with pytest.raises(KeyError, match=r"dtypes name missing columns \['score'\]"):
        load(path, columns=["id"], dtypes={"score": "float64"})
    with pytest.raises(ValueError, match="column 'signup' cannot be read as 'int64'"):
        load(path, dtypes={"signup": "int64"})
    with pytest.raises(ValueError, match="column 'zip' cannot be read as 'boolean'"):
        load(path, dtypes={"zip": "boolean"})
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="format must be one of"):
        load(path, format="xlsx")
