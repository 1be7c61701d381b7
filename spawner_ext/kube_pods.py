"""The Kubernetes backend's servers as the platform service's ledger sees them: the pods
mlfactory labelled, listed through the Kubernetes API in pages, each read as the container
backend's engine entry, so that the same reconcile logic (``platform_service.reconcile.
engine_sightings``) bills them and finds the ones the hub forgot.

``pod_as_container`` is pure. ``KubePodView`` has the container engine view's interface
(``containers()`` and ``remove(id)``, blocking, called from a worker thread by the service's
accounting), over kubernetes_asyncio, the client KubeSpawner uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from .container_labels import KEY as LEDGER_KEY_LABEL
from .container_labels import MANAGED as MANAGED_LABEL
from .kube_spec import INSTANCE, MANAGED, SESSION, label_value

PAGE = 500  # pods per list request: the API server's own default chunk size


class KubeDown(Exception):
    """The Kubernetes API did not give a complete answer: the pods' state is unknown."""


def pod_status(pod: Mapping[str, Any]) -> tuple[str, str | None]:
    """The engine state a pod's phase corresponds to, and when its server container ended.

    Pending (scheduling, pulling) is a start in progress ("created"); Running is running
    until its notebook container terminates; Succeeded and Failed have exited. A phase the
    API cannot tell (Unknown, a node that stopped reporting) counts as running: a server is
    never closed on a guess, and the next pass sees again.
    """
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    finished = None
    for c in status.get("containerStatuses") or ():
        terminated = (c.get("state") or {}).get("terminated")
        if c.get("name") == "notebook" and terminated:
            finished = terminated.get("finishedAt")
    if phase == "Pending":
        return "created", None
    if phase in ("Succeeded", "Failed") or (phase == "Running" and finished):
        return "exited", finished
    return "running", None


def pod_as_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The engine entry (``GET /containers/json`` shape) of one pod: its name as the id, its
    session annotation as the labels ``container_labels.session_from_labels`` reads, and its
    state. A pod without a readable session gets no labels, and is left alone."""
    metadata = pod.get("metadata") or {}
    labels: dict[str, str] = {}
    try:
        session = json.loads((metadata.get("annotations") or {}).get(SESSION) or "{}")
        if isinstance(session, dict) and all(isinstance(v, str) for v in session.values()):
            labels = session
    except ValueError:
        pass
    # the session's key must be the pod's selectable label too: an annotation copied onto
    # another pod must not make it bill (or stop) someone else's session
    key = labels.get(LEDGER_KEY_LABEL, "")
    if label_value(key) != (metadata.get("labels") or {}).get("mlfactory.org/ledger-key"):
        labels = {}
    state, finished = pod_status(pod)
    return {
        "Id": metadata.get("name", ""),
        "Labels": labels if labels.get(MANAGED_LABEL) == "1" else {},
        "State": {"Status": state, "FinishedAt": finished or "0001-01-01T00:00:00Z"},
    }


async def list_pods(
    api: k8s.CoreV1Api, namespace: str, selector: str, page: int = PAGE
) -> list[dict[str, Any]]:
    """Every pod in ``namespace`` matching ``selector``, in pages of ``page`` (``limit`` and
    ``continue``), as the API's JSON (not deserialised into models: 10,000 pods would take
    seconds)."""
    pods: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"label_selector": selector, "limit": page}
        if token:
            kwargs["_continue"] = token
        response = await api.list_namespaced_pod(namespace, _preload_content=False, **kwargs)
        raw = await response.read()
        if response.status >= 400:  # unread content is not checked by the client
            reason = raw[:200].decode(errors="replace")
            raise k8s.ApiException(status=response.status, reason=reason)
        body = json.loads(raw)
        pods.extend(body.get("items") or ())
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return pods


def selector_of(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubePodView:
    """The pods mlfactory made in one namespace, for the service's accounting (the
    container engine view's interface). ``instance``: only this hub's pods."""

    def __init__(
        self,
        namespace: str,
        *,
        instance: str = "",
        configuration: k8s.Configuration | None = None,
        page: int = PAGE,
        required: bool = True,
    ) -> None:
        self.namespace = namespace
        self.labels = {MANAGED: "1", **({INSTANCE: label_value(instance)} if instance else {})}
        self.page = page
        self.required = required
        self._configuration = configuration
        self.url = f"the Kubernetes API (namespace {namespace})"

    async def _configure(self) -> k8s.Configuration:
        if self._configuration is None:
            configuration = k8s.Configuration()
            try:  # the service runs in the hub pod, with the hub's service account
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                await k8s_config.load_kube_config(client_configuration=configuration)
            self._configuration = configuration
        return self._configuration

    async def pods(self) -> list[dict[str, Any]]:
        async with k8s.ApiClient(await self._configure()) as api_client:
            try:
                return await list_pods(
                    k8s.CoreV1Api(api_client), self.namespace, selector_of(self.labels), self.page
                )
            except (k8s.ApiException, OSError, ValueError) as e:
                raise KubeDown(f"{self.url} did not answer ({e})") from e

    def containers(self) -> list[dict[str, Any]]:
        """Every labelled pod as an engine entry (blocking: from a worker thread)."""
        return [pod_as_container(p) for p in asyncio.run(self.pods())]

    async def delete(self, name: str, wait: int = 10) -> bool:
        async with k8s.ApiClient(await self._configure()) as api_client:
            try:
                await k8s.CoreV1Api(api_client).delete_namespaced_pod(
                    name, self.namespace, grace_period_seconds=wait
                )
            except k8s.ApiException as e:
                if e.status != 404:  # already gone: what we wanted
                    return False
            except OSError:
                return False
        return True

    def remove(self, container_id: str, wait: int = 10) -> bool:
        """Delete an orphaned server's pod (its claim, the user's home, stays)."""
        return asyncio.run(self.delete(container_id, wait))

    def close(self) -> None:
        pass
