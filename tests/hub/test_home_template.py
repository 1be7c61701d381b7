"""The hub home page's platform summary (hub_config/templates/home.html, hub_config/home.py).

The template is rendered with JupyterHub's own loader arrangement and its asynchronous
rendering, then on a running MockHub whose ``mlfactory_home`` asks a recording stand-in of the
platform service's ``/api/home``: the hub asks for the signed-in user with the shared secret,
renders service text escaped, mints no token per visit, and says so when the service is away.
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub import orm
from jupyterhub.app import JupyterHub
from jupyterhub.tests.utils import AsyncSession, public_url
from mlfactory.hub.home import HomeSummary
from mlfactory.hub.home_view import UNAVAILABLE, home_view
from tornado import web
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from .conftest import TEMPLATES

HUB_TEMPLATES = os.path.join(JupyterHub().data_files_path, "templates")
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()
EVIL = '<img src=x onerror="alert(1)">'
SECRET = "home-test-secret"


def hub_env(template_paths: list[str]) -> Environment:
    """The loader JupyterHub.init_tornado_settings builds (its own templates under the
    ``templates/`` prefix, then template_paths with its own last), rendering asynchronously
    as the hub's ``render_template`` does."""
    paths = [*template_paths, HUB_TEMPLATES]
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([HUB_TEMPLATES])}, "/"),
            FileSystemLoader(paths),
        ]
    )
    return Environment(loader=loader, autoescape=True, enable_async=True)


class FakeUser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.json_escaped_name = json.dumps(name)[1:-1]
        self.spawner = SimpleNamespace(options_form=None)

    def all_spawners(self, include_default: bool = True) -> list:
        return []

    def server_url(self, name: str = "") -> str:
        return f"/user/{self.name}/{name}"


def service_answer(**kw) -> dict:
    """What ``/api/home`` answers (see tests/service/test_home_api.py for the real one)."""
    return {
        "user": "alice",
        "currency": "USD",
        "timezone": "UTC",
        "budgets": [
            {"kind": "user", "name": "alice", "amount": 10.0, "period": "monthly",
             "enforcement": "alert", "thresholds": [0.5, 0.8, 1.0], "grace_seconds": 900,
             "notify": [], "source": "api", "spent": 9.0, "fraction": 0.9,
             "period_start": "2026-11-01T00:00:00Z", "resets_at": "2026-12-01T00:00:00Z"},
        ],
        "notices": [
            {"id": 7, "kind": "user", "name": "alice", "threshold": 0.8,
             "message": "Budget alert: user 'alice' has spent 9.00 USD",
             "fired_at": "2026-11-10T11:00:00Z"},
        ],
        "servers": [
            {"user": "alice", "server_name": "train", "project": "churn-model",
             "profile": "gpu-t4", "resources": {}, "price_per_hour": 0.6,
             "started": "2026-11-10T10:30:00Z", "hours": 1.5, "cost_so_far": 0.9,
             "orphaned": False},
        ],
        "culling": {
            "servers": [{"server_name": "train", "action": "warn", "reason": "it was idle for 1h",
                         "deadline": "2026-11-10T12:10:00Z", "keep_alive_left": 2,
                         "idle_timeout": 3600, "last_stop": None, "poll_seconds": 60}],
            "stops": [],
        },
        **kw,
    }  # fmt: skip


async def render_home(view=None, services: list | None = None, user: str = "alice", **ns):
    """Render home.html for ``user``; ``view`` (a HomeView) is what ``mlfactory_home`` gives."""
    calls: list[str] = []

    async def mlfactory_home():
        calls.append(user)
        return view

    mlfactory = SimpleNamespace(name="mlfactory", prefix="/services/mlfactory/")
    namespace = {
        "base_url": "/hub/",
        "prefix": "/",
        "user": FakeUser(user),
        "services": [mlfactory] if services is None else services,
        "static_url": lambda path, include_version=True: f"/hub/static/{path}",
        "login_url": "/hub/login",
        "logout_url": "/hub/logout",
        "parsed_scopes": set(),
        "expanded_scopes": set(),
        "xsrf_token": "xsrf",
        "default_server": SimpleNamespace(active=False),
        "url": f"/hub/spawn/{user}",
        "allow_named_servers": False,
        "mlfactory_home": mlfactory_home,
        **ns,
    }
    html = await hub_env([TEMPLATES]).get_template("home.html").render_async(**namespace)
    return html, calls


def text_of(html: str, testid: str) -> list[str]:
    """The text inside each element with ``data-testid=testid`` (tags dropped, spaces folded)."""
    out = []
    for m in re.finditer(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', html, re.S):
        out.append(" ".join(re.sub(r"<[^>]+>", " ", m.group(2)).split()))
    return out


async def test_notices_above_the_buttons_servers_and_budgets_below():
    html, calls = await render_home(home_view(service_answer(), NOW))
    assert calls == ["alice"]
    # JupyterHub's home page and its script are still there
    assert 'id="start"' in html and 'require(["home"])' in html
    notices = html.index('data-testid="mlfactory-notices"')
    summary = html.index('data-testid="mlfactory-summary"')
    assert notices < html.index('id="start"') < summary
    assert text_of(html, "mlfactory-culling-notice") == [
        "Your server \u201ctrain\u201d will be stopped at 12:10 UTC because it was idle for 1h. "
        "Open it and press \u201cKeep running\u201d to keep it (2 presses left)."
    ]
    (budget_notice,) = text_of(html, "mlfactory-budget-notice")
    assert budget_notice.startswith("Budget alert: user &#39;alice&#39; has spent 9.00 USD")
    assert "Spent 9.00 of 10.00 USD (90%); resets 2026-12-01." in budget_notice
    (row,) = text_of(html, "mlfactory-server")
    assert row == "train gpu-t4 churn-model 1 h 30 min 0.90 USD 0.60 USD/hour"
    (budget,) = text_of(html, "mlfactory-budget")
    assert budget.startswith("Your monthly budget 9.00 of 10.00 USD 90% 2026-12-01")
    assert 'data-level="warn"' in html


async def test_service_text_is_escaped():
    answer = service_answer(
        notices=[{"id": 1, "kind": "group", "name": EVIL, "threshold": 1.0, "message": EVIL,
                  "fired_at": "2026-11-10T11:00:00Z"}],
        budgets=[{**service_answer()["budgets"][0], "kind": "group", "name": EVIL}],
        servers=[{**service_answer()["servers"][0], "server_name": f'a"{EVIL}',
                  "profile": EVIL, "project": EVIL}],
        culling={"servers": [], "stops": [{"server_name": EVIL, "stopped_at":
                 "2026-11-10T11:00:00Z", "reason": EVIL}]},
    )  # fmt: skip
    html, _ = await render_home(home_view(answer, NOW))
    assert "<img src=x" not in html and 'onerror="' not in html
    assert html.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") >= 6
    assert 'data-server-name="a&#34;&lt;img' in html  # the attribute stays closed
    # nothing from the service reaches a script, and the page has no script of ours
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    assert not [s for s in scripts if "mlfactory" in s or "img" in s]


async def test_no_token_is_asked_for_by_the_page():
    html, _ = await render_home(home_view(service_answer(), NOW))
    assert "/tokens" not in html and "sessionStorage" not in html


async def test_nothing_running_and_no_budget_say_so():
    html, _ = await render_home(
        home_view(service_answer(servers=[], budgets=[], notices=[], culling=None), NOW)
    )
    assert text_of(html, "mlfactory-no-servers") == [
        "None of your servers is running, so nothing is being charged."
    ]
    assert text_of(html, "mlfactory-no-budgets") == ["No budget applies to you."]
    assert 'data-testid="mlfactory-notices"' not in html


async def test_an_unanswered_service_is_said_with_what_to_do():
    html, _ = await render_home(UNAVAILABLE)
    (line,) = text_of(html, "mlfactory-summary-unavailable")
    assert "did not answer" in line and "Reload this page in a minute" in line
    assert 'data-testid="mlfactory-servers"' not in html and 'id="start"' in html


@pytest.mark.parametrize(
    "services",
    [[], [SimpleNamespace(name="other", prefix="/services/other/")]],
    ids=["no-services", "other-service"],
)
async def test_nothing_and_no_question_when_the_user_cannot_reach_the_service(services):
    html, calls = await render_home(home_view(service_answer(), NOW), services=services)
    assert calls == []
    assert "mlfactory-summary" not in html and "mlfactory-notices" not in html
    assert 'id="start"' in html


async def test_a_hub_without_the_variable_still_renders():
    env = hub_env([TEMPLATES])
    html = await env.get_template("home.html").render_async(
        base_url="/hub/",
        user=FakeUser("alice"),
        static_url=lambda path, include_version=True: path,
        default_server=SimpleNamespace(active=False),
    )
    assert 'id="start"' in html and "mlfactory-summary" not in html


def test_no_one_signed_in_means_no_question():
    assert HomeSummary("http://127.0.0.1:1/services/mlfactory", SECRET)(None) is None


# --- on a running hub ---------------------------------------------------------------------


class RecordingHome(web.RequestHandler):
    """Stands in for the platform service's ``/api/home`` (the real one is tested in
    tests/service/test_home_api.py and end to end in tests/e2e/test_home_page.py)."""

    def post(self) -> None:
        self.settings["asked"].append(
            (self.request.headers.get("Authorization"), json.loads(self.request.body))
        )
        self.finish(service_answer())


@pytest.fixture
def platform_service():
    asked: list = []
    port = free_port()
    server = HTTPServer(
        web.Application([(r"/services/mlfactory/api/home", RecordingHome)], asked=asked)
    )
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/services/mlfactory", asked
    server.stop()


async def start_hub(hub_app, mockhub_config, service_url: str):
    config = copy.deepcopy(mockhub_config)
    config["JupyterHub"].update(
        template_paths=[TEMPLATES],
        services=[{"name": "mlfactory", "url": "http://127.0.0.1:1"}],
        load_roles=[{"name": "user", "scopes": ["self", "access:services!service=mlfactory"]}],
        load_groups={"data-science": {"users": ["alice"]}},
        template_vars={"mlfactory_home": HomeSummary(service_url, SECRET, clock=lambda: NOW)},
    )
    return await hub_app(config=config)


def token_count(app, name: str) -> int:
    user = orm.User.find(app.db, name)
    app.db.refresh(user)
    return len(user.api_tokens)


async def test_running_hub_asks_for_the_signed_in_user_and_mints_nothing(
    hub_app, mockhub_config, platform_service
):
    url, asked = platform_service
    app = await start_hub(hub_app, mockhub_config, url)
    cookies = await app.login_user("alice")
    before, start = token_count(app, "alice"), len(asked)
    for _ in range(3):
        r = await AsyncSession().get(public_url(app, path="hub/home"), cookies=cookies)
        assert r.status_code == 200
    assert token_count(app, "alice") == before
    assert (
        asked[start:] == [(f"secret {SECRET}", {"user": "alice", "groups": ["data-science"]})] * 3
    )
    (row,) = text_of(r.text, "mlfactory-server")
    assert row.startswith("train gpu-t4 churn-model 1 h 30 min 0.90 USD")
    assert text_of(r.text, "mlfactory-culling-notice")
    # other hub pages never ask the service
    r = await AsyncSession().get(public_url(app, path="hub/token"), cookies=cookies)
    assert r.status_code == 200 and len(asked) == start + 3


async def test_running_hub_renders_the_page_when_the_service_is_away(hub_app, mockhub_config):
    app = await start_hub(hub_app, mockhub_config, f"http://127.0.0.1:{free_port()}/x")
    cookies = await app.login_user("alice")
    r = await AsyncSession().get(public_url(app, path="hub/home"), cookies=cookies)
    assert r.status_code == 200
    assert text_of(r.text, "mlfactory-summary-unavailable")
    assert 'id="start"' in r.text
