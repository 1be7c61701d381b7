"""``image_tags.pin_image``: the one registry lookup the container and the Kubernetes
backends share (the engine pulls, and the kubelet runs, the image by its digest), against
the real test registry (Debian's docker-registry) and a real push."""

from __future__ import annotations

import uuid

import pytest
from jupyterhub.spawner import SpawnException
from mlfactory.hub.platform_schema import Registry
from mlfactory.spawner.image_tags import image_unusable, pin_image
from mlfactory.spawner.registry import RegistryError

from tests.images.test_registry import REPO, push_tag
from tests.ports import free_port

DIGEST = "sha256:" + "ab" * 32


async def test_a_tag_in_the_registry_is_pinned_to_the_digest_podman_pushed(
    container_engine, base_image
):
    tag = f"pin-{uuid.uuid4().hex[:8]}"
    pushed = push_tag(container_engine, base_image, tag)
    registry = Registry(url=container_engine.registry)
    host = container_engine.registry_location
    pinned = await pin_image(f"{host}/{REPO}:{tag}", registry)
    assert pinned.ref == f"{host}/{REPO}@{pushed}"
    assert pinned.in_registry and pinned.password == ""
    # a catalog name without a host is in the platform's registry too
    assert (await pin_image(f"{REPO}:{tag}", registry)).ref == f"{host}/{REPO}@{pushed}"
    # an unknown tag says which, for the spawn's error
    with pytest.raises(RegistryError, match="no-such-tag") as info:
        await pin_image(f"{host}/{REPO}:no-such-tag", registry)
    error = image_unusable(f"{REPO}:no-such-tag", info.value)
    assert isinstance(error, SpawnException) and error.status_code == 500
    assert error.jupyterhub_message.startswith(f"The image {REPO}:no-such-tag cannot be used: ")


async def test_a_reference_by_digest_needs_no_registry_round_trip(tmp_path):
    # nothing listens on this port: any request would fail
    url = f"http://127.0.0.1:{free_port()}"
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    registry = Registry(url=url, username="ci", password_file=str(secret))
    pinned = await pin_image(f"mlfactory/pytorch@{DIGEST}", registry)
    host = url.removeprefix("http://")
    assert pinned.ref == f"{host}/mlfactory/pytorch@{DIGEST}"
    # the password comes along for the engine's pull (the kubelet uses its pull secret)
    assert (pinned.in_registry, pinned.password) == (True, "s3cret")
    # the same digest reference without a reachable registry, by tag, fails and says where
    with pytest.raises(RegistryError):
        await pin_image("mlfactory/pytorch:2.5", Registry(url=url))


async def test_an_image_elsewhere_or_without_a_registry_is_used_as_named():
    url = f"http://127.0.0.1:{free_port()}"
    elsewhere = await pin_image("quay.io/jupyter/base-notebook:2024-10-01", Registry(url=url))
    assert (elsewhere.ref, elsewhere.in_registry, elsewhere.password) == (
        "quay.io/jupyter/base-notebook:2024-10-01",
        False,
        "",
    )
    local = await pin_image("mlfactory/pytorch:2.5", Registry())
    assert (local.ref, local.in_registry) == ("mlfactory/pytorch:2.5", False)
