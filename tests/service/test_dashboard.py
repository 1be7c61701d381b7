"""The cost dashboard page: what each viewer sees, escaping, date ranges and errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from mlfactory.service.budgets import Rule, Scope
from mlfactory.service.reconcile import Sighting
from mlfactory.service.scopes import BUDGETS_READ, USAGE_READ

from .helpers import T0

HOUR = 3600.0
DAY = 86400.0
XSS_USER = "<script>alert(1)</script>"
XSS_GROUP = "<img src=x onerror=alert(2)>"
XSS_PROJECT = '"><svg onload=alert(3)>'


def seed(
    acc,
    key: str,
    user: str,
    *,
    start: float,
    hours: float | None,
    price: float,
    groups: tuple[str, ...] = (),
    project: str = "",
    server_name: str = "",
) -> None:
    """A ledger session from ``start``; ``hours=None`` leaves it running."""
    sighting = Sighting(
        key=key,
        user=user,
        server_name=server_name,
        started=start,
        price_per_hour=price,
        project=project,
        profile="cpu-small",
        groups=groups,
        source="gate",
    )
    assert acc.store.open_session(sighting, start)
    if hours is not None:
        assert acc.store.end_session(key, start + hours * HOUR, "stopped")


def two_teams(svc) -> None:
    """data-science: alice (ended, 10.00) and carol (running, 0.40 so far); ml-engineering:
    bob (ended, 777.00 on 2026-11-08) and dave (running 'train', 1.35/h)."""
    hub, acc = svc.hub, svc.accountant
    for name, group in [
        ("alice", "data-science"),
        ("carol", "data-science"),
        ("bob", "ml-engineering"),
        ("dave", "ml-engineering"),
    ]:
        hub.add_user(name, groups=(group,))
    seed(acc, "s-alice-1", "alice", start=T0 - 3 * DAY, hours=4, price=2.5,
         groups=("data-science",), project="churn-model")  # fmt: skip
    seed(acc, "s-bob-1", "bob", start=T0 - 2 * DAY, hours=10, price=77.7,
         groups=("ml-engineering",), project="vision-research")  # fmt: skip
    seed(acc, "s-carol-1", "carol", start=T0 - 2 * HOUR, hours=None, price=0.2,
         groups=("data-science",), project="churn-model")  # fmt: skip
    seed(acc, "s-dave-1", "dave", start=T0 - HOUR, hours=None, price=1.35,
         groups=("ml-engineering",), project="vision-research", server_name="train")  # fmt: skip


async def page(svc, token: str | None, query: str = "") -> tuple[int, str, dict]:
    code, body, headers = await svc.call("GET", "/dashboard" + query, token=token)
    return code, body if isinstance(body, str) else repr(body), headers


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG, parsed as XML: escaping mistakes make them fail to parse."""
    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    return [ET.fromstring(s) for s in found]  # noqa: S314 - the page under test


async def test_admin_sees_every_team_with_charts(service, hub_state):
    svc = await service()
    two_teams(svc)
    token = hub_state.add_user("root", admin=True)
    code, html, headers = await page(svc, token)
    assert code == 200, html
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none' rules
    for name in ("alice", "bob", "carol", "dave/train", "data-science", "ml-engineering"):
        assert name in html, name
    assert "vision-research" in html and "churn-model" in html
    # 10.00 + 777.00 + 2h × 0.20 + 1h × 1.35, the current month by default
    total = re.search(r'id="total-spend">([^<]+)<', html).group(1)
    assert total == "788.75 USD"
    # the per-project chart puts bob's day on 2026-11-08, the team chart both teams
    assert "2026-11-08 · vision-research: 777.00 USD" in html
    assert "2026-11-07 · churn-model: 10.00 USD" in html
    charts = svgs(html)
    ids = {c.get("id") for c in charts}
    assert {"chart-teams", "chart-projects", "chart-users", "chart-burn"} <= ids
    teams = next(c for c in charts if c.get("id") == "chart-teams")
    legend = {t.text for t in teams.iter("{http://www.w3.org/2000/svg}text")}
    assert {"data-science", "ml-engineering"} <= legend
    # budgets: the two teams, the projects with a budget, users on the default budget
    bars = [c for c in charts if c.get("class") == "mlf-progress"]
    labels = " ".join(b.get("aria-valuetext") for b in bars)
    assert "group ml-engineering: 778.35 USD of 1,500.00 USD spent (52%)" in labels
    assert "user bob: 777.00 USD of 100.00 USD spent (777%)" in labels
    assert "project vision-research" in labels
    assert "<script" not in html


async def test_team_lead_does_not_see_the_other_team(service, hub_state):
    svc = await service()
    two_teams(svc)
    # erin is in both teams: the lead sees her (she is in theirs), but the team chart must
    # not grow an ml-engineering line from her sessions' tags
    hub_state.add_user("erin", groups=("data-science", "ml-engineering"))
    seed(svc.accountant, "s-erin-1", "erin", start=T0 - DAY, hours=2, price=0.5,
         groups=("data-science", "ml-engineering"), project="churn-model")  # fmt: skip
    token = hub_state.add_user(
        "lead",
        groups=("data-science",),
        scopes=(f"{USAGE_READ}!group=data-science", f"{BUDGETS_READ}!group=data-science"),
    )
    code, html, _ = await page(svc, token)
    assert code == 200, html
    assert "alice" in html and "carol" in html and "erin" in html and "data-science" in html
    for hidden in ("bob", "dave", "ml-engineering", "vision-research", "777", "1.35", "1,500"):
        assert hidden not in html, hidden
    total = re.search(r'id="total-spend">([^<]+)<', html).group(1)
    assert total == "11.40 USD"
    assert "teams data-science" in html
    budget_names = re.findall(r'<span class="badge kind">(\w+)</span> ([^\s<]+)', html)
    assert set(budget_names) == {
        ("group", "data-science"),
        ("user", "alice"),
        ("user", "carol"),
        ("user", "erin"),
    }


async def test_usage_reader_without_budget_scope_sees_only_own_budgets(service, hub_state):
    svc = await service()
    two_teams(svc)
    token = hub_state.add_user(
        "lead", groups=("data-science",), scopes=(f"{USAGE_READ}!group=data-science",)
    )
    code, html, _ = await page(svc, token)
    assert code == 200, html
    assert "Top users" in html and "Your budgets" in html
    budget_names = re.findall(r'<span class="badge kind">(\w+)</span> ([^\s<]+)', html)
    assert set(budget_names) == {("group", "data-science"), ("user", "lead")}
    assert "bob" not in html and "ml-engineering" not in html


async def test_plain_user_sees_only_their_own(service, hub_state):
    svc = await service()
    two_teams(svc)
    code, html, _ = await page(svc, "token-carol")
    assert code == 200, html
    assert "carol" in html
    for hidden in ("alice", "bob", "dave", "ml-engineering", "vision-research", "777", "10.00"):
        assert hidden not in html, hidden
    assert 'id="teams"' not in html  # no team chart without the usage scope
    assert "Your spend" in html and "Your budgets" in html
    assert re.search(r'id="total-spend">([^<]+)<', html).group(1) == "0.40 USD"
    budget_names = re.findall(r'<span class="badge kind">(\w+)</span> ([^\s<]+)', html)
    assert set(budget_names) == {("user", "carol"), ("group", "data-science")}
    assert "Download CSV" not in html


async def test_a_running_server_accrues_as_the_clock_moves(service, clock):
    svc = await service()
    two_teams(svc)
    _, before, _ = await page(svc, "token-carol")
    clock.advance(5 * HOUR)
    _, after, _ = await page(svc, "token-carol")
    spend = re.compile(r'id="total-spend">([^<]+)<')
    assert spend.search(before).group(1) == "0.40 USD"
    assert spend.search(after).group(1) == "1.40 USD"


async def test_names_are_escaped_in_html_and_svg(service, hub_state):
    svc = await service()
    acc = svc.accountant
    hub_state.add_user(XSS_USER, groups=(XSS_GROUP,))
    seed(acc, "s-xss-1", XSS_USER, start=T0 - 3 * HOUR, hours=None, price=3.0,
         groups=(XSS_GROUP,), project=XSS_PROJECT, server_name=XSS_USER)  # fmt: skip
    await acc.put_rule(Rule(Scope("group", XSS_GROUP), amount=10.0), "root")
    acc.store.record_alert(
        {
            "kind": "group",
            "name": XSS_GROUP,
            "period_start": T0 - 9 * DAY,
            "threshold": 0.5,
            "spent": 6.0,
            "amount": 10.0,
            "enforcement": "block",
            "fired_at": T0 - HOUR,
            "message": f"Budget alert: group {XSS_GROUP} has spent 6.00 USD",
            "delivery": {},
        }
    )
    token = hub_state.add_user("root", admin=True)
    code, html, _ = await page(svc, token)
    assert code == 200, html
    for raw in (XSS_USER, XSS_GROUP, XSS_PROJECT, "<script", "<img", "<svg onload"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&quot;&gt;&lt;svg onload=alert(3)&gt;" in html
    # the names reached the charts and the budget bar, escaped, and the SVG still parses
    charts = svgs(html)
    texts = " ".join("".join(c.itertext()) for c in charts)
    assert XSS_USER in texts and XSS_GROUP in texts and XSS_PROJECT in texts
    assert any(c.get("class") == "mlf-progress" and XSS_GROUP in c.get("aria-valuetext", "")
               for c in charts)  # fmt: skip
    assert all(not el.tag.endswith(("script", "img", "foreignObject")) for c in charts
               for el in c.iter())  # fmt: skip


async def test_date_range_selects_days(service, hub_state):
    svc = await service()
    two_teams(svc)
    token = hub_state.add_user("root", admin=True)
    code, html, _ = await page(svc, token, "?from=2026-11-08&to=2026-11-08")
    assert code == 200, html
    assert re.search(r'id="total-spend">([^<]+)<', html).group(1) == "777.00 USD"
    assert 'value="2026-11-08"' in html
    code, html, _ = await page(svc, token, "?from=2026-11-09&to=2026-11-10")
    assert code == 200, html
    assert re.search(r'id="total-spend">([^<]+)<', html).group(1) == "1.75 USD"
    assert "777.00" not in html.split('id="budgets"')[0]  # budgets still show this month


async def test_bad_dates_answer_400_json(service, hub_state):
    svc = await service()
    token = hub_state.add_user("root", admin=True)
    code, body, headers = await svc.call("GET", "/dashboard?from=not-a-date", token=token)
    assert code == 400
    assert headers["Content-Type"] == "application/json"
    assert body["field"] == "from" and "2026-11-01" in body["error"]
    code, body, _ = await svc.call("GET", "/dashboard?from=2026-11-10&to=2026-11-01", token=token)
    assert code == 400 and body["field"] == "to"


async def test_anonymous_browser_is_sent_to_log_in(service):
    svc = await service()
    code, _, headers = await svc.call("GET", "/dashboard")
    assert code == 302
    assert "/hub/api/oauth2/authorize" in headers["Location"]


async def test_the_service_root_is_the_dashboard(service):
    """The prefix's root redirects to the dashboard under the prefix, query string kept."""
    svc = await service()
    for path in ("", "/"):
        code, _, headers = await svc.call("GET", path + "?from=2026-11-01")
        assert code == 301
        assert headers["Location"] == "/services/mlfactory/dashboard?from=2026-11-01"
