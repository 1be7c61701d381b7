"""The service's routes come from its handler modules: each ends with ``default_handlers``
(patterns relative to the service's prefix), ``app.routes`` concatenates them, and no
handler module imports another (they share only ``base``)."""

from __future__ import annotations

import ast
import inspect

from mlfactory.service import app


def test_each_handler_module_lists_its_routes_relative_to_the_prefix():
    table = app.routes("/services/mlfactory/")
    own = [route for module in app.ROUTE_MODULES for route in module.default_handlers]
    assert len(table) == len(own) >= 20
    for (pattern, handler, *_), (relative, same, *_) in zip(table, own, strict=True):
        assert relative.startswith("/") and not relative.startswith("/services/")
        assert pattern == "/services/mlfactory" + relative and handler is same


def service_imports(source: str) -> set[str]:
    """The ``mlfactory.service`` modules a module's source imports (lazy imports too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "mlfactory.service":
            out |= {a.name for a in node.names}
        else:
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            out |= {n.split(".")[2] for n in names if n.startswith("mlfactory.service.")}
    return out


def test_no_handler_module_imports_another():
    names = {module.__name__.rpartition(".")[2] for module in app.ROUTE_MODULES}
    for module in app.ROUTE_MODULES:
        imported = service_imports(inspect.getsource(module))
        assert "base" in imported, module.__name__
        assert imported & names == set(), f"{module.__name__} imports {imported & names}"
    assert service_imports("def f():\n    from mlfactory.service.dashboard import x\n") == {
        "dashboard"
    }
