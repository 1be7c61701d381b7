"""What the spawner tells the platform service about a session's end, on an in-process hub
(MockHub) with real server processes: a stop, an exit, and a start that never became ready
(which costs nothing). JupyterHub clears a spawner's state as soon as its poll finds the
process gone; the session's end must be reported all the same.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from jupyterhub.tests.utils import add_user, api_request
from mlfactory.spawner.journal import Journal
from mlfactory.spawner.local import MLFactoryLocalSpawner

NEVER_LISTENS = "import time; time.sleep(600)"


ENDS: list[tuple[str, str, bool]] = []  # module-level: the hub's config copies its values


class Recorder:
    """A budget check that admits every spawn and records the spawner's end notices."""

    ends = ENDS

    async def __call__(self, spawner, request) -> None:
        return None

    async def ended(self, key: str, when: float, reason: str, never_ready: bool = False) -> None:
        ENDS.append((key, reason, never_ready))


@pytest.fixture
def recorder() -> Recorder:
    ENDS.clear()
    return Recorder()


@pytest.fixture
def spawner_config(tmp_path, mockhub_config, recorder):
    return {
        **mockhub_config,
        "JupyterHub": {**mockhub_config["JupyterHub"], "spawner_class": MLFactoryLocalSpawner},
        "MLFactoryLocalSpawner": {
            "user_accounts": "none",
            "workspace_root": str(tmp_path / "workspaces"),
            "log_root": str(tmp_path / "logs"),
            "journal_root": str(tmp_path / "journal"),
            "budget_check": recorder,
        },
        "Spawner": {"start_timeout": 60, "http_timeout": 60},
    }


async def test_a_stop_is_reported_at_once(hub_app, spawner_config, recorder, tmp_path):
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="alice")
    await user.spawn()
    key = user.spawner.ledger["key"]
    assert Journal(tmp_path / "journal").read(key).ready is True
    await user.stop()
    assert recorder.ends == [(key, "stopped", False)]
    assert Journal(tmp_path / "journal").read(key).stopped_at is not None


async def test_an_exit_is_reported_when_the_hub_polls(hub_app, spawner_config, recorder):
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="bob")
    await user.spawn()
    spawner = user.spawner
    key = spawner.ledger["key"]
    os.killpg(spawner.pid, signal.SIGKILL)
    spawner.proc.wait()
    assert await spawner.poll() is not None  # the hub's poll clears the spawner's state
    assert recorder.ends == [(key, "exited", False)]
    await spawner.poll()
    assert len(recorder.ends) == 1  # once per session


async def test_a_start_that_never_listened_costs_nothing(
    hub_app, spawner_config, recorder, tmp_path
):
    spawner_config["MLFactoryLocalSpawner"]["cmd"] = [sys.executable, "-c", NEVER_LISTENS]
    spawner_config["Spawner"]["start_timeout"] = 4
    spawner_config["JupyterHub"]["tornado_settings"] = {"slow_spawn_timeout": 0}
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="carol")
    r = await api_request(app, "users", "carol", "server", method="post")
    assert r.status_code == 202, r.text
    spawner = user.spawners[""]
    await asyncio.wait([spawner._spawn_future])  # the spawn fails at start_timeout
    assert not spawner.pending and spawner.ledger is None
    ((key, reason, never_ready),) = recorder.ends
    assert reason == "failed to start" and never_ready is True
    record = Journal(tmp_path / "journal").read(key)
    assert record.ready is False and record.stopped_at is not None
