"""The platform service's REST API: the gate, budgets, usage, alerts, and who may see what."""

from __future__ import annotations

import json

from mlfactory.service.base import dumps

from .helpers import SECRET


def gate_body(key: str, user: str = "alice", price: float = 1.0, **kw) -> dict:
    return {
        "key": key,
        "user": user,
        "server_name": kw.pop("server_name", ""),
        "project": kw.pop("project", ""),
        "profile": kw.pop("profile", "cpu-small"),
        "price_per_hour": price,
        "groups": kw.pop("groups", []),
        **kw,
    }


async def test_gate_allows_and_opens_a_session(service):
    svc = await service()
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=gate_body("k" * 16))
    assert code == 200, body
    assert body["allowed"] is True
    open_rows = svc.accountant.store.open_sessions()
    assert [r["key"] for r in open_rows] == ["k" * 16]


async def test_gate_needs_the_secret(service):
    svc = await service()
    code, body, _ = await svc.call("POST", "/api/gate", secret="wrong", body=gate_body("k" * 16))
    assert code == 403
    assert "hub process only" in body["error"]
    assert svc.accountant.store.open_sessions() == []


async def test_me_needs_a_hub_token(service, hub_state):
    svc = await service()
    code, body, _ = await svc.call("GET", "/api/me")
    assert code == 403
    assert "hub token" in body["error"]
    token = hub_state.add_user("alice", groups=("data-science",))
    code, body, _ = await svc.call("GET", "/api/me", token=token)
    assert code == 200, body
    assert body["user"] == "alice"
    kinds = {(b["kind"], b["name"]) for b in body["budgets"]}
    assert ("user", "alice") in kinds and ("group", "data-science") in kinds


async def test_gate_validates_its_body(service):
    svc = await service()
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, raw=b"[1, 2]")
    assert code == 400 and "JSON object" in body["error"]
    bad = gate_body("k" * 16, price=-1)
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=bad)
    assert code == 400 and body["field"] == "price_per_hour"


async def test_budget_put_validates_and_names_the_field(service, hub_state):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    for payload, field in [
        ({"amount": -5}, "amount"),
        ({"amount": 5, "period": "daily"}, "period"),
        ({"amount": 5, "thresholds": [0.5, 80]}, "thresholds"),
        ({"amount": 5, "enforcement": "nuke"}, "enforcement"),
        ({"amount": 5, "colour": "red"}, "colour"),
    ]:
        code, body, _ = await svc.call("PUT", "/api/budgets/user/ann", token=admin, body=payload)
        assert code == 400, (payload, body)
        assert body["field"] == field, body
    code, body, _ = await svc.call("PUT", "/api/budgets/user/ann", token=admin, raw=b"{nope")
    assert code == 400 and "not JSON" in body["error"]
    code, body, _ = await svc.call("PUT", "/api/budgets/planet/x", token=admin, body={"amount": 1})
    assert code == 404
    code, body, _ = await svc.call(
        "PUT", "/api/budgets/project/no-such", token=admin, body={"amount": 1}
    )
    assert code == 404 and "no-such" in body["error"]


async def test_admin_sets_and_unsets_a_budget(service, hub_state):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    code, body, _ = await svc.call(
        "PUT",
        "/api/budgets/group/data-science",
        token=admin,
        body={"amount": 42, "period": "weekly", "enforcement": "stop", "grace": "5m"},
    )
    assert code == 201, body
    assert (body["amount"], body["period"], body["grace_seconds"]) == (42, "weekly", 300)
    assert body["source"] == "api" and body["resets_at"] == "2026-11-16T00:00:00Z"
    code, body, _ = await svc.call("GET", "/api/budgets/group/data-science", token=admin)
    assert body["amount"] == 42
    code, _, _ = await svc.call("DELETE", "/api/budgets/group/data-science", token=admin)
    assert code == 204
    code, body, _ = await svc.call("GET", "/api/budgets/group/data-science", token=admin)
    assert body["amount"] == 200 and body["source"] == "config"  # back to the config's
    code, body, _ = await svc.call("DELETE", "/api/budgets/group/data-science", token=admin)
    assert code == 404


async def test_team_lead_reads_only_their_team_and_cannot_raise_their_own(service, hub_state):
    svc = await service()
    lead = hub_state.add_user(
        "lena",
        groups=("data-science",),
        scopes=(
            "custom:mlfactory:budgets:write!group=data-science",
            "custom:mlfactory:usage:read!group=data-science",
        ),
    )
    hub_state.add_user("ann", groups=("data-science",))
    hub_state.add_user("max", groups=("ml-engineering",))
    for user, group in [("ann", "data-science"), ("max", "ml-engineering")]:
        await svc.call(
            "POST",
            "/api/gate",
            secret=SECRET,
            body=gate_body(f"{user}-session-1", user=user, groups=[group]),
        )
    # reads: own team yes; the other team's budget is indistinguishable from a missing one
    code, body, _ = await svc.call("GET", "/api/budgets/group/data-science", token=lead)
    assert code == 200
    other = await svc.call("GET", "/api/budgets/group/ml-engineering", token=lead)
    missing = await svc.call("GET", "/api/budgets/group/no-such-team", token=lead)
    assert other[0] == missing[0] == 404
    assert other[1]["error"].replace("ml-engineering", "X") == missing[1]["error"].replace(
        "no-such-team", "X"
    )
    code, body, _ = await svc.call("GET", "/api/budgets", token=lead)
    names = {(b["kind"], b["name"]) for b in body["budgets"]}
    assert ("group", "data-science") in names and ("group", "ml-engineering") not in names
    code, body, _ = await svc.call("GET", "/api/usage?by=user", token=lead)
    assert [r["key"] for r in body["rows"]] == ["ann"]
    # writes: a team member's budget yes; their own team's or their own no
    code, body, _ = await svc.call("PUT", "/api/budgets/user/ann", token=lead, body={"amount": 5})
    assert code == 201, body
    code, body, _ = await svc.call(
        "PUT", "/api/budgets/group/data-science", token=lead, body={"amount": 9999}
    )
    assert code == 403 and "applies to you" in body["error"]
    code, body, _ = await svc.call(
        "PUT", "/api/budgets/user/lena", token=lead, body={"amount": 1e6}
    )
    assert code == 403
    code, body, _ = await svc.call("PUT", "/api/budgets/user/max", token=lead, body={"amount": 5})
    assert code == 404


async def test_plain_users_see_their_own_spend_only(service, hub_state):
    svc = await service()
    ann = hub_state.add_user("ann", groups=("data-science",))
    for path in ("/api/budgets", "/api/usage", "/api/servers", "/api/alerts"):
        code, body, _ = await svc.call("GET", path, token=ann)
        assert code == 403 and "scope" in body["error"], path
    code, body, _ = await svc.call("GET", "/api/me", token=ann)
    assert code == 200 and body["user"] == "ann"


async def test_usage_csv_is_safe_for_spreadsheets(service, hub_state, clock):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    await svc.call(
        "POST", "/api/gate", secret=SECRET, body=gate_body("csv-session-1", user="=cmd|x")
    )
    clock.advance(3600)
    code, text, headers = await svc.call("GET", "/api/usage?by=user&format=csv", token=admin)
    assert code == 200 and headers["Content-Type"].startswith("text/csv")
    lines = text.splitlines()
    assert lines[0] == "user,cost,hours,currency"
    assert lines[1].startswith("'=cmd|x,1.0,1.0,USD")


async def test_usage_rejects_bad_ranges(service, hub_state):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    for query, field in [
        ("from=yesterday", "from"),
        ("from=2026-11-10&to=2026-11-01", "to"),
        ("from=2024-01-01&to=2026-11-01", "to"),
        ("by=colour", "by"),
        ("format=xml", "format"),
    ]:
        code, body, _ = await svc.call("GET", f"/api/usage?{query}", token=admin)
        assert code == 400 and body["field"] == field, (query, body)


async def test_a_budget_get_body_can_be_put_back_unchanged(service, hub_state, clock):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    path = "/api/budgets/user/ann"
    first = {"amount": 42, "enforcement": "stop", "grace": "5m", "thresholds": [0.5, 1.0],
             "notify": ["lead@example.com"]}  # fmt: skip
    code, _, _ = await svc.call("PUT", path, token=admin, body=first)
    assert code == 201
    await svc.call("POST", "/api/gate", secret=SECRET, body=gate_body("ann-session-1", user="ann"))
    clock.advance(3600)  # something spent, so the standing's read-only fields are not empty
    code, got, _ = await svc.call("GET", path, token=admin)
    assert code == 200 and got["spent"] > 0 and got["grace_seconds"] == 300
    code, put, _ = await svc.call("PUT", path, token=admin, body=got)
    assert code == 200, put
    assert put == got
    assert (await svc.call("GET", path, token=admin))[1] == got
    # a budget from the config: the same body becomes the API's, nothing else changes
    group = "/api/budgets/group/data-science"
    code, got, _ = await svc.call("GET", group, token=admin)
    assert got["source"] == "config"
    code, put, _ = await svc.call("PUT", group, token=admin, body=got)
    assert code == 201, put
    assert put == {**got, "source": "api"}
    # what cannot be sent back: another budget's body, two different graces
    for body, field in [
        ({**got, "name": "ml-engineering"}, "name"),
        ({**got, "kind": "project"}, "kind"),
        ({**got, "grace": "1h"}, "grace"),
        ({**got, "grace_seconds": -1}, "grace_seconds"),
    ]:
        code, err, _ = await svc.call("PUT", group, token=admin, body=body)
        assert code == 400 and err["field"] == field, (body, err)
    code, put, _ = await svc.call("PUT", group, token=admin, body={**got, "grace": "15m"})
    assert code == 200 and put["grace_seconds"] == 900  # the same grace in both names


async def test_non_finite_numbers_are_refused_in_every_json_body(service, hub_state):
    from mlfactory.service.db import ActivityReport
    from sqlalchemy import select

    svc = await service()
    token = hub_state.add_user("ann")
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = f'{{"server_name": "", "gpu_util": [{number}]}}'.encode()
        code, body, _ = await svc.call("POST", "/api/activity", token=token, raw=raw)
        assert code == 400, (number, body)
        assert body["error"].startswith("The request body is not valid JSON: ")
        assert "send finite numbers" in body["error"], body
    with svc.accountant.store.engine.connect() as c:
        assert list(c.execute(select(ActivityReport.__table__))) == []  # nothing stored
    code, _, _ = await svc.call(
        "POST", "/api/activity", token=token, body={"server_name": "", "gpu_util": [12.5]}
    )
    assert code == 204
    raw = json.dumps(gate_body("k" * 16)).replace("1.0", "NaN").encode()
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, raw=raw)
    assert code == 400 and "NaN" in body["error"]
    assert svc.accountant.store.open_sessions() == []


async def test_running_servers_list_every_field_oldest_first(service, hub_state, clock):
    """``/api/servers`` (the dashboard's running list): what each server costs so far, in
    the order they started, with the names as typed."""
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    for i, (user, project) in enumerate((("zoë", "café"), ("ann", ""))):
        body = gate_body(
            f"{i}" * 16, user, 2.0, project=project, resources={"cpu": 2, "mem_gib": 4.5}
        )
        code, answer, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=body)
        assert code == 200 and answer["allowed"], answer
        clock.advance(1800)
    code, body, headers = await svc.call("GET", "/api/servers", token=admin)
    assert code == 200 and headers["Content-Type"] == "application/json"
    first, second = body["servers"]
    assert first == {
        "user": "zoë",
        "server_name": "",
        "project": "café",
        "profile": "cpu-small",
        "resources": {"cpu": 2, "mem_gib": 4.5},
        "price_per_hour": 2.0,
        "started": first["started"],
        "hours": 1.0,
        "cost_so_far": 2.0,
        "orphaned": False,
    }
    assert (second["user"], second["hours"], second["cost_so_far"]) == ("ann", 0.5, 1.0)
    assert first["started"] < second["started"]


def test_a_response_body_is_valid_utf8_json_whatever_it_holds():
    """Never ``NaN`` (not JSON: browsers' ``JSON.parse`` throws on it), names as UTF-8, and
    keys that are numbers as strings, as JSON has them."""
    body = dumps({"spent": float("nan"), "left": float("inf"), 3: "café", "by": ("zoë",)})
    assert body == '{"spent":null,"left":null,"3":"café","by":["zoë"]}'.encode()
