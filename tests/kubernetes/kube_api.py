"""A stand-in Kubernetes API server for the checks a cluster is not needed for: it records
every request (to prove none was made) and serves pod listings in pages, as the real list
API does (``limit`` and ``continue``, with ``metadata.continue`` on every page but the last).

It is not a cluster: nothing it answers is ever the only evidence that a feature works.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes_asyncio.client import Configuration

from tests.ports import free_port


@dataclass
class KubeApi:
    url: str
    pods: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def configuration(self) -> Configuration:
        """A kubernetes_asyncio client configuration for this stand-in."""
        configuration = Configuration(host=self.url)
        configuration.api_key = {"authorization": "Bearer stand-in-token"}
        return configuration

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": "stand-in-token"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "stand-in", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        return path


def _page(pods: Sequence[dict], query: dict[str, list[str]]) -> dict[str, Any]:
    start = int((query.get("continue") or ["0"])[0] or 0)
    limit = int((query.get("limit") or ["0"])[0] or 0) or len(pods) or 1
    selector = (query.get("labelSelector") or [""])[0]
    wanted = dict(term.split("=", 1) for term in selector.split(",") if "=" in term)
    chosen = [
        p
        for p in pods[start:]
        if all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
    ]
    # the real API pages over the stored order; a selector may leave short pages
    items = chosen[:limit]
    end = start + limit
    metadata: dict[str, Any] = {"resourceVersion": "1"}
    if end < len(pods):
        metadata["continue"] = str(end)
    return {"apiVersion": "v1", "kind": "PodList", "metadata": metadata, "items": items}


@contextmanager
def kube_api(status: int = 200) -> Iterator[KubeApi]:
    """Serve the stand-in on a free loopback port; ``status`` other than 200 answers every
    request with that Kubernetes ``Status`` failure."""
    port = free_port()
    api = KubeApi(url=f"http://127.0.0.1:{port}")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            with lock:
                api.requests.append((self.command, parts.path))
                api.queries.append(parse_qs(parts.query))
            if status != 200:
                self._answer(
                    status,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": "stand-in API: refused",
                        "code": status,
                    },
                )
                return
            if self.command == "GET" and parts.path.endswith("/pods"):
                self._answer(200, _page(api.pods, parse_qs(parts.query)))
            elif self.command == "DELETE" and "/pods/" in parts.path:
                name = parts.path.rsplit("/", 1)[1]
                with lock:
                    api.deleted.append(name)
                self._answer(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            else:
                self._answer(404, {"kind": "Status", "status": "Failure", "code": 404})

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
