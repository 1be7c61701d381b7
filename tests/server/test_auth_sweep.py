"""Every mlfactory route in the running server refuses callers it cannot authenticate
or authorize. New routes are picked up from the server's router, so they are covered
without editing this file.
"""

from __future__ import annotations

import json
import re

import pytest
from tornado import web
from tornado.routing import PathMatches, RuleRouter

pytestmark = pytest.mark.filterwarnings(
    # raised when an extension route lacks @web.authenticated (or an explicit opt-out)
    "error::jupyter_server.utils.JupyterServerAuthWarning"
)

VERBS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_GROUP = re.compile(r"\((?:\?P<\w+>)?[^()]*\)")


def _rules(router):
    for rule in router.rules:
        if isinstance(rule.target, RuleRouter):
            yield from _rules(rule.target)
        elif isinstance(rule.matcher, PathMatches):
            yield rule.matcher, rule.target


def _sample_path(matcher: PathMatches) -> str:
    """A concrete path the pattern matches, with each regex group filled in."""
    try:
        path = matcher.reverse(*["sample"] * (matcher._group_count or 0))
    except ValueError:  # tornado %-formats the pattern: a '%' in the base_url breaks it
        path = None
    if path is None:  # too complex for tornado to reverse
        path = _GROUP.sub("sample", matcher.regex.pattern).strip("^$").replace("\\", "")
    assert matcher.regex.match(path), f"sample {path!r} does not match {matcher.regex.pattern}"
    return path


def mlfactory_routes(serverapp) -> dict[str, type[web.RequestHandler]]:
    return {
        _sample_path(matcher): handler
        for matcher, handler in _rules(serverapp.web_app.default_router)
        if "/mlfactory/" in matcher.regex.pattern
    }


def _implements(handler: type[web.RequestHandler], verb: str) -> bool:
    return getattr(handler, verb.lower()) is not web.RequestHandler._unimplemented_method


async def _request(client, path, verb, headers):
    return await client.fetch(
        path,
        method=verb,
        headers=headers,
        body=None if verb in ("GET", "HEAD", "DELETE") else b"{}",
        allow_nonstandard_methods=True,
        follow_redirects=False,
        raise_error=False,
    )


def _assert_json_refusal(response, allowed_codes):
    where = f"{response.request.method} {response.request.url}"
    assert response.code in allowed_codes, f"{where} answered {response.code}"
    if response.request.method != "HEAD":
        reply = json.loads(response.body)
        assert set(reply) == {"message"}, f"{where}: {reply}"
        assert "Traceback" not in reply["message"]


def test_routes_are_found_once_under_base_url(jp_serverapp, jp_base_url):
    routes = mlfactory_routes(jp_serverapp)
    assert len(routes) >= 2, routes
    for path in (f"{jp_base_url}mlfactory/api/info", f"{jp_base_url}mlfactory/api/health"):
        assert path in routes
    assert all(path.startswith(jp_base_url) for path in routes)
    assert not any(path.count(jp_base_url.strip("/")) > 1 for path in routes)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "token not-the-token"}, {"Cookie": "username-localhost=forged"}],
    ids=["no-credentials", "wrong-token", "forged-cookie"],
)
async def test_unauthenticated_callers_are_refused(jp_serverapp, http_server_client, headers):
    routes = mlfactory_routes(jp_serverapp)
    assert len(routes) >= 2, routes
    for path in routes:
        for verb in VERBS:
            response = await _request(http_server_client, path, verb, headers)
            # 403 (jupyter_server's API answer when the login is missing), never a redirect
            _assert_json_refusal(response, {401, 403})


async def test_unauthorized_callers_are_refused(
    deny_all, jp_serverapp, http_server_client, jp_auth_header
):
    routes = mlfactory_routes(jp_serverapp)
    assert len(routes) >= 2, routes
    for path, handler in routes.items():
        for verb in VERBS:
            response = await _request(http_server_client, path, verb, jp_auth_header)
            # 403 from @authorized where the verb exists, 405 before any work where it does not
            _assert_json_refusal(response, {403} if _implements(handler, verb) else {405})


# --- owner-only routes ----------------------------------------------------------------------
# Every route, by its path after the base URL, with the verbs only the server's owner may use.
# Anyone the server is shared with passes the hub's access:servers check, so this table is the
# line between what the owner does (publishing, sharing, remotes, the owner's budget and
# stop-ticket, which use the server's token as the owner) and what a visitor working in the
# files may do too (read components, keep versions of the files they edit). A new route
# fails test_every_route_is_classified until it is added here.
OWNER_ONLY: dict[str, set[str]] = {
    "mlfactory/api/info": set(),
    "mlfactory/api/health": set(),
    "mlfactory/api/stop-ticket": {"GET"},
    "mlfactory/api/budget": {"GET"},
    "mlfactory/api/data/connections": {"GET"},
    "mlfactory/api/culling": {"GET"},
    "mlfactory/api/keepalive": {"POST"},
    "mlfactory/components/search": set(),
    "mlfactory/components/items/sample": set(),
    "mlfactory/components/snippet": set(),
    "mlfactory/components/sources": set(),
    "mlfactory/components/sources/refresh": {"POST"},
    "mlfactory/components/publish": {"POST"},
    "mlfactory/components/submissions": {"GET"},
    "mlfactory/components/submissions/sample": {"GET"},
    "mlfactory/components/submissions/sample/review": {"POST"},
    "mlfactory/history/status": set(),
    "mlfactory/history/init": set(),
    "mlfactory/history/versions": set(),
    "mlfactory/history/diff": set(),
    "mlfactory/history/restore": set(),
    "mlfactory/history/settings": set(),
    "mlfactory/history/remote": {"PUT", "DELETE"},
    "mlfactory/history/push": {"POST"},
    "mlfactory/history/pull": {"POST"},
    "mlfactory/shares": {"GET", "POST"},
    "mlfactory/shares/received": {"GET"},
    "mlfactory/shares/recipients": {"GET"},
    "mlfactory/shares/sample": {"GET", "PATCH", "DELETE"},
    "mlfactory/shares/sample/open": {"POST"},
    "mlfactory/workspace-shares": {"GET", "POST", "DELETE"},
    # the Models panel: the server's token speaks for its owner at the model registry
    "mlfactory/models": {"GET"},
    "mlfactory/models/sample": {"GET", "PATCH"},
    "mlfactory/models/sample/versions/sample": {"PATCH"},
    "mlfactory/models/sample/aliases/sample": {"PUT"},
}


def _relative(path: str, base_url: str) -> str:
    return path[len(base_url) :]


def test_every_route_is_classified(jp_serverapp, jp_base_url):
    routes = mlfactory_routes(jp_serverapp)
    unclassified = sorted(
        _relative(p, jp_base_url) for p in routes if _relative(p, jp_base_url) not in OWNER_ONLY
    )
    assert not unclassified, (
        f"Classify these routes in OWNER_ONLY (owner-only verbs, or an empty set): {unclassified}"
    )
    gone = set(OWNER_ONLY) - {_relative(p, jp_base_url) for p in routes}
    assert not gone, f"OWNER_ONLY lists routes that no longer exist: {sorted(gone)}"
    for path, handler in routes.items():
        for verb in OWNER_ONLY[_relative(path, jp_base_url)]:
            assert _implements(handler, verb), f"{verb} {path} is listed but not implemented"


async def test_owner_only_verbs_refuse_a_user_the_server_is_shared_with(
    hub_server_shared_with_caller, jp_serverapp, jp_base_url, http_server_client, jp_auth_header
):
    """The caller (alice) passes authentication and authorization on bob's server, as a user
    it is shared with does under JupyterHub; every owner-only verb still says no, before any
    work, naming the owner."""
    routes = mlfactory_routes(jp_serverapp)
    checked = 0
    for path in routes:
        for verb in sorted(OWNER_ONLY.get(_relative(path, jp_base_url), ())):
            headers = {**jp_auth_header, "Content-Type": "application/json"}
            response = await _request(http_server_client, path, verb, headers)
            _assert_json_refusal(response, {403})
            message = json.loads(response.body)["message"]
            assert "Only the owner of this server (bob)" in message, (verb, path, message)
            checked += 1
    assert checked >= 20
