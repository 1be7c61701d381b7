"""The registry client against the real registry (Debian's docker-registry): tags after a
real push, digests as podman reports them, each kind of failure, and both auth schemes on a
second registry process over the same storage (htpasswd basic auth; token auth with a real
token server that signs JWTs the registry verifies)."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import pytest
from mlfactory.spawner.registry import RegistryClient, RegistryError
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from tests.ports import free_port

REPO = "mlfactory-test/tiny"


def push_tag(engine, base_image: str, tag: str) -> str:
    """Tag the base image as ``REPO:tag`` in the test registry and push it (layers already
    there after the first push: cheap); returns the digest podman reports."""
    ref = f"{engine.registry_location}/{REPO}:{tag}"
    engine.podman("tag", base_image, ref)
    digestfile = Path(f"/tmp/digest-{uuid.uuid4().hex}")
    try:
        engine.podman("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile), ref)
        return digestfile.read_text().strip()
    finally:
        digestfile.unlink(missing_ok=True)
        engine.podman("rmi", ref, check=False)


async def test_new_tag_appears_and_digest_matches_podman(container_engine, base_image):
    client = RegistryClient(container_engine.registry)
    first, second = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    pushed = push_tag(container_engine, base_image, first)
    tags = await client.tags(REPO)
    assert first in tags and second not in tags
    # A new tag is listed without any config change: the listing is the registry's.
    push_tag(container_engine, base_image, second)
    assert {first, second} <= set(await client.tags(REPO))
    assert pushed.startswith("sha256:")
    assert await client.digest(REPO, first) == pushed
    # The digest itself is a reference the registry resolves.
    assert await client.digest(REPO, pushed) == pushed


async def test_catalog_follows_link_pagination(container_engine, base_image):
    push_tag(container_engine, base_image, "paged")
    whole = await RegistryClient(container_engine.registry).catalog()
    assert REPO in whole and len(whole) >= 2
    # One repository per page: the rest only comes through the Link header.
    assert await RegistryClient(container_engine.registry, page_size=1).catalog() == whole


async def test_unknown_repository_and_tag(container_engine, base_image):
    push_tag(container_engine, base_image, "known")
    client = RegistryClient(container_engine.registry)
    with pytest.raises(RegistryError, match=r"repository mlfactory-test/absent is not in"):
        await client.tags("mlfactory-test/absent")
    with pytest.raises(
        RegistryError, match=r"repository mlfactory-test/absent is not in .*build and push"
    ):
        await client.digest("mlfactory-test/absent", "1")
    with pytest.raises(RegistryError, match=rf"{REPO}:no-such-tag is not in .*known"):
        await client.digest(REPO, "no-such-tag")


async def test_registry_down_names_it():
    port = free_port()  # nothing listens here
    client = RegistryClient(f"http://127.0.0.1:{port}", timeout=3)
    with pytest.raises(RegistryError, match=rf"127.0.0.1:{port} cannot be reached"):
        await client.tags("mlfactory/minimal")
    with pytest.raises(RegistryError, match="cannot be reached"):
        await client.digest("mlfactory/minimal", "latest")


@pytest.mark.parametrize(
    "repository", ["UPPER/case", "a//b", "-lead", "trail-", "a/../b", "x" * 256, "a:b"]
)
async def test_bad_repository_is_refused_before_any_request(repository):
    # The port is closed: reaching it would be a different error.
    client = RegistryClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError, match="not a valid repository name"):
        await client.tags(repository)


@pytest.mark.parametrize("tag", [".hidden", "-x", "a/b", "t" * 129, "sha256:short", "a b"])
async def test_bad_tag_is_refused_before_any_request(tag):
    client = RegistryClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError, match="not a valid tag"):
        await client.digest("mlfactory/minimal", tag)


# -- auth: a second registry process over the test registry's storage ---------------------


def start_registry(tmp: Path, storage: Path, auth: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    config = tmp / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((tmp / "registry.log").read_text()) from None
            time.sleep(0.05)
    return url, proc


def storage_of(engine) -> Path:
    return engine.local.root / "registry"


@pytest.fixture
def basic_registry(container_engine, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as _crypt

        # bcrypt (glibc's libxcrypt), what the registry's htpasswd reads; not a weak hash.
        hashed = _crypt.crypt("s3cret", _crypt.mksalt(_crypt.METHOD_BLOWFISH))  # noqa: S324
    (tmp_path / "htpasswd").write_text(f"alice:{hashed}\n")
    url, proc = start_registry(
        tmp_path,
        storage_of(container_engine),
        f"auth:\n  htpasswd:\n    realm: test\n    path: {tmp_path / 'htpasswd'}\n",
    )
    yield url
    proc.terminate()
    proc.wait(10)


async def test_basic_auth(basic_registry, container_engine, base_image):
    push_tag(container_engine, base_image, "basic")
    with pytest.raises(RegistryError, match="needs credentials.*username and password_file"):
        await RegistryClient(basic_registry).tags(REPO)
    with pytest.raises(RegistryError, match="refused the credentials of 'alice'"):
        await RegistryClient(basic_registry, "alice", "wrong").tags(REPO)
    client = RegistryClient(basic_registry, "alice", "s3cret")
    assert "basic" in await client.tags(REPO)
    assert (await client.digest(REPO, "basic")).startswith("sha256:")


class TokenServer:
    """A token server as the distribution spec describes: basic credentials in, a JWT out,
    signed with a key whose self-signed certificate is the registry's rootcertbundle."""

    def __init__(self, tmp: Path, service: str, issuer: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.service, self.issuer = service, issuer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlfactory test token")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = tmp / "token.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.issued: list[str] = []  # scopes, one per token handed out

    def token(self, scope: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        if scope:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(self.der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.issued.append(scope)
        return f"{signing}.{b64(sig)}"


@pytest.fixture
async def token_registry(container_engine, tmp_path):
    server = TokenServer(tmp_path, service="mlfactory-test", issuer="mlfactory-test-issuer")

    class Token(RequestHandler):
        def get(self) -> None:
            auth = self.request.headers.get("Authorization", "")
            if auth != "Basic " + base64.b64encode(b"alice:s3cret").decode():
                self.set_status(401)
                return
            token = server.token(self.get_argument("scope", ""))
            self.write({"token": token, "expires_in": 300})

    port = free_port()
    http = HTTPServer(Application([("/token", Token)]))
    http.listen(port, "127.0.0.1")
    url, proc = start_registry(
        tmp_path,
        storage_of(container_engine),
        "auth:\n  token:\n"
        f"    realm: http://127.0.0.1:{port}/token\n"
        f"    service: {server.service}\n    issuer: {server.issuer}\n"
        f"    rootcertbundle: {server.bundle}\n",
    )
    yield url, server
    proc.terminate()
    proc.wait(10)
    http.stop()


async def test_bearer_token_auth(token_registry, container_engine, base_image):
    url, server = token_registry
    push_tag(container_engine, base_image, "token")
    with pytest.raises(RegistryError, match="token server .* needs credentials"):
        await RegistryClient(url).tags(REPO)
    with pytest.raises(RegistryError, match="refused the credentials of 'alice'"):
        await RegistryClient(url, "alice", "wrong").tags(REPO)
    client = RegistryClient(url, "alice", "s3cret")
    assert "token" in await client.tags(REPO)
    assert await client.digest(REPO, "token") == await RegistryClient(
        container_engine.registry
    ).digest(REPO, "token")
    assert REPO in await client.catalog()
    issued = len(server.issued)
    # The token is cached per scope: listing again asks the token server for nothing.
    assert "token" in await client.tags(REPO)
    assert len(server.issued) == issued
    assert f"repository:{REPO}:pull" in server.issued
