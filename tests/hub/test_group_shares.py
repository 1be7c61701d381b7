"""The group-share correction on a real JupyterHub ORM (in-memory SQLite): carol, in a group
alice's server is shared with, gets the access scope on the token alice's server's OAuth
client issued her; bob, outside the group, does not; revoking the share takes it away.
One test pins the upstream bug, so it fails (and says the correction can go) once
JupyterHub counts group shares for tokens itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jupyterhub import orm
from jupyterhub import scopes as hub_scopes
from jupyterhub.apihandlers import base as api_base
from mlfactory.hub import group_shares

ACCESS = "access:servers!server=alice/"


class Hub:
    """alice's default server with its OAuth client; carol in "reviewers", bob not."""

    def __init__(self) -> None:
        self.db = orm.new_session_factory("sqlite:///:memory:")()
        self.alice, self.bob, self.carol = (orm.User(name=n) for n in ("alice", "bob", "carol"))
        self.db.add_all([self.alice, self.bob, self.carol])
        self.group = orm.Group(name="reviewers")
        self.group.users.append(self.carol)
        self.client = orm.OAuthClient(identifier="jupyterhub-user-alice")
        hub_client = orm.OAuthClient(identifier="jupyterhub")  # the hub's own tokens
        self.db.add_all([self.group, self.client, hub_client])
        self.spawner = orm.Spawner(user=self.alice, name="", oauth_client=self.client)
        self.db.add(self.spawner)
        self.db.commit()

    def share_with_group(self) -> None:
        orm.Share.grant(self.db, self.spawner, self.group)

    def revoke_group(self) -> None:
        orm.Share.revoke(self.db, self.spawner, self.group)

    def server_token(self, user: orm.User) -> orm.APIToken:
        """The token the hub's OAuth flow issues ``user`` for alice's server."""
        # APIToken.new checks the user holds the scope (group shares count there)
        scopes = [ACCESS] if ACCESS in hub_scopes.get_scopes_for(user) else []
        token = orm.APIToken.new(user=user, scopes=scopes, oauth_client=self.client)
        return orm.APIToken.find(self.db, token)


@pytest.fixture
def hub() -> Iterator[Hub]:
    h = Hub()
    yield h
    h.db.close()


@pytest.fixture
def corrected() -> Iterator[None]:
    """The correction installed, as the hub config does; JupyterHub's own restored after."""
    before = hub_scopes.get_scopes_for, api_base.get_scopes_for
    group_shares.install()
    yield
    hub_scopes.get_scopes_for, api_base.get_scopes_for = before


def test_upstream_still_drops_group_shares_from_tokens(hub):
    """The bug the correction exists for. When this fails, JupyterHub counts group shares
    for tokens itself: delete hub_config/group_shares.py and its install() call."""
    hub.share_with_group()
    upstream = group_shares.upstream_get_scopes_for()
    assert ACCESS in upstream(hub.carol)  # authorize lets carol in...
    assert ACCESS not in upstream(hub.server_token(hub.carol))  # ...her token does not


def test_a_group_members_token_reaches_the_shared_server(hub, corrected):
    hub.share_with_group()
    assert ACCESS in hub_scopes.get_scopes_for(hub.server_token(hub.carol))
    # the token model the hub's REST API shows uses the same function
    assert api_base.get_scopes_for is hub_scopes.get_scopes_for


def test_someone_outside_the_group_gets_nothing(hub, corrected):
    hub.share_with_group()
    assert ACCESS not in hub_scopes.get_scopes_for(hub.server_token(hub.bob))
    assert group_shares.token_group_share_scopes(hub.server_token(hub.bob)) == set()


def test_revoking_the_group_share_takes_the_scope_away(hub, corrected):
    hub.share_with_group()
    token = hub.server_token(hub.carol)
    assert ACCESS in hub_scopes.get_scopes_for(token)
    hub.revoke_group()
    hub.db.expire_all()
    assert ACCESS not in hub_scopes.get_scopes_for(token)


def test_leaving_the_group_takes_the_scope_away(hub, corrected):
    hub.share_with_group()
    token = hub.server_token(hub.carol)
    hub.group.users.remove(hub.carol)
    hub.db.commit()
    assert ACCESS not in hub_scopes.get_scopes_for(token)


def test_a_token_gets_only_what_it_asks_for(hub, corrected):
    """A hub token (client "jupyterhub") that asks for no scopes, not access to alice's server,
    does not gain it from the group share: the share is cut to the token's own scopes."""
    hub.share_with_group()
    token = orm.APIToken.find(hub.db, orm.APIToken.new(user=hub.carol, scopes=[]))
    assert ACCESS not in hub_scopes.get_scopes_for(token)


def test_an_inherit_token_holds_the_group_share(hub, corrected):
    hub.share_with_group()
    token = orm.APIToken.find(hub.db, orm.APIToken.new(user=hub.carol, scopes=["inherit"]))
    assert ACCESS in hub_scopes.get_scopes_for(token)


def test_users_are_resolved_as_before(hub, corrected):
    hub.share_with_group()
    upstream = group_shares.upstream_get_scopes_for()
    for user in (hub.alice, hub.bob, hub.carol):
        assert hub_scopes.get_scopes_for(user) == upstream(user)


def test_installing_twice_wraps_once(corrected):
    once = hub_scopes.get_scopes_for
    group_shares.install()
    assert hub_scopes.get_scopes_for is once
