"""The platform service's REST API: the gate, budgets, usage, alerts, and who may see what."""

from __future__ import annotations

from .conftest import SECRET


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
    assert "spawner only" in body["error"]
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
