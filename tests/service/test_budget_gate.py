"""The spawner's budget gate against a real platform service app, and with the service
down: the configured policy decides (paid refused, free allowed by default) and counts."""

from __future__ import annotations

import asyncio
import http.server
import json
import sys
import threading
import time
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


class _AnsweringService(http.server.BaseHTTPRequestHandler):
    """A stand-in service on its own thread that admits every gate at once: the fault made
    to happen here is the hub's event loop, not the service, being late."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps({"verdicts": [{"allowed": True, "message": ""}] * len(body["gates"])})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # the gate gave up on a stalled answer and hung up: the late write finds no one
        if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


@pytest.fixture
def threaded_service():
    def serve(handler):
        server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    servers: list[http.server.ThreadingHTTPServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


async def test_a_hub_busy_past_the_timeout_still_reads_the_services_answer(threaded_service):
    """The service answers at once, but the hub's event loop runs each turn late (a storm
    of spawns: many callbacks, each a little work), for four times the gate's timeout: the
    answer waiting in the socket is read, not mistaken for an outage."""
    gate = ServiceGate(threaded_service(_AnsweringService), SECRET, "refuse-all", timeout=0.5)
    loop = asyncio.get_running_loop()
    busy_until = loop.time() + 2.0

    def spawn_work() -> None:  # the fault: every turn of the loop takes ~0.4 s
        time.sleep(0.01)
        if loop.time() < busy_until:
            loop.call_soon(spawn_work)

    for _ in range(40):
        loop.call_soon(spawn_work)
    refused = count("refused")
    assert await gate(spawner_for("ann", 0.5), request(0.5)) is None
    assert count("refused") == refused


async def test_a_service_that_never_answers_is_unreachable_after_the_timeout(threaded_service):
    class Silent(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            time.sleep(3)  # longer than the gate waits

        def log_message(self, *args) -> None:
            pass

    gate = ServiceGate(threaded_service(Silent), SECRET, "refuse-paid", timeout=0.5)
    refusal = await gate(spawner_for("ann", 0.5), request(0.5))
    assert refusal is not None and "budget service cannot be reached" in refusal


async def test_a_call_with_no_answer_is_asked_once_more(threaded_service, caplog):
    """The first call gets no answer within the timeout (the service stalled, or the storm's
    busiest second), the repeat is answered: the spawn is admitted, not refused."""
    calls = []

    class FirstCallStalls(_AnsweringService):
        def do_POST(self) -> None:  # noqa: N802
            calls.append(self.path)
            if len(calls) == 1:
                time.sleep(2)  # the fault: past the gate's 0.5 s
            super().do_POST()

    gate = ServiceGate(threaded_service(FirstCallStalls), SECRET, "refuse-all", timeout=0.5)
    assert await gate(spawner_for("ann", 0.5), request(0.5)) is None
    assert len(calls) == 2 and "asking the platform service once more" in caplog.text
