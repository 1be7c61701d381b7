"""Typed prediction results, the same class in-process and from the SDK.

``Prediction`` holds either shaped columns (in-process) or the ``/predict`` response records
(SDK) and gives both views: ``.labels``, ``.probabilities``, ``.to_records()``,
``.to_pandas()``; in a notebook it shows as a short summary and an HTML table (``display.py``).
``envelope`` builds the ``/predict`` response body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import display
from .outputs import Shaped, to_records
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION, DecisionRule, Task


def envelope(
    shaped: Shaped, *, model_name: str, model_version: str, model_alias: str | None
) -> dict[str, Any]:
    """The ``/predict`` response: both versions, the rule, thresholds and one record per row."""
    return {
        "model_name": model_name,
        "model_version": model_version,
        "model_alias": model_alias,
        "api_version": API_VERSION,
        "output_schema_version": OUTPUT_SCHEMA_VERSION,
        "task": shaped.task.value,
        "decision_rule": shaped.decision_rule.value,
        "thresholds": shaped.thresholds,
        "labels": list(shaped.labels),
        "predictions": to_records(shaped),
    }


@dataclass(repr=False)  # a dump of every field is no use in a notebook: see __repr__
class Prediction:
    model_name: str
    model_version: str
    task: Task
    decision_rule: DecisionRule
    thresholds: dict[str, float] | None
    label_names: tuple[str, ...]
    model_alias: str | None = None
    output_schema_version: str = OUTPUT_SCHEMA_VERSION
    _shaped: Shaped | None = field(default=None, repr=False)
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def from_shaped(
        cls, shaped: Shaped, *, model_name: str, model_version: str, model_alias: str | None = None
    ) -> Prediction:
        return cls(
            model_name,
            model_version,
            shaped.task,
            shaped.decision_rule,
            shaped.thresholds,
            shaped.labels,
            model_alias,
            _shaped=shaped,
        )

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Prediction:
        return cls(
            body["model_name"],
            str(body["model_version"]),
            Task(body["task"]),
            DecisionRule(body["decision_rule"]),
            body.get("thresholds"),
            tuple(body.get("labels") or ()),
            body.get("model_alias"),
            body.get("output_schema_version", OUTPUT_SCHEMA_VERSION),
            _records=body["predictions"],
        )

    def __len__(self) -> int:
        return self._shaped.rows if self._shaped is not None else len(self._records or [])

    def to_records(self) -> list[dict[str, Any]]:
        if self._records is None:
            assert self._shaped is not None
            self._records = to_records(self._shaped)
        return self._records

    def _head_records(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` records, without building the rest (a preview of a million rows)."""
        if self._records is not None or self._shaped is None:
            return self.to_records()[:n]
        s = self._shaped
        columns = {k: None if v is None else v[:n] for k, v in s.columns.items()}
        head = Shaped(s.task, s.decision_rule, s.thresholds, s.labels, columns, min(n, s.rows))
        return to_records(head)

    def _view(self, n: int) -> tuple[str, list[str], list[list[str]]]:
        title = display.caption(
            model_name=self.model_name,
            model_version=self.model_version,
            model_alias=self.model_alias,
            task=self.task.value,
            decision_rule=self.decision_rule.value,
            thresholds=self.thresholds,
            rows=len(self),
        )
        return (title, *display.table(self._head_records(n), self.label_names))

    def __repr__(self) -> str:
        return display.to_text(*self._view(display.TEXT_ROWS), rows=len(self))

    def _repr_html_(self) -> str:
        # Jupyter's rich display; escaped in display.to_html
        return display.to_html(*self._view(display.HTML_ROWS), rows=len(self))

    def to_pandas(self) -> Any:
        """One row per input; per-class values spread into ``probabilities.<label>`` columns."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("to_pandas needs pandas: pip install pandas") from e
        return pd.json_normalize(self.to_records())

    def _column(self, name: str) -> Any:
        if self._shaped is not None:
            if name not in self._shaped.columns:
                raise AttributeError(f"this prediction has no {name!r} (ask for it in outputs)")
            return self._shaped.columns[name]
        recs = self.to_records()
        if recs and name not in recs[0]:
            raise AttributeError(f"this prediction has no {name!r} (ask for it in outputs)")
        values = [r[name] for r in recs]
        if values and isinstance(values[0], dict):
            return np.array([[v[lab] for lab in self.label_names] for v in values], np.float64)
        return values

    @property
    def labels(self) -> list[Any]:
        """Classification: one label per row. Multi-label: the list of labels on per row."""
        if self.task is Task.MULTI_LABEL:
            if self._shaped is not None:
                names = np.asarray(self.label_names, dtype=object)
                return [names[row].tolist() for row in self._shaped.columns["labels"]]
            return self._column("labels")
        col = self._column("label")
        return col.tolist() if isinstance(col, np.ndarray) else list(col)

    @property
    def probabilities(self) -> np.ndarray:
        """[n, k] in ``label_names`` order."""
        return np.asarray(self._column("probabilities"), dtype=np.float64)

    @property
    def scores(self) -> np.ndarray:
        return np.asarray(self._column("score"), dtype=np.float64)

    @property
    def predictions(self) -> np.ndarray:
        """Regression values."""
        return np.asarray(self._column("prediction"), dtype=np.float64)

    @property
    def generated_text(self) -> list[list[str]]:
        return list(self._column("generated_text"))
