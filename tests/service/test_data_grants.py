"""The pure rules of data credentials (platform_service/data_grants.py, data_s3's session
policy, data_api's token → server): grants, role names, timing and upkeep, with ``now``
passed in."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlfactory.hub.platform_config import ConfigError, DataStore
from mlfactory.hub.platform_schema import DataGrant
from mlfactory.service.data_api import token_server
from mlfactory.service.data_grants import (
    Live,
    default_role,
    entitlement,
    expiry,
    grant_change,
    no_grant_message,
    renewal_due,
    role_name,
    upkeep,
)
from mlfactory.service.data_s3 import session_policy

from .helpers import platform_with

STORE = DataStore(
    name="warehouse",
    kind="postgresql",
    url="postgresql://db.example.com/dw",
    admin_credentials={"env": "DW_ADMIN"},
    grants=[
        {"group": "data-science", "access": "read", "role": "dw_ds_read"},
        {"group": "analysts", "access": "read-write"},
        {"group": "ops", "access": "read", "prefixes": ["lake/ops/"]},
    ],
)


def test_entitlement_follows_the_groups_held_now():
    e = entitlement(STORE, ["data-science"])
    assert e is not None and (e.access, e.roles) == ("read", ("dw_ds_read",))
    both = entitlement(STORE, ["data-science", "analysts"])
    assert both.access == "read-write"
    assert both.roles == ("dw_ds_read", "mlf_warehouse_rw")
    assert entitlement(STORE, ["ops"]).prefixes == ("lake/ops/",)
    # the group was removed: nothing at the next issue
    assert entitlement(STORE, []) is None
    assert entitlement(STORE, ["marketing"]) is None


def test_no_grant_message_names_the_store_and_the_groups():
    msg = no_grant_message("warehouse", ["b", "a"])
    assert "'warehouse'" in msg and "a, b" in msg


def test_default_role_is_a_safe_identifier():
    assert default_role("dw-eu", "read") == "mlf_dw_eu_read"
    assert default_role("dw-eu", "read-write") == "mlf_dw_eu_rw"


@given(st.text(min_size=1, max_size=300), st.text(max_size=40), st.text(max_size=20))
def test_role_names_are_safe_postgres_identifiers(user, server, nonce):
    name = role_name(user, server, nonce)
    assert re.fullmatch(r"mlf_[a-z0-9_]+_[0-9a-f]{16}", name)
    assert len(name.encode()) <= 63


def test_role_names_that_read_alike_do_not_collide():
    # lowercasing, replacement and truncation make these read the same
    users = ["Alice", "alice", "a.lice", "a-lice", "x" * 30 + "1", "x" * 30 + "2"]
    names = {role_name(u, "", "n") for u in users}
    assert len(names) == len(users)
    assert role_name("alice", "", "n1") != role_name("alice", "", "n2")
    assert role_name("alice", "a", "n") != role_name("alice", "b", "n")


def test_expiry_is_at_most_an_hour():
    assert expiry(1000.0, 600) == 1600.0
    assert expiry(1000.0, 7200) == 4600.0


def test_renewal_in_the_last_half():
    assert not renewal_due(expires_at=4600, now=2000, ttl=3600)
    assert renewal_due(expires_at=4600, now=2800, ttl=3600)


def live(user="alice", server="", expires_at=5000.0, ttl=3600):
    return Live(f"mlf_{user}_{server}", "warehouse", user, server, expires_at, ttl)


def test_upkeep_drops_stopped_and_expired_and_renews_when_due():
    running = {("alice", ""), ("bob", "")}
    fresh, due, gone, old = (
        live("alice", expires_at=5000),
        live("bob", expires_at=2500),
        live("carol"),
        live("alice", "gpu", expires_at=1000),
    )
    plan = upkeep([fresh, due, gone, old], running | {("alice", "gpu")}, now=2000)
    assert plan.renew == [due]
    assert plan.drop == [(gone, "server stopped"), (old, "expired")]


def test_upkeep_without_the_hub_drops_nothing_for_being_stopped_and_renews_nothing():
    plan = upkeep([live("carol", expires_at=2500)], None, now=2000)
    assert plan.drop == [] and plan.renew == []
    assert upkeep([live(expires_at=1000)], None, now=2000).drop[0][1] == "expired"


def test_s3_session_policy_reaches_only_the_granted_prefixes():
    read = session_policy(("lake/ops/", "archive"), "read")
    allow = read["Statement"][0]
    assert allow["Action"] == ["s3:GetObject"]
    assert allow["Resource"] == ["arn:aws:s3:::lake/ops/*", "arn:aws:s3:::archive/*"]
    lists = read["Statement"][1:]
    assert lists[0]["Condition"] == {"StringLike": {"s3:prefix": ["ops/*"]}}
    assert "Condition" not in lists[1]
    rw = session_policy(("lake/ops/",), "read-write")
    assert "s3:PutObject" in rw["Statement"][0]["Action"]


def test_the_server_comes_from_the_hub_given_server_scope():
    def model(*scopes, name="alice"):
        return {"name": name, "scopes": list(scopes)}

    assert token_server(model("access:servers!server=alice/")) == ""
    assert token_server(model("access:servers!server=alice/gpu")) == "gpu"
    # a personal token (no server filter), another user's server, or two servers: none
    assert token_server(model("access:servers!user=alice")) is None
    assert token_server(model("access:servers!server=bob/")) is None
    both = model("access:servers!server=alice/", "access:servers!server=alice/gpu")
    assert token_server(both) is None


# --- the config ---------------------------------------------------------------------------


def managed(**over):
    store = {
        "name": "warehouse",
        "kind": "postgresql",
        "url": "postgresql://db.example.com/dw",
        "admin_credentials": {"env": "DW_ADMIN"},
        "grants": [{"group": "data-science", "access": "read"}],
    }
    store.update(over)
    return store


def config_error(**changes) -> str:
    with pytest.raises(ConfigError) as e:
        platform_with(**changes)
    return str(e.value)


def test_a_grant_to_an_unknown_group_fails_with_its_key_path():
    msg = config_error(data_stores=[managed(grants=[{"group": "nobody", "access": "read"}])])
    assert "data_stores[0].grants[0].group: 'nobody' is not a defined group" in msg


def test_grants_need_admin_credentials_and_secrets_stay_out_of_the_yaml():
    msg = config_error(data_stores=[managed(admin_credentials=None)])
    assert "data_stores[0].admin_credentials" in msg
    msg = config_error(data_stores=[managed(admin_credentials={"env": "A", "file": "/x"})])
    assert "exactly one of env or file" in msg
    msg = config_error(data_stores=[managed(admin_credentials={"password": "hunter2"})])
    assert "password" in msg
    assert "ttl" in config_error(data_stores=[managed(ttl="2h")])


def test_a_valid_managed_store_loads():
    cfg = platform_with(data_stores=[managed()])
    assert cfg.data_stores[0].managed and cfg.data_stores[0].ttl == 3600


def test_the_admin_secret_comes_from_the_named_variable_or_file(tmp_path):
    from mlfactory.service.data_drivers import AdminUnavailable, read_admin_secret

    by_env = DataStore(**{**managed(), "admin_credentials": {"env": "DW_ADMIN"}})
    assert read_admin_secret(by_env, {"DW_ADMIN": " host=db user=a \n"}) == "host=db user=a"
    with pytest.raises(AdminUnavailable, match="DW_ADMIN is not set"):
        read_admin_secret(by_env, {})
    secret = tmp_path / "admin"
    by_file = DataStore(**{**managed(), "admin_credentials": {"file": str(secret)}})
    with pytest.raises(AdminUnavailable, match="cannot read"):
        read_admin_secret(by_file, {})
    secret.write_text("")
    with pytest.raises(AdminUnavailable, match="is empty"):
        read_admin_secret(by_file, {})
    secret.write_text("host=db user=admin password=x\n")
    assert read_admin_secret(by_file, {}) == "host=db user=admin password=x"


def test_s3_a_prefix_without_a_slash_does_not_reach_its_siblings():
    # grant 'lake/team-a' must not reach 'lake/team-a-finance/...'
    policy = session_policy(("lake/team-a",), "read")
    assert policy["Statement"][0]["Resource"] == ["arn:aws:s3:::lake/team-a/*"]
    assert policy["Statement"][1]["Condition"] == {"StringLike": {"s3:prefix": ["team-a/*"]}}
    # an explicit wildcard is the admin's choice and stays as written
    star = session_policy(("lake/team-*",), "read")
    assert star["Statement"][0]["Resource"] == ["arn:aws:s3:::lake/team-*"]
    assert star["Statement"][1]["Condition"] == {"StringLike": {"s3:prefix": ["team-*"]}}


def granted(user="alice", server="", groups=("data-science",), access="read", **over):
    """A live credential as an issue under ``STORE`` records it: with the roles and
    prefixes its groups' grants named then (``store=`` another config at issue time)."""
    base = {"expires_at": 5000.0, "ttl": 3600, "issued_at": 1000.0, "store": STORE}
    base.update(over)
    then = entitlement(base["store"], groups)
    return Live(
        f"mlf_{user}_{server}_{base['issued_at']}",
        "warehouse",
        user,
        server,
        base["expires_at"],
        base["ttl"],
        base["issued_at"],
        access,
        tuple(groups),
        roles=then.roles if then else (),
        prefixes=then.prefixes if then else (),
    )


def test_upkeep_drops_a_credential_whose_grant_was_lost_or_narrowed():
    stores = {"warehouse": STORE}
    running = {("alice", ""), ("bob", ""), ("carol", "")}
    kept = granted("alice")
    lost = granted("bob")
    narrowed = granted("carol", groups=("analysts",), access="read-write")
    now_groups = {"alice": ["data-science", "ops"], "bob": [], "carol": ["data-science"]}
    plan = upkeep([kept, lost, narrowed], running, 2000, stores, now_groups)
    assert plan.drop == [(lost, "grant changed"), (narrowed, "grant changed")]
    # a store taken out of the config: its credentials are dropped, not forgotten
    plan = upkeep([kept], running, 2000, {}, now_groups)
    assert plan.drop == [(kept, "store removed")]
    # the hub did not answer: no groups, nothing dropped for a grant
    assert upkeep([lost], None, 2000, stores, None).drop == []


def test_upkeep_renews_only_the_newest_credential_of_a_server():
    older = granted(issued_at=1000.0, expires_at=3000.0)
    newer = granted(issued_at=1500.0, expires_at=3500.0)
    other = granted(server="gpu", issued_at=1000.0, expires_at=3000.0)
    plan = upkeep([older, newer, other], {("alice", ""), ("alice", "gpu")}, 2000)
    assert plan.renew == [newer, other]


def regranted(store: DataStore = STORE, **grant_changes: dict) -> DataStore:
    """``store`` with some groups' grants replaced, as an admin edits mlfactory.yaml."""
    grants = [grant_changes.get(g.group, g.model_dump()) for g in store.grants]
    return store.model_copy(update={"grants": tuple(DataGrant(**g) for g in grants)})


def test_upkeep_drops_a_credential_whose_grant_now_names_another_role():
    running = {("alice", ""), ("bob", "")}
    now_groups = {"alice": ["data-science"], "bob": ["analysts"]}
    alice = granted("alice")  # issued as a member of dw_ds_read
    bob = granted("bob", groups=("analysts",), access="read-write")  # the default mlf_..._rw
    assert (alice.roles, bob.roles) == (("dw_ds_read",), ("mlf_warehouse_rw",))
    # the same config: both kept, none renewed before half their life
    assert upkeep([alice, bob], running, 2000, {"warehouse": STORE}, now_groups).drop == []
    # the admin renames data-science's role and names one for analysts (whose default it was)
    moved = regranted(
        **{
            "data-science": {"group": "data-science", "role": "dw_ds_read_v2"},
            "analysts": {"group": "analysts", "access": "read-write", "role": "dw_rw"},
        }
    )
    plan = upkeep([alice, bob], running, 2000, {"warehouse": moved}, now_groups)
    assert plan.drop == [(alice, "role changed"), (bob, "role changed")]
    assert plan.renew == []


def test_a_widened_grant_keeps_the_credential_and_a_moved_prefix_drops_it():
    ops = granted("olga", groups=("ops",))
    assert ops.prefixes == ("lake/ops/",)
    wider = regranted(ops={"group": "ops", "prefixes": ["lake/ops/", "lake/shared/"]})
    assert grant_change(ops, entitlement(wider, ["ops"])) is None
    # a second group's grant adds a role: still covered
    assert grant_change(granted(), entitlement(STORE, ["data-science", "analysts"])) is None
    elsewhere = regranted(ops={"group": "ops", "prefixes": ["lake/ops-v2/"]})
    assert grant_change(ops, entitlement(elsewhere, ["ops"])) == "prefixes changed"
    # lost groups and narrowed access keep their reason
    assert grant_change(granted(), entitlement(STORE, ["ops"])) == "grant changed"
    assert grant_change(granted(), None) == "grant changed"


def test_a_credential_issued_before_roles_were_recorded_is_left_to_expire():
    # a row from before migration 0010: its groups and access are known, its roles are not
    old = Live(
        "mlf_alice_x", "warehouse", "alice", "", 2500.0, 3600, 0.0, "read", ("data-science",)
    )
    assert old.scope_unknown and not granted().scope_unknown
    plan = upkeep([old], {("alice", "")}, 2000, {"warehouse": STORE}, {"alice": ["data-science"]})
    assert plan.renew == [] and plan.drop == []  # due for renewal, but not renewed
    plan = upkeep([old], {("alice", "")}, 2600, {"warehouse": STORE}, {"alice": ["data-science"]})
    assert plan.drop == [(old, "expired")]
    # the notice at a stop reads no entitlement (access ""): never held back for this
    assert not Live("p", "warehouse", "alice", "", 2500.0, 3600).scope_unknown
