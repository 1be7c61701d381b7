"""A running server's managed identity, as rules (pure): the hub token the service mints for
one server (its scopes and note), how the service recognises one when a kernel shows it,
and the answer the server's extension schedules its next rotation from.

An identity is a hub token owned by the server's user that can do nothing but name its
server (``read:servers!server=<user>/<name>``) and reach this service, with a short expiry
set by the hub. The hub checks it like any token (expired or revoked: refused), so the
service keeps no secret of its own about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BINDING = "read:servers!server="
SERVER_SCOPE = "access:servers!server="  # what the hub gives a server's own token
NOTE_PREFIX = "mlfactory identity of "
# the hub rounds expiry to whole seconds and its clock ticks between mint and check
LIFETIME_SLACK_S = 5.0


@dataclass(frozen=True)
class Policy:
    """How identities live: seconds between rotations, each one's lifetime, and how long the
    previous one keeps working after its replacement (``data.identity``)."""

    rotate: float
    lifetime: float
    overlap: float


@dataclass(frozen=True)
class TokenFacts:
    """What the hub keeps about one token (``GET /users/<user>/tokens/<id>``)."""

    note: str
    created: float
    expires_at: float | None


class NotAnIdentity(ValueError):
    """The token is valid at the hub but is not a server's managed identity."""


def note(user: str, server: str) -> str:
    """The token note that marks an identity of ``user``'s server ``server`` ("" = default);
    the hub shows it in the user's token list, so people can tell what it is."""
    return f"{NOTE_PREFIX}{user}/{server}"


def scopes(user: str, server: str, service: str) -> list[str]:
    """The only scopes an identity holds: naming its server, and reaching ``service``.
    Not ``access:servers``: a leaked identity must not open the user's server."""
    return [f"{BINDING}{user}/{server}", f"access:services!service={service}"]


def _one_server(model: dict[str, Any], prefix: str) -> str | None:
    found = set()
    for scope in model.get("scopes") or ():
        if scope.startswith(prefix):
            owner, sep, name = scope[len(prefix) :].partition("/")
            if sep and owner == model.get("name"):
                found.add(name)
    return found.pop() if len(found) == 1 else None


def bound_server(model: dict[str, Any]) -> str | None:
    """The one server of the token's owner that its scopes name (``read:servers!server=``);
    None when they name none, several, or another user's."""
    return _one_server(model, BINDING)


def token_server(model: dict[str, Any]) -> str | None:
    """The server a server's *own* token belongs to, from the scope the hub gives it
    (``access:servers!server=alice/`` → ``""``, ``.../alice/gpu`` → ``"gpu"``); None for
    any other token (a user's personal token, a browser cookie, an identity)."""
    return _one_server(model, SERVER_SCOPE)


def recognise(model: dict[str, Any], facts: TokenFacts, max_lifetime: float) -> str:
    """The server whose identity this is (the token's owner ``model`` as the hub describes
    it, and the hub's ``facts`` about the token), or NotAnIdentity saying why not.

    A user can mint a token that looks the same (same scopes, note and short expiry); it
    then does exactly what the identity in their own running server does, for as short a
    time, so it grants nothing new. What is refused is anything long-lived."""
    if model.get("kind", "user") != "user":
        raise NotAnIdentity("only a user's server has a data identity")
    server = bound_server(model)
    if server is None:
        raise NotAnIdentity("the token does not name exactly one of your servers")
    if facts.note != note(model["name"], server):
        raise NotAnIdentity("the token is not a server identity minted by the platform")
    if facts.expires_at is None or facts.expires_at - facts.created > (
        max_lifetime + LIFETIME_SLACK_S
    ):
        raise NotAnIdentity(
            f"the token lives longer than an identity may ({max_lifetime:.0f}s); "
            "long-lived tokens do not unlock data"
        )
    return server


def minted_answer(token: dict[str, Any], now: float, policy: Policy) -> dict[str, Any]:
    """What the service tells the server about a freshly minted identity (``token`` is the
    hub's answer to the mint): the secret, its id, and when to replace it. Times are on the
    service's clock; the server converts them to lifetimes from when the answer came."""
    return {
        "token": token["token"],
        "token_id": token["id"],
        "issued_at": now,
        "expires_at": now + policy.lifetime,
        "rotate_at": now + policy.rotate,
        "overlap": policy.overlap,
    }


def expired_message(rotate_s: float) -> str:
    """A 401's text for a token the hub no longer accepts on the credentials route."""
    minutes = max(1, round(rotate_s / 60))
    return (
        "This token is not valid any more (expired or revoked). Inside a server, "
        "mlfactory.data.connect() uses the server's identity, which the server replaces "
        f"every {minutes} min by itself: try again in a minute, and if this lasts, restart "
        "the server (its log says why the identity could not be renewed). From outside a "
        "server, no data credentials are issued."
    )
