"""MLFactoryLocalSpawner against an in-process hub (MockHub) and real server processes."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from jupyterhub.spawner import SpawnException
from jupyterhub.tests.utils import add_user, api_request
from mlfactory.spawner.local import MLFactoryLocalSpawner

# A "server" that prints, then never listens (a frozen start-up).
NEVER_LISTENS = (
    "import time; print('loading the model weights', flush=True); "
    "print('still loading', flush=True); time.sleep(600)"
)


@pytest.fixture
def spawner_config(tmp_path, mockhub_config):
    return {
        **mockhub_config,
        "JupyterHub": {**mockhub_config["JupyterHub"], "spawner_class": MLFactoryLocalSpawner},
        "MLFactoryLocalSpawner": {
            "user_accounts": "none",
            "workspace_root": str(tmp_path / "workspaces"),
            "log_root": str(tmp_path / "logs"),
        },
        "Spawner": {"start_timeout": 60, "http_timeout": 60},
    }


@pytest.fixture
def server_exits_at_start(spawner_config):
    """A real jupyterhub-singleuser that refuses its settings and exits during start-up."""
    spawner_config["Spawner"]["args"] = ["--ServerApp.root_dir=/nonexistent/mlfactory-test"]
    return spawner_config


async def test_spawn_starts_real_server_in_workspace(hub_app, spawner_config, tmp_path):
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="alice")
    await user.spawn()
    spawner = user.spawner
    try:
        assert await spawner.poll() is None
        workspace = tmp_path / "workspaces" / "alice"
        assert workspace.is_dir()
        assert oct(workspace.stat().st_mode & 0o777) == "0o700"
        r = await api_request(app, "users", "alice")
        assert r.json()["servers"][""]["ready"] is True
        # the hub reached the server through the proxy
        r = await api_request(app, "users", "alice", "server", "progress", stream=True)
        assert r.status_code == 200
    finally:
        await user.stop()
    assert await spawner.poll() is not None


async def test_spawn_failure_reaches_the_user_with_its_cause(hub_app, server_exits_at_start):
    app = await hub_app(server_exits_at_start)
    add_user(app.db, app, name="bob")
    r = await api_request(app, "users", "bob", "server", method="post")
    assert r.status_code == 500, r.text
    message = r.json()["message"]
    assert "stopped during start-up" in message
    assert "/nonexistent/mlfactory-test" in message
    assert "Traceback" not in message


async def test_spawner_raises_spawn_exception_with_log_cause(hub_app, server_exits_at_start):
    app = await hub_app(server_exits_at_start)
    user = add_user(app.db, app, name="carol")
    with pytest.raises(SpawnException) as info:
        await user.spawn()
    assert info.value.message.startswith("Your server stopped during start-up")


async def _progress_events(app, user: str) -> list[dict]:
    """Every event of ``user``'s progress stream, until it ends."""
    r = await api_request(app, "users", user, "server", "progress", stream=True)
    assert r.status_code == 200, r.text

    def read() -> list[dict]:
        with r:
            return [
                json.loads(line.split(":", 1)[1])
                for line in r.iter_lines(decode_unicode=True)
                if line.startswith("data:")
            ]

    return await asyncio.to_thread(read)


async def test_a_start_timeout_names_the_limit_and_the_last_log_lines(hub_app, spawner_config):
    # A server that prints and then never listens; the hub answers 202 at once, as on the
    # spawn page, and the user follows the progress stream.
    spawner_config["MLFactoryLocalSpawner"]["cmd"] = [sys.executable, "-c", NEVER_LISTENS]
    spawner_config["Spawner"]["start_timeout"] = 4
    spawner_config["JupyterHub"]["tornado_settings"] = {"slow_spawn_timeout": 0}
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="dave")
    r = await api_request(app, "users", "dave", "server", method="post")
    assert r.status_code == 202, r.text
    events = await _progress_events(app, "dave")
    failed = events[-1]
    assert failed["failed"] is True
    message = failed["message"]
    assert message.startswith(
        "Spawn failed: Your server did not accept connections within 4 s, so it was stopped."
    ), message
    assert "loading the model weights" in message and "still loading" in message
    assert "<pre>" in failed["html_message"] and "still loading" in failed["html_message"]
    # and the process is gone, its ledger session ended
    spawner = user.spawners[""]
    assert await spawner.poll() is not None
    assert spawner.ledger is None


async def test_refuses_root_when_disallowed(hub_app, spawner_config, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    spawner_config["MLFactoryLocalSpawner"]["allow_root"] = False
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="dave")
    with pytest.raises(SpawnException, match="allow_root = False"):
        await user.spawn()


def test_args_add_allow_root_only_when_servers_run_as_root(monkeypatch):
    spawner = MLFactoryLocalSpawner(user=_FakeUser("erin"), user_accounts="none")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert "--allow-root" in spawner.get_args()
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "--allow-root" not in spawner.get_args()
    monkeypatch.setattr("os.geteuid", lambda: 0)
    for mode in ("create", "auto"):  # auto as root creates accounts
        spawner.user_accounts = mode
        assert "--allow-root" not in spawner.get_args()


def test_auto_accounts_follow_the_hub_user(monkeypatch):
    spawner = MLFactoryLocalSpawner(user=_FakeUser("erin"))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert spawner.accounts_mode == "create"
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert spawner.accounts_mode == "none"


def test_defaults_use_this_interpreter_and_open_lab():
    spawner = MLFactoryLocalSpawner(user=_FakeUser("erin"))
    assert spawner.cmd[0] == sys.executable
    assert spawner.default_url == "/lab"


def test_workspace_and_log_names_go_through_the_slug(tmp_path):
    spawner = MLFactoryLocalSpawner(
        user=_FakeUser("Mallory.X"), workspace_root=str(tmp_path), log_root=str(tmp_path)
    )
    assert spawner.workspace.parent == tmp_path
    assert spawner.workspace.name.startswith("mallory-x---")
    assert spawner.workspace.name != "mallory-x"


class _FakeUser:
    """The few User attributes the spawner reads outside a hub."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"/user/{name}/"
        self.escaped_name = name


async def test_workspace_parents_and_log_are_private(hub_app, spawner_config, tmp_path):
    spawner_config["MLFactoryLocalSpawner"]["workspace_root"] = str(tmp_path / "a" / "b")
    spawner_config["MLFactoryLocalSpawner"]["log_root"] = str(tmp_path / "logs" / "servers")
    # an admin's popen_kwargs may repeat a key the spawner sets itself
    spawner_config["MLFactoryLocalSpawner"]["popen_kwargs"] = {"start_new_session": True}
    app = await hub_app(spawner_config)
    user = add_user(app.db, app, name="frank")
    await user.spawn()
    try:
        for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "frank"):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o700
        log = tmp_path / "logs" / "servers" / "frank.log"
        assert log.stat().st_mode & 0o777 == 0o600
        assert b"Jupyter Server" in log.read_bytes()
    finally:
        await user.stop()


async def test_progress_follows_the_current_start_only(tmp_path):
    spawner = MLFactoryLocalSpawner(user=_FakeUser("gina"))
    spawner._emit(90, "JupyterLab is ready")  # left over from an earlier start
    stream = spawner.progress()
    assert (await anext(stream))["message"] == "JupyterLab is ready"
    # a new start replaces the event list; the open stream must follow it
    spawner._events = []
    spawner._events_changed.set()
    spawner._emit(10, "Preparing your workspace")
    assert (await anext(stream))["message"] == "Preparing your workspace"
    await stream.aclose()


async def test_stop_forgets_the_last_start_progress():
    spawner = MLFactoryLocalSpawner(user=_FakeUser("hal"))
    spawner._emit(90, "JupyterLab is ready")
    await spawner.stop()
    assert spawner._events == []


def test_owned_dir_never_follows_a_planted_symlink(tmp_path):
    import pwd

    from mlfactory.spawner.os_accounts import owned_dir

    target = tmp_path / "etc"
    target.mkdir(mode=0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / "etc").symlink_to(target)  # what a user could plant in their own home
    nobody = pwd.getpwnam("nobody")
    with pytest.raises(OSError):
        owned_dir(home / "etc", nobody)
    assert target.stat().st_uid == 0 and target.stat().st_mode & 0o777 == 0o755
    owned_dir(home / "work", nobody)
    st = (home / "work").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (nobody.pw_uid, 0o700)
