"""Request validation names the field; JSON Schema and OpenAPI exports are valid documents."""

from __future__ import annotations

import numpy as np
import pytest
from mlfactory.model_api.errors import InvalidInput
from mlfactory.model_api.schemas import (
    ModelSchema,
    TensorSpec,
    array_to_input,
    openapi_document,
    records_to_input,
    request_json_schema,
    response_json_schema,
    tabular_schema,
    tensors_to_input,
)
from mlfactory.model_api.tasks import Task

SCHEMA = ModelSchema(inputs=tabular_schema(["a", "b"]))


def test_records_become_a_float_matrix_in_schema_order():
    x = records_to_input([{"b": 2, "a": 1.5}, {"a": 3, "b": 4.0}], SCHEMA)
    assert x.dtype == np.float64 and x.tolist() == [[1.5, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("records", "field", "match"),
    [
        ({"a": 1}, "records", "list"),
        ([], "records", "empty"),
        ([{"a": 1, "b": 2}, 5], "records[1]", "object"),
        ([{"a": 1}], "records[0].b", "missing 'b'"),
        ([{"a": 1, "b": 2, "c": 3}], "records[0].c", "unknown field"),
        ([{"a": "1", "b": 2}], "records[0].a", "number"),
        ([{"a": True, "b": 2}], "records[0].a", "got bool"),
        ([{"a": None, "b": 2}], "records[0].a", "got null"),
    ],
)
def test_bad_records_name_the_field(records, field, match):
    with pytest.raises(InvalidInput, match=match) as e:
        records_to_input(records, SCHEMA)
    assert e.value.field == field
    assert e.value.status == 422


def test_nullable_and_typed_columns():
    schema = ModelSchema(
        inputs=(
            TensorSpec(name="n", datatype="INT64"),
            TensorSpec(name="s", datatype="BYTES"),
            TensorSpec(name="f", datatype="FP64", nullable=True),
        )
    )
    assert not schema.tabular
    x = records_to_input([{"n": 1, "s": "x", "f": None}], schema)
    assert x["n"].tolist() == [1] and x["s"].tolist() == ["x"]
    with pytest.raises(InvalidInput) as e:
        records_to_input([{"n": 1.5, "s": "x", "f": 1.0}], schema)
    assert e.value.field == "records[0].n"


def test_a_dict_of_plain_lists_keeps_text_columns_as_text():
    schema = ModelSchema(
        inputs=(TensorSpec(name="n", datatype="INT64"), TensorSpec(name="s", datatype="BYTES"))
    )
    x = array_to_input({"n": [1, 2], "s": ["x", "y"]}, schema)
    assert x["s"].dtype == object and x["s"].tolist() == ["x", "y"]
    assert x["n"].tolist() == [1, 2]


def test_tensors_per_column_or_one_matrix():
    cols = {"a": np.array([1.0, 2.0]), "b": np.array([3, 4])}
    assert tensors_to_input(cols, SCHEMA).tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert tensors_to_input({"input": np.ones((2, 2))}, SCHEMA).shape == (2, 2)
    with pytest.raises(InvalidInput, match=r"\[n, 2\]"):
        tensors_to_input({"input": np.ones((2, 3))}, SCHEMA)
    with pytest.raises(InvalidInput, match="missing input 'b'"):
        tensors_to_input({"a": np.ones(2)}, SCHEMA)
    with pytest.raises(InvalidInput, match="different numbers of rows"):
        tensors_to_input({"a": np.ones(2), "b": np.ones(3)}, SCHEMA)


def test_json_schemas_accept_good_and_reject_bad_bodies():
    import jsonschema  # installed with jupyter_server (jupyter_events)

    req = request_json_schema(SCHEMA, Task.CLASSIFICATION)
    jsonschema.Draft202012Validator.check_schema(req)
    ok = {"records": [{"a": 1, "b": 2.5}], "outputs": ["label"]}
    jsonschema.validate(ok, req)
    for bad in ({"records": [{"a": 1}]}, {"records": [{"a": 1, "b": 2}], "outputs": ["x"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, req)
    resp = response_json_schema(Task.CLASSIFICATION, ["x", "y"])
    jsonschema.Draft202012Validator.check_schema(resp)


def test_openapi_document_lists_routes_and_errors():
    doc = openapi_document(
        name="iris",
        versions=["1", "production"],
        schema=SCHEMA,
        task=Task.CLASSIFICATION,
        labels=["x", "y"],
    )
    assert doc["openapi"].startswith("3.1")
    assert "/v2/models/iris/predict" in doc["paths"]
    post = doc["paths"]["/v2/models/iris/versions/{version}/predict"]["post"]
    assert {"400", "404", "422", "503"} <= set(post["responses"])
    assert doc["components"]["schemas"]["Request"]["properties"]["records"]["items"][
        "required"
    ] == ["a", "b"]
