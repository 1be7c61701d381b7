"""``mlfactory.model_api`` imports without Jupyter or any ML framework installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = [
    "jupyter_server",
    "jupyterhub",
    "notebook",
    "jupyterlab",
    "sklearn",
    "pandas",
    "torch",
    "xgboost",
    "lightgbm",
    "joblib",
    "scipy",
]


def test_imports_with_jupyter_and_frameworks_blocked(tmp_path):
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())

        import mlfactory.model_api as api
        for m in pkgutil.iter_modules(api.__path__):
            importlib.import_module("mlfactory.model_api." + m.name)
        api.Client, api.AsyncClient

        # a callable model works end to end without any framework
        import numpy as np
        model = api.Model(lambda x: np.column_stack((x[:, 0], -x[:, 0])), task="classification",
                          name="m", labels=["a", "b"], returns="logits", input_schema=["v"])
        assert model.predict([[1.0]]).labels == ["a"]
        leaked = sorted(k for k in sys.modules if k.split(".")[0] in {BLOCKED!r})
        assert not leaked, leaked
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
