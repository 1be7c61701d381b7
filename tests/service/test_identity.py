"""A server's managed identity as rules (``platform_service/identity.py``), its settings
(``data.identity``), and the service's hub client when the hub is down."""

from __future__ import annotations

import pytest
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.identity import (
    NotAnIdentity,
    Policy,
    TokenFacts,
    bound_server,
    expired_message,
    minted_answer,
    note,
    recognise,
    scopes,
    token_server,
)
from mlfactory.service.identity_mint import HubUnavailable, IdentityMint

from ..ports import free_port
from .helpers import platform_with

T0 = 1_800_000_000.0


def model(*scopes_: str, name: str = "alice", kind: str = "user") -> dict:
    return {"name": name, "kind": kind, "scopes": list(scopes_), "token_id": "a7"}


def identity_model(server: str = "", name: str = "alice") -> dict:
    return model(*scopes(name, server, "mlfactory"), name=name)


def facts(server: str = "", life: float = 1800, user: str = "alice") -> TokenFacts:
    return TokenFacts(note=note(user, server), created=T0, expires_at=T0 + life)


def test_an_identity_names_one_server_and_can_do_nothing_else():
    got = scopes("alice", "gpu", "mlfactory")
    assert got == ["read:servers!server=alice/gpu", "access:services!service=mlfactory"]
    assert not any(s.startswith(("access:servers", "servers", "tokens")) for s in got)
    assert bound_server(identity_model("gpu")) == "gpu"
    assert bound_server(identity_model("")) == ""


def test_the_binding_and_the_server_token_are_told_apart():
    server_token = model("access:servers!server=alice/", "access:services!service=mlfactory")
    assert token_server(server_token) == "" and bound_server(server_token) is None
    assert token_server(identity_model()) is None  # an identity cannot mint its successor
    # another user's server, or two servers, name none
    assert bound_server(model("read:servers!server=bob/")) is None
    two = model("read:servers!server=alice/", "read:servers!server=alice/gpu")
    assert bound_server(two) is None
    assert bound_server(model("read:servers!user=alice")) is None


def test_a_short_lived_identity_with_its_note_is_recognised():
    assert recognise(identity_model("gpu"), facts("gpu"), max_lifetime=1800) == "gpu"
    # the hub rounds its expiry to the second: a few seconds over still pass
    assert recognise(identity_model(), facts(life=1803), max_lifetime=1800) == ""


@pytest.mark.parametrize(
    ("who", "what", "why"),
    [
        (identity_model(), TokenFacts(note("alice", ""), T0, None), "longer"),
        (identity_model(), facts(life=86400), "longer"),
        (identity_model(), facts(server="gpu"), "not a server identity"),
        (identity_model(), TokenFacts("Requested via api", T0, T0 + 60), "not a server identity"),
        (model("access:servers!server=alice/"), facts(), "exactly one"),
        (identity_model(name="alice") | {"kind": "service"}, facts(), "only a user"),
    ],
    ids=["never-expires", "a-day", "other-server", "plain-note", "server-token", "service"],
)
def test_anything_else_is_not_an_identity(who, what, why):
    with pytest.raises(NotAnIdentity, match=why):
        recognise(who, what, max_lifetime=1800)


def test_the_answer_says_when_to_rotate_and_when_it_expires():
    policy = Policy(rotate=900, lifetime=1800, overlap=60)
    got = minted_answer({"token": "secret", "id": "a9"}, T0, policy)
    assert got == {
        "token": "secret",
        "token_id": "a9",
        "issued_at": T0,
        "expires_at": T0 + 1800,
        "rotate_at": T0 + 900,
        "overlap": 60,
    }


def test_an_expired_identity_is_told_what_to_do():
    text = expired_message(900)
    assert "expired or revoked" in text and "every 15 min" in text and "restart" in text


def test_settings_default_to_fifteen_minutes_and_twice_that_lifetime():
    cfg = platform_with().data.identity
    assert (cfg.rotate, cfg.lifetime_s, cfg.overlap, cfg.accept_server_token) == (
        900,
        1800,
        60,
        False,
    )
    short = platform_with(data={"identity": {"rotate": "5m"}}).data.identity
    assert short.lifetime_s == 600


def test_a_lifetime_shorter_than_the_rotation_names_the_key():
    from mlfactory.hub.platform_config import ConfigError

    with pytest.raises(ConfigError, match=r"data\.identity.*lifetime"):
        platform_with(data={"identity": {"rotate": "30m", "lifetime": "10m"}})


async def test_a_hub_that_does_not_answer_is_said_so():
    hub = HubAPI(f"http://127.0.0.1:{free_port()}/hub/api", "service-token", timeout=5)
    mint = IdentityMint(hub, Policy(900, 1800, 60), clock=lambda: T0)
    with pytest.raises(HubUnavailable):
        await mint.mint("alice", "")


def test_a_hub_that_refuses_the_mint_names_the_settings_to_check():
    import io
    import json

    from mlfactory.service.identity_api import hub_refused
    from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse

    body = json.dumps({"message": "token expires_in: 1800 must not exceed 600"}).encode()
    response = HTTPResponse(HTTPRequest("http://hub/"), 400, buffer=io.BytesIO(body))
    err = hub_refused(HTTPClientError(400, response=response))
    assert err.status_code == 502
    assert "must not exceed 600" in err.message
    assert "token_expires_in_max_seconds" in err.message and "'tokens' scope" in err.message
