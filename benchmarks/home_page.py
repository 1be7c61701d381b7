"""The hub's home page: what a visit costs a user now that the hub renders the platform summary
itself, against a hub page that asks no service, and against what the old page's script added.

Starts one real ``mlfactory hub`` (the shipped platform config, local accounts, the real proxy
and platform service), with one approved user whose server is running, logs the user in with a
``requests.Session`` (the login form and its ``_xsrf``), then in rotating order, ``--visits``
times each (after ``--warmup`` untimed rounds):

* ``GET /hub/home``: mlfactory's home page; the hub POSTs the service's ``/api/home`` with the
  shared secret while it renders (``hub_config/home.py``), so the timed answer includes that call;
* ``GET /hub/token``: the anchor, a hub page on the same template base (``page.html``) that
  asks no service;
* the old flow, what each visit used to add in the browser after the page had loaded:
  ``POST /hub/api/users/<u>/tokens`` with the page's XSRF header (the old script's body), then
  ``GET /services/mlfactory/api/me`` with that token and no cookie. Each minted token is revoked
  afterwards, untimed, so the anchor's token list stays the same size.

The user's API tokens are counted through the REST API before and after: the home visits must
mint none. Prints the machine and its load average before and after, medians and p95s, and the
ratios. Stops the server and the hub and removes the OS accounts the hub made.

    .venv/bin/python benchmarks/home_page.py --visits 50
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jupyterhub
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.conftest import discard_hub, prepare_hub, start_hub  # noqa: E402
from tests.e2e.helpers import HubClient  # noqa: E402

USER = "homebench"
PASSWORD = "home-bench-password-1"
# what the old script asked for (hub_config/templates/home.html before the hub rendered it)
OLD_TOKEN_BODY = {
    "note": "mlfactory: budget and idle-shutdown notices on the home page",
    "expires_in": 900,
    "scopes": ["access:services!service=mlfactory"],
}


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:7.1f} ms"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn: Callable[[], requests.Response], expect: int) -> tuple[float, requests.Response]:
    t0 = time.perf_counter()
    r = fn()
    _ = r.content  # the whole body, as a browser waits for it
    elapsed = time.perf_counter() - t0
    if r.status_code != expect:
        raise RuntimeError(f"{r.request.method} {r.url} answered {r.status_code}: {r.text[:500]}")
    return elapsed, r


class Visitor:
    """The signed-in user's browser: the hub's cookies, and a cookie-less client for the
    service (the old script fetched it with ``credentials: "omit"``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.browser = requests.Session()
        self.plain = requests.Session()
        self.revoke: list[str] = []

    def log_in(self) -> None:
        self.browser.get(f"{self.url}/hub/login", timeout=60).raise_for_status()
        form = {"username": USER, "password": PASSWORD, "_xsrf": self.browser.cookies["_xsrf"]}
        r = self.browser.post(f"{self.url}/hub/login?next=/hub/home", data=form, timeout=60)
        if r.status_code != 200 or not r.url.endswith("/hub/home"):
            raise RuntimeError(f"login answered {r.status_code} at {r.url}")

    def home(self) -> tuple[float, str]:
        elapsed, r = timed(lambda: self.browser.get(f"{self.url}/hub/home", timeout=60), 200)
        return elapsed, r.text

    def anchor(self) -> tuple[float, str]:
        elapsed, r = timed(lambda: self.browser.get(f"{self.url}/hub/token", timeout=60), 200)
        return elapsed, r.text

    def old_flow(self) -> tuple[float, float]:
        """Seconds to mint the token, and to ask the service's /api/me with it."""
        mint, r = timed(
            lambda: self.browser.post(
                f"{self.url}/hub/api/users/{USER}/tokens",
                json=OLD_TOKEN_BODY,
                headers={"X-XSRFToken": self.browser.cookies["_xsrf"]},
                timeout=60,
            ),
            201,
        )
        body = r.json()
        self.revoke.append(body["id"])
        me, _ = timed(
            lambda: self.plain.get(
                f"{self.url}/services/mlfactory/api/me",
                headers={"Authorization": f"token {body['token']}"},
                timeout=60,
            ),
            200,
        )
        return mint, me


def summary_state(html: str) -> str:
    if 'data-testid="mlfactory-summary-unavailable"' in html:
        return "unavailable"
    if 'data-testid="mlfactory-server"' in html and 'data-testid="mlfactory-budget"' in html:
        return "ok"
    return "missing"


def token_ids(admin: HubClient) -> list[str]:
    return sorted(t["id"] for t in admin.hub_json(f"/users/{USER}/tokens")["api_tokens"])


def measure(hub_url: str, admin: HubClient, visits: int, warmup: int) -> dict:
    t0 = time.perf_counter()
    admin.spawn(user=USER, profile="cpu-small")
    admin.wait_ready(user=USER, timeout=300)
    print(f"{USER}'s server ready in {time.perf_counter() - t0:.1f} s", flush=True)
    visitor = Visitor(hub_url)
    visitor.log_in()

    kinds = ("home", "anchor", "old")
    times: dict[str, list[float]] = {"home": [], "anchor": [], "mint": [], "me": [], "old": []}
    states: dict[str, int] = {}
    sizes: dict[str, int] = {}

    def one(kind: str, record: bool) -> None:
        if kind == "home":
            elapsed, html = visitor.home()
            sizes["home"] = len(html.encode())
            if record:
                times["home"].append(elapsed)
                state = summary_state(html)
                states[state] = states.get(state, 0) + 1
            elif summary_state(html) != "ok":
                raise RuntimeError(f"the home page shows no summary:\n{html[-3000:]}")
        elif kind == "anchor":
            elapsed, html = visitor.anchor()
            sizes["anchor"] = len(html.encode())
            if record:
                times["anchor"].append(elapsed)
        else:
            mint, me = visitor.old_flow()
            if record:
                times["mint"].append(mint)
                times["me"].append(me)
                times["old"].append(mint + me)
            for token_id in visitor.revoke:  # untimed: the token page lists the same tokens
                admin.delete(f"/hub/api/users/{USER}/tokens/{token_id}").raise_for_status()
            visitor.revoke.clear()

    for _ in range(warmup):
        for kind in kinds:
            one(kind, record=False)
    before = token_ids(admin)
    orders = itertools.cycle(itertools.permutations(kinds))  # each kind in each place alike
    for _ in range(visits):
        for kind in next(orders):
            one(kind, record=True)
    after = token_ids(admin)
    admin.stop(user=USER, timeout=120)
    return {"times": times, "states": states, "sizes": sizes, "before": before, "after": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=50, help="timed visits of each kind")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--keep", action="store_true", help="keep the hub's data folder and log")
    args = parser.parse_args()

    print(
        f"machine: {platform.node()} {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, JupyterHub {jupyterhub.__version__}"
    )
    load_before = loadavg()
    print(f"load average before: {load_before}", flush=True)
    # the shipped config says backend "auto": run local processes whatever engine answers here
    os.environ["MLFACTORY_BACKEND"] = "local"
    data, config_path = prepare_hub("home-bench", None, {USER: PASSWORD})
    hub = None
    try:
        hub = start_hub(data, config=config_path, timeout=180)
        print(f"hub at {hub.url}, log {hub.log_path}", flush=True)
        admin = HubClient(hub)
        r = admin.post(f"/hub/api/users/{USER}")
        if r.status_code not in (201, 409):
            raise RuntimeError(f"creating {USER} answered {r.status_code}: {r.text}")
        result = measure(hub.url, admin, args.visits, args.warmup)
    finally:
        if hub is not None:
            if args.keep:
                kept = data.parent / f"{data.name}-kept.log"
                shutil.copy(hub.log_path, kept)
                print(f"hub log kept: {kept}")
            discard_hub(hub, config_path)  # the hub, servers left running, OS accounts, data
        else:
            shutil.rmtree(data, ignore_errors=True)
            config_path.unlink(missing_ok=True)
    load_after = loadavg()

    t = result["times"]
    n = len(t["home"])
    print(f"\n{n} visits of each, rotating order; times from request to the last body byte")
    rows = [
        ("GET /hub/home (service asked by the hub)", t["home"]),
        ("GET /hub/token (anchor: no service)", t["anchor"]),
        ("old: POST /hub/api/users/<u>/tokens", t["mint"]),
        ("old: GET /services/mlfactory/api/me", t["me"]),
        ("old: token + /api/me, per visit", t["old"]),
    ]
    for label, samples in rows:
        print(
            f"  {label:44s} median {ms(statistics.median(samples))}  p95 {ms(pct(samples, 95))}"
            f"  min {ms(min(samples))}  max {ms(max(samples))}"
        )
    home, anchor, old = (statistics.median(t[k]) for k in ("home", "anchor", "old"))
    print(
        f"home / anchor, medians: {home / anchor:.2f}; p95s: "
        f"{pct(t['home'], 95) / pct(t['anchor'], 95):.2f}"
    )
    print(f"home - anchor, medians (what the summary adds to the page): {ms(home - anchor)}")
    print(f"old flow per visit / (home - anchor), medians: {old / max(home - anchor, 1e-9):.1f}")
    print(f"home page summaries: {result['states']}; page sizes (bytes): {result['sizes']}")
    before, after = result["before"], result["after"]
    print(
        f"{USER}'s API tokens before the visits {len(before)}, after {len(after)} "
        f"({'unchanged' if before == after else 'CHANGED'}); the old flow minted and revoked {n}"
    )
    print(f"load average before: {load_before}; after: {load_after}")
    ok = before == after and result["states"] == {"ok": n}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
