"""The local backend's single-user command: deferring a slow import without changing behaviour."""

from __future__ import annotations

import subprocess
import sys

from mlfactory.spawner.singleuser import defer_module_function

IMPORTS: list[str] = []
SLOW_MODULE = """
from tests.spawner.test_singleuser import IMPORTS
IMPORTS.append(__name__)

def is_valid(rule, value):
    return f"{rule}:{value}"
"""


def test_real_module_loads_only_on_first_call(tmp_path, monkeypatch):
    (tmp_path / "mlf_slow_mod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mlf_slow_mod", raising=False)
    IMPORTS.clear()

    assert defer_module_function("mlf_slow_mod", "is_valid") is True
    from mlf_slow_mod import is_valid  # what jsonschema does at import time

    assert IMPORTS == []  # nothing loaded yet
    assert is_valid("iri", "x") == "iri:x"
    assert is_valid("iri", "y") == "iri:y"
    assert IMPORTS == ["mlf_slow_mod"]  # loaded once
    assert sys.modules["mlf_slow_mod"].is_valid("a", "b") == "a:b"  # the real module now


def test_missing_or_loaded_modules_are_left_alone(monkeypatch):
    assert defer_module_function("mlf_no_such_module_here", "f") is False
    assert "mlf_no_such_module_here" not in sys.modules
    assert defer_module_function("json", "dumps") is False
    assert sys.modules["json"].dumps({"a": 1}) == '{"a": 1}'


def test_jsonschema_iri_checks_still_validate():
    # In a fresh interpreter, as the server runs: defer, import what Jupyter imports, validate.
    code = (
        "from mlfactory.spawner.singleuser import defer_module_function as d\n"
        "assert d('rfc3987_syntax', 'is_valid_syntax')\n"
        "import sys, jupyter_events, jsonschema\n"
        "assert 'lark' not in sys.modules, 'the parsers were built at import'\n"
        "v = jsonschema.Draft7Validator({'format': 'iri'},"
        " format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)\n"
        "assert not v.is_valid('http://exa mple'), 'bad IRI accepted'\n"
        "assert v.is_valid('http://example.com/\\u00e9')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
