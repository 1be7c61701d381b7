"""Publishing a component on a real hub: a user publishes a folder from their workspace, it
waits in their own namespace, a maintainer named in the platform config approves it from
their own server, and it joins the shared catalog. Real hub, proxy, servers and service."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import api_token, discard_hub, example_config, log_in, prepare_hub, start_hub
from .helpers import HubClient

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {"ana": "ana-publishes-1", "rita": "rita-reviews-1"}

COMPONENT = {
    "component.yaml": yaml.safe_dump(
        {
            "name": "team_scaler",
            "version": "1.0.0",
            "summary": "Scale numbers to the team's agreed range.",
            "description": "Min-max scaling to [low, high].",
            "categories": ["data-preparation"],
            "tags": ["scaling"],
            "stability": "beta",
            "owners": ["ana"],
            "source": "team_scaler.py",
            "entry_point": "team_scaler",
            "inputs": [
                {"name": "values", "type": "array", "description": "Numbers to scale"},
                {"name": "low", "type": "float", "description": "Lower bound", "default": 0.0},
            ],
            "outputs": [{"name": "scaled", "type": "array", "description": "Scaled numbers"}],
            "requirements": [],
            "example": "scaled = team_scaler([1, 2, 3])",
            "last_verified": "2026-11-26",
        }
    ),
    "team_scaler.py": (
        "def team_scaler(values, low=0.0):\n"
        '    """Scale values to [low, low + 1]."""\n'
        "    lo, hi = min(values), max(values)\n"
        "    return [low + (v - lo) / ((hi - lo) or 1) for v in values]\n"
    ),
    "README.md": "# team_scaler\n\nScales numbers.\n",
}


@pytest.fixture(scope="module")
def publish_hub():
    config = example_config()
    config["component_review"] = {"maintainers": {"users": ["rita"]}}
    data, config_path = prepare_hub("publish", config, accounts=PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def _server(browser, hub, user: str):
    """Log `user` in, start their default server; returns (page, base url, auth headers)."""
    page = browser.new_context().new_page()
    log_in(page, hub, user, PASSWORDS[user], next_url="/hub/home")
    token = api_token(page, hub, user)
    headers = {"Authorization": f"token {token}"}
    r = page.request.post(
        f"{hub.url}/hub/api/users/{user}/server",
        data=json.dumps({"profile": "cpu-small"}),
        headers=headers,
    )
    assert r.status in (201, 202), r.text()
    HubClient(hub, user, token=token).wait_ready("", 90)
    return page, f"{hub.url}/user/{user}", headers


def _sources_of(page, base: str, headers: dict, name: str) -> set[str]:
    r = page.request.get(f"{base}/mlfactory/components/search?q={name}", headers=headers)
    assert r.status == 200, r.text()
    return {hit["source"] for hit in r.json()["results"] if hit["name"] == name}


def test_publish_review_and_share(publish_hub, browser):
    hub = publish_hub
    ana, ana_base, ana_auth = _server(browser, hub, "ana")
    r = ana.request.put(
        f"{ana_base}/api/contents/team_scaler", data='{"type": "directory"}', headers=ana_auth
    )
    assert r.status in (200, 201), r.text()
    for name, text in COMPONENT.items():
        r = ana.request.put(
            f"{ana_base}/api/contents/team_scaler/{name}",
            data=json.dumps({"type": "file", "format": "text", "content": text}),
            headers=ana_auth,
        )
        assert r.status in (200, 201), r.text()

    r = ana.request.post(
        f"{ana_base}/mlfactory/components/publish",
        data=json.dumps({"path": "team_scaler"}),
        headers=ana_auth,
    )
    assert r.status == 201, r.text()
    submission = r.json()["submission"]
    assert (submission["name"], submission["status"]) == ("team_scaler", "pending")
    # pending: in ana's own namespace only
    assert _sources_of(ana, ana_base, ana_auth, "team_scaler") == {"mine"}
    mine = ana.request.get(f"{ana_base}/mlfactory/components/submissions", headers=ana_auth)
    assert mine.json()["can_review"] is False
    refused = ana.request.post(
        f"{ana_base}/mlfactory/components/submissions/{submission['id']}/review",
        data=json.dumps({"decision": "approve", "note": ""}),
        headers=ana_auth,
    )
    assert refused.status == 403, refused.text()

    rita, rita_base, rita_auth = _server(browser, hub, "rita")
    assert _sources_of(rita, rita_base, rita_auth, "team_scaler") == set()  # not hers, not shared
    queue = rita.request.get(
        f"{rita_base}/mlfactory/components/submissions?status=pending", headers=rita_auth
    ).json()
    assert queue["can_review"] is True
    assert [(s["id"], s["owner"]) for s in queue["submissions"]] == [(submission["id"], "ana")]
    # she reads the files first; her approval covers exactly that upload
    detail = rita.request.get(
        f"{rita_base}/mlfactory/components/submissions/{submission['id']}", headers=rita_auth
    ).json()["submission"]
    assert detail["contents"]["team_scaler.py"] == COMPONENT["team_scaler.py"]
    r = rita.request.post(
        f"{rita_base}/mlfactory/components/submissions/{submission['id']}/review",
        data=json.dumps(
            {"decision": "approve", "note": "agreed in review", "revision": detail["revision"]}
        ),
        headers=rita_auth,
    )
    assert r.status == 200, r.text()
    assert r.json()["submission"]["status"] == "approved"
    assert r.json()["submission"]["reviewer"] == "rita"
    assert _sources_of(rita, rita_base, rita_auth, "team_scaler") == {"shared"}
    item = rita.request.get(
        f"{rita_base}/mlfactory/components/items/team_scaler", headers=rita_auth
    ).json()
    assert item["ref"] == "team_scaler@1.0.0" and item["owners"] == ["ana"]
