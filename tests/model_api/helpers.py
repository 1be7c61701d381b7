"""Test doubles for the model API: a call-counting estimator, a toy seq2seq generator, and a
model server running on its own event loop in a thread (for blocking clients)."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import numpy as np
from tornado.httpserver import HTTPServer

from tests.ports import free_port

METHODS = ("predict_proba", "predict", "decision_function")


class Counting:
    """Wraps an estimator and counts calls per method (and in total)."""

    def __init__(self, est: Any) -> None:
        self.est = est
        self.calls: dict[str, int] = dict.fromkeys(METHODS, 0)
        for attr in ("classes_", "n_features_in_", "feature_names_in_", "estimators_"):
            if hasattr(est, attr):
                setattr(self, attr, getattr(est, attr))

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not set above: the counted methods
        if name in METHODS and hasattr(self.est, name):
            method = getattr(self.est, name)

            @functools.wraps(method)  # keeps the signature (return_std) visible
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return method(*args, **kwargs)

            return counted
        raise AttributeError(name)


class ToyGenerator:
    """Deterministic seq2seq: candidate j of "abc" is "abc" reversed with j exclamation marks.

    Scores fall with j; token log-probabilities are -0.1 per character (times j+1). Inputs
    longer than ``max_new_tokens`` are cut and finish with "length".
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self,
        texts: list[str],
        num_return_sequences: int = 1,
        max_new_tokens: int = 64,
        return_logprobs: bool = False,
    ) -> list[list[dict[str, Any]]]:
        self.calls += 1
        out = []
        for t in texts:
            row = []
            for j in range(num_return_sequences + 1):  # one more than asked: shaping trims
                text = (t[::-1] + "!" * j)[:max_new_tokens]
                full = len(t) + j
                lp = [-0.1 * (j + 1)] * len(text)
                row.append(
                    {
                        "text": text,
                        "score": float(sum(lp)) - j,
                        "finish_reason": "length" if full > max_new_tokens else "stop",
                        "token_logprobs": lp if return_logprobs else None,
                    }
                )
            # deliberately not sorted by score: shaping must rank
            out.append(row[::-1])
        return out


class Blocking:
    """A classifier whose predict_proba waits until released: a stuck model, no sleeps."""

    classes_ = np.array([0, 1])
    n_features_in_ = 2

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.release.wait(30)
        return np.tile([0.25, 0.75], (len(x), 1))


class Failing:
    """A classifier that raises with a message that must not reach the client."""

    classes_ = np.array([0, 1])
    n_features_in_ = 2

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("secret path /home/alice/.ssh in the traceback")


class ServerThread:
    """Runs a ModelServer's app on its own loop in a daemon thread."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        http = HTTPServer(self.server.app())
        http.listen(self.port, "127.0.0.1")
        self._started.set()
        loop.run_forever()
        http.stop()
        loop.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
