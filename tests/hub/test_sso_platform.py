"""Single sign-on on Kubernetes: the Helm chart runs only ``apply_platform`` (its
``hub.extraConfig``), so with ``auth.oidc`` in the platform config that call must switch
the hub to the provider, over the chart's default authenticator; a missing secret stops the
start with the key. Against a real oidc-provider (tests/oidc) for the discovery document."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlfactory.hub.platform_config import ConfigError, parse_platform_config
from mlfactory.hub.sso import LocalAndSSOAuthenticator
from traitlets.config import Config

from tests.oidc import CLIENT_ID, OIDCProvider, provider_problem
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_FILE = ROOT / "deploy" / "helm" / "mlfactory-platform.yaml"
VALUES = ROOT / "deploy" / "helm" / "values-mlfactory.yaml"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    problem = provider_problem()
    if problem:
        pytest.fail(f"the OIDC provider cannot run: {problem}")
    p = OIDCProvider(port=free_port())
    p.start(tmp_path_factory.mktemp("oidc") / "provider.log")
    yield p
    p.stop()


def kube_platform(tmp_path: Path, oidc: dict | None) -> Path:
    """The chart's platform config (backend kubernetes), with ``auth.oidc`` if given."""
    raw = yaml.safe_load(PLATFORM_FILE.read_text(encoding="utf-8"))
    if oidc is not None:
        raw["auth"] = {"oidc": oidc}
    parse_platform_config(raw)  # a valid file, as `mlfactory config check` would say
    path = tmp_path / "mlfactory.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


CHART_CRYPT_KEY = "0f" * 32


def run_extra_config(
    monkeypatch, tmp_path: Path, config_file: Path, crypt_key: str | None = CHART_CRYPT_KEY
) -> Config:
    """The chart's ``hub.extraConfig`` over what the chart itself set before it (including
    the ``hub.config.CryptKeeper.keys`` it generates, unless ``crypt_key`` is None)."""
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    for name, value in values["hub"]["extraEnv"].items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFACTORY_CONFIG", str(config_file))
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    c = Config()
    c.JupyterHub.authenticator_class = "dummy"  # the chart's default
    c.JupyterHub.spawner_class = "kubespawner"
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if crypt_key:
        c.CryptKeeper["keys"] = [crypt_key]
    for _, snippet in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(snippet, "hub.extraConfig", "exec"), {"c": c})  # noqa: S102
    return c


def oidc_section(provider: OIDCProvider, **over) -> dict:
    return {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": {"env": "MLF_TEST_OIDC_SECRET"},
        "allowed_groups": ["data-science"],
        "admin_groups": ["platform-admins"],
        "button_label": "Sign in with Example SSO",
        **over,
    }


def test_the_chart_signs_in_through_the_configured_provider(provider, monkeypatch, tmp_path):
    monkeypatch.setenv("MLF_TEST_OIDC_SECRET", "the-client-secret")
    c = run_extra_config(monkeypatch, tmp_path, kube_platform(tmp_path, oidc_section(provider)))
    assert c.JupyterHub.authenticator_class is LocalAndSSOAuthenticator
    assert c.JupyterHub.spawner_class == "mlfactory-kubernetes"
    o = c.OIDCAuthenticator
    assert (o.client_id, o.client_secret) == (CLIENT_ID, "the-client-secret")
    assert o.token_url == f"{provider.issuer}/token"  # from the provider's discovery
    assert o.manage_groups is True
    assert (o.allowed_groups, o.admin_groups) == ({"data-science"}, {"platform-admins"})
    assert c.JupyterHub.template_vars["mlfactory_sso"] == {"label": "Sign in with Example SSO"}
    # the chart's generated key: auth_state (the ID token for the provider's logout) is kept
    assert c.CryptKeeper["keys"] == [CHART_CRYPT_KEY] and c.Authenticator.enable_auth_state
    # the groups claim drives the hub groups: the platform's groups still exist to receive it
    assert "data-science" in c.JupyterHub.load_groups
    auth = LocalAndSSOAuthenticator(config=c)
    assert not auth.manage_groups and auth.sso.manage_groups


def test_without_oidc_the_chart_keeps_its_own_authenticator(monkeypatch, tmp_path):
    c = run_extra_config(monkeypatch, tmp_path, kube_platform(tmp_path, None))
    assert c.JupyterHub.authenticator_class == "dummy"
    assert "mlfactory_sso" not in c.JupyterHub.get("template_vars", {})


def test_a_missing_client_secret_stops_the_chart_with_the_key(provider, monkeypatch, tmp_path):
    monkeypatch.delenv("MLF_TEST_OIDC_SECRET", raising=False)
    config = kube_platform(tmp_path, oidc_section(provider))
    with pytest.raises(ConfigError, match=r"auth\.oidc\.client_secret\.env"):
        run_extra_config(monkeypatch, tmp_path, config)


def test_without_the_charts_encryption_key_sso_stops_with_what_to_set(
    provider, monkeypatch, tmp_path
):
    monkeypatch.setenv("MLF_TEST_OIDC_SECRET", "the-client-secret")
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    config = kube_platform(tmp_path, oidc_section(provider))
    with pytest.raises(ConfigError, match=r"^auth\.oidc: .*JUPYTERHUB_CRYPT_KEY"):
        run_extra_config(monkeypatch, tmp_path, config, crypt_key=None)
