"""ImageTags against the real registry (Debian's docker-registry): tags pushed after start
appear without a config edit, at most once per interval (injected clock); a registry that
stops answering leaves the last known tags with a note that says so.

"Registry down" is a TCP forwarder this test owns, in front of the shared registry, closed
mid-test (other tests use the shared registry, so it is never stopped here)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from mlfactory.spawner.image_tags import ImageTags, TagsView, registry_repository
from mlfactory.spawner.profiles import RequestError, resolve_request

from .profile_cases import NO_GPU, small, who

INTERVAL = 60.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:  # 2027-01-15 08:00 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now


class Forwarder:
    """Forwards TCP connections to ``target``; ``close()`` makes its port refuse them."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        tasks = {
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        }
        self._tasks |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await self._server.wait_closed()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def config_for(url: str, *images: tuple[str, str]):
    """A platform config whose catalog is ``images`` ((slug, reference)) in registry ``url``."""

    def change(d: dict) -> None:
        d["images"] = [
            {"slug": slug, "display_name": slug.title(), "image": ref, "default": i == 0}
            for i, (slug, ref) in enumerate(images)
        ]
        for g in d["groups"]:
            g.pop("images", None)
        for p in d["profiles"]:
            p.pop("images", None)
        d["containers"] = {"registry": {"url": url}}

    return small(change)


@pytest.fixture
def repository(container_engine, base_image) -> Iterator[tuple[str, Callable[[str], None]]]:
    """A fresh repository in the shared registry and ``push(tag)`` for it (the small base
    image, re-tagged: its layers are in the registry already after the first push)."""
    repo = f"mlfactory-test/tags-{uuid.uuid4().hex[:10]}"
    location = container_engine.registry_location
    pushed: list[str] = []

    def push(tag: str) -> None:
        ref = f"{location}/{repo}:{tag}"
        container_engine.podman("tag", base_image, ref)
        container_engine.podman("push", "-q", "--tls-verify=false", ref)
        pushed.append(ref)

    yield repo, push
    for ref in pushed:
        container_engine.podman("rmi", ref, check=False)


async def test_pushed_tags_appear_without_a_config_edit_once_per_interval(
    container_engine, repository
):
    repo, push = repository
    push("1.0")
    config = config_for(container_engine.registry, ("ds", f"{repo}:1.0"))
    clock = Clock()
    tags = ImageTags(interval=INTERVAL, clock=clock)

    view = await tags.current(config)
    assert view == TagsView(tags={"ds": ("1.0",)}, problem=None, refreshed_at=clock.now)

    push("1.9")
    push("1.10")
    clock.now += INTERVAL - 1
    assert (await tags.current(config)).tags == {"ds": ("1.0",)}  # not asked again yet
    clock.now += 1
    view = await tags.current(config)
    assert view.tags == {"ds": ("1.10", "1.9", "1.0")}  # newest first, in version order
    assert view.refreshed_at == clock.now

    # The new tag resolves, to that tag of the catalog's repository.
    req = resolve_request(config, who(config), {"image": "ds:1.10"}, NO_GPU, tags=view.tags)
    assert req.image_ref == f"{repo}:1.10"


async def test_registry_down_keeps_the_last_known_tags_and_says_so(container_engine, repository):
    repo, push = repository
    push("2.0")
    host, port = container_engine.registry_location.split(":")
    forwarder = Forwarder((host, int(port)))
    url = await forwarder.start()
    config = config_for(url, ("ds", f"{repo}:2.0"))
    clock = Clock()
    tags = ImageTags(interval=INTERVAL, clock=clock)
    first = await tags.current(config)
    assert first.tags == {"ds": ("2.0",)} and first.problem is None

    await forwarder.close()
    clock.now += INTERVAL
    view = await tags.current(config)
    assert view.tags == {"ds": ("2.0",)}
    assert view.refreshed_at == first.refreshed_at
    assert view.problem is not None
    assert view.problem.startswith(f"Could not refresh the image tags from {url} (")
    known_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(first.refreshed_at))
    assert view.problem.endswith(f"); showing the tags known at {known_at}")
    assert "cannot be reached" in view.problem


async def test_registry_down_from_the_start_offers_the_catalog_tags_only():
    url = closed_port_url()
    config = config_for(url, ("ds", "team/ds:1"))
    view = await ImageTags(clock=Clock()).current(config)
    assert view.tags == {} and view.refreshed_at is None
    assert view.problem.startswith(f"Could not refresh the image tags from {url} (")
    assert view.problem.endswith("no tags are known yet, so only the catalog's own are offered")
    access = who(config)
    assert resolve_request(config, access, {"image": "ds"}, NO_GPU, tags=view.tags).image_ref == (
        "team/ds:1"
    )
    with pytest.raises(RequestError, match="tag '2' of 'ds' is not in the registry"):
        resolve_request(config, access, {"image": "ds:2"}, NO_GPU, tags=view.tags)


async def test_a_catalog_image_not_pushed_yet_is_named_and_the_others_listed(
    container_engine, repository
):
    repo, push = repository
    push("3.0")
    missing = f"mlfactory-test/never-{uuid.uuid4().hex[:10]}"
    config = config_for(container_engine.registry, ("ds", f"{repo}:3.0"), ("gone", f"{missing}:1"))
    view = await ImageTags(clock=Clock()).current(config)
    assert view.tags == {"ds": ("3.0",)}
    assert view.problem.startswith(
        f"Could not refresh the tags of Gone from {container_engine.registry} ("
    )
    assert missing in view.problem


async def test_concurrent_pickers_share_one_listing(container_engine, repository):
    repo, push = repository
    push("4.0")
    host, port = container_engine.registry_location.split(":")
    forwarder = Forwarder((host, int(port)))
    url = await forwarder.start()
    config = config_for(url, ("ds", f"{repo}:4.0"))
    tags = ImageTags(clock=Clock())
    views = await asyncio.gather(*(tags.current(config) for _ in range(8)))
    assert all(v.tags == {"ds": ("4.0",)} for v in views)
    assert forwarder.connections == 1
    await forwarder.close()


async def test_a_catalog_change_is_listed_before_the_interval(container_engine, repository):
    repo, push = repository
    push("5.0")
    clock = Clock()
    tags = ImageTags(interval=INTERVAL, clock=clock)
    only_ds = config_for(container_engine.registry, ("ds", f"{repo}:5.0"))
    assert (await tags.current(only_ds)).tags == {"ds": ("5.0",)}
    both = config_for(container_engine.registry, ("ds", f"{repo}:5.0"), ("ds2", f"{repo}:x"))
    assert (await tags.current(both)).tags == {"ds": ("5.0",), "ds2": ("5.0",)}


async def test_no_registry_configured_means_no_tags():
    config = config_for("", ("ds", "team/ds:1"))
    assert await ImageTags().current(config) == TagsView(tags=None)


@pytest.mark.parametrize(
    ("image", "registry", "expected"),
    [
        ("mlfactory/python-ds:1", "http://127.0.0.1:5055", "mlfactory/python-ds"),
        ("python-ds", "http://127.0.0.1:5055", "python-ds"),
        ("127.0.0.1:5055/team/ds:1", "http://127.0.0.1:5055", "team/ds"),
        ("127.0.0.1:5056/team/ds:1", "http://127.0.0.1:5055", None),  # another registry
        ("quay.io/org/img:1", "https://registry.example.org", None),
        ("localhost/org/img", "http://localhost:5000", None),
        (
            "registry.example.org/ds/img@sha256:" + "a" * 64,
            "https://registry.example.org",
            "ds/img",
        ),
    ],
)
def test_which_catalog_images_are_listed_from_the_registry(image, registry, expected):
    assert registry_repository(image, registry) == expected


async def test_an_unreadable_password_file_is_the_problem_shown(tmp_path):
    def change(d: dict) -> None:
        d["containers"] = {
            "registry": {"url": closed_port_url(), "password_file": str(tmp_path / "none")}
        }

    view = await ImageTags(clock=Clock()).current(small(change))
    assert view.tags == {}
    assert f"cannot read {tmp_path / 'none'}: No such file or directory" in view.problem
