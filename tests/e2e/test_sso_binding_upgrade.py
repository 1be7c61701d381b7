"""A provider link stored by an older mlfactory (a plain, unkeyed digest of issuer and
subject in ``user_info``) on a real hub: refused when unkeyed links are no longer accepted,
accepted once otherwise and stored keyed at that sign-in (HMAC under the hub's own key, which
``<data>/hub/jupyterhub_crypt_key`` holds on one machine). The hub's database is written
while the hub is stopped, as an older hub (or someone with write access to it) left it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
import yaml
from mlfactory.hub.sso_claims import binding, binding_key

from tests.oidc import CLIENT_ID, CLIENT_SECRET, OIDCProvider, provider_problem
from tests.ports import free_port

from .conftest import discard_hub, example_config, prepare_hub, start_hub, stop_hub
from .helpers import rest_token
from .test_sso_login import hub_user, sso_login


def store_unkeyed_link(data: Path, name: str, issuer: str, subject: str) -> None:
    """What hubs before the keyed binding kept in the user's ``user_info``."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()
    with sqlite3.connect(data / "hub" / "jupyterhub.sqlite") as db:
        db.execute(
            "UPDATE users SET user_info = ? WHERE name = ?",
            (json.dumps({"oidc": {"sha256": digest}}), name),
        )


def restart(hub, config_path: Path, provider: OIDCProvider, log: Path, **oidc):
    """The hub again on the same data (a new port), with ``auth.oidc`` changed by ``oidc``;
    the provider again with the new callback (its accounts are new: set them after)."""
    stop_hub(hub)
    config = yaml.safe_load(config_path.read_text())
    config["auth"]["oidc"].update(oidc)
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(hub.data, config=config_path)
    provider.redirect_uris = [f"{hub.url}/hub/oauth_callback"]
    provider.start(log)
    return hub


def test_an_unkeyed_link_works_once_and_is_stored_keyed(browser):
    problem = provider_problem()
    if problem:
        pytest.fail(f"the OIDC provider cannot run: {problem}")
    provider = OIDCProvider(port=free_port())
    secret = Path(tempfile.mkstemp(prefix="mlf-oidc-secret-")[1])
    secret.write_text(CLIENT_SECRET)
    log = Path(tempfile.mkstemp(prefix="mlf-oidc-provider-", suffix=".log")[1])
    provider.start(log)
    config = example_config()
    config["auth"] = {
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": {"file": str(secret)},
            "allowed_groups": ["data-science"],
        }
    }
    data, config_path = prepare_hub("sso-upgrade", config)
    hub = start_hub(data, config=config_path)
    provider.redirect_uris = [f"{hub.url}/hub/oauth_callback"]
    provider.start(log)
    try:
        provider.set_account("una", groups=["data-science"])
        context = browser.new_context()
        assert sso_login(context.new_page(), hub, "una").status == 302
        context.close()

        # an older hub's link, and unkeyed links no longer accepted: una is refused
        store_unkeyed_link(data, "una", provider.issuer, "una")
        hub = restart(hub, config_path, provider, log, accept_unkeyed_bindings=False)
        provider.set_account("una", groups=["data-science"])
        context = browser.new_context()
        page = context.new_page()
        assert sso_login(page, hub, "una").status == 403
        assert "belongs to another account" in page.locator("body").inner_text()
        context.close()

        # accepted (the default): una signs in, and the link is now the keyed one
        hub = restart(hub, config_path, provider, log, accept_unkeyed_bindings=True)
        provider.set_account("una", groups=["data-science"])
        context = browser.new_context()
        assert sso_login(context.new_page(), hub, "una").status == 302
        context.close()
        key = bytes.fromhex((data / "hub" / "jupyterhub_crypt_key").read_text().strip())
        stored = hub_user(hub, rest_token(hub), "una")["user_info"]["oidc"]
        assert stored == binding(provider.issuer, "una", "una", key=binding_key(key))
    finally:
        provider.stop()
        discard_hub(hub, config_path)
        secret.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
