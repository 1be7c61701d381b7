"""A real JupyterHub for the spawn benchmarks (``spawn_latency.py``, ``container_spawn.py``):
``jupyterhub -f`` with the real configurable-http-proxy in its own data folder, on free
ports, reached through the REST API with the ``bench`` service's token.

A benchmark gives each variant's config text (``HUB_CONFIG`` plus its own lines, formatted
with ``fields()``) and its environment; the hub's output goes to ``<data>/hub.log``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What every benchmark hub shares: loopback, its own state, a service token with what the
# benchmarks do (create users, start and stop servers, read their state).
HUB_CONFIG = """
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{data}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{data}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{data}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "admin:server_state"]}}]
c.Spawner.default_url = "/lab"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchHub:
    """One variant's hub; ``start`` launches it, ``stop`` ends it."""

    def __init__(self, variant: str, workdir: Path) -> None:
        self.variant = variant
        self.data = workdir / variant
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.hub_port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = self.data / "hub.log"

    def fields(self) -> dict[str, Any]:
        """What ``HUB_CONFIG`` is formatted with; a variant's text may use them too."""
        return {
            "port": self.port,
            "hub_port": self.hub_port,
            "proxy_api_port": free_port(),
            "data": self.data,
            "token": self.token,
        }

    def start(self, config: str, env: Mapping[str, str] = {}) -> None:  # noqa: B006 - read only
        path = self.data / "jupyterhub_config.py"
        path.write_text(textwrap.dedent(config))
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(path)],
            cwd=self.data,
            env={
                **os.environ,
                # the proxy and jupyterhub-singleuser live next to this interpreter
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hub/api{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=180) as r:  # noqa: S310 - local hub
                raw = r.read()
                return r.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"{}")
            except ValueError:  # the proxy's HTML error page while the hub starts
                return e.code, {"message": raw[:200].decode("utf-8", "replace")}

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.api("GET", "/")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.variant} hub did not start; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
