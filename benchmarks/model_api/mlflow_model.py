"""Run with the MLflow benchmark venv: save the iris model as an MLflow pyfunc that returns the
label and the probabilities from one predict_proba call (MLflow serves one function per model,
so a custom pyfunc is how it gives both)."""

from __future__ import annotations

import sys

import mlflow.pyfunc

LABELS = ["setosa", "versicolor", "virginica"]


class IrisLabelAndProba(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import joblib

        self.model = joblib.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        p = self.model.predict_proba(model_input.to_numpy(dtype="float64"))
        out = pd.DataFrame(p, columns=LABELS)
        out.insert(0, "label", [LABELS[i] for i in p.argmax(axis=1)])
        return out


if __name__ == "__main__":
    joblib_path, out_dir = sys.argv[1], sys.argv[2]
    mlflow.pyfunc.save_model(
        out_dir, python_model=IrisLabelAndProba(), artifacts={"model": joblib_path}
    )
