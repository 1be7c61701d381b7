"""Who may read or change what in the platform service, from a hub user model. Pure.

Hub admins hold every mlfactory scope (JupyterHub's admin role cannot be extended).
Others hold what their roles grant, possibly filtered: ``custom:mlfactory:usage:read!group=ds``
lets a team lead see the sessions of the ``ds`` group's members and nothing else.
``custom:mlfactory:components:review`` lets a maintainer approve or reject published
components (filtered: those of the group's members or the named user).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .budgets import Scope
from .scopes import BUDGETS_READ, BUDGETS_WRITE, USAGE_READ
from .store import Visibility

_IMPLIED = {BUDGETS_READ: (BUDGETS_READ, BUDGETS_WRITE), USAGE_READ: (USAGE_READ,)}


def grant(model: Mapping[str, Any], scope: str) -> Visibility:
    """What ``scope`` lets this hub user (or token) see; nothing when not held."""
    if model.get("admin"):
        return Visibility(everyone=True)
    users: set[str] = set()
    groups: set[str] = set()
    for held in model.get("scopes") or ():
        base, _, filt = held.partition("!")
        if base not in _IMPLIED.get(scope, (scope,)):
            continue
        if not filt:
            return Visibility(everyone=True)
        key, _, value = filt.partition("=")
        if key == "user":
            users.add(value)
        elif key == "group":
            groups.add(value)
    return Visibility(users=frozenset(users), groups=frozenset(groups))


def can_see_scope(v: Visibility, scope: Scope, members: Mapping[str, Iterable[str]]) -> bool:
    """May a reader with visibility ``v`` see the budget of ``scope``?

    ``members`` maps a user to their current groups (from the hub). Project budgets span
    teams, so only unfiltered readers see them.
    """
    if v.everyone:
        return True
    if scope.kind == "group":
        return scope.name in v.groups
    if scope.kind == "user":
        return scope.name in v.users or bool(v.groups & set(members.get(scope.name, ())))
    return False


def visible_scopes(v: Visibility, members: Mapping[str, Iterable[str]]) -> list[Scope]:
    """The user and group budgets a filtered reader may see (projects need everyone)."""
    users = set(v.users) | {u for u, gs in members.items() if v.groups & set(gs)}
    return [Scope("group", g) for g in sorted(v.groups)] + [Scope("user", u) for u in sorted(users)]


def can_write_scope(
    v: Visibility, scope: Scope, me: str, members: Mapping[str, Iterable[str]]
) -> bool:
    """Unfiltered writers may set any budget; a filtered writer (a team lead) only the
    budgets of other users they can see, never one that applies to themselves."""
    if v.everyone:
        return True
    if scope.kind != "user" or scope.name == me:
        return False
    return can_see_scope(v, scope, members)


def applies_to(scope: Scope, me: str, my_groups: Iterable[str]) -> bool:
    return (scope.kind == "user" and scope.name == me) or (
        scope.kind == "group" and scope.name in set(my_groups)
    )
