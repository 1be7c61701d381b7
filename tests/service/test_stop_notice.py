"""Why a server stopped, for JupyterLab once the server is gone: stop tickets (pure), the
choice between stop records (pure), and the two routes on the service with the stand-in
hub, an idle-shutdown stop and a ``stop`` budget's, on an injected clock."""

from __future__ import annotations

import json

from mlfactory.service import stop_notice
from mlfactory.service.stop_notice import BudgetStop, Ticket, last_stop, make_ticket, read_ticket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .helpers import T0, platform_with
from .test_culling import iso, ledger
from .test_openapi import check_response

M, H = 60, 3600
SECRET = b"k" * 32


# --- tickets and the choice between records (pure) ------------------------------------------


def test_a_ticket_names_one_server_and_expires():
    t = make_ticket(SECRET, "ann", "gpu", T0)
    assert read_ticket(SECRET, t, T0 + H) == Ticket("ann", "gpu", T0)
    assert read_ticket(SECRET, t, T0 + stop_notice.TICKET_MAX_AGE_S + 1) is None  # too old
    assert read_ticket(b"x" * 32, t, T0) is None  # another service's secret
    # bob's name in place of ann's, with ann's signature kept
    forged = make_ticket(b"x" * 32, "bob", "gpu", T0).rsplit("|", 1)[0] + "|" + t.rsplit("|")[-1]
    assert read_ticket(SECRET, forged, T0) is None
    assert read_ticket(SECRET, "", T0) is None and read_ticket(SECRET, "a" * 5000, T0) is None


def test_the_newest_stop_since_the_ticket_wins():
    ticket = Ticket("ann", "", T0)
    idle = {"reason": "it was idle for 1h", "stopped_at": iso(T0 + H)}
    team = BudgetStop("group", "ds", T0 + 2 * H, ("ann/", "bob/"))
    assert last_stop(ticket, None, None, []) is None
    assert last_stop(ticket, idle, T0 + H, []) == {
        "by": "idle-shutdown",
        "reason": "it was idle for 1h",
        "stopped_at": T0 + H,
    }
    assert last_stop(ticket, idle, T0 + H, [team]) == {
        "by": "budget",
        "reason": "the group budget 'ds' is spent",
        "budget": {"kind": "group", "name": "ds"},
        "stopped_at": T0 + 2 * H,
    }
    # stops before the ticket belong to an earlier run; other servers' stops are not ann's
    assert last_stop(ticket, idle, T0 - 1, [BudgetStop("user", "ann", T0 - 5, ("ann/",))]) is None
    assert last_stop(ticket, None, None, [BudgetStop("user", "ann", T0 + 5, ("ann/gpu",))]) is None


# --- the routes -----------------------------------------------------------------------------


async def _last_stop(svc, ticket: str | None) -> tuple[int, dict]:
    headers = {stop_notice.TICKET_HEADER: ticket} if ticket is not None else {}
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(svc.url + "/api/culling/last-stop", headers=headers), raise_error=False
    )
    body = json.loads(r.body)
    check_response("GET", "/api/culling/last-stop", r.code, dict(r.headers), body)
    return r.code, body


async def _ticket(svc, token: str, server_name: str = "") -> str:
    code, body, headers = await svc.call(
        "GET", f"/api/culling/stop-ticket?server_name={server_name}", token=token
    )
    check_response("GET", "/api/culling/stop-ticket", code, headers, body)
    assert code == 200 and body["server_name"] == server_name
    return body["ticket"]


async def test_an_idle_shutdown_reads_as_such_with_the_ticket_alone(service, hub_state, clock):
    svc = await service(platform_with(culling={"grace_after_restart": 0, "warn_before": "1m"}))
    ann = hub_state.add_user("ann", groups=("data-science",))
    bob = hub_state.add_user("bob")
    hub_state.run_server("ann", "", ledger("ann"), iso(T0))
    ticket = await _ticket(svc, ann)
    bobs = await _ticket(svc, bob)

    assert await _last_stop(svc, ticket) == (200, {"server_name": "", "stop": None})
    clock.advance(H)
    await svc.culler.run_pass()  # warned
    clock.advance(2 * M)
    assert (await svc.culler.run_pass())["stopped"] == 1
    code, body = await _last_stop(svc, ticket)
    assert code == 200 and body["stop"]["by"] == "idle-shutdown"
    assert body["stop"]["reason"] == "it was idle for 1h"
    # bob's ticket reads bob's server only; no ticket or a forged one reads nothing
    assert (await _last_stop(svc, bobs))[1]["stop"] is None
    code, body = await _last_stop(svc, None)
    assert code == 403 and "X-Mlfactory-Stop-Ticket" in body["error"]
    assert (await _last_stop(svc, ticket[:-2] + "00"))[0] == 403
    # a ticket is asked for with a hub token
    code, _, _ = await svc.call("GET", "/api/culling/stop-ticket")
    assert code == 403


async def test_a_budget_stop_reads_as_the_budget(service, hub_state, clock):
    svc = await service(
        platform_with(
            projects=[
                {
                    "name": "vision-research",
                    "display_name": "Vision",
                    "budget": {"amount": 3, "enforcement": "stop", "grace": "10m"},
                }
            ],
            default_budget=None,
        )
    )
    ann = hub_state.add_user("ann")
    charge = {"key": "v" * 16, "price_per_hour": 1.0, "project": "vision-research"}
    hub_state.run_server("ann", "gpu", charge, iso(T0))
    await svc.accountant.tick()
    ticket = await _ticket(svc, ann, "gpu")
    clock.advance(3 * H)
    await svc.accountant.tick()  # spent: warned
    assert (await _last_stop(svc, ticket))[1]["stop"] is None
    clock.advance(10 * M)
    await svc.accountant.tick()  # grace over: stopped
    assert hub_state.stopped == [("ann", "gpu")]
    code, body = await _last_stop(svc, ticket)
    assert code == 200 and body["server_name"] == "gpu"
    assert body["stop"]["by"] == "budget"
    assert body["stop"]["budget"] == {"kind": "project", "name": "vision-research"}
    assert body["stop"]["reason"] == "the project budget 'vision-research' is spent"
