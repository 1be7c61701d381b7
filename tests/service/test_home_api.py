"""``/api/home``: what the hub's home page shows one user, asked by the hub with the shared
secret. Only that user's servers, budgets, notices and idle-shutdown news come back."""

from __future__ import annotations

from datetime import UTC, datetime

from .helpers import SECRET, T0, platform_with
from .test_openapi import check_response


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def gate(key: str, user: str, server_name: str = "") -> dict:
    return {"key": key, "user": user, "server_name": server_name, "project": "churn-model",
            "profile": "cpu-small", "price_per_hour": 1.0, "groups": ["data-science"]}  # fmt: skip


async def test_needs_the_hubs_secret(service):
    svc = await service()
    for secret in (None, "wrong"):
        code, body, _ = await svc.call("POST", "/api/home", secret=secret, body={"user": "alice"})
        assert code == 403 and "alice" not in str(body)
        check_response("POST", "/api/home", code, {"Content-Type": "application/json"}, body)


async def test_names_the_bad_field(service):
    svc = await service()
    for body, field in (({}, "user"), ({"user": "a", "groups": "ds"}, "groups")):
        code, answer, headers = await svc.call("POST", "/api/home", secret=SECRET, body=body)
        assert code == 400 and answer["field"] == field
        check_response("POST", "/api/home", code, headers, answer)


async def test_one_users_servers_budgets_and_notices(service, hub_state, clock):
    svc = await service(platform_with(culling={"grace_after_restart": 0}))
    admin = hub_state.add_user("root", admin=True)
    hub_state.add_user("alice", groups=("data-science",))
    hub_state.add_user("bob", groups=("data-science",))
    for key, user, name in (("a" * 16, "alice", "train"), ("b" * 16, "bob", "")):
        body = gate(key, user, name)
        code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=body)
        assert code == 200 and body["allowed"], body
    for user in ("alice", "bob"):  # tiny alert-only budgets: both cross every threshold
        code, body, _ = await svc.call(
            "PUT", f"/api/budgets/user/{user}", token=admin,
            body={"amount": 0.5, "enforcement": "alert"},
        )  # fmt: skip
        assert code == 201, body
    hub_state.run_server("alice", "train", gate("a" * 16, "alice", "train"), iso(T0))
    hub_state.run_server("bob", "", gate("b" * 16, "bob"), iso(T0))
    for user, name in (("alice", "train"), ("bob", "")):
        await svc.culler.record_report(user, {"server_name": name})
    clock.advance(55 * 60)  # idle into the warning time of the shipped config (1 h)
    await svc.accountant.evaluate()
    await svc.culler.run_pass()

    code, body, headers = await svc.call(
        "POST", "/api/home", secret=SECRET, body={"user": "alice", "groups": ["data-science"]}
    )
    assert code == 200, body
    check_response("POST", "/api/home", code, headers, body)
    assert body["user"] == "alice" and body["currency"] == "USD"
    assert body["timezone"] == svc.accountant.tz.key
    (server,) = body["servers"]
    assert (server["user"], server["server_name"]) == ("alice", "train")
    assert server["profile"] == "cpu-small"
    assert server["cost_so_far"] > 0
    assert ("user", "alice") in {(b["kind"], b["name"]) for b in body["budgets"]}
    assert ("user", "bob") not in {(b["kind"], b["name"]) for b in body["budgets"]}
    assert body["notices"] and {(n["kind"], n["name"]) for n in body["notices"]} <= {
        (b["kind"], b["name"]) for b in body["budgets"]
    }
    assert [(s["server_name"], s["action"]) for s in body["culling"]["servers"]] == [
        ("train", "warn")
    ]
    assert "bob" not in str(body)


async def test_a_user_with_nothing_gets_empty_lists(service):
    svc = await service()
    code, body, headers = await svc.call("POST", "/api/home", secret=SECRET, body={"user": "zed"})
    assert code == 200, body
    check_response("POST", "/api/home", code, headers, body)
    assert (body["servers"], body["notices"]) == ([], [])
    assert body["culling"] == {"servers": [], "stops": []}
