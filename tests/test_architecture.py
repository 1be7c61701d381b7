"""The parts' allowed imports (docs/architecture.md, "Parts and their imports"), checked on
every module's source: an arrow the document forbids, or an import loop between parts or
between modules, fails here.

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder → import name, as in setup.cfg
PACKAGES = {
    "hub_config": "mlfactory.hub",
    "spawner_ext": "mlfactory.spawner",
    "server_ext": "mlfactory.server",
    "component_registry": "mlfactory.components",
    "model_api": "mlfactory.model_api",
    "platform_service": "mlfactory.service",
    "data_connect": "mlfactory.data",
}

# Modules that are parts of their own: the ground floor and the one composer.
OWN_PARTS = {
    "mlfactory.hub.platform_config": "platform_config",
    "mlfactory.hub.platform_schema": "platform_config",
    "mlfactory.hub.platform_schema_data": "platform_config",
    "mlfactory.hub.platform_schema_backends": "platform_config",
    "mlfactory.hub.platform_schema_auth": "platform_config",
    "mlfactory.hub.schema_types": "platform_config",
    "mlfactory.hub.platform_runtime": "platform_config",
    "mlfactory.hub.hubconfig": "hubconfig",
    # the shipped JupyterHub config file: configuration, not a part (the composer's client)
    "mlfactory.hub.jupyterhub_config": "config",
    # the one-release alias of the service's old module path (``python -m``)
    "mlfactory.hub.service": "compat",
    "mlfactory.hub.service.__main__": "compat",
}
PART_OF_PACKAGE = {
    "mlfactory.hub": "hub",
    "mlfactory.spawner": "spawner",
    "mlfactory.server": "server",
    "mlfactory.components": "components",
    "mlfactory.model_api": "model_api",
    "mlfactory.service": "service",
    "mlfactory.data": "data",
}

# (from, to) arrows docs/architecture.md forbids; "*" means every other part.
FORBIDDEN = {
    ("server", "service"),
    ("service", "server"),
    ("spawner", "service"),
    ("model_api", "*"),
    ("data", "*"),
    ("platform_config", "*"),
    ("components", "hub"),
    ("components", "spawner"),
    ("components", "server"),
    ("components", "service"),
    ("*", "hubconfig"),
}
# What may import the composer: the shipped JupyterHub config file (config, not a part).
COMPOSER_CLIENTS = {"mlfactory.hub.jupyterhub_config"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    base = PACKAGES[parts[0]]
    rest = parts[1:]
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join([base, *rest])


def modules() -> dict[str, Path]:
    out = {}
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "node_modules" in path.parts or "builtin" in path.parts:
                continue  # built-in components are user-side snippets, run in kernels
            out[module_name(path)] = path
    return out


def part_of(module: str) -> str | None:
    for name, part in OWN_PARTS.items():
        if module == name or module.startswith(name + "."):
            return part
    best = max(
        (p for p in PART_OF_PACKAGE if module == p or module.startswith(p + ".")),
        key=len,
        default=None,
    )
    return PART_OF_PACKAGE.get(best) if best else None


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The mlfactory modules ``module`` imports (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        # ``from pkg import mod`` names a module when one exists; else the package
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mlfactory."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("mlfactory."):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                add(full if full in known else target)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    return graph()


def test_every_module_belongs_to_a_part(imports):
    assert [m for m in imports if part_of(m) is None] == []


def test_no_forbidden_arrow(imports):
    bad = []
    for mod, targets in imports.items():
        src = part_of(mod)
        for target in targets:
            dst = part_of(target)
            if dst == src:
                continue
            if dst == "hubconfig" and mod in COMPOSER_CLIENTS:
                continue
            if {(src, dst), (src, "*"), ("*", dst)} & FORBIDDEN:
                bad.append(f"{mod} ({src}) imports {target} ({dst})")
    assert bad == []


def test_no_loop_between_parts(imports):
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, targets in imports.items():
        for target in targets:
            if part_of(mod) != part_of(target):
                edges[part_of(mod)].add(part_of(target))
    assert cycles(edges) == []


def test_no_loop_between_modules(imports):
    assert cycles(imports) == []


def test_the_checker_sees_what_it_must(tmp_path):
    """The rules above are only as good as the import reader: feed it known cases."""
    src = tmp_path / "handlers.py"
    src.write_text(
        "from . import base\n"
        "from .store import Store\n"
        "from ..server import app\n"
        "def later():\n"
        "    from mlfactory.components.spec import load_component\n"
    )
    known = {
        "mlfactory.service.base",
        "mlfactory.service.store",
        "mlfactory.service.handlers",
        "mlfactory.server.app",
        "mlfactory.components.spec",
    }
    assert imports_of("mlfactory.service.handlers", src, known) == known - {
        "mlfactory.service.handlers"
    }
    assert part_of("mlfactory.hub.platform_schema") == "platform_config"
    assert part_of("mlfactory.hub.cli.budgets") == "hub"
    assert part_of("mlfactory.service.store") == "service"
    assert part_of("mlfactory.hub.service") == "compat"
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


@pytest.mark.parametrize("module", ["mlfactory.service", "mlfactory.hub.service"])
def test_the_service_runs_under_its_new_and_its_old_module_path(module):
    """Deployments whose service command names the old path keep starting it (one
    release), told where it moved."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "platform service" in run.stdout
    moved = "deprecated; run `python -m mlfactory.service`" in run.stderr
    assert moved == (module == "mlfactory.hub.service")
