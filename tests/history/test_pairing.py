"""Pairing with jupytext: explicit formats, and jupytext's own contents manager kept from
executing .py configuration files."""

from __future__ import annotations

import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
from mlfactory.server.history import pairing

from .conftest import write_notebook


def test_formats_and_paths():
    assert pairing.formats("py:percent") == "ipynb,py:percent"
    assert pairing.formats("none") is None
    with pytest.raises(ValueError):
        pairing.formats("py:percent,sh")
    assert pairing.paired_path("a/b.ipynb", "md") == "a/b.md"
    assert pairing.paired_path("b.ipynb", "py:light") == "b.py"
    assert pairing.paired_path("b.ipynb", "none") is None


@pytest.mark.parametrize(
    ("name", "python"),
    [
        (".jupytext.py", True),
        ("jupytext.py", True),
        ("/w/jupytext.cfg", True),
        ("/w/jupytext.toml", False),
        ("/w/.jupytext", False),
        ("/w/pyproject.toml", False),
        ("/w/jupytext.yaml", False),
        (None, False),
    ],
)
def test_is_python_config(name, python):
    assert pairing.is_python_config(name) is python


def _jupytext_cm(root, **kw):
    return build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(root), **kw
    )


async def test_jupytext_manager_never_runs_python_configs(root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    marker = tmp_path / "config-ran"
    (root / ".jupytext.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nc.formats = 'ipynb,md'\n"
    )
    cm = _jupytext_cm(root, allow_hidden=True)  # hidden configs are read only then
    assert pairing.guard_contents_manager(cm) is True
    assert pairing.guard_contents_manager(cm) is True  # once only
    pairing.apply_to_contents_manager(cm, "py:percent")
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    model = await cm.get("a.ipynb")
    await cm.save(model, "a.ipynb")
    assert not marker.exists()
    assert (root / "a.py").is_file() and not (root / "a.md").exists()
    assert "# %%\nx = 1" in (root / "a.py").read_text()
    assert path.is_file()


async def test_unguarded_manager_would_run_it(root, tmp_path, monkeypatch):
    """The scenario the guard exists for (jupytext's own behaviour, checked once)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    marker = tmp_path / "config-ran"
    (root / ".jupytext.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    cm = _jupytext_cm(root, allow_hidden=True)
    write_notebook(root, "a.ipynb", ["x = 1"])
    await cm.save(await cm.get("a.ipynb"), "a.ipynb")
    assert marker.exists()


async def test_pairing_setting_reaches_jupytext(root):
    cm = _jupytext_cm(root)
    pairing.apply_to_contents_manager(cm, "md")
    write_notebook(root, "a.ipynb", ["x = 1"])
    await cm.save(await cm.get("a.ipynb"), "a.ipynb")
    assert (root / "a.md").is_file()
    pairing.apply_to_contents_manager(cm, "none")
    write_notebook(root, "b.ipynb", ["x = 1"])
    await cm.save(await cm.get("b.ipynb"), "b.ipynb")
    assert not (root / "b.md").exists() and not (root / "b.py").exists()


def test_plain_manager_is_left_alone(root):
    cm = AsyncLargeFileManager(root_dir=str(root))
    assert pairing.guard_contents_manager(cm) is False
    pairing.apply_to_contents_manager(cm, "md")
    assert not hasattr(cm, "formats")


def test_text_uses_the_explicit_format(root):
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    assert pairing.text(path.read_bytes(), "py:light").strip().endswith("x = 1")
    assert "```python\nx = 1\n```" in pairing.text(path.read_bytes(), "md")
