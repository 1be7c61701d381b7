"""The platform's sharing rules on workspace shares: before the owner's server asks the hub to
share it, the platform service applies ``sharing.groups`` and ``sharing.users`` to the
recipient, the one rule notebook shares follow (``platform_service/shares.py``). The hub
itself knows no such rules: any user holding ``shares!user`` may name any user or group.
"""

from __future__ import annotations

from . import service_client
from .grantees import Grantee
from .service_client import Answer, Target

CHECK_PATH = "shares/recipients/check"
TIMEOUT_S = 15.0
WORDING = service_client.Wording(
    endpoint="sharing rules",
    unreachable="this workspace cannot be shared until it can check the sharing rules",
    not_configured="the platform's sharing rules do not apply",
)
# The service's refusals, passed on in its words: a bad name (400), the same-group rule
# (403), a user or group that does not exist or that the owner may not name (404).
REFUSALS = frozenset({400, 403, 404})


def check_body(who: Grantee) -> dict[str, list[str]]:
    """The service's ``{"users": [...], "groups": [...]}`` for one grantee."""
    return {"users": [who.name] if who.kind == "user" else [], "groups": (
        [who.name] if who.kind == "group" else []
    )}  # fmt: skip


async def refusal(who: Grantee, target: Target | str | None = None) -> Answer | None:
    """None when the owner may share with ``who``; else the answer to give: the service's
    refusal naming them and the rule, or 503 when the rules cannot be checked now (never a
    share made unchecked). A server with no platform service configured has no platform
    rules to apply (a standalone server): the hub's own checks are all there is."""
    if target is None:
        target = service_client.target_from_env()
    if not isinstance(target, Target):
        return None
    answer = await service_client.call(
        target.url(CHECK_PATH),
        target.token,
        WORDING,
        method="POST",
        body=check_body(who),
        timeout_s=TIMEOUT_S,
        passthrough=REFUSALS,
    )
    return None if answer.ok else answer
