"""Pairing notebooks with a readable jupytext text file, without ever running a jupytext
``.py`` configuration (jupytext executes those as Python).

The format comes from our workspace setting and is handed to jupytext explicitly; for
jupytext's own contents manager we set the same default and make it ignore ``.py``
configuration files (``guard_contents_manager``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PAIRINGS = ("py:percent", "py:light", "md", "none")
# names jupytext (any version) may execute: it loads every non-TOML/YAML/JSON config as Python
PYTHON_CONFIGS = ("jupytext.py", ".jupytext.py")


def formats(pairing: str) -> str | None:
    """jupytext's ``formats`` string for a pairing, e.g. "ipynb,py:percent"; None for none."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}")
    return None if pairing == "none" else f"ipynb,{pairing}"


def paired_path(notebook: str, pairing: str) -> str | None:
    """The text file paired with ``notebook`` (a workspace-relative path)."""
    if pairing == "none":
        return None
    stem = notebook[: -len(".ipynb")]
    return stem + (".md" if pairing == "md" else ".py")


def text(notebook: str | bytes, pairing: str) -> str:
    """The notebook file's content as jupytext writes it in ``pairing``, with an explicit
    format so that no configuration file is consulted."""
    import jupytext
    import nbformat

    raw = notebook.decode("utf-8") if isinstance(notebook, bytes) else notebook
    return jupytext.writes(nbformat.reads(raw, as_version=4), fmt=pairing)


def python_configs(root: str | os.PathLike[str], notebook: str) -> list[str]:
    """Executable jupytext configs that would apply to ``notebook``: in its folder, any
    folder up to the workspace root and above it, and jupytext's global config folders."""
    root_path = Path(os.path.realpath(root))
    folders: list[Path] = []
    here = (root_path / notebook).parent
    while True:
        folders.append(here)
        if here.parent == here:
            break
        here = here.parent
    found = [str(f / name) for f in folders for name in PYTHON_CONFIGS if (f / name).is_file()]
    found += [
        str(Path(d) / name)
        for d in _global_config_dirs()
        for name in PYTHON_CONFIGS
        if (Path(d) / name).is_file()
    ]
    return list(dict.fromkeys(found))


def _global_config_dirs() -> Iterable[str]:
    from jupytext.config import global_jupytext_configuration_directories

    return global_jupytext_configuration_directories()


def is_python_config(config_file: str | None) -> bool:
    """True for a config jupytext would execute: it parses these suffixes as data and
    hands everything else to traitlets' PyFileConfigLoader."""
    return bool(config_file) and not str(config_file).endswith(
        (".toml", "jupytext", ".yml", ".yaml", ".json")
    )


def guard_contents_manager(contents_manager: Any) -> bool:
    """Make jupytext's contents manager skip configuration files it would execute.

    Wraps the instance's ``load_config_file`` (the one place jupytext loads a config,
    found by its own search or the global one); the class and the manager stay jupytext's.
    False when ``contents_manager`` is not jupytext's.
    """
    original = getattr(contents_manager, "load_config_file", None)
    if original is None or getattr(original, "_mlfactory_guard", False):
        return original is not None

    def refuse(config_file: str) -> None:
        log.warning(
            "Ignoring the jupytext configuration %s: it is Python, which jupytext would run. "
            "Use jupytext.toml instead.",
            config_file,
        )

    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def guarded(config_file: str | None, *args: Any, **kwargs: Any) -> Any:
            if is_python_config(config_file):
                refuse(str(config_file))
                return None
            return await original(config_file, *args, **kwargs)

    else:

        @functools.wraps(original)
        def guarded(config_file: str | None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            if is_python_config(config_file):
                refuse(str(config_file))
                return None
            return original(config_file, *args, **kwargs)

    guarded._mlfactory_guard = True  # type: ignore[attr-defined]
    contents_manager.load_config_file = guarded
    return True


def apply_to_contents_manager(contents_manager: Any, pairing: str) -> None:
    """Make jupytext's manager pair new saves like the workspace setting (when no
    jupytext.toml of the user's says otherwise)."""
    if not hasattr(contents_manager, "default_formats"):
        return
    contents_manager.formats = formats(pairing) or "ipynb"
