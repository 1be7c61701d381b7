"""The floor: a bare tornado handler that parses the record, calls predict_proba once and
returns label + probabilities. No validation, no schema, no auth, no versions."""

from __future__ import annotations

import sys

import joblib
import numpy as np
import orjson
from tornado import ioloop, web

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]


class Predict(web.RequestHandler):
    def initialize(self, model):
        self.model = model

    def post(self):
        records = orjson.loads(self.request.body)["records"]
        x = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
        p = self.model.predict_proba(x)
        out = [
            {"label": LABELS[int(i)], "probabilities": dict(zip(LABELS, row, strict=True))}
            for i, row in zip(p.argmax(axis=1), p.tolist(), strict=True)
        ]
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"predictions": out}))


def main() -> None:
    model_path, port = sys.argv[1], int(sys.argv[2])
    model = joblib.load(model_path)
    app = web.Application([(r"/predict", Predict, {"model": model})], log_function=lambda h: None)
    app.listen(port, "127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
