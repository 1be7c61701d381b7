"""What the platform service imports at start: only what every deployment uses.

The service is one more process beside the hub, so what it imports it holds for its whole
life (issue 20: hub + service within 1.5x a vanilla hub's memory). Clients of optional
backends and features are imported by the code that uses them: the Kubernetes client
(~50 MiB resident) by the pod view, docker-py by the container view, nbconvert and nbformat
(with jsonschema) by the first notebook share. Each check runs in a fresh interpreter, as
the hub starts the service (``python -m mlfactory.service``), since this test process has
imported most of these already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Top-level packages the service must not import until a feature configured or used needs
# them.
NOT_AT_START = (
    "numpy",  # the model registry reads package cards through model_api.specs, numpy-free
    "prometheus_client",  # with cryptography, what jupyterhub.log (the hub's handlers) loads
    "cryptography",
    "jsonschema",  # component_registry/spec.py imports it to list a component's errors
    "kubernetes_asyncio",
    "kubespawner",
    "docker",
    "requests",
    "nbconvert",
    "nbformat",
    "jinja2",  # the dashboard's pages and a share's preview build their templates when used
    "jupyter_client",
    "zmq",
    "bleach",
    "mistune",
    "psycopg",  # the data drivers load when a store of their kind is configured
    "boto3",
    "botocore",
)


def modules_after(*snippets: str) -> set[str]:
    """The top-level packages imported once ``snippets`` have run in a new interpreter."""
    report = "import json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = "\n".join(textwrap.dedent(s) for s in (*snippets, report))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def config(backend: str) -> str:
    """Code that sets ``platform``: the shipped config with this backend and no engine."""
    return f"""
        import yaml
        from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
        data = yaml.safe_load(PACKAGED_CONFIG.read_text())
        data["platform"]["backend"] = {backend!r}
        data["containers"] = {{"engine": "unix:///nowhere/mlfactory-test.sock"}}
        platform = parse_platform_config(data)
    """


def test_the_service_starts_without_optional_backends_and_features():
    """Importing the app, and building the engine view a local or ``auto`` config asks for
    (no engine call yet), loads none of the optional clients."""
    loaded = modules_after(
        """
        import mlfactory.service.app
        from mlfactory.service.engine_view import engine_view
        """,
        config("local"),
        "assert engine_view(platform) is None",
        config("auto"),
        "assert engine_view(platform) is not None",
    )
    assert "mlfactory" in loaded and "sqlalchemy" in loaded  # the check sees imports at all
    assert sorted(loaded & set(NOT_AT_START)) == []


# An engine that answers: the Docker Engine API's ping, version and an empty container list,
# on a unix socket (a stand-in: only what the view asks; the real engine is tests/containers')
STAND_IN_ENGINE = """
    import json, os, socketserver, tempfile, threading
    from http.server import BaseHTTPRequestHandler

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            body = b"OK" if path.endswith("/_ping") else json.dumps(
                {"ApiVersion": "1.41", "Version": "4.3.1"} if path.endswith("/version") else []
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self):
            return "engine"

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    sock = os.path.join(tempfile.mkdtemp(), "engine.sock")
    threading.Thread(target=Server(sock, Engine).serve_forever, daemon=True).start()
"""


def test_an_absent_engine_is_learnt_without_docker_py():
    """``backend: auto`` on a machine without an engine: the service's view and the hub's
    probe find it absent through the standard library (docker-py with requests would stay
    resident in both just for that)."""
    loaded = modules_after(
        config("auto"),
        """
        from mlfactory.service.engine_view import EngineDown, engine_view
        from mlfactory.spawner.engine import containers_problem

        try:
            engine_view(platform).containers()
            raise AssertionError("no engine listens there")
        except EngineDown as e:
            assert "cannot be reached" in str(e), e
        assert "cannot be reached" in containers_problem(platform)
        """,
    )
    assert not loaded & {"docker", "requests"}


def test_a_feature_in_use_imports_its_client():
    """The other side of lazy: a share's preview still loads its libraries when it runs. The
    container view lists an engine that answers through the standard library alone."""
    loaded = modules_after(
        config("container"),
        STAND_IN_ENGINE,
        """
        from mlfactory.service import previews
        from mlfactory.service.engine_view import engine_view

        platform = platform.model_copy(
            update={"containers": platform.containers.model_copy(update={"engine": f"unix://{sock}"})}
        )
        assert engine_view(platform).containers() == []
        nb = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
        assert "<html" in previews.render(nb, "empty")
        """,
    )
    assert {"nbconvert", "nbformat"} <= loaded
    assert not loaded & {"docker", "requests"}
