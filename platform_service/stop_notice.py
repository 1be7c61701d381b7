"""Why a user's server stopped, for JupyterLab's notice once the server is gone.

The hub revokes a server's tokens (and the browser's OAuth token for it) when it stops, so
JupyterLab keeps a *stop ticket* the service signed while the server ran: it names one
user's server and nothing else, and lets JupyterLab read that server's last stop. The
ticket helpers and the choice between the stop records are pure (time is passed in);
``budget_stops`` is the one read of the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from tornado.web import create_signed_value, decode_signed_value

from .db import StopRow

TICKET_NAME = "mlfactory-stop-ticket"
# JupyterLab asks for a fresh ticket every few minutes; a stale one reads nothing
TICKET_MAX_AGE_S = 12 * 3600
TICKET_HEADER = "X-Mlfactory-Stop-Ticket"


@dataclass(frozen=True)
class Ticket:
    user: str
    server_name: str
    # when the service signed it: the server ran then, so a stop recorded since is its own
    issued: float


def make_ticket(secret: bytes | str, user: str, server_name: str, now: float) -> str:
    payload = json.dumps({"u": user, "s": server_name, "t": now})
    return create_signed_value(secret, TICKET_NAME, payload, clock=lambda: now).decode()


def read_ticket(secret: bytes | str, ticket: str, now: float) -> Ticket | None:
    """The ticket's server, or None when it is forged, malformed or older than the limit."""
    if not ticket or len(ticket) > 2048:
        return None
    raw = decode_signed_value(
        secret,
        TICKET_NAME,
        ticket,
        max_age_days=TICKET_MAX_AGE_S / 86400,
        clock=lambda: now,
    )
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Ticket(str(data["u"]), str(data["s"]), float(data["t"]))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class BudgetStop:
    kind: str
    name: str
    stopped_at: float
    servers: tuple[str, ...]


def budget_stops(engine: Engine, since: float) -> list[BudgetStop]:
    """The ``stop`` budgets that stopped servers at or after ``since``, newest first."""
    t = StopRow.__table__
    with engine.connect() as c:
        rows = c.execute(
            select(t.c.kind, t.c.name, t.c.stopped_at, t.c.servers)
            .where(t.c.stopped_at.is_not(None), t.c.stopped_at >= since)
            .order_by(t.c.stopped_at.desc())
            .limit(100)
        )
        return [BudgetStop(r.kind, r.name, r.stopped_at, tuple(r.servers or ())) for r in rows]


def last_stop(
    ticket: Ticket,
    culling: dict[str, Any] | None,
    culling_stopped_at: float | None,
    budgets: Iterable[BudgetStop],
) -> dict[str, Any] | None:
    """The newest stop of the ticket's server since the ticket was signed, or None.

    ``culling`` is idle shutdown's ``last_stop`` for the server (reason and ISO time) and
    ``culling_stopped_at`` the same time in epoch seconds. None means the platform did not
    stop it (as far as it has recorded yet): a person did, from the hub.
    """
    found: list[tuple[float, dict[str, Any]]] = []
    if culling is not None and culling_stopped_at is not None:
        if culling_stopped_at >= ticket.issued:
            found.append((culling_stopped_at, {"by": "idle-shutdown", "reason": culling["reason"]}))
    me = f"{ticket.user}/{ticket.server_name}"
    for b in budgets:
        if b.stopped_at >= ticket.issued and me in b.servers:
            what = "your budget" if b.kind == "user" else f"the {b.kind} budget '{b.name}'"
            found.append(
                (
                    b.stopped_at,
                    {
                        "by": "budget",
                        "reason": f"{what} is spent",
                        "budget": {"kind": b.kind, "name": b.name},
                    },
                )
            )
    if not found:
        return None
    at, stop = max(found, key=lambda f: f[0])
    return {**stop, "stopped_at": at}
