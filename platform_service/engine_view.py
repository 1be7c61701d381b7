"""The container engine as the platform service sees it: the containers mlfactory labelled,
and stopping one (an orphan). The thin I/O layer under ``reconcile.container_sighting``.

It speaks the Docker Engine API through docker-py, so it works with Docker Engine and with
Podman's service. docker-py blocks: every method here is called in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlfactory.hub.platform_config import PlatformConfig
from mlfactory.spawner.container_labels import INSTANCE, MANAGED
from mlfactory.spawner.engine import engine_problem

if TYPE_CHECKING:
    import docker

# docker-py (with requests) and the Kubernetes client (~50 MiB resident) are imported by the
# view that uses them, not here: the service imports this module on every deployment, and
# each backend needs at most one of them (tests/service/test_service_imports.py).

log = logging.getLogger("mlfactory.service")


def _engine_errors() -> tuple[type[BaseException], ...]:
    """What a missing or broken engine raises through docker-py."""
    import docker.errors
    import requests

    return (docker.errors.DockerException, requests.RequestException, OSError)


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
        self._api: docker.APIClient | None = None

    def _client(self) -> docker.APIClient:
        if self._api is None:  # version "auto" asks the engine: fails fast when it is down
            from mlfactory.spawner.engine import engine_client

            self._api = engine_client(self.url, timeout=self.timeout).api
        return self._api

    def _reset(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing to keep
                api.close()

    def containers(self) -> list[dict[str, Any]]:
        """Every labelled container, running or not (blocking). A running one is its list
        entry; a stopped one its inspect dict, which alone says when it finished. Raises
        EngineDown when the engine does not give a complete answer."""
        if problem := engine_problem(self.url, self.timeout):  # no docker-py loaded for that
            raise EngineDown(problem)
        import docker.errors
        from mlfactory.spawner.engine import labels_filter

        try:
            api = self._client()
            listed = api.containers(all=True, filters={"label": labels_filter(self.labels)})
            out = []
            for c in listed:
                if c.get("State") != "running":
                    try:
                        c = api.inspect_container(c["Id"])
                    except docker.errors.NotFound:
                        pass  # removed since the list: its list entry says it stopped
                out.append(c)
            return out
        except _engine_errors() as e:
            self._reset()
            raise EngineDown(f"the container engine at {self.url} did not answer ({e})") from e

    def remove(self, container_id: str, wait: int = 10) -> bool:
        """Stop a container (TERM, then KILL after ``wait`` seconds) and remove it; its named
        volumes stay (the user's home). True once it is gone (blocking)."""
        import docker.errors

        try:
            api = self._client()
            try:
                api.stop(container_id, timeout=wait)
            except docker.errors.NotFound:
                return True  # already gone: what we wanted
            except docker.errors.APIError as e:  # e.g. a state stop refuses: removal forces it
                log.info("Stopping container %s failed (%s); removing it", container_id[:12], e)
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container_id, v=False, force=True)
            return True
        except _engine_errors() as e:
            self._reset()
            log.error("Cannot remove container %s at %s: %s", container_id[:12], self.url, e)
            return False

    def close(self) -> None:
        self._reset()


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
