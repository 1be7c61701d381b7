"""A correction to JupyterHub 6.1's scopes: a token also carries its user's group shares.

JupyterHub counts a user's group shares when it authorizes OAuth (``get_scopes_for(user)``)
but, for an API token, adds only the user's own ``shared_with_me``. A member of a group that
a server is shared with is therefore asked to authorize, and then the server refuses the
token it got. ``install()`` wraps ``jupyterhub.scopes.get_scopes_for`` so that a user's
token also holds what their groups were shared, cut to what the token itself may carry,
exactly as the hub already does for shares made to the user. The wrapper only ever adds
scopes that the group shares grant and the token asks for; when upstream counts group
shares itself, the addition is empty and ``tests/hub/test_group_shares.py`` says the
correction can go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from jupyterhub import orm
from jupyterhub import scopes as hub_scopes
from jupyterhub.apihandlers import base as api_base

ScopesFor = Callable[[Any], Any]
_MARK = "_mlfactory_counts_group_shares"


def group_share_scopes(user: orm.User) -> set[str]:
    """Every scope the user's groups were shared, expanded as the hub expands a user's."""
    granted: set[str] = set()
    for group in user.groups:
        for share in group.shared_with_me:
            granted |= hub_scopes.expand_share_scopes(share)
    return granted


def token_group_share_scopes(token: orm.APIToken) -> set[str]:
    """What a user's token may use of their groups' shares: the part the token asks for.

    Mirrors the token branch of ``get_scopes_for``: the token's own scopes, expanded, plus
    the access scopes of the OAuth client that issued it, intersected with what was shared.
    """
    user = token.user
    if user is None:  # a service's token: services are not shared with
        return set()
    granted = group_share_scopes(user)
    if not granted:
        return set()
    requested = set(token.scopes)
    if "inherit" in requested:
        return granted
    token_scopes = set(
        hub_scopes.expand_scopes(requested, owner=user, oauth_client=token.oauth_client)
    )
    if token.client_id != "jupyterhub":
        token_scopes.update(hub_scopes.access_scopes(token.oauth_client))
    return set(
        hub_scopes._intersect_expanded_scopes(
            hub_scopes.reduce_scopes(token_scopes), granted, db=sa.inspect(token).session
        )
    )


def counting_group_shares(upstream: ScopesFor) -> ScopesFor:
    """``upstream`` (JupyterHub's ``get_scopes_for``), plus a user token's group shares."""

    def get_scopes_for(orm_object: Any) -> Any:
        expanded = upstream(orm_object)
        if isinstance(orm_object, orm.APIToken):
            extra = token_group_share_scopes(orm_object)
            if not extra <= expanded:
                return set(expanded) | extra
        return expanded

    setattr(get_scopes_for, _MARK, upstream)
    get_scopes_for.__doc__ = upstream.__doc__
    return get_scopes_for


def install() -> None:
    """Apply the correction in this (the hub's) process; calling it again changes nothing.

    ``handlers/base.py`` looks the function up on the module at every request; the token
    model in ``apihandlers/base.py`` imported it by name, so both places are replaced.
    """
    if getattr(hub_scopes.get_scopes_for, _MARK, None) is not None:
        return
    corrected = counting_group_shares(hub_scopes.get_scopes_for)
    hub_scopes.get_scopes_for = corrected
    api_base.get_scopes_for = corrected


def upstream_get_scopes_for() -> ScopesFor:
    """JupyterHub's own function, whether or not the correction is installed."""
    current = hub_scopes.get_scopes_for
    return getattr(current, _MARK, current)
