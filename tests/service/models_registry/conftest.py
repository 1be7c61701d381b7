"""Fixtures of the model registry tests: the service with a model repository, its users."""

from __future__ import annotations

import pytest

from ..helpers import platform_with


@pytest.fixture
def users(hub_state) -> dict[str, str]:
    return {
        "alice": hub_state.add_user("alice", groups=("ds",)),
        "bob": hub_state.add_user("bob"),
        "mallory": hub_state.add_user("mallory", groups=("ml",)),
    }


@pytest.fixture
async def svc(service, tmp_path, users):
    return await service(
        platform_with(models={"repository": str(tmp_path / "models"), "max_upload_bytes": "256Ki"})
    )
