"""The hub home page's budget and idle-shutdown notices (hub_config/templates/home.html).

The template is rendered with JupyterHub's own loader arrangement, and its script is run
in node against a stand-in DOM that records any use of its HTML-parsing properties, with a
scripted fetch standing in for the hub's token API and the platform service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub.app import JupyterHub
from jupyterhub.tests.utils import AsyncSession, public_url

from .conftest import TEMPLATES

HUB_TEMPLATES = os.path.join(JupyterHub().data_files_path, "templates")
NODE = shutil.which("node")
XSRF = "xsrf-from-page"


def hub_env(template_paths: list[str]) -> Environment:
    """The loader JupyterHub.init_tornado_settings builds: its own templates under the
    ``templates/`` prefix, then template_paths with its own templates last."""
    paths = [*template_paths, HUB_TEMPLATES]
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([HUB_TEMPLATES])}, "/"),
            FileSystemLoader(paths),
        ]
    )
    return Environment(loader=loader, autoescape=True)


class FakeUser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.json_escaped_name = json.dumps(name)[1:-1]
        self.spawner = SimpleNamespace(options_form=None)

    def all_spawners(self, include_default: bool = True) -> list:
        return []

    def server_url(self, name: str = "") -> str:
        return f"/user/{self.name}/{name}"


def render_home(services: list | None = None, user: str = "alice") -> str:
    mlfactory = SimpleNamespace(name="mlfactory", prefix="/services/mlfactory/")
    ns = {
        "base_url": "/hub/",
        "prefix": "/",
        "user": FakeUser(user),
        "services": [mlfactory] if services is None else services,
        "static_url": lambda path, include_version=True: f"/hub/static/{path}",
        "login_url": "/hub/login",
        "logout_url": "/hub/logout",
        "parsed_scopes": set(),
        "expanded_scopes": set(),
        "xsrf_token": XSRF,
        "default_server": SimpleNamespace(active=False),
        "url": f"/hub/spawn/{user}",
        "allow_named_servers": False,
    }
    return hub_env([TEMPLATES]).get_template("home.html").render(**ns)


def our_script(html: str) -> str:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ours = [s for s in scripts if "mlfactory-budget-notices" in s]
    assert len(ours) == 1, "expected exactly one mlfactory script"
    return ours[0]


def test_extends_jupyterhub_home_and_adds_the_notice_boxes():
    html = render_home()
    # JupyterHub's home page and mlfactory's page.html are both still there
    assert 'id="start"' in html and "My Server" in html
    assert 'require(["home"])' in html
    assert "JupyterHub home page" in html
    for name in ("mlfactory-culling-notices", "mlfactory-budget-notices"):
        box = re.search(rf'<div class="container"\s+id="{name}"[^>]*>', html)
        assert box and "hidden" in box.group(0)
        assert html.index(name) < html.index('id="start"')
    script = our_script(html)
    assert 'var servicePrefix = "/services/mlfactory/";' in script
    assert 'var userName = "alice";' in script


@pytest.mark.parametrize(
    "services",
    [[], [SimpleNamespace(name="other", prefix="/services/other/")], None],
    ids=["no-services", "other-service", "services-undefined"],
)
def test_nothing_when_the_user_cannot_reach_the_service(services):
    if services is None:
        # a hub without the variable at all (an older caller) must still render
        env = hub_env([TEMPLATES])
        html = env.get_template("home.html").render(
            base_url="/hub/",
            user=FakeUser("alice"),
            static_url=lambda path, include_version=True: path,
            default_server=SimpleNamespace(active=False),
        )
    else:
        html = render_home(services)
    assert "mlfactory-budget-notices" not in html
    assert "mlfactory-culling-notices" not in html
    assert 'id="start"' in html


def test_user_name_is_escaped_in_the_script():
    script = our_script(render_home(user='</script><b>"x'))
    assert "</script>" not in script
    assert '<b>"x' not in script


def test_script_writes_text_only():
    script = our_script(render_home())
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


# --- the script, run in node --------------------------------------------------------------

HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const [script, scenario] = [fs.readFileSync(process.argv[2], "utf8"),
                            JSON.parse(fs.readFileSync(process.argv[3], "utf8"))];
const sinks = [];
function element(tag) {
  const e = {
    tagName: tag, children: [], attrs: {}, className: "", hidden: true, _text: "",
    appendChild(c) { this.children.push(c); return c; },
    setAttribute(k, v) { this.attrs[k] = String(v); },
    get textContent() { return this._text + this.children.map(c => c.textContent).join(""); },
    set textContent(v) { this._text = String(v); this.children = []; },
    insertAdjacentHTML() { sinks.push("insertAdjacentHTML"); },
  };
  for (const p of ["innerHTML", "outerHTML"]) {
    Object.defineProperty(e, p, {
      get() { sinks.push(p); return ""; }, set(v) { sinks.push(p); },
    });
  }
  return e;
}
const boxes = { "mlfactory-budget-notices": element("div"),
                "mlfactory-culling-notices": element("div") };
const store = new Map(Object.entries(scenario.session || {}));
const calls = [];
// each route answers from its own queue, whatever order the script asks in
const queues = JSON.parse(JSON.stringify(scenario.answers));
function route(url) {
  if (url.endsWith("/tokens")) { return "token"; }
  if (url.endsWith("/api/me")) { return "me"; }
  if (url.endsWith("/api/culling/status")) { return "culling"; }
  return "unknown";
}
const debug = [];
const window = {
  jhdata: { xsrf_token: scenario.xsrf },
  sessionStorage: {
    getItem: k => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
  },
  console: { debug: (...a) => debug.push(a.map(String).join(" ")) },
};
const document = {
  getElementById: id => boxes[id] || null,
  createElement: element,
  write: () => sinks.push("document.write"),
};
function fetch(url, init) {
  calls.push({ url, method: (init && init.method) || "GET",
               headers: (init && init.headers) || {}, body: (init && init.body) || null,
               credentials: init && init.credentials });
  const a = (queues[route(url)] || []).shift();
  if (!a || a.error) { return Promise.reject(new TypeError("network down")); }
  return Promise.resolve({
    ok: a.status >= 200 && a.status < 300, status: a.status,
    json: () => Promise.resolve(a.body),
  });
}
const context = { window, document, fetch, console: window.console, JSON, Date, Math,
                  Object, Array, String, Error, TypeError, isNaN, encodeURIComponent };
vm.runInNewContext(script, context);
function shown(box) {
  return box.children.map(c => ({
    className: c.className, role: c.attrs.role,
    lines: c.children.map(x => x.textContent),
  }));
}
setTimeout(() => {
  const budget = boxes["mlfactory-budget-notices"];
  const culling = boxes["mlfactory-culling-notices"];
  process.stdout.write(JSON.stringify({
    hidden: budget.hidden, shown: shown(budget),
    culling_hidden: culling.hidden, culling: shown(culling),
    calls, sinks, debug, session: Object.fromEntries(store),
  }));
}, 50);
"""

ME = {
    "user": "alice",
    "currency": "USD",
    "budgets": [
        {"kind": "user", "name": "alice", "amount": 100.0, "spent": 85.5, "fraction": 0.855,
         "resets_at": "2026-04-01T00:00:00Z"},
        {"kind": "group", "name": "vision", "amount": 500.0, "spent": 510.0, "fraction": 1.02,
         "resets_at": "2026-04-01T00:00:00Z"},
    ],
    "notices": [
        {"id": 1, "kind": "user", "name": "alice", "threshold": 0.5,
         "message": "Half of your budget is spent"},
        {"id": 2, "kind": "user", "name": "alice", "threshold": 0.8,
         "message": '<img src=x onerror="alert(1)"> 80% of your budget is spent'},
        {"id": 3, "kind": "group", "name": "vision", "threshold": 1.0,
         "message": "Team vision has spent its budget"},
    ],
}  # fmt: skip
TOKEN_KEY = "mlfactory:home-token:alice"


@pytest.fixture
def run_script(tmp_path):
    if NODE is None:  # the test command builds the labextension with it
        pytest.fail("node is missing: install Node.js (make test needs it for the labextension)")
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "script.js").write_text(our_script(render_home()))

    def run(answers: dict[str, list[dict]], session: dict | None = None) -> dict:
        scenario = {"answers": answers, "session": session or {}, "xsrf": XSRF}
        (tmp_path / "scenario.json").write_text(json.dumps(scenario))
        out = subprocess.run(
            [NODE, "harness.js", "script.js", "scenario.json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout)

    return run


def _fresh_token(token: str) -> dict:
    # far in the future: the script keeps a token until a minute before it expires
    return {TOKEN_KEY: json.dumps({"token": token, "expires": 4_102_444_800_000})}


NOTHING_TO_STOP = {"servers": [], "stops": []}
MINT = {"status": 201, "body": {"token": "tok-1"}}


def _ok(body: dict) -> list[dict]:
    return [{"status": 200, "body": body}]


def test_mints_a_service_only_token_then_shows_notices_as_text(run_script):
    result = run_script({"token": [MINT], "me": _ok(ME), "culling": _ok(NOTHING_TO_STOP)})
    mint, *asks = result["calls"]
    assert (mint["url"], mint["method"]) == ("/hub/api/users/alice/tokens", "POST")
    assert mint["headers"]["X-XSRFToken"] == XSRF
    assert mint["credentials"] == "same-origin"
    request = json.loads(mint["body"])
    assert request["scopes"] == ["access:services!service=mlfactory"]
    assert 0 < request["expires_in"] <= 3600
    # one token for both questions
    assert sorted(a["url"] for a in asks) == [
        "/services/mlfactory/api/culling/status",
        "/services/mlfactory/api/me",
    ]
    for ask in asks:
        assert ask["headers"]["Authorization"] == "token tok-1"
        assert ask["credentials"] == "omit"
    assert json.loads(result["session"][TOKEN_KEY])["token"] == "tok-1"

    assert result["sinks"] == []
    assert result["hidden"] is False
    assert result["culling_hidden"] is True
    # one notice per budget, the highest threshold, the spent budget first
    (group, user) = result["shown"]
    assert group["className"] == "alert alert-danger"
    assert group["lines"][0] == "Team vision has spent its budget"
    assert group["lines"][1].startswith("Spent 510.00 of 500.00 USD (102%); resets ")
    assert user["className"] == "alert alert-warning"
    assert user["lines"][0] == '<img src=x onerror="alert(1)"> 80% of your budget is spent'
    assert user["lines"][1].startswith("Spent 85.50 of 100.00 USD (86%)")


def test_reuses_a_fresh_token(run_script):
    result = run_script(
        {"me": _ok(ME), "culling": _ok(NOTHING_TO_STOP)}, session=_fresh_token("tok-old")
    )
    assert [c["method"] for c in result["calls"]] == ["GET", "GET"]
    assert {c["headers"]["Authorization"] for c in result["calls"]} == {"token tok-old"}
    assert len(result["shown"]) == 2


def test_a_refused_cached_token_is_replaced_once(run_script):
    refused = {"status": 403, "body": {"error": "Authenticate with a hub token"}}
    result = run_script(
        {
            "token": [{"status": 201, "body": {"token": "tok-new"}}],
            "me": [refused, {"status": 200, "body": ME}],
            "culling": [refused, {"status": 200, "body": NOTHING_TO_STOP}],
        },
        session=_fresh_token("tok-revoked"),
    )
    # both questions were refused, but only one new token is minted
    assert [c["method"] for c in result["calls"]] == ["GET", "GET", "POST", "GET", "GET"]
    retried = result["calls"][-2:]
    assert {c["headers"]["Authorization"] for c in retried} == {"token tok-new"}
    assert len(result["shown"]) == 2


@pytest.mark.parametrize(
    "answers",
    [
        {"token": [{"status": 403, "body": {"message": "no tokens for you"}}]},
        {"token": [{"error": True}]},
        {
            "token": [MINT],
            "me": [{"status": 503, "body": {"error": "down"}}],
            "culling": [{"status": 503, "body": {"error": "down"}}],
        },
        {"token": [MINT], "me": [{"error": True}], "culling": [{"error": True}]},
        {"token": [MINT], "me": _ok({**ME, "notices": []}), "culling": _ok(NOTHING_TO_STOP)},
    ],
    ids=["token-refused", "hub-down", "service-error", "service-down", "no-notices"],
)
def test_shows_nothing_when_there_is_nothing_to_show(run_script, answers):
    result = run_script(answers)
    assert result["hidden"] is True and result["culling_hidden"] is True
    assert result["shown"] == [] and result["culling"] == []
    assert result["sinks"] == []


# --- idle shutdown ------------------------------------------------------------------------

CULLING = {
    "servers": [
        {
            "server_name": "gpu-1",
            "action": "warn",
            "reason": 'its GPUs were below 5% for 30m <img src=x onerror="alert(1)">',
            "deadline": "2026-03-10T14:30:00Z",
            "keep_alive_left": 2,
            "idle_timeout": 1800,
            "last_stop": None,
        },
        {
            "server_name": "",
            "action": "keep",
            "reason": "a kernel is busy",
            "deadline": None,
            "keep_alive_left": 3,
            "idle_timeout": 14400,
            "last_stop": {"stopped_at": "2026-03-09T10:00:00Z", "reason": "old news"},
        },
    ],
    "stops": [
        {
            "server_name": "cpu",
            "stopped_at": "2026-03-10T12:00:00Z",
            "reason": "it was idle for 4h",
        },
        {
            "server_name": "cpu",
            "stopped_at": "2026-03-10T14:02:00Z",
            "reason": "it was idle for 1h",
        },
        # stopped, then started again: running now, so not shown as stopped
        {"server_name": "", "stopped_at": "2026-03-10T09:00:00Z", "reason": "it was idle for 4h"},
    ],
}


def test_idle_shutdown_warnings_and_stops_as_text(run_script):
    result = run_script(
        {"token": [MINT], "me": _ok({**ME, "notices": []}), "culling": _ok(CULLING)}
    )
    assert result["sinks"] == []
    assert result["culling_hidden"] is False
    warning, stop = result["culling"]
    assert warning["className"] == "alert alert-warning"
    assert warning["role"] == "status"
    first, second = warning["lines"]
    assert first.startswith("Your server \u201cgpu-1\u201d will be stopped at ")
    # the service's words arrive as text, markup and all
    assert first.endswith('because its GPUs were below 5% for 30m <img src=x onerror="alert(1)">.')
    assert second == "Open it and press \u201cKeep running\u201d to keep it (2 presses left)."
    assert stop["className"] == "alert alert-info"
    # the latest stop of the server, once
    assert stop["lines"][0].startswith("Your server \u201ccpu\u201d was stopped at ")
    assert stop["lines"][0].endswith(" because it was idle for 1h.")
    assert result["hidden"] is True  # no budget notices: that box stays hidden


def test_no_presses_left_says_save_your_work(run_script):
    server = {**CULLING["servers"][0], "server_name": "", "keep_alive_left": 0}
    result = run_script(
        {"token": [MINT], "me": _ok(ME), "culling": _ok({"servers": [server], "stops": []})}
    )
    ((first, second),) = [n["lines"] for n in result["culling"]]
    assert first.startswith("Your server will be stopped at ")
    assert "save your work" in second
    assert len(result["shown"]) == 2  # the budget notices still show


def test_culling_failure_leaves_the_budget_notices(run_script):
    result = run_script({"token": [MINT], "me": _ok(ME), "culling": [{"status": 404, "body": {}}]})
    assert result["culling_hidden"] is True
    assert len(result["shown"]) == 2
    assert any("idle-shutdown" in line for line in result["debug"])


# --- on a running hub ---------------------------------------------------------------------


async def test_running_hub_serves_the_notice_box(hub_app, mockhub_config):
    """JupyterHub's own loader and namespace: the extends chain resolves and the service
    the user may reach is found in `services`."""
    config = json.loads(json.dumps(mockhub_config))
    config["JupyterHub"].update(
        template_paths=[TEMPLATES],
        services=[{"name": "mlfactory", "url": "http://127.0.0.1:1"}],
        load_roles=[
            {"name": "user", "scopes": ["self", "access:services!service=mlfactory"]},
        ],
    )
    app = await hub_app(config=config)
    cookies = await app.login_user("alice")
    r = await AsyncSession().get(public_url(app, path="hub/home"), cookies=cookies)
    assert r.status_code == 200
    assert 'id="mlfactory-budget-notices"' in r.text
    assert 'id="mlfactory-culling-notices"' in r.text
    prefix = json.dumps(f"{app.base_url}services/mlfactory/")
    assert f"var servicePrefix = {prefix};" in our_script(r.text)
    assert f"var hubApi = {json.dumps(app.hub.base_url)} + " in r.text
