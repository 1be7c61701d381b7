"""The accountant over time (an injected clock): alerts by e-mail (a real SMTP server) and
webhook (a real HTTP receiver), once per threshold and period; ``stop`` budgets; a period
boundary; the hub down; a restarted service; spawns racing for the last of a budget."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime
from email import message_from_string
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from mlfactory.service.accounting import GateRequest
from mlfactory.service.reconcile import Sighting
from mlfactory.spawner.journal import Record, process_start
from tornado import web
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from .helpers import platform_with

H = 3600


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
async def webhook():
    received: list[dict] = []

    class Receiver(web.RequestHandler):
        def post(self):
            received.append(json.loads(self.request.body))
            self.finish("ok")

    port = free_port()
    server = HTTPServer(web.Application([(r"/hook", Receiver)]))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/hook", received
    server.stop()


def alerting_platform(smtp_port: int, hook_url: str, **changes):
    return platform_with(
        default_budget={"amount": 10, "thresholds": [0.5, 0.8, 1.0], "enforcement": "block"},
        alerts={
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "sender": "mlfactory@example.com",
                "admins": ["finops@example.com"],
                "user_address": "{user}@example.com",
            },
            "webhooks": [hook_url],
        },
        **changes,
    )


def running(key: str, user: str = "ann", price: float = 1.0, started: float = 0, **kw) -> Sighting:
    return Sighting(key, user, kw.pop("server_name", ""), started, price, source="gate", **kw)


def run_local(journal, key: str, started: float, price: float, user: str = "ann") -> None:
    """A server the local backend reports running (this test process stands in for it)."""
    pid = os.getpid()
    journal.write(Record(key, user, "", started, price, pid=pid, pid_start=process_start(pid)))


async def test_thresholds_fire_once_by_email_and_webhook(
    make_accountant, clock, smtp, webhook, journal
):
    port, inbox = smtp
    url, received = webhook
    acc = make_accountant(alerting_platform(port, url))
    await acc.start()
    run_local(journal, "s" * 16, clock(), price=2.0)

    clock.advance(2.5 * H)  # 5.00 of 10: the 50% threshold
    await acc.tick()
    assert len(inbox.messages) == 1 and len(received) == 1
    rcpts, raw = inbox.messages[0]
    assert rcpts == ["ann@example.com", "finops@example.com"]
    mail = message_from_string(raw, policy=default_policy)
    assert mail["Subject"] == "[mlfactory] user ann: 50% of budget"
    assert (
        "user 'ann' has spent 5.00 USD of its monthly budget of 10.00 USD (50% reached)"
        in mail.get_content()
    )
    assert received[0]["threshold"] == 0.5 and received[0]["text"].startswith("[mlfactory]")

    await acc.tick()  # nothing new crossed: nothing sent again
    assert len(inbox.messages) == 1

    clock.advance(2.6 * H)  # 10.20: 80% and 100% together, each once
    await acc.tick()
    assert [m["threshold"] for m in received] == [0.5, 0.8, 1.0]
    assert "New servers are refused until 2026-12-01 00:00 UTC" in received[-1]["text"]
    alerts = acc.store.alerts(0, clock() + 1)
    assert sorted(a["threshold"] for a in alerts) == [0.5, 0.8, 1.0]
    assert all(a["delivery"] == {"email": "sent", "webhook0": "sent"} for a in alerts)


async def test_a_failed_channel_is_recorded_and_does_not_stop_the_others(
    make_accountant, clock, webhook, journal
):
    url, received = webhook
    acc = make_accountant(alerting_platform(free_port(), url))  # nothing listens for SMTP
    await acc.start()
    run_local(journal, "s" * 16, clock(), price=10.0)
    clock.advance(0.6 * H)
    await acc.tick()
    (alert,) = acc.store.alerts(0, clock() + 1)
    assert alert["delivery"]["email"].startswith("failed:")
    assert alert["delivery"]["webhook0"] == "sent" and len(received) == 1


async def test_a_new_period_starts_from_zero(make_accountant, clock, smtp, webhook, journal):
    port, inbox = smtp
    url, received = webhook
    acc = make_accountant(alerting_platform(port, url))
    await acc.start()
    clock.set(datetime(2026, 11, 30, 20, tzinfo=UTC).timestamp())
    run_local(journal, "s" * 16, clock(), price=1.5)
    await acc.tick()
    clock.advance(4 * H - 60)  # 23:59: 5.975 in November
    await acc.tick()
    assert [m["threshold"] for m in received] == [0.5]
    clock.advance(3 * H + 60)  # 03:00 on 1 December: 4.50 this month, below 50%
    await acc.tick()
    assert [m["threshold"] for m in received] == [0.5]
    clock.advance(1 * H)  # 6.00 in December: the 50% threshold fires again, for December
    await acc.tick()
    assert [m["threshold"] for m in received] == [0.5, 0.5]
    nov, dec = sorted(acc.store.alerts(0, clock() + 1), key=lambda a: a["period_start"])
    assert nov["spent"] == pytest.approx(5.975) and dec["spent"] == pytest.approx(6.0)


async def test_stop_budget_warns_then_stops_servers_after_grace(
    make_accountant, clock, hub_state, fake_hub
):
    platform = platform_with(
        projects=[
            {
                "name": "vision-research",
                "display_name": "Vision",
                "budget": {"amount": 3, "enforcement": "stop", "grace": "10m"},
            }
        ],
        default_budget=None,
    )
    acc = make_accountant(platform, fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    ledger = {"key": "v" * 16, "price_per_hour": 1.0, "project": "vision-research"}
    hub_state.run_server("ann", "gpu", ledger, "2026-11-10T12:00:00Z")
    await acc.tick()  # opens the session from the hub's view
    clock.advance(3 * H)
    await acc.tick()  # 3.00 of 3: warned, not stopped yet
    assert hub_state.stopped == []
    clock.advance(9 * 60)
    await acc.tick()
    assert hub_state.stopped == []
    clock.advance(60)
    await acc.tick()  # grace over: stopped through the hub's API, with the reason kept
    assert hub_state.stopped == [("ann", "gpu")]
    await acc.tick()  # the hub no longer lists it: the ledger closes the session
    (row,) = acc.store.open_sessions() or [None]
    assert row is None


async def test_the_hub_down_closes_nothing_and_alerts_still_fire(
    make_accountant, clock, hub_state, fake_hub, smtp, webhook
):
    port, _inbox = smtp
    url, received = webhook
    acc = make_accountant(alerting_platform(port, url), fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    hub_state.run_server("ann", "", {"key": "h" * 16, "price_per_hour": 4.0}, "2026-11-10T12:00Z")
    await acc.tick()
    hub_state.down = True
    clock.advance(2 * H)
    await acc.tick()  # must not raise, must not close the session the hub alone reports
    assert [r["key"] for r in acc.store.open_sessions()] == ["h" * 16]
    assert [m["threshold"] for m in received] == [0.5, 0.8]
    hub_state.down = False
    await acc.tick()
    assert [r["key"] for r in acc.store.open_sessions()] == ["h" * 16]


async def test_a_restarted_service_neither_loses_nor_double_counts(
    make_accountant, clock, hub_state, fake_hub, journal
):
    platform = platform_with()
    acc = make_accountant(platform, fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    hub_state.run_server("ann", "", {"key": "r" * 16, "price_per_hour": 1.0}, "2026-11-10T12:00Z")
    await acc.tick()
    clock.advance(H)
    again = make_accountant(platform, fake_hub)  # same database, a fresh process
    await again.start()
    await again.tick()
    clock.advance(H)
    await again.tick()
    rows = again.store.open_sessions()
    assert [r["key"] for r in rows] == ["r" * 16]
    spend = again.store.spend("user", 0, clock() + 1, clock())
    assert spend["ann"][0] == pytest.approx(2.0)


@pytest.fixture
def forgotten_server():
    """A live process standing in for a server the hub forgot (never this test process:
    the service stops orphans)."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


async def test_a_process_the_hub_forgot_is_found_and_charged(
    make_accountant, clock, hub_state, fake_hub, journal, forgotten_server
):
    # an orphan, stopped after its grace (tests/service/test_ledger_lifecycle.py); longer here
    acc = make_accountant(platform_with(accounting={"orphan_grace": "2h"}), fake_hub)
    await acc.start()
    pid = forgotten_server.pid
    journal.write(
        Record(
            key="f" * 16,
            user="bob",
            server_name="",
            started=clock(),
            price_per_hour=2.0,
            pid=pid,
            pid_start=process_start(pid),
        )
    )
    await acc.tick()  # the hub lists nothing; the journal shows a live process
    clock.advance(H)
    await acc.tick()
    assert acc.store.spend("user", 0, clock() + 1, clock())["bob"][0] == pytest.approx(2.0)
    journal.mark_stopped("f" * 16, clock())
    clock.advance(H)
    await acc.tick()  # closed at the recorded stop time, not at the next tick
    assert acc.store.open_sessions() == []
    assert acc.store.spend("user", 0, clock() + 1, clock())["bob"][0] == pytest.approx(2.0)


async def test_concurrent_spawns_race_for_the_last_of_a_budget(make_accountant, clock):
    platform = platform_with(default_budget={"amount": 1.0, "enforcement": "block"})
    acc = make_accountant(platform)
    await acc.start()
    requests = [GateRequest(f"race{i:012d}", "ann", f"s{i}", "", "cpu", 0.6) for i in range(4)]
    verdicts = await asyncio.gather(*(acc.gate(r) for r in requests))
    assert sum(v.allowed for v in verdicts) == 1
    assert len(acc.store.open_sessions()) == 1
    refused = [v for v in verdicts if not v.allowed]
    assert all("user 'ann'" in v.message for v in refused)


async def test_a_user_in_two_groups_counts_once_in_each(make_accountant, clock):
    acc = make_accountant(platform_with())
    await acc.start()
    s = running("g" * 16, price=1.0, started=clock(), groups=("data-science", "ml-engineering"))
    acc.store.open_session(s, clock())
    acc.store.open_session(
        running("h" * 16, user="bob", started=clock(), groups=("ml-engineering",)), clock()
    )
    clock.advance(H)
    groups = acc.store.spend("group", 0, clock() + 1, clock())
    assert groups["data-science"][0] == pytest.approx(1.0)
    assert groups["ml-engineering"][0] == pytest.approx(2.0)
    users = acc.store.spend("user", 0, clock() + 1, clock())
    assert sum(v[0] for v in users.values()) == pytest.approx(2.0)
