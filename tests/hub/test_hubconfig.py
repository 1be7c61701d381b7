"""Platform config → JupyterHub config, and the shipped jupyterhub_config.py end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from mlfactory.hub import hubconfig
from mlfactory.hub.home import HomeSummary
from mlfactory.hub.hubconfig import (
    TEMPLATES,
    apply_embedded_defaults,
    apply_platform,
    running_on_kubernetes,
)
from mlfactory.hub.platform_config import (
    PACKAGED_CONFIG,
    hub_state_dir,
    load_platform_config,
    parse_platform_config,
)
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

SHIPPED = Path(hubconfig.__file__).with_name("jupyterhub_config.py")


@pytest.fixture
def platform():
    return load_platform_config(PACKAGED_CONFIG)


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("MLFACTORY_DATA", str(d))
    return d


# --- apply_platform ----------------------------------------------------------------------------


def test_templates_dir_exists_and_has_login():
    assert (TEMPLATES / "login.html").is_file()


def test_apply_platform_on_fresh_config(platform):
    c = Config()
    apply_platform(c, platform)
    assert c.JupyterHub.template_paths == [str(TEMPLATES)]
    template_vars = dict(c.JupyterHub.template_vars)
    home = template_vars.pop("mlfactory_home")
    assert template_vars == {"mlfactory_platform_name": "mlfactory"}
    # the home page asks the service over the budget gate's channel: same address and secret
    gate = c.MLFactoryLocalSpawner.budget_check
    assert isinstance(home, HomeSummary) and (home.url, home.secret) == (gate.url, gate.secret)
    assert c.Spawner.default_url == "/lab"
    assert c.JupyterHub.allow_named_servers is True
    # resources come from the resolver at each spawn, not from static limits; the only
    # environment every server gets is where the platform service is
    assert "cpu_limit" not in c.Spawner
    assert list(c.Spawner.environment) == ["MLFACTORY_SERVICE_URL"]


def test_apply_platform_runs_the_platform_service_with_least_privilege(platform):
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:users:name"]}]
    env = {"MLFACTORY_SERVICE_SECRET": "s3cret", "MLFACTORY_SERVICE_PORT": "18181"}
    apply_platform(c, platform, env)
    service = next(s for s in c.JupyterHub.services if s["name"] == "mlfactory")
    assert service["url"] == "http://127.0.0.1:18181"
    assert service["command"][-2:] == ["-m", "mlfactory.service"]
    assert service["environment"]["MLFACTORY_SERVICE_SECRET"] == "s3cret"
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["mlfactory-service"]["services"] == ["mlfactory"]
    assert not any(s.startswith("admin:") and s != "admin:server_state"
                   for s in roles["mlfactory-service"]["scopes"])  # fmt: skip
    # the admin's own user-role scopes are kept; users may reach the service
    assert roles["user"]["scopes"] == [
        "self",
        "read:users:name",
        "access:services!service=mlfactory",
        "access:services!service=models",  # owners call their models with their tokens
    ]
    # workspace shares: only the service may grant them (after the sharing rules); neither
    # users nor their servers' tokens hold any ``shares`` scope, so no notebook bypasses them
    assert "shares" in roles["mlfactory-service"]["scopes"]
    holders = [*roles["user"]["scopes"], *c.Spawner.server_token_scopes]
    assert not [s for s in holders if s.split("!")[0] == "shares"], holders
    assert "read:groups:name" not in c.Spawner.server_token_scopes
    assert set(c.JupyterHub.custom_scopes) == {
        "custom:mlfactory:budgets:read",
        "custom:mlfactory:budgets:write",
        "custom:mlfactory:usage:read",
        "custom:mlfactory:components:review",
        "custom:mlfactory:models:predict",  # the models service, served by default
    }
    gate = c.MLFactoryLocalSpawner.budget_check
    assert gate.url == "http://127.0.0.1:18181/services/mlfactory" and gate.secret == "s3cret"
    assert gate.when_unreachable == platform.accounting.when_unreachable
    assert c.Spawner.environment["MLFACTORY_SERVICE_URL"] == gate.url
    # without a configured secret every hub start makes a new one
    c2, c3 = Config(), Config()
    apply_platform(c2, platform, {})
    apply_platform(c3, platform, {})
    assert (
        c2.MLFactoryLocalSpawner.budget_check.secret != c3.MLFactoryLocalSpawner.budget_check.secret
    )


def test_apply_platform_loads_groups_and_members(platform):
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    raw["groups"][0]["members"] = ["dana", "eve"]
    c = Config()
    c.JupyterHub.load_groups = {"data-science": {"users": ["kept"]}, "other": {"users": []}}
    apply_platform(c, parse_platform_config(raw))
    assert c.JupyterHub.load_groups["data-science"] == {"users": ["kept"]}  # admin's wins
    assert c.JupyterHub.load_groups["ml-engineering"] == {"users": []}
    assert "other" in c.JupyterHub.load_groups
    c = Config()
    apply_platform(c, parse_platform_config(raw))
    assert c.JupyterHub.load_groups["data-science"] == {"users": ["dana", "eve"]}


def test_apply_platform_leaves_groups_to_an_authenticator_that_manages_them(platform):
    c = Config()
    c.Authenticator.manage_groups = True
    apply_platform(c, platform)
    assert "load_groups" not in c.JupyterHub


def test_apply_platform_keeps_servers_running_across_hub_restarts(platform):
    c = Config()
    apply_platform(c, platform)
    assert c.JupyterHub.cleanup_servers is False


def test_apply_platform_keeps_an_admins_cleanup_servers(platform):
    c = Config()
    c.JupyterHub.cleanup_servers = True
    apply_platform(c, platform)
    assert c.JupyterHub.cleanup_servers is True


def test_apply_platform_keeps_earlier_settings(platform):
    c = Config()
    c.JupyterHub.template_paths = ["/site/templates"]
    c.JupyterHub.template_vars = {"org": "ACME", "mlfactory_platform_name": "acme-ml"}
    apply_platform(c, platform)
    assert c.JupyterHub.template_paths == [str(TEMPLATES), "/site/templates"]
    assert {k: v for k, v in c.JupyterHub.template_vars.items() if k != "mlfactory_home"} == {
        "org": "ACME",
        "mlfactory_platform_name": "acme-ml",
    }


# --- apply_embedded_defaults -------------------------------------------------------------------


def test_embedded_defaults(data):
    c = Config()
    apply_embedded_defaults(c, env={})
    assert data.is_dir()
    hub = data.resolve() / "hub"
    # users' accounts may pass through the state folder, never into the hub's part of it
    assert data.stat().st_mode & 0o777 == 0o711
    assert hub.stat().st_mode & 0o777 == 0o700
    assert (data / "logs").stat().st_mode & 0o777 == 0o700
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.JupyterHub.db_url == f"sqlite:///{hub / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.cookie_secret_file == str(hub / "jupyterhub_cookie_secret")
    assert c.ConfigurableHTTPProxy.pid_file == str(hub / "jupyterhub-proxy.pid")
    assert c.JupyterHub.authenticator_class == "mlfactory"
    assert c.MLFactoryAuthenticator.accounts_db_url == f"sqlite:///{hub / 'accounts.sqlite'}"
    assert c.Authenticator.admin_users == {"admin"}
    assert c.JupyterHub.spawner_class == "mlfactory-local"
    assert c.MLFactoryLocalSpawner.workspace_root == str(data.resolve() / "workspaces")
    assert c.MLFactoryLocalSpawner.log_root == str(data.resolve() / "logs" / "servers")
    assert c.JupyterHub.template_vars["mlfactory_signup_enabled"] is True


def test_embedded_defaults_read_the_env_mapping(data, monkeypatch):
    # the mapping passed in wins; the process environment is not consulted for these
    monkeypatch.setenv("MLFACTORY_PORT", "1111")
    monkeypatch.setenv("MLFACTORY_ADMIN_USER", "root-ish")
    c = Config()
    env = {"MLFACTORY_PORT": "9090", "MLFACTORY_IP": "10.1.2.3", "MLFACTORY_ADMIN_USER": "boss"}
    apply_embedded_defaults(c, env=env)
    assert c.JupyterHub.bind_url == "http://10.1.2.3:9090"
    assert c.Authenticator.admin_users == {"boss"}


def test_embedded_defaults_empty_admin_user_falls_back(data):
    c = Config()
    apply_embedded_defaults(c, env={"MLFACTORY_ADMIN_USER": ""})
    assert c.Authenticator.admin_users == {"admin"}


def test_embedded_defaults_keep_template_vars(data, platform):
    c = Config()
    apply_platform(c, platform)
    apply_embedded_defaults(c, env={})
    template_vars = dict(c.JupyterHub.template_vars)
    assert template_vars.pop("mlfactory_home")  # the home page's summary (apply_platform)
    assert template_vars == {
        "mlfactory_platform_name": "mlfactory",
        "mlfactory_signup_enabled": True,
        "mlfactory_local_accounts": True,
        "mlfactory_isolation_off": os.geteuid() != 0,
    }


def test_embedded_defaults_hub_state_is_private_even_in_an_open_folder(data):
    data.mkdir(mode=0o755)
    (data / "hub").mkdir(mode=0o755)
    apply_embedded_defaults(Config(), env={})
    assert data.stat().st_mode & 0o777 == 0o711  # no listing
    assert (data / "hub").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"KUBERNETES_SERVICE_HOST": ""}, False),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, True),
    ],
)
def test_running_on_kubernetes(env, expected):
    assert running_on_kubernetes(env) is expected


# --- the shipped jupyterhub_config.py ----------------------------------------------------------


def load_shipped() -> Config:
    loader = PyFileConfigLoader(SHIPPED.name, path=str(SHIPPED.parent))
    return loader.load_config()


@pytest.fixture
def hub_env(data, monkeypatch):
    for name in (
        "MLFACTORY_CONFIG",
        "MLFACTORY_EMBEDDED",
        "KUBERNETES_SERVICE_HOST",
        "MLFACTORY_PORT",
        "MLFACTORY_IP",
        "MLFACTORY_ADMIN_USER",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_shipped_config_refuses_bad_platform_file(hub_env, tmp_path):
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    raw["profiles"][2]["memory"] = "16 GB"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    hub_env.setenv("MLFACTORY_CONFIG", str(bad))
    with pytest.raises(SystemExit) as info:
        load_shipped()
    message = str(info.value.code)
    assert "refusing to start" in message
    assert f"{bad}: profiles[2].memory: '16 GB' is not a size; use e.g. '16Gi'" in message


def test_shipped_config_applies_embedded_defaults(hub_env, data):
    c = load_shipped()
    assert c.JupyterHub.template_paths[0] == str(TEMPLATES)
    assert c.JupyterHub.spawner_class == "mlfactory-local"
    assert c.JupyterHub.authenticator_class == "mlfactory"
    assert c.JupyterHub.db_url == f"sqlite:///{data.resolve() / 'hub' / 'jupyterhub.sqlite'}"


def test_shipped_config_keeps_servers_running_across_hub_restarts(hub_env, data):
    assert load_shipped().JupyterHub.cleanup_servers is False


def test_shipped_config_reads_env_for_port_and_admin(hub_env):
    hub_env.setenv("MLFACTORY_PORT", "8765")
    hub_env.setenv("MLFACTORY_ADMIN_USER", "chief")
    c = load_shipped()
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8765"
    assert c.Authenticator.admin_users == {"chief"}


def test_shipped_config_on_kubernetes_skips_embedded_defaults(hub_env, data):
    hub_env.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    c = load_shipped()
    assert c.JupyterHub.template_paths == [str(TEMPLATES)]
    assert "spawner_class" not in c.JupyterHub
    assert "authenticator_class" not in c.JupyterHub
    assert "db_url" not in c.JupyterHub
    assert not data.exists()


def test_shipped_config_embedded_off(hub_env):
    hub_env.setenv("MLFACTORY_EMBEDDED", "0")
    c = load_shipped()
    assert "spawner_class" not in c.JupyterHub
    assert c.JupyterHub.template_paths == [str(TEMPLATES)]


def test_apply_platform_serves_models_by_default(platform, hub_env):
    # the shipped config (models: {}) serves the registry's folder under the data dir
    c = Config()
    apply_platform(c, platform, {})
    assert [s["name"] for s in c.JupyterHub.services] == ["mlfactory", "models"]
    models = next(s for s in c.JupyterHub.services if s["name"] == "models")
    assert models["command"][-4:] == [
        "--repository",
        str(hub_state_dir() / "models"),
        "--auth",
        "hub",
    ]
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    raw["models"] = {"serve": False}
    c = Config()
    apply_platform(c, parse_platform_config(raw), {})
    assert [s["name"] for s in c.JupyterHub.services] == ["mlfactory"]
    raw["models"] = {"repository": "/srv/models", "names": ["iris"], "groups": ["data-science"]}
    c = Config()
    apply_platform(c, parse_platform_config(raw), {})
    models = next(s for s in c.JupyterHub.services if s["name"] == "models")
    assert models["command"][-4:] == ["--repository", "/srv/models", "--auth", "hub"]
    assert "custom:mlfactory:models:iris:predict" in c.JupyterHub.custom_scopes
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "model-users")
    assert role["groups"] == ["data-science"]
    assert role["scopes"] == ["custom:mlfactory:models:predict", "access:services!service=models"]
