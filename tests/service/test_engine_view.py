"""The engine view's answers to an engine that misbehaves: a stand-in Docker Engine API on a
unix socket makes the faults happen (the real engine's own answers are tested in
test_container_accounting.py and test_container_reconcile.py, against Podman)."""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from mlfactory.service.engine_view import EngineDown, EngineView
from mlfactory.spawner.container_labels import MANAGED


class StandIn:
    """What the stand-in answers (``(method, path without query)`` -> status, JSON body), and
    what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}
        self.asked: list[tuple[str, str]] = []


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[StandIn, str]]:
    stand_in = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            stand_in.asked.append((self.command, self.path))
            status, body = stand_in.answers.get(
                (self.command, self.path.split("?")[0]), (404, {"message": "no such container"})
            )
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def address_string(self) -> str:
            return "engine"

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            # a client that has read what it needs (a ping's status) may hang up first
            if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
                super().handle_error(request, client_address)

    sock = str(tmp_path / "engine.sock")
    server = Server(sock, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield stand_in, f"unix://{sock}"
    server.shutdown()
    server.server_close()


def test_the_list_asks_for_the_labels_and_inspects_what_stopped(engine):
    stand_in, url = engine
    running = {"Id": "aaa", "State": "running"}
    stand_in.answers[("GET", "/containers/json")] = (
        200,
        [running, {"Id": "bbb", "State": "exited"}, {"Id": "ccc", "State": "exited"}],
    )
    stand_in.answers[("GET", "/containers/bbb/json")] = (
        200,
        {"Id": "bbb", "State": {"FinishedAt": "x"}},
    )
    # ccc: removed between the list and its inspect (404): its list entry stands
    view = EngineView(url, labels={"team": "a b"})
    assert view.containers() == [
        running,
        {"Id": "bbb", "State": {"FinishedAt": "x"}},
        {"Id": "ccc", "State": "exited"},
    ]
    method, path = stand_in.asked[0]
    query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
    assert method == "GET" and query["all"] == "1"
    assert json.loads(unquote_plus(query["filters"])) == {"label": [f"{MANAGED}=1", "team=a b"]}


@pytest.mark.parametrize(
    "answers, says",
    [
        ({("GET", "/containers/json"): (500, {"message": "storage broken"})}, "500 to a list"),
        (
            {
                ("GET", "/containers/json"): (200, [{"Id": "bbb", "State": "exited"}]),
                ("GET", "/containers/bbb/json"): (500, {"message": "busy"}),
            },
            "500 to an inspect",
        ),
    ],
)
def test_an_incomplete_answer_is_an_outage_not_an_empty_engine(engine, answers, says):
    stand_in, url = engine
    stand_in.answers.update(answers)
    with pytest.raises(EngineDown, match=says):
        EngineView(url).containers()


def test_nothing_listening_is_an_outage(tmp_path: Path):
    with pytest.raises(EngineDown, match="cannot be reached"):
        EngineView(f"unix://{tmp_path / 'none.sock'}", timeout=2).containers()


def test_a_scheme_only_docker_py_speaks_is_named():
    with pytest.raises(EngineDown, match="unix://, tcp://, http:// or https://"):
        EngineView("ssh://engine.example.org").containers()


@pytest.mark.parametrize(
    "stop, delete, removed, asked",
    [
        (204, 204, True, ["POST /containers/c1/stop?t=5", "DELETE /containers/c1?v=0&force=1"]),
        (304, 204, True, ["POST /containers/c1/stop?t=5", "DELETE /containers/c1?v=0&force=1"]),
        (404, None, True, ["POST /containers/c1/stop?t=5"]),  # already gone
        (500, 204, True, ["POST /containers/c1/stop?t=5", "DELETE /containers/c1?v=0&force=1"]),
        (204, 404, True, ["POST /containers/c1/stop?t=5", "DELETE /containers/c1?v=0&force=1"]),
        (204, 409, False, ["POST /containers/c1/stop?t=5", "DELETE /containers/c1?v=0&force=1"]),
    ],
)
def test_remove_stops_then_removes_keeping_the_volumes(engine, stop, delete, removed, asked):
    stand_in, url = engine
    stand_in.answers[("POST", "/containers/c1/stop")] = (stop, None)
    if delete is not None:
        stand_in.answers[("DELETE", "/containers/c1")] = (delete, None)
    assert EngineView(url).remove("c1", wait=5) is removed
    assert [f"{m} {p}" for m, p in stand_in.asked] == asked


def test_remove_against_no_engine_says_so(tmp_path: Path, caplog):
    assert EngineView(f"unix://{tmp_path / 'none.sock'}", timeout=2).remove("c1") is False
    assert "cannot be reached" in caplog.text
