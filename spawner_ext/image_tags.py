"""The registry's tags of the catalog's images, cached for the picker and the resolver.

A new tag pushed to ``containers.registry`` appears in the picker without a config edit, at
most ``interval`` seconds later. When the registry cannot be asked, the last tags it gave
are kept and ``TagsView.problem`` says so, for the picker to show.

Rules:
- Only catalog images in the configured registry are listed: a reference with no registry
  host ("mlfactory/python-ds:2026.11"), or with that registry's own host. Others (e.g.
  "quay.io/org/img:1") offer their catalog tag only, and are absent from ``TagsView.tags``.
- A repository the registry answers with no tags is listed with none: the picker still
  offers the catalog's own tag (the admin's choice, which a slug-only REST spawn uses too)
  and marks it as not in the registry, so the spawn's pull names the problem rather than
  the image silently vanishing.
- Tags are sorted newest first in version order ("2026.12" before "2026.9"); tags outside
  the distribution spec's grammar are dropped (the resolver builds references from them).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jupyterhub.spawner import SpawnException
from mlfactory.hub.platform_config import PlatformConfig, Registry

from .engine import registry_location
from .profiles import sort_tags, split_reference
from .registry import RegistryClient, RegistryError
from .startup import spawn_error

__all__ = [
    "ImageTags",
    "PinnedImage",
    "TagLister",
    "TagsView",
    "catalog_repositories",
    "image_unusable",
    "pin_image",
    "registry_repository",
    "sort_tags",
]


class TagLister(Protocol):
    async def tags(self, repository: str) -> list[str]: ...


# (url, username, password) -> a client; RegistryClient by default.
ClientFactory = Callable[[str, str, str], TagLister]


@dataclass(frozen=True)
class TagsView:
    # catalog slug -> registry tags, newest first; None when no registry is configured (the
    # resolver and picker then offer the catalog's own tags only).
    tags: Mapping[str, tuple[str, ...]] | None
    problem: str | None = None  # for users: why these tags may be out of date
    refreshed_at: float | None = None  # when the oldest tags shown were listed (clock time)


def registry_repository(image: str, registry_url: str) -> str | None:
    """The repository of catalog reference ``image`` in the registry at ``registry_url``, or
    None when the reference names another registry."""
    name, _ = split_reference(image)
    first, slash, rest = name.partition("/")
    # Docker's rule: a first component with '.' or ':' (or "localhost") is a registry host.
    if slash and ("." in first or ":" in first or first == "localhost"):
        return rest if first == urllib.parse.urlsplit(registry_url).netloc else None
    return name


@dataclass(frozen=True)
class PinnedImage:
    """An image reference as a backend should run it (``pin_image``)."""

    ref: str  # ``host/repo@sha256:…`` when in the platform's registry; else as named
    in_registry: bool = False
    password: str = ""  # the registry's password or token, for a pull that needs one


async def pin_image(image_ref: str, registry: Registry) -> PinnedImage:
    """``image_ref`` pinned to its registry digest when it is in the platform's registry, so
    the engine or the kubelet runs exactly the image the catalog named even if the tag moves
    later; any other reference is returned as named. Raises ``RegistryError`` when the
    registry cannot say (unknown tag, refused credentials, unreachable). The one lookup both
    the container and the Kubernetes backends use."""
    repository = registry_repository(image_ref, registry.url) if registry.url else None
    if repository is None:
        return PinnedImage(image_ref)
    password = await asyncio.to_thread(_password, registry)
    # a reference by digest names one image already: no registry round trip
    digest = image_ref.partition("@")[2]
    if not digest:
        client = RegistryClient(registry.url, registry.username, password)
        digest = await client.digest(repository, split_reference(image_ref)[1] or "latest")
    ref = f"{registry_location(registry.url)}/{repository}@{digest}"
    return PinnedImage(ref, in_registry=True, password=password)


def image_unusable(image_ref: str, error: RegistryError) -> SpawnException:
    """What the user reads when ``pin_image`` failed: the spawn stops with the reason."""
    return spawn_error(
        f"The image {image_ref} cannot be used: {error}", reason="image", status_code=500
    )


def catalog_repositories(config: PlatformConfig) -> dict[str, str]:
    """Catalog slug -> its repository in ``containers.registry`` (images elsewhere left out)."""
    url = config.containers.registry.url
    repos = {i.slug: registry_repository(i.image, url) for i in config.images}
    return {slug: repo for slug, repo in repos.items() if repo}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _default_client(url: str, username: str, password: str) -> TagLister:
    # A short timeout: a picker waits on this refresh (once per interval).
    return RegistryClient(url, username, password, timeout=5)


class ImageTags:
    """The catalog's registry tags, listed at most every ``interval`` seconds.

    One instance per hub process: every spawner's picker and resolver share its cache.
    ``clock`` gives wall-clock seconds (shown to users as the time of the last listing).
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._client_factory = client_factory
        self._key: tuple[str, str, str] | None = None
        self._client: TagLister | None = None
        self._password: str | None = None  # the one self._client was made with
        self._known: dict[str, tuple[tuple[str, ...], float]] = {}  # repo -> (tags, listed at)
        self._errors: dict[str, str] = {}  # repo -> why its last listing failed
        self._attempted: frozenset[str] = frozenset()
        self._attempt_at: float | None = None
        self._lock: asyncio.Lock | None = None

    async def current(self, config: PlatformConfig) -> TagsView:
        """The tags of ``config``'s catalog, refreshed when the last listing is older than
        ``interval`` (or the registry settings or the catalog changed)."""
        registry = config.containers.registry
        if not registry.url:
            return TagsView(tags=None)
        repos = catalog_repositories(config)
        if self._lock is None:
            self._lock = asyncio.Lock()
        # Concurrent pickers wait for one listing instead of each asking the registry.
        async with self._lock:
            key = (registry.url, registry.username, registry.password_file)
            if key != self._key:
                self._key, self._client, self._password = key, None, None
                self._known, self._errors = {}, {}
                self._attempted, self._attempt_at = frozenset(), None
            now = self._clock()
            due = (
                self._attempt_at is None
                or not (0 <= now - self._attempt_at < self.interval)  # also a clock set back
                or not set(repos.values()) <= self._attempted
            )
            if due:
                await self._refresh(registry, sorted(set(repos.values())), now)
            return self._view(config, repos)

    async def _refresh(self, registry: Registry, repos: list[str], now: float) -> None:
        self._attempt_at, self._attempted = now, frozenset(repos)
        try:
            password = await asyncio.to_thread(_password, registry)
        except OSError as e:
            self._errors = {r: f"cannot read {registry.password_file}: {e.strerror}" for r in repos}
            return
        # One client while the password holds: it keeps the registry's bearer tokens.
        if self._client is None or password != self._password:
            self._client = self._client_factory(registry.url, registry.username, password)
            self._password = password
        client = self._client
        results = await asyncio.gather(*(client.tags(r) for r in repos), return_exceptions=True)
        self._errors = {}
        for repo, result in zip(repos, results, strict=True):
            if isinstance(result, RegistryError | OSError | TimeoutError):
                self._errors[repo] = str(result) or type(result).__name__
            elif isinstance(result, BaseException):
                raise result  # a bug or a cancellation: not a registry problem to show
            else:
                self._known[repo] = (sort_tags(result), now)

    def _view(self, config: PlatformConfig, repos: Mapping[str, str]) -> TagsView:
        tags = {slug: self._known[repo][0] for slug, repo in repos.items() if repo in self._known}
        shown = [self._known[repo][1] for repo in set(repos.values()) if repo in self._known]
        failed = [slug for slug, repo in repos.items() if repo in self._errors]
        problem = None
        if failed:
            if len(failed) == len(repos):
                which = "the image tags"
            else:
                names = [i.display_name for i in config.images if i.slug in failed]
                which = f"the tags of {', '.join(names)}"
            failed_repos = sorted({repos[s] for s in failed})
            known_at = [self._known[r][1] for r in failed_repos if r in self._known]
            tail = (
                f"showing the tags known at {_when(min(known_at))}"
                if known_at
                else "no tags are known yet, so only the catalog's own are offered"
            )
            error = self._errors[failed_repos[0]]
            problem = f"Could not refresh {which} from {config.containers.registry.url} "
            problem += f"({error}); {tail}"
        return TagsView(tags=tags, problem=problem, refreshed_at=min(shown) if shown else None)


def _password(registry: Registry) -> str:
    """The password or token from ``password_file``, read at each refresh so a rotated one
    applies; "" when none is configured."""
    if not registry.password_file:
        return ""
    return Path(registry.password_file).read_text().strip()
