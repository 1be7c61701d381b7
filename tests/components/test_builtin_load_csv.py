from __future__ import annotations

import numpy as np
import pytest


def test_types_are_inferred_and_missing_marked(component, tmp_path):
    load_csv = component("load_csv")
    path = tmp_path / "d.csv"
    path.write_text(
        "id,age,score,plan,active\n1,34,0.5,pro,true\n2,,1.5,NA,false\n3,51,,free,true\n"
    )
    data = load_csv(path)
    assert list(data) == ["id", "age", "score", "plan", "active"]
    assert data["id"].dtype == np.int64 and data["id"].tolist() == [1, 2, 3]
    assert data["age"].dtype == float and np.isnan(data["age"][1]) and data["age"][2] == 51
    assert np.isnan(data["score"][2])
    assert data["plan"].tolist() == ["pro", None, "free"]
    assert data["active"].dtype == bool and data["active"].tolist() == [True, False, True]


def test_columns_delimiter_and_max_rows(component, tmp_path):
    load_csv = component("load_csv")
    path = tmp_path / "d.tsv"
    path.write_text("a;b\n1;x\n2;y\n3;z\n")
    data = load_csv(path, delimiter=";", columns=["b"], max_rows=2)
    assert list(data) == ["b"] and data["b"].tolist() == ["x", "y"]
    with pytest.raises(KeyError, match="no column 'c'"):
        load_csv(path, delimiter=";", columns=["c"])


def test_malformed_row_names_its_line(component, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 fields"):
        component("load_csv")(path)
