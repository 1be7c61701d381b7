"""``proxy:`` in the platform config → the hub's proxy settings (hub_config/proxy.py), and the
Traefik proxy class's own duties (hub_config/traefik_proxy.py) on a real traefik process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml
from mlfactory.hub import proxy as proxy_module
from mlfactory.hub.hubconfig import apply_embedded_defaults
from mlfactory.hub.platform_config import (
    PACKAGED_CONFIG,
    ConfigError,
    parse_platform_config,
)
from mlfactory.hub.proxy import apply_proxy, find_traefik, traefik_files
from mlfactory.hub.traefik_proxy import MLFactoryTraefikProxy
from traitlets.config import Config

from tests.ports import free_port


def platform_with(proxy: dict | None):
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    if proxy is not None:
        raw["proxy"] = proxy
    return parse_platform_config(raw)


def test_the_default_proxy_stays_configurable_http_proxy(tmp_path):
    platform = platform_with(None)
    assert platform.proxy.kind == "chp"
    c = Config()
    apply_proxy(c, platform.proxy, tmp_path)
    assert "proxy_class" not in c.JupyterHub
    assert "TraefikProxy" not in c


def test_an_unknown_proxy_kind_is_refused_with_the_choices():
    with pytest.raises(ConfigError) as info:
        platform_with({"kind": "nginx"})
    assert "proxy.kind" in str(info.value)
    assert "'chp'" in str(info.value) and "'traefik'" in str(info.value)


def test_traefik_runs_from_the_hubs_private_folder(tmp_path):
    c = Config()
    apply_proxy(c, platform_with({"kind": "traefik"}).proxy, tmp_path)
    files = traefik_files(tmp_path)
    assert c.JupyterHub.proxy_class == "mlfactory.hub.traefik_proxy.MLFactoryTraefikProxy"
    assert c.TraefikProxy.should_start is True
    assert c.TraefikProxy.static_config_file == str(files.static)
    assert c.TraefikFileProviderProxy.dynamic_config_file == str(files.dynamic)
    assert c.MLFactoryTraefikProxy.pid_file == str(files.pid)
    assert c.MLFactoryTraefikProxy.traefik_binary == find_traefik()
    assert c.TraefikProxy.traefik_api_url.startswith("http://127.0.0.1:")
    # uploads as long as configurable-http-proxy allows them
    entry = c.TraefikProxy.extra_static_config["entryPoints"]["http"]
    assert entry["transport"]["respondingTimeouts"]["readTimeout"] == "0s"
    # and a hub stop is not held up 10 s by Traefik's graceful shutdown
    assert entry["transport"]["lifeCycle"]["graceTimeOut"] == "1s"
    assert entry["http"]["encodedCharacters"]["allowEncodedSlash"] is True
    # a new API password at each start, never written down in clear
    again = Config()
    apply_proxy(again, platform_with({"kind": "traefik"}).proxy, tmp_path)
    assert len(c.TraefikProxy.traefik_api_password) >= 40
    assert c.TraefikProxy.traefik_api_password != again.TraefikProxy.traefik_api_password


def test_an_admins_traefik_api_url_is_kept(tmp_path):
    c = Config()
    c.TraefikProxy.traefik_api_url = "http://127.0.0.1:9999"
    apply_proxy(c, platform_with({"kind": "traefik"}).proxy, tmp_path)
    assert c.TraefikProxy.traefik_api_url == "http://127.0.0.1:9999"


def test_traefik_without_its_binary_refuses_to_start_and_says_what_to_install(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(proxy_module, "find_traefik", lambda: None)  # the fault: not installed
    with pytest.raises(ConfigError) as info:
        apply_proxy(Config(), platform_with({"kind": "traefik"}).proxy, tmp_path)
    assert "pip install 'mlfactory[traefik]'" in str(info.value)
    assert "proxy.kind: chp" in str(info.value)


def test_the_embedded_defaults_apply_the_proxy_section(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    c = Config()
    apply_embedded_defaults(c, env={}, platform=platform_with({"kind": "traefik"}))
    hub_state = (tmp_path / "data" / "hub").resolve()
    assert c.JupyterHub.proxy_class.endswith("MLFactoryTraefikProxy")
    assert c.TraefikProxy.static_config_file == str(hub_state / "traefik.toml")
    assert stat.S_IMODE(hub_state.stat().st_mode) == 0o700


# --- MLFactoryTraefikProxy -----------------------------------------------------------------------


def test_the_api_password_hash_is_bcrypt_and_cheap():
    p = MLFactoryTraefikProxy(traefik_api_password="x" * 43, should_start=True)
    hashed = p.traefik_api_hashed_password
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw(b"x" * 43, hashed.encode())


def start_traefik(static: Path) -> subprocess.Popen:
    """A real traefik on a free port with ``static`` as its config file."""
    static.write_text(f'[entryPoints.http]\naddress = "127.0.0.1:{free_port()}"\n')
    return subprocess.Popen(
        [find_traefik(), "--configfile", str(static)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_traefik_left_by_a_killed_hub_is_stopped_before_the_next_starts(tmp_path):
    files = traefik_files(tmp_path)
    leftover = start_traefik(files.static)
    try:
        files.pid.write_text(str(leftover.pid))
        p = MLFactoryTraefikProxy(
            static_config_file=str(files.static), pid_file=str(files.pid), should_start=True
        )
        p._stop_leftover()  # straight after its start: traefik may still be in exec
        try:
            leftover.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the leftover traefik still runs") from None
    finally:
        if leftover.poll() is None:
            os.killpg(leftover.pid, signal.SIGKILL)
            leftover.wait()


def test_a_reused_pid_is_left_alone(tmp_path):
    files = traefik_files(tmp_path)
    files.static.write_text("")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        files.pid.write_text(str(stranger.pid))
        p = MLFactoryTraefikProxy(
            static_config_file=str(files.static), pid_file=str(files.pid), should_start=True
        )
        p._stop_leftover()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
