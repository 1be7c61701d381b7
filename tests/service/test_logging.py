"""The service scrubs secrets from logged URLs by JupyterHub's rules without importing
``jupyterhub.log`` (which loads the hub's handlers, spawner and metrics)."""

from __future__ import annotations

import logging

import pytest
from jupyterhub.log import SCRUB_PARAM_KEYS as HUB_KEYS
from jupyterhub.log import _scrub_uri as hub_scrub
from mlfactory.service.app import log_through
from mlfactory.service.base import SCRUB_PARAM_KEYS, scrub_uri

URIS = [
    "/services/mlfactory/oauth_callback?code=abc123&state=xyz",
    "/services/mlfactory/api/usage?token=s3cret&by=user",
    "/services/mlfactory/api/usage?by=user",
    "/services/mlfactory/dashboard?_xsrf=2|abc|def&tab=budgets",
    "/services/mlfactory/?api_key=1&keys=2&monkey=3&page=4",
    "/hub/api/authorizations/token/abcdef0123",
    "/hub/api/authorizations/cookie/jupyterhub-services/abcdef",
    "/services/mlfactory/api/x?flag&token",
    "/services/mlfactory/api/x?auth_thing=a=b=c",
    "/services/mlfactory/api/x?",
    "",
]


def test_the_keys_are_jupyterhubs():
    assert tuple(SCRUB_PARAM_KEYS) == tuple(HUB_KEYS)


@pytest.mark.parametrize("uri", URIS)
def test_scrubbed_as_jupyterhub_scrubs(uri):
    assert scrub_uri(uri) == hub_scrub(uri)


def test_secrets_are_gone():
    out = scrub_uri("/services/mlfactory/oauth_callback?code=abc123&state=xyz&next=/home")
    assert "abc123" not in out and "xyz" not in out and "next=/home" in out


def test_the_platforms_and_tornados_lines_reach_the_services_handler():
    service_log = logging.getLogger("PlatformService-test")
    service_log.propagate = False
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    service_log.addHandler(handler)
    saved = {
        n: (logging.getLogger(n).parent, logging.getLogger(n).level)
        for n in ("mlfactory", "tornado")
    }
    try:
        log_through(service_log)
        logging.getLogger("mlfactory.service.accounting").info("Gates: 1 decided")
        logging.getLogger("tornado.access").info("200 POST /api/gates")
        logging.getLogger("mlfactory.service.accounting").debug("not at INFO")
    finally:
        for name, (parent, level) in saved.items():
            logging.getLogger(name).parent = parent
            logging.getLogger(name).setLevel(level)
    assert [r.getMessage() for r in seen] == ["Gates: 1 decided", "200 POST /api/gates"]
