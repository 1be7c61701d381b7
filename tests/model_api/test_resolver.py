"""``model_api.resolver``: IP literals answered in place, names through tornado's default."""

from __future__ import annotations

import asyncio
import socket

import pytest
from mlfactory.model_api import resolver
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import DefaultLoopResolver, Resolver, bind_sockets
from tornado.simple_httpclient import SimpleAsyncHTTPClient


@pytest.fixture
async def lookups(monkeypatch):
    """The hosts handed to getaddrinfo on the event loop (the thread hop this avoids)."""
    asked: list[str] = []
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host, *args, **kwargs):
        asked.append(host)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def untouched():
    """Tornado's default resolver before and after the test (the hub config installs ours)."""
    Resolver.configure(None)
    yield
    Resolver.configure(None)


async def test_an_ipv4_literal_is_answered_without_getaddrinfo(lookups):
    r = resolver.LiteralFirstResolver()
    assert await r.resolve("127.0.0.1", 8081) == [(socket.AF_INET, ("127.0.0.1", 8081))]
    assert await r.resolve("10.0.0.7", 80, socket.AF_INET) == [(socket.AF_INET, ("10.0.0.7", 80))]
    assert lookups == []


async def test_an_ipv6_literal_gets_its_four_part_address(lookups):
    r = resolver.LiteralFirstResolver()
    assert await r.resolve("::1", 8081) == [(socket.AF_INET6, ("::1", 8081, 0, 0))]
    assert lookups == []


async def test_names_scoped_addresses_and_other_families_go_to_getaddrinfo(lookups):
    r = resolver.LiteralFirstResolver()
    default = DefaultLoopResolver()
    assert await r.resolve("localhost", 80) == await default.resolve("localhost", 80)
    assert lookups[0] == "localhost"
    with pytest.raises(OSError):  # getaddrinfo's own refusal: no IPv4 address for "::1"
        await r.resolve("::1", 80, socket.AF_INET)
    assert "::1" in lookups
    await r.resolve("fe80::1%lo", 80)
    assert lookups[-1] == "fe80::1%lo"


async def test_installed_it_serves_every_new_tornado_client(untouched, lookups):
    resolver.install()

    class Hello(web.RequestHandler):
        def get(self):
            self.write("hello")

    [sock] = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(web.Application([("/", Hello)]))
    server.add_sockets([sock])
    client = SimpleAsyncHTTPClient(force_instance=True)
    try:
        assert isinstance(client.resolver, resolver.LiteralFirstResolver)
        port = sock.getsockname()[1]
        response = await client.fetch(f"http://127.0.0.1:{port}/")
        assert response.body == b"hello"
        assert lookups == []
    finally:
        client.close()
        server.stop()


# -- each of the platform's processes installs it before its clients exist -------------------


def configured() -> type:
    return Resolver.configured_class()


def test_the_hub_config_installs_it(untouched, monkeypatch, tmp_path):
    from mlfactory.hub.hubconfig import apply_platform
    from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
    from traitlets.config import Config

    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path))
    apply_platform(Config(), load_platform_config(PACKAGED_CONFIG), {})
    assert configured() is resolver.LiteralFirstResolver


def test_the_platform_service_installs_it_before_it_starts(untouched, monkeypatch):
    from mlfactory.service import app

    seen = []

    class Service:
        def initialize(self, argv):
            seen.append(configured())

        def start(self):
            pass

    monkeypatch.delenv("MLFACTORY_HUB_PID", raising=False)
    monkeypatch.setattr(app, "PlatformService", Service)
    app.main([])
    assert seen == [resolver.LiteralFirstResolver]


def test_the_models_service_installs_it_before_it_serves(untouched, monkeypatch, tmp_path):
    from mlfactory.model_api import serve

    seen = []

    async def run(args):
        seen.append(configured())
        return 0

    monkeypatch.delenv("MLFACTORY_HUB_PID", raising=False)
    monkeypatch.setattr(serve, "run", run)
    with pytest.raises(SystemExit) as stop:
        serve.main(["--repository", str(tmp_path)])
    assert stop.value.code == 0
    assert seen == [resolver.LiteralFirstResolver]


def test_the_server_extension_installs_it_when_linked(untouched, monkeypatch):
    from jupyter_server.extension.application import ExtensionApp
    from mlfactory.server.app import MLFactoryServerApp

    # the rest of linking (JupyterLab's paths, collaboration) is tested with a real server
    monkeypatch.setattr(ExtensionApp, "_link_jupyter_server_extension", lambda self, app: None)
    monkeypatch.setattr("mlfactory.server.app.prefer_labextensions", lambda *a: None)
    monkeypatch.setattr("mlfactory.server.app.collaboration.configure", lambda *a: None)
    MLFactoryServerApp()._link_jupyter_server_extension(object())
    assert configured() is resolver.LiteralFirstResolver
