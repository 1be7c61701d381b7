"""The container engine as the platform service sees it: the containers mlfactory labelled,
and stopping one (an orphan). The thin I/O layer under ``reconcile.container_sighting``.

It speaks the Docker Engine API, so it works with Docker Engine and with Podman's service,
through the standard library (``spawner.engine.engine_request``): four calls, made at each
accounting tick, did not need docker-py and requests resident in the service for its whole
life (~5 MiB; issue 20's memory target). Every method blocks: it is called in a worker
thread.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from mlfactory.hub.platform_config import PlatformConfig
from mlfactory.spawner.container_labels import INSTANCE, MANAGED
from mlfactory.spawner.engine import engine_request, labels_filter

# The Kubernetes client (~50 MiB resident) is imported by the pod view that uses it, not
# here: the service imports this module on every deployment
# (tests/service/test_service_imports.py).

log = logging.getLogger("mlfactory.service")

GONE = 404
_NO_ANSWER = (OSError, http.client.HTTPException, ValueError)


class EngineDown(Exception):
    """The engine did not answer (or answered with an error): its view is unknown."""


class EngineView:
    """The labelled containers of one engine (``url``). ``labels`` narrow the list further
    (the tests, which share one engine, scope it to their own containers). ``required``: the
    platform runs containers for sure (``backend: container``), so an engine that does not
    answer is an outage worth a warning, not a machine without an engine (``auto``)."""

    def __init__(
        self,
        url: str,
        *,
        labels: Mapping[str, str] | None = None,
        required: bool = True,
        timeout: float = 10,
    ) -> None:
        self.url = url
        self.labels = {MANAGED: "1", **(labels or {})}
        self.required = required
        self.timeout = timeout

    def _call(
        self, method: str, path: str, ok: tuple[int, ...] = (200,), timeout: float | None = None
    ) -> tuple[int, Any]:
        try:
            return engine_request(self.url, method, path, timeout or self.timeout, ok)
        except _NO_ANSWER as e:
            raise EngineDown(f"the container engine at {self.url} cannot be reached ({e})") from e

    def containers(self) -> list[dict[str, Any]]:
        """Every labelled container, running or not (blocking). A running one is its list
        entry; a stopped one its inspect dict, which alone says when it finished. Raises
        EngineDown when the engine does not give a complete answer."""
        query = urlencode(
            {"all": "1", "filters": json.dumps({"label": labels_filter(self.labels)})}
        )
        status, listed = self._call("GET", f"/containers/json?{query}")
        if status != 200 or not isinstance(listed, list):
            raise EngineDown(f"the container engine at {self.url} answered {status} to a list")
        out = []
        for c in listed:
            if c.get("State") != "running":
                status, inspected = self._call("GET", f"/containers/{quote(c['Id'])}/json")
                if status == 200 and isinstance(inspected, dict):
                    c = inspected
                elif status != GONE:  # gone: removed since the list, whose entry says it stopped
                    raise EngineDown(
                        f"the container engine at {self.url} answered {status} to an inspect"
                    )
            out.append(c)
        return out

    def remove(self, container_id: str, wait: int = 10) -> bool:
        """Stop a container (TERM, then KILL after ``wait`` seconds) and remove it; its named
        volumes stay (the user's home). True once it is gone (blocking)."""
        where = f"/containers/{quote(container_id)}"
        try:
            # the engine answers once the container has stopped: up to ``wait`` seconds
            status, _ = self._call("POST", f"{where}/stop?t={wait}", timeout=self.timeout + wait)
            if status == GONE:
                return True  # already gone: what we wanted
            if status not in (204, 304):  # e.g. a state stop refuses: removal forces it
                log.info(
                    "Stopping container %s answered %s; removing it", container_id[:12], status
                )
            status, _ = self._call("DELETE", f"{where}?v=0&force=1")
        except EngineDown as e:
            log.error("Cannot remove container %s: %s", container_id[:12], e)
            return False
        if status in (200, 204, GONE):
            return True
        log.error(
            "Cannot remove container %s at %s: it answered %s", container_id[:12], self.url, status
        )
        return False


def engine_view(
    config: PlatformConfig, labels: Mapping[str, str] | None = None
) -> EngineView | None:
    """The engine the platform's config names, unless servers run as local processes only.
    With ``backend: auto`` the engine may be absent: the service then says so once.
    ``labels``: only containers that carry these too (e.g. one hub's, where several hubs
    share an engine: any other's containers would look like orphans here)."""
    backend = config.platform.backend
    if backend == "local":
        return None
    if backend == "kubernetes":  # the pods mlfactory labelled, through the Kubernetes API
        from mlfactory.spawner.kube_pods import KubePodView

        kube = config.kubernetes
        instance = (labels or {}).get(INSTANCE, "")
        return KubePodView(kube.namespace if kube else "mlfactory", instance=instance)  # type: ignore[return-value]
    return EngineView(config.containers.engine, labels=labels, required=backend == "container")
