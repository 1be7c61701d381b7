"""A client of a container registry's HTTP API v2 (the CNCF distribution spec): the tags of
a repository, the digest a tag points at, and the registry's catalog.

Async over tornado's AsyncHTTPClient, so the hub's event loop never waits on a registry.
Auth follows the registry's challenge: ``Basic`` gets the configured credentials, ``Bearer``
gets a token from the challenge's realm (with the credentials as basic auth when there are
any), cached per scope until it expires. Every failure is one ``RegistryError`` whose message
says what an admin can do about it.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

# The distribution reference grammar (distribution/reference/regexp.go), without a domain:
# the repository is relative to the registry this client talks to.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
MAX_REPOSITORY = 255

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """A registry request failed; the message names the registry and what to do."""


def check_repository(repository: str) -> str:
    """``repository`` when it is a valid repository name, else RegistryError."""
    if len(repository) > MAX_REPOSITORY or not REPOSITORY_RE.match(repository):
        raise RegistryError(
            f"{repository!r} is not a valid repository name: lowercase letters and digits, "
            "separated by '.', '_', '__' or '-', in '/'-separated parts"
        )
    return repository


def check_reference(reference: str) -> str:
    """``reference`` when it is a valid tag or digest, else RegistryError."""
    if not (TAG_RE.match(reference) or DIGEST_RE.match(reference)):
        raise RegistryError(
            f"{reference!r} is not a valid tag (letters, digits, '_', '.', '-'; at most 128, "
            "not starting with '.' or '-') or digest ('sha256:<hex>')"
        )
    return reference


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``("bearer", {"realm": ..., "service": ..., "scope": ...})`` from a WWW-Authenticate."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class RegistryClient:
    """The Registry HTTP API v2 at ``url`` (``http(s)://host:port``)."""

    def __init__(
        self,
        url: str,
        username: str = "",
        password: str = "",
        timeout: float = 10,
        page_size: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.page_size = page_size  # None: the registry's own page size
        self._scheme = ""  # learnt from the first challenge: "basic" or "bearer"
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expires at)

    async def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following the registry's ``Link`` pagination."""
        check_repository(repository)
        tags: list[str] = []
        async for page in self._pages(f"/v2/{repository}/tags/list", f"repository {repository}"):
            tags += page.get("tags") or []
        return tags

    async def catalog(self) -> list[str]:
        """Every repository the registry lists (``/v2/_catalog``)."""
        repos: list[str] = []
        async for page in self._pages("/v2/_catalog", "the catalog"):
            repos += page.get("repositories") or []
        return repos

    async def digest(self, repository: str, tag: str) -> str:
        """The manifest digest (``sha256:...``) ``repository:tag`` points at: what a pull by
        digest names. A tag may be a digest already; the registry confirms it exists."""
        check_repository(repository)
        check_reference(tag)
        resp = await self._request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", {"Accept": MANIFEST_TYPES}
        )
        if resp.code == 404:
            # HEAD has no error body: the tag list tells an unknown repository (raised by
            # tags()) from an unknown tag.
            known = await self.tags(repository)
            shown = ", ".join(sorted(known)[:20]) or "none"
            raise RegistryError(
                f"{repository}:{tag} is not in the registry at {self.url} (tags of "
                f"{repository}: {shown}); build and push it with `mlfactory images build`"
            )
        self._raise_for(resp, f"{repository}:{tag}")
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not DIGEST_RE.match(digest):
            raise RegistryError(
                f"the registry at {self.url} gave no Docker-Content-Digest for "
                f"{repository}:{tag}; it may not speak the Registry HTTP API v2"
            )
        return digest

    async def _pages(self, path: str, what: str):
        query = f"?n={self.page_size}" if self.page_size else ""
        next_path: str | None = path + query
        seen: set[str] = set()
        while next_path and next_path not in seen:
            seen.add(next_path)
            resp = await self._request("GET", next_path, {"Accept": "application/json"})
            self._raise_for(resp, what)
            try:
                yield json.loads(resp.body or b"{}")
            except ValueError as e:
                raise RegistryError(f"the registry at {self.url} sent invalid JSON ({e})") from e
            match = _NEXT_LINK.search(resp.headers.get("Link", ""))
            next_path = None
            if match:
                # The Link is relative to the registry (or absolute on the same host).
                parts = urllib.parse.urlsplit(match.group(1))
                next_path = parts.path + (f"?{parts.query}" if parts.query else "")

    async def _request(self, method: str, path: str, headers: Mapping[str, str]) -> HTTPResponse:
        resp = await self._send(method, path, {**headers, **self._auth_header(None)})
        if resp.code != 401:
            return resp
        scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer":
            self._scheme = "bearer"
            token = await self._token(params)
            resp = await self._send(method, path, {**headers, "Authorization": f"Bearer {token}"})
        elif scheme == "basic" and self.username:
            self._scheme = "basic"
            resp = await self._send(method, path, {**headers, **self._auth_header(None)})
        if resp.code == 401:
            raise RegistryError(self._refused())
        return resp

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        if self._scheme == "basic" and self.username:
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}
        return {}

    async def _token(self, params: Mapping[str, str]) -> str:
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise RegistryError(f"the registry at {self.url} sent a token challenge with no realm")
        key = f"{realm} {params.get('service', '')} {params.get('scope', '')}"
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        query = {k: params[k] for k in ("service", "scope") if params.get(k)}
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.username:
            raw = f"{self.username}:{self.password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(raw).decode()}"
        resp = await self._fetch(HTTPRequest(url, headers=headers, request_timeout=self.timeout))
        if resp.code in (401, 403):
            raise RegistryError(self._refused(f"the token server {realm}"))
        if resp.code != 200:
            raise RegistryError(f"the token server {realm} answered HTTP {resp.code}")
        try:
            body = json.loads(resp.body)
            token = body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError) as e:
            raise RegistryError(f"the token server {realm} sent no token ({e})") from e
        # Renew a little early; the spec's default lifetime is 60 s.
        expires = time.monotonic() + max(float(body.get("expires_in") or 60) - 5, 1)
        self._tokens[key] = (token, expires)
        return token

    async def _send(self, method: str, path: str, headers: Mapping[str, str]) -> HTTPResponse:
        req = HTTPRequest(
            self.url + path,
            method=method,
            headers=dict(headers),
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            follow_redirects=method != "HEAD",
        )
        return await self._fetch(req)

    async def _fetch(self, req: HTTPRequest) -> HTTPResponse:
        try:
            return await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise RegistryError(
                f"the registry at {urllib.parse.urlsplit(req.url).netloc} cannot be reached "
                f"({e}); is it running, and is containers.registry.url right?"
            ) from e

    def _refused(self, who: str = "") -> str:
        who = who or f"the registry at {self.url}"
        if not self.username:
            return f"{who} needs credentials: set containers.registry.username and password_file"
        return f"{who} refused the credentials of {self.username!r}; check password_file"

    def _raise_for(self, resp: HTTPResponse, what: str) -> None:
        if 200 <= resp.code < 300:
            return
        if resp.code == 599:  # tornado's code for a connection that never answered
            raise RegistryError(
                f"the registry at {self.url} cannot be reached ({resp.error}); is it running, "
                "and is containers.registry.url right?"
            )
        codes, message = _errors(resp)
        if "NAME_UNKNOWN" in codes or (resp.code == 404 and what.startswith("repository")):
            raise RegistryError(
                f"{what} is not in the registry at {self.url}; build and push it with "
                "`mlfactory images build`"
            )
        if "MANIFEST_UNKNOWN" in codes:
            raise RegistryError(f"{what} is not in the registry at {self.url}")
        if resp.code == 403 or "DENIED" in codes:
            raise RegistryError(f"{self.url} denied access to {what}: {message or 'forbidden'}")
        raise RegistryError(
            f"the registry at {self.url} answered HTTP {resp.code} for {what}"
            + (f": {message}" if message else "")
        )


def _errors(resp: HTTPResponse) -> tuple[set[str], str]:
    """The error codes and first message of a registry's JSON error body."""
    try:
        errors = json.loads(resp.body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return set(), ""
    codes = {e.get("code", "") for e in errors if isinstance(e, dict)}
    message = next((e.get("message", "") for e in errors if isinstance(e, dict)), "")
    return codes, message
