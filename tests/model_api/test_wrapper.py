"""The wrapper with real scikit-learn models, callables and (when installed) torch."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from mlfactory.model_api import DecisionRule, InvalidInput, Model, ModelFailure

from .conftest import IRIS_FEATURES, IRIS_LABELS
from .helpers import Counting, ToyGenerator


def test_classifier_label_and_probabilities_from_one_call(iris, iris_clf):
    X, _ = iris
    est = Counting(iris_clf)
    model = Model(est, task="classification", name="iris", labels=IRIS_LABELS)
    pred = model.predict(X[:5])
    assert est.calls == {"predict_proba": 1, "predict": 0, "decision_function": 0}
    expected = iris_clf.predict_proba(X[:5])
    assert np.array_equal(pred.probabilities, expected)
    assert pred.labels == [IRIS_LABELS[i] for i in expected.argmax(axis=1)]
    assert np.array_equal(pred.scores, expected.max(axis=1))
    assert pred.decision_rule is DecisionRule.ARGMAX
    assert pred.to_records()[0]["probabilities"].keys() == set(IRIS_LABELS)


def test_decision_function_only_on_request_and_counted(iris, iris_clf):
    X, _ = iris
    est = Counting(iris_clf)
    model = Model(est, task="classification", name="iris", labels=IRIS_LABELS)
    pred = model.predict(X[:2], outputs=["label", "decision_function"])
    assert est.calls["predict_proba"] == 1 and est.calls["decision_function"] == 1
    rec = pred.to_records()[0]
    assert list(rec) == ["label", "decision_function"]
    assert rec["decision_function"]["setosa"] == pytest.approx(
        iris_clf.decision_function(X[:1])[0, 0]
    )


def test_labels_default_to_the_models_classes(iris):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    names = np.array(IRIS_LABELS)[y]
    clf = LogisticRegression(max_iter=1000).fit(X, names)
    model = Model(clf, task="classification", name="iris")
    assert model.labels == tuple(clf.classes_)
    assert model.predict(X[:1]).labels == list(clf.predict(X[:1]))


def test_model_predict_rule_follows_predict_not_argmax():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    X, y = make_classification(n_samples=200, n_features=4, random_state=1)
    # a tuned-threshold classifier: its predict disagrees with argmax of its probabilities
    clf = FixedThresholdClassifier(LogisticRegression(), threshold=0.8).fit(X, y)
    model = Model(
        clf,
        task="classification",
        name="tuned",
        labels=["neg", "pos"],
        decision_rule="model_predict",
    )
    pred = model.predict(X)
    assert pred.labels == [["neg", "pos"][v] for v in clf.predict(X)]
    assert (pred.probabilities.argmax(axis=1) != clf.predict(X)).any()
    assert pred.decision_rule is DecisionRule.MODEL_PREDICT
    # label and probabilities need both methods: two calls; the label alone: one
    est = Counting(clf)
    m = Model(
        est, task="classification", name="t", labels=["neg", "pos"], decision_rule="model_predict"
    )
    m.predict(X[:3])
    assert est.calls["predict"] == 1 and est.calls["predict_proba"] == 1
    m.predict(X[:3], outputs=["label"])
    assert est.calls["predict"] == 2 and est.calls["predict_proba"] == 1


def test_binary_threshold(iris):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    yb = (y == 2).astype(int)
    clf = LogisticRegression(max_iter=1000).fit(X, yb)
    model = Model(
        clf, task="classification", name="virginica", labels=["other", "virginica"], threshold=0.9
    )
    pred = model.predict(X)
    p = clf.predict_proba(X)[:, 1]
    assert pred.labels == ["virginica" if v >= 0.9 else "other" for v in p]
    assert pred.thresholds == {"virginica": 0.9}
    assert pred.decision_rule is DecisionRule.THRESHOLD


def test_regressor_with_std_in_one_call(regressor):
    est, X = regressor
    counting = Counting(est)
    model = Model(counting, task="regression", name="reg", input_schema=["a", "b", "c"])
    pred = model.predict(X[:4])
    assert counting.calls["predict"] == 1
    mean, std = est.predict(X[:4], return_std=True)
    rec = pred.to_records()[0]
    assert list(rec) == ["prediction", "std", "lower", "upper"]
    assert np.allclose(pred.predictions, mean)
    assert rec["lower"] < rec["prediction"] < rec["upper"]
    assert rec["std"] == pytest.approx(std[0])


def test_plain_regressor_has_no_std():
    from sklearn.linear_model import LinearRegression

    est = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
    model = Model(est, task="regression", name="lin")
    assert model.predict([[3.0]]).predictions.tolist() == pytest.approx([6.0])
    with pytest.raises(InvalidInput, match="cannot give std"):
        model.predict([[3.0]], outputs=["std"])


def test_multilabel_thresholds_per_label(multilabel):
    est, X, _ = multilabel
    model = Model(
        est, task="multi-label", name="tags", labels=["a", "b", "c"], thresholds=[0.3, 0.5, 0.7]
    )
    pred = model.predict(X[:10])
    p = est.predict_proba(X[:10])
    assert np.allclose(pred.probabilities, p)
    expected = [
        [n for n, v, t in zip("abc", row, [0.3, 0.5, 0.7], strict=True) if v >= t] for row in p
    ]
    assert pred.labels == expected
    assert pred.thresholds == {"a": 0.3, "b": 0.5, "c": 0.7}


def test_multioutput_probability_lists_become_per_label_columns(multilabel):
    from sklearn.neighbors import KNeighborsClassifier

    _, X, Y = multilabel
    knn = KNeighborsClassifier(n_neighbors=3).fit(X, Y)  # predict_proba returns a list
    model = Model(knn, task="multi-label", name="knn", labels=["a", "b", "c"])
    pred = model.predict(X[:5])
    expected = np.column_stack([p[:, 1] for p in knn.predict_proba(X[:5])])
    assert np.allclose(pred.probabilities, expected)


def test_callable_returning_logits():
    def net(x):
        return np.column_stack((x[:, 0], -x[:, 0]))

    model = Model(
        net,
        task="classification",
        name="net",
        labels=["up", "down"],
        returns="logits",
        input_schema=["v"],
    )
    pred = model.predict([[2.0], [-1.0]])
    assert pred.labels == ["up", "down"]
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0)
    assert "logits" in pred.to_records()[0]


def test_callable_model_failure_hides_the_message():
    def broken(x):
        raise ValueError("password=hunter2")

    model = Model(broken, task="regression", name="broken", input_schema=["v"])
    with pytest.raises(ModelFailure) as e:
        model.predict([[1.0]])
    assert "hunter2" not in str(e.value) and "ValueError" in str(e.value)


def test_seq2seq_toy_generator():
    gen = ToyGenerator()
    model = Model(gen, task="seq2seq", name="rev")
    pred = model.predict(["abc", "xy"], parameters={"num_return_sequences": 2})
    assert gen.calls == 1
    assert pred.generated_text == [["cba", "cba!"], ["yx", "yx!"]]
    rec = pred.to_records()[0]
    assert rec["finish_reason"] == ["stop", "stop"]
    assert "token_logprobs" not in rec  # only on request
    pred = model.predict(
        ["abcdef"],
        outputs=["generated_text", "token_logprobs", "finish_reason"],
        parameters={"max_new_tokens": 3},
    )
    rec = pred.to_records()[0]
    assert rec["generated_text"] == ["fed"] and rec["finish_reason"] == ["length"]
    assert rec["token_logprobs"] == [[-0.1, -0.1, -0.1]]
    with pytest.raises(InvalidInput) as e:
        model.predict(["a"], parameters={"num_return_sequences": 0})
    assert e.value.field == "parameters.num_return_sequences"


def test_declaration_errors_are_actionable(iris_clf):
    with pytest.raises(ValueError, match="lowercase"):
        Model(iris_clf, task="classification", name="Iris!")
    with pytest.raises(ValueError, match="2 labels for a model with 3 classes"):
        Model(iris_clf, task="classification", name="iris", labels=["a", "b"])
    with pytest.raises(ValueError, match="binary"):
        Model(iris_clf, task="classification", name="iris", threshold=0.3)
    with pytest.raises(ValueError, match="labels"):
        Model(lambda x: x, task="multi-label", name="m")
    with pytest.raises(ValueError, match="use one of classification, regression"):
        Model(iris_clf, task="multiclass", name="iris")


def test_column_names_as_data_frames_have_them():
    """scikit-learn's own iris frame names its columns "sepal length (cm)"."""
    import warnings

    from mlfactory.model_api.schemas import TensorSpec
    from pydantic import ValidationError
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(as_frame=True, return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    model = Model(clf, task="classification", name="iris", labels=IRIS_LABELS)
    assert model.schema.input_names[0] == "sepal length (cm)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(X[:2].to_dict("records")).labels == ["setosa", "setosa"]
    with pytest.raises(InvalidInput, match=r"missing 'sepal width \(cm\)'"):
        model.predict([{"sepal length (cm)": 5.1}])
    for bad in ("", " padded", "line\nbreak", "tab\tname", "x" * 129):
        with pytest.raises(ValidationError):
            TensorSpec(name=bad, datatype="FP64")


def test_in_process_input_is_checked(iris_model):
    with pytest.raises(InvalidInput, match=r"\[n, 4\]"):
        iris_model.predict(np.zeros((2, 3)))
    assert iris_model.schema.input_names == tuple(IRIS_FEATURES)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed in this environment; the adapter imports it lazily",
)
def test_torch_module_classifier():
    import torch

    net = torch.nn.Linear(4, 3)
    model = Model(net, task="classification", name="lin", labels=IRIS_LABELS)
    x = np.random.default_rng(0).normal(size=(5, 4))
    pred = model.predict(x)
    with torch.inference_mode():
        z = net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    assert pred.labels == [IRIS_LABELS[i] for i in z.argmax(axis=1)]
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0)
    assert model.adapter.name == "torch"


def test_torch_adapter_logic_with_a_stand_in_torch(monkeypatch):
    """Without torch installed: a stand-in module checks detection, eval(), inference mode and
    logits -> softmax; the real-torch test above runs where torch is installed."""
    import contextlib
    import types

    class Tensor:
        def __init__(self, a):
            self.a = np.asarray(a)

        def detach(self):
            return self

        def to(self, device):
            assert device == "cpu"
            return self

        def numpy(self):
            return self.a

    modes = []

    @contextlib.contextmanager
    def inference_mode():
        modes.append("on")
        yield

    fake = types.ModuleType("torch")
    fake.as_tensor = lambda x, device=None: Tensor(x)
    fake.inference_mode = inference_mode
    fake.__version__ = "0.0-stand-in"
    monkeypatch.setitem(sys.modules, "torch", fake)

    Module = type("Module", (), {"__module__": "torch.nn.modules.module"})

    class Net(Module):
        training = True

        def eval(self):
            self.training = False
            return self

        def __call__(self, t):
            assert t.a.dtype == np.float32
            # Hugging Face style output object with .logits
            return types.SimpleNamespace(logits=Tensor(np.column_stack((t.a[:, 0], -t.a[:, 0]))))

    net = Net()
    model = Model(net, task="classification", name="net", labels=["up", "down"], input_schema=["v"])
    assert model.adapter.name == "torch" and net.training is False
    pred = model.predict([[1.0], [-2.0]])
    assert pred.labels == ["up", "down"] and modes == ["on"]
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0)
    assert model.adapter.framework() == ("torch", "0.0-stand-in")


class BoosterLike:
    """The scikit-learn API that XGBoost and LightGBM classifiers expose, without either."""

    __module__ = "xgboost.sklearn"  # where XGBClassifier lives: framework detection reads it
    classes_ = np.array([0, 1])
    n_features_in_ = 2

    def __init__(self):
        self.calls = 0

    def predict_proba(self, x):
        self.calls += 1
        p = 1 / (1 + np.exp(-(x[:, 0] - x[:, 1])))
        return np.column_stack((1 - p, p))

    def predict(self, x):
        self.calls += 1
        return (self.predict_proba(x)[:, 1] > 0.5).astype(int)


def test_boosting_style_estimator_is_duck_typed():
    booster = BoosterLike()
    model = Model(
        booster, task="classification", name="gbm", labels=["stay", "churn"], threshold=0.7
    )
    pred = model.predict([[3.0, 0.0], [0.5, 0.0], [0.0, 2.0]])
    assert booster.calls == 1
    assert pred.labels == ["churn", "stay", "stay"]  # p = 0.95, 0.62, 0.12 against 0.7
    assert model.adapter.name == "estimator"
    assert model.adapter.framework()[0] == "xgboost"


# --- in a notebook: DataFrames keep their names, records are accepted ---------------------------


@pytest.fixture(scope="module")
def iris_frame():
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    X = data.data.set_axis(IRIS_FEATURES, axis=1)
    return X, data.target


def test_a_model_fitted_on_a_dataframe_is_called_with_one(iris_frame):
    import warnings

    from sklearn.linear_model import LogisticRegression

    X, y = iris_frame
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    model = Model(clf, task="classification", name="iris", labels=IRIS_LABELS)
    expected = clf.predict_proba(X[:4])
    with warnings.catch_warnings():
        # "X does not have valid feature names" when the names are dropped
        warnings.simplefilter("error")
        for x in (X[:4], X[:4].to_numpy(), X[:4].to_dict("records"), X[:4].to_dict("list")):
            assert np.allclose(model.predict(x).probabilities, expected)


def test_columns_reach_the_model_in_fit_order_whatever_the_schema_order(iris_frame):
    import warnings

    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris_frame
    # selects columns by name: an unnamed matrix cannot even be transformed
    pipe = make_pipeline(
        ColumnTransformer([("petals", StandardScaler(), ["petal_length", "petal_width"])]),
        LogisticRegression(max_iter=1000),
    ).fit(X, y)
    reordered = IRIS_FEATURES[::-1]
    model = Model(pipe, task="classification", name="iris", input_schema=reordered)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_array = model.predict(X[reordered][:5].to_numpy())  # schema order
        from_frame = model.predict(X[:5])
    assert np.allclose(from_array.probabilities, pipe.predict_proba(X[:5]))
    assert np.allclose(from_frame.probabilities, from_array.probabilities)


def test_records_are_accepted_as_the_http_api_takes_them(iris, iris_model):
    X, _ = iris
    records = [dict(zip(IRIS_FEATURES, row, strict=True)) for row in X[:3]]  # numpy scalars
    assert iris_model.predict(records).labels == iris_model.predict(X[:3]).labels
    assert iris_model.predict(records[1]).labels == iris_model.predict(X[1:2]).labels
    missing = [{k: v for k, v in records[0].items() if k != "petal_width"}]
    with pytest.raises(InvalidInput, match="records\\[0\\] is missing 'petal_width'") as e:
        iris_model.predict(missing)
    assert e.value.field == "records[0].petal_width"


@pytest.mark.parametrize("bad", ["5.1,3.5,1.4,0.2", None, {1.0, 2.0}, [["a", "b", "c", "d"]]])
def test_inputs_it_cannot_read_are_refused_naming_what_it_takes(iris_model, bad):
    with pytest.raises(InvalidInput, match="list of dicts") as e:
        iris_model.predict(bad)
    assert e.value.field == "inputs"


def test_seq2seq_takes_records_too():
    gen = ToyGenerator()
    model = Model(gen, task="seq2seq", name="rev")
    by_text = model.predict(["abc", "de"]).generated_text
    assert model.predict([{"text": "abc"}, {"text": "de"}]).generated_text == by_text
