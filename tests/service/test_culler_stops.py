"""Idle shutdown's stops: the hub's answer to the DELETE is the confirmation (204 stopped,
202 stopping until a later pass's user list shows it gone, 400/404 someone else stopped it,
anything else not stopped), with no request beyond the pass's own; and "Keep running"
pressed between the pass's verdict and its DELETE wins. Against the stand-in hub, whose
DELETE answers ``tests/test_fakehub_fidelity.py`` holds to a real JupyterHub's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlfactory.service.culler import Culler, KeepAliveRefused
from mlfactory.service.culling import stop_outcome
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.periods import iso_utc

from .helpers import T0, platform_with

M, H = 60, 3600


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def ledger(user: str) -> dict:
    return {"key": f"k-{user}", "user": user, "price_per_hour": 0.5, "profile": "cpu-medium",
            "project": "", "groups": ["data-science"]}  # fmt: skip


@pytest.fixture
def culler(store, clock, fake_hub) -> Culler:
    cfg = platform_with(
        culling={"grace_after_restart": 0, "warn_before": "10m", "keep_alive_limit": 2}
    )
    return Culler(store.engine, cfg, hub=HubAPI(fake_hub, "t"), hub_url=fake_hub, token="t",
                  clock=clock)  # fmt: skip


async def warned(culler: Culler, hub_state, clock, user: str, server: str = "") -> None:
    """``user``'s server started at T0 and idle since: the first pass warns it (50 minutes on,
    to stop at T0 + 1h)."""
    if user not in hub_state.users:
        hub_state.add_user(user, groups=("data-science",))
    hub_state.run_server(user, server, ledger(user), iso(T0))
    clock.set(T0 + 50 * M)
    assert (await culler.run_pass())["warned"] >= 1
    assert (await culler.status(user, server))["action"] == "warn"


def asked_about(hub_state, user: str) -> list[tuple[str, str]]:
    """The requests that named ``user``: DELETEs of their servers, reads of their model."""
    return [(m, p) for m, p in hub_state.requests if f"/users/{user}" in p]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(204, "stopped"), (202, "stopping"), (404, "gone"), (400, "gone"), (500, "failed"),
     (503, "failed"), (403, "failed"), (599, "failed")],
)  # fmt: skip
def test_the_hubs_answer_to_the_delete_says_what_became_of_the_stop(code, outcome):
    assert stop_outcome(code) == outcome


async def test_a_stop_the_hub_answers_204_is_recorded_without_asking_again(
    culler, hub_state, clock
):
    await warned(culler, hub_state, clock, "ann")
    hub_state.requests.clear()
    clock.advance(10 * M)
    result = await culler.run_pass()
    assert result["stopped"] == 1 and hub_state.stopped == [("ann", "")]
    # the DELETE's answer was the confirmation: no GET /users/ann after it
    assert asked_about(hub_state, "ann") == [("DELETE", "/hub/api/users/ann/server")]
    status = await culler.status("ann", "")
    assert status["last_stop"] == {"stopped_at": iso_utc(clock()), "reason": "it was idle for 1h"}
    assert (await culler.run_pass())["stopped"] == 0  # recorded once
    assert len((await culler.status("ann", None))["stops"]) == 1


async def test_a_slow_stop_is_recorded_once_a_later_pass_no_longer_lists_it(
    culler, hub_state, clock
):
    await warned(culler, hub_state, clock, "bea")
    hub_state.slow_stop.add(("bea", ""))
    hub_state.requests.clear()
    clock.advance(10 * M)
    stopped_at = clock()
    result = await culler.run_pass()  # the hub answers 202: stopping
    assert (result["stopped"], result["stopping"]) == (0, 1)
    assert (await culler.status("bea", ""))["last_stop"] is None
    with pytest.raises(KeepAliveRefused, match="stopping this server now"):
        await culler.keepalive("bea", "")  # too late: the stop is under way

    clock.advance(M)  # still stopping: not "ready", so the pass's list leaves it out
    result = await culler.run_pass()
    assert (result["stopped"], result["stopping"]) == (1, 0)
    status = await culler.status("bea", "")
    assert status["last_stop"]["stopped_at"] == iso_utc(stopped_at)
    hub_state.finish_stops()
    clock.advance(M)
    assert (await culler.run_pass())["stopped"] == 0  # recorded once
    assert len((await culler.status("bea", None))["stops"]) == 1
    # one DELETE, and nothing asked about bea beyond the passes' own user lists
    assert asked_about(hub_state, "bea") == [("DELETE", "/hub/api/users/bea/server")]
    assert hub_state.stopped == [("bea", "")]


async def test_a_slow_stop_the_next_list_shows_still_running_is_not_recorded(
    culler, hub_state, clock
):
    await warned(culler, hub_state, clock, "cat")
    hub_state.slow_stop.add(("cat", ""))
    clock.advance(10 * M)
    assert (await culler.run_pass())["stopping"] == 1
    # the spawner's stop went wrong after the 202: the hub lists the same start ready again
    hub_state.users["cat"]["servers"][""].update(ready=True, pending=None)
    hub_state.slow_stop.clear()
    clock.advance(M)
    result = await culler.run_pass()  # so that stop is not recorded; this pass stops it
    assert result["stopped"] == 1
    (stop,) = (await culler.status("cat", None))["stops"]
    assert stop["stopped_at"] == iso_utc(clock())  # this pass's stop, not the 202's
    assert hub_state.stopped == [("cat", ""), ("cat", "")]


async def test_a_server_someone_else_removed_first_is_not_recorded(culler, hub_state, clock):
    await warned(culler, hub_state, clock, "dan", "gpu")
    clock.advance(10 * M)
    verdict = culler.arbiter

    def removed_meanwhile(**kw):
        # between the pass's list and its DELETE, dan removes the server himself
        hub_state.users["dan"]["servers"].pop("gpu", None)
        return verdict(**kw)

    culler.arbiter = removed_meanwhile
    result = await culler.run_pass()  # DELETE → 404
    assert result["stopped"] == 0 and hub_state.stopped == []
    assert ("DELETE", "/hub/api/users/dan/servers/gpu") in hub_state.requests
    assert (await culler.status("dan", None))["stops"] == []


async def test_a_stop_refused_with_5xx_is_not_recorded_and_the_next_pass_asks_again(
    culler, hub_state, clock
):
    await warned(culler, hub_state, clock, "eli")
    hub_state.refuse_stop.add(("eli", ""))
    clock.advance(10 * M)
    assert (await culler.run_pass())["stopped"] == 0
    status = await culler.status("eli", "")
    assert status["action"] == "warn" and status["last_stop"] is None
    hub_state.refuse_stop.clear()
    clock.advance(M)
    assert (await culler.run_pass())["stopped"] == 1 and hub_state.stopped == [("eli", "")]


@pytest.mark.parametrize("minutes", [10, 5], ids=["verdict-stop", "verdict-warn"])
async def test_keep_running_pressed_after_the_pass_read_its_state_wins(
    culler, hub_state, clock, minutes
):
    """The press lands after the pass loaded its state: the stop decided on that state is
    not sent, and the warning it would write does not overwrite the press."""
    await warned(culler, hub_state, clock, "fay")
    clock.advance(minutes * M)
    load = culler._load

    def load_then_press() -> None:
        load()
        culler._keepalive("fay", "", clock())  # what POST /api/culling/keepalive runs

    culler._load = load_then_press
    result = await culler.run_pass()
    culler._load = load
    assert result["stopped"] == 0 and hub_state.stopped == []
    assert not [r for r in hub_state.requests if r[0] == "DELETE"]
    status = await culler.status("fay", "")
    assert status["action"] == "keep" and status["keep_alive_left"] == 1
    clock.advance(5 * M)  # the press restarted the idle clock: kept, nothing stopped
    await culler.run_pass()
    assert (await culler.status("fay", ""))["action"] == "keep" and hub_state.stopped == []
