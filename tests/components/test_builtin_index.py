"""The built-ins' validated index shipped in the package (`builtin_index`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlfactory.components.catalog as catalog_module
from mlfactory.components import builtin_index
from mlfactory.components.builtin_index import INDEX_NAME, ShippedIndex, content_hash
from mlfactory.components.catalog import BUILTIN, BUILTIN_DIR, Catalog, Source, scan
from mlfactory.components.spec import load_component

from .test_catalog import make

REGENERATE = '.venv/bin/python -c "from mlfactory.components import builtin_index as b; b.write()"'


def test_the_shipped_index_is_in_sync_with_the_builtins():
    shipped = json.loads((BUILTIN_DIR / INDEX_NAME).read_text())
    assert shipped == builtin_index.build(BUILTIN_DIR), f"out of date: run {REGENERATE}"
    folders = sorted(p.parent.name for p in BUILTIN_DIR.glob("*/component.yaml"))
    assert sorted(shipped["entries"]) == folders  # every built-in is in it


def counting_loads(monkeypatch) -> list[str]:
    loaded: list[str] = []
    real = catalog_module.load_component

    def counting(folder, source="builtin"):
        loaded.append(Path(folder).name)
        return real(folder, source=source)

    monkeypatch.setattr(catalog_module, "load_component", counting)
    return loaded


def test_builtins_come_from_the_index_equal_to_validating_them(monkeypatch):
    loaded = counting_loads(monkeypatch)
    found, errors = scan(BUILTIN)
    assert loaded == [] and errors == []
    assert found == [load_component(c.folder) for c in found]  # the same components, in full


def test_a_builtin_edited_in_place_is_validated_again(tmp_path, monkeypatch):
    root = tmp_path / "builtin"
    shutil.copytree(BUILTIN_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(catalog_module, "BUILTIN_DIR", root)
    readme = root / "time_split" / "README.md"
    readme.write_text(readme.read_text() + "\nOne more line.\n")
    yaml_file = root / "load_csv" / "component.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("stability: stable", "stability: alpha"))
    loaded = counting_loads(monkeypatch)
    found, errors = scan(Source("builtin", root, "builtin"))
    assert sorted(loaded) == ["load_csv", "time_split"]
    assert [e.key for e in errors] == ["stability"]  # the edit is refused, not hidden
    assert "load_csv" not in {c.name for c in found}
    assert len(found) == len(list(BUILTIN_DIR.glob("*/component.yaml"))) - 1


def test_an_index_in_an_organisations_source_is_never_trusted(tmp_path, monkeypatch):
    org = tmp_path / "org"
    make(org, "real", folder="real")
    planted = builtin_index.build(org)
    entry = planted["entries"]["real"]
    planted["entries"]["ghost"] = {**entry, "c": {**entry["c"], "name": "ghost"}}
    entry["c"]["summary"] = "tampered"
    (org / INDEX_NAME).write_text(json.dumps(planted))
    (org / "ghost").mkdir()
    shutil.copy(org / "real" / "component.yaml", org / "ghost" / "component.yaml")
    catalog = Catalog.from_sources([Source("org", org)])
    assert catalog.names() == ["real"]
    assert catalog.resolve("real").summary == "Does a thing."
    assert {e.file.split("/")[-2] for e in catalog.errors} == {"ghost"}  # validated: refused


def test_the_index_answers_only_for_unchanged_files(tmp_path):
    root = tmp_path / "builtin"
    make(root, "one", folder="one")
    builtin_index.write(root)
    index = ShippedIndex(root)
    folder = root / "one"

    def listing():
        return sorted(os.scandir(folder), key=lambda e: e.name)

    assert index.get(folder, listing(), "builtin") == load_component(folder)
    (folder / "__pycache__").mkdir()  # what importing a built-in leaves: not read, not hashed
    assert index.get(folder, listing(), "builtin") is not None
    before = content_hash(listing())
    (folder / "one.py").write_text("def one(x):\n    return 2\n")
    assert content_hash(listing()) != before
    assert index.get(folder, listing(), "builtin") is None
    body = json.loads((root / INDEX_NAME).read_text())
    (root / INDEX_NAME).write_text(json.dumps({**body, "key": "other-code"}))
    builtin_index.write(root)
    assert ShippedIndex(root).get(folder, listing(), "builtin") is not None
    (root / INDEX_NAME).write_text(json.dumps({**body, "key": "other-code"}))
    assert ShippedIndex(root).get(folder, listing(), "builtin") is None  # other code: ignored
