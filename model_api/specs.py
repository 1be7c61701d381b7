"""What a model package declares without numpy: its name pattern, and its inputs and outputs
as Open Inference Protocol tensors (``TensorSpec``, ``ModelSchema``). The registry in the
platform service reads package cards through these alone, so it never loads numpy;
``schemas`` adds the numpy side (dtypes, request conversion, JSON Schema)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# Open Inference Protocol datatypes a package may declare (their numpy dtypes: schemas.DATATYPES)
DATATYPE_NAMES = ("FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES")
_NUMERIC = {"FP64", "FP32", "INT64", "INT32", "BOOL"}
# Python types a JSON value may have for each datatype. bool is a subclass of int in Python;
# the exact-type check keeps ``true`` out of numeric columns.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "FP64": (float, int),
    "FP32": (float, int),
    "INT64": (int,),
    "INT32": (int,),
    "BOOL": (bool,),
    "BYTES": (str,),
}
_JSON_SCHEMA_TYPE = {
    "FP64": "number",
    "FP32": "number",
    "INT64": "integer",
    "INT32": "integer",
    "BOOL": "boolean",
    "BYTES": "string",
}


class TensorSpec(BaseModel):
    """One named input or output: Open Inference Protocol datatype and shape (-1 = any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # a column name as data frames have them ("sepal length (cm)"): printable, no edge spaces
    name: str = Field(pattern=r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]{0,126}[^\x00-\x20\x7f])?$")
    datatype: str
    shape: tuple[int, ...] = (-1,)
    nullable: bool = False
    description: str = ""

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, v: str) -> str:
        if v not in DATATYPE_NAMES:
            raise ValueError(f"unknown datatype {v!r}; known: {', '.join(DATATYPE_NAMES)}")
        return v

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row's value (``()`` for a scalar column)."""
        return self.shape[1:]


class ModelSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = ()

    # precomputed for the hot path
    _tabular: bool = PrivateAttr(False)
    _names: tuple[str, ...] = PrivateAttr(())

    def model_post_init(self, _context: Any) -> None:
        names = tuple(s.name for s in self.inputs)
        if len(set(names)) != len(names):
            raise ValueError(f"input names repeat: {list(names)}")
        self._tabular = all(s.datatype in _NUMERIC and s.row_shape == () for s in self.inputs)
        self._names = names

    @property
    def tabular(self) -> bool:
        """Every input is a numeric scalar column: the model gets one float64 [n, k] matrix."""
        return self._tabular

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names


def tabular_schema(names: Sequence[str], datatype: str = "FP64") -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=n, datatype=datatype) for n in names)
