"""The spawner's budget gate against a real platform service app, and with the service
down: the configured policy decides (paid refused, free allowed by default) and counts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlfactory.spawner.budget_gate import UNREACHABLE, ServiceGate
from mlfactory.spawner.form import budget_text

from tests.ports import free_port

from .helpers import SECRET, platform_with


def spawner_for(user: str, price: float, key: str = "gatekey-0001") -> SimpleNamespace:
    ledger = {
        "key": key,
        "user": user,
        "server_name": "",
        "project": "",
        "profile": "cpu-small",
        "price_per_hour": price,
        "resources": {"cpu": 1},
        "groups": ["data-science"],
    }
    return SimpleNamespace(ledger=ledger)


def request(price: float) -> SimpleNamespace:
    return SimpleNamespace(price_per_hour=price)


def count(decision: str) -> float:
    return UNREACHABLE.labels(decision=decision)._value.get()


@pytest.mark.parametrize(
    ("policy", "paid_refused", "free_refused"),
    [("refuse-paid", True, False), ("refuse-all", True, True), ("allow-all", False, False)],
)
async def test_service_down_follows_the_policy_and_is_counted(policy, paid_refused, free_refused):
    gate = ServiceGate(f"http://127.0.0.1:{free_port()}/services/mlfactory", SECRET, policy, 2)
    refused, allowed = count("refused"), count("allowed")
    paid = await gate(spawner_for("ann", 0.5), request(0.5))
    free = await gate(spawner_for("ann", 0.0), request(0.0))
    assert (paid is not None) == paid_refused
    assert (free is not None) == free_refused
    if paid:
        assert "budget service cannot be reached" in paid
    assert count("refused") - refused == paid_refused + free_refused
    assert count("allowed") - allowed == 2 - paid_refused - free_refused


async def test_gate_against_the_service(service, hub_state):
    svc = await service(platform_with(default_budget={"amount": 1.0, "enforcement": "block"}))
    gate = ServiceGate(svc.url, SECRET)
    assert await gate(spawner_for("ann", 0.5, "gatekey-0001"), request(0.5)) is None
    refusal = await gate(spawner_for("ann", 0.6, "gatekey-0002"), request(0.6))
    assert refusal.startswith("The monthly budget of user 'ann' is 0.00 USD spent of 1.00 USD")
    me = await gate.standing("ann", ["data-science"])
    text = budget_text(me["budgets"], me["currency"])
    assert text.startswith("Your monthly budget: 0.00 of 1.00 USD spent, 1.00 left")
    await gate.ended("gatekey-0001", svc.accountant.clock(), "stopped")
    assert svc.accountant.store.open_sessions() == []


async def test_a_wrong_secret_is_not_mistaken_for_an_outage(service):
    svc = await service()
    gate = ServiceGate(svc.url, "not-the-secret", "allow-all")
    refusal = await gate(spawner_for("ann", 0.5), request(0.5))
    assert refusal is None  # 403 is treated as the service being unusable: policy decides
    assert svc.accountant.store.open_sessions() == []


def test_budget_text_shows_the_tightest_budget():
    budgets = [
        {"kind": "user", "name": "ann", "period": "monthly", "amount": 100, "spent": 10,
         "fraction": 0.1, "enforcement": "block", "resets_at": "2026-12-01T00:00:00Z"},
        {"kind": "group", "name": "ds", "period": "weekly", "amount": 50, "spent": 45,
         "fraction": 0.9, "enforcement": "alert", "resets_at": "2026-11-30T00:00:00Z"},
    ]  # fmt: skip
    assert budget_text(budgets, "EUR") == (
        "Team ds weekly budget: 45.00 of 50.00 EUR spent, 5.00 left (resets 2026-11-30)."
    )
    assert budget_text([], "EUR") == "No budget set"
