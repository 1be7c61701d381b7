"""The workspace images' build pipeline: the catalog (``images/catalog.yaml``), its checks,
and building, tagging and pushing each image with the engine on this machine.

Used by ``mlfactory images`` and by the test fixtures, never by the hub's event loop: every
call here blocks (it runs mmdebstrap, pip and podman).

Order: the Debian base layer (mmdebstrap, then ``podman import``), then each image FROM its
parent's id. Every image is tagged ``<mlfactory version>`` and
``<mlfactory version>-<content digest>``; an image whose digest tag already exists is not
rebuilt, which is what makes a second ``make images`` (or test run) take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Packages both the hub and the minimal image install: their pins must equal the hub's.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*(?:#.*)?$")


class BuildError(Exception):
    """A build step failed; the message names the step and the tool's last output."""


def mlfactory_version() -> str:
    """The installed mlfactory's version: the images' tag and what the hub checks."""
    return importlib.metadata.version("mlfactory")


def normalize(name: str) -> str:
    """A package name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class BaseLayer:
    repository: str
    suite: str
    packages: Path  # absolute

    def package_names(self) -> list[str]:
        lines = (ln.split("#", 1)[0].strip() for ln in self.packages.read_text().splitlines())
        return [ln for ln in lines if ln]

    @property
    def tag(self) -> str:
        """``mlfactory/base:bookworm-<digest of packages.txt>``: a new list, a new base."""
        digest = hashlib.sha256(self.packages.read_bytes()).hexdigest()[:12]
        return f"{self.repository}:{self.suite}-{digest}"


@dataclass(frozen=True)
class CatalogImage:
    slug: str
    repository: str
    dockerfile: Path  # absolute
    parent: str  # "base" or another image's slug
    contents: tuple[str, ...] = ()
    wheel: bool = False  # installs the mlfactory wheel (dist/ in the context)
    host_wheels: tuple[str, ...] = ()  # "name==version", from the host's find-links

    @property
    def folder(self) -> Path:
        return self.dockerfile.parent

    @property
    def requirements(self) -> Path:
        return self.folder / "requirements.txt"


@dataclass(frozen=True)
class Catalog:
    root: Path  # the repository root (the build context's source)
    base: BaseLayer
    images: tuple[CatalogImage, ...]

    def get(self, slug: str) -> CatalogImage:
        for image in self.images:
            if image.slug == slug:
                return image
        raise BuildError(f"no image {slug!r} in the catalog; it has {', '.join(self.slugs)}")

    @property
    def slugs(self) -> list[str]:
        return [i.slug for i in self.images]

    def chain(self, slug: str) -> list[CatalogImage]:
        """``slug`` and its ancestors, base-most first."""
        out: list[CatalogImage] = []
        while slug != "base":
            image = self.get(slug)
            if image in out:
                raise BuildError(f"the catalog's parents loop at {slug!r}")
            out.insert(0, image)
            slug = image.parent
        return out


def load_catalog(root: Path | str) -> Catalog:
    """The catalog at ``root/images/catalog.yaml``; BuildError naming a missing key."""
    root = Path(root).resolve()
    path = root / "images" / "catalog.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
        base = data["base"]
        images = tuple(
            CatalogImage(
                slug=str(e["slug"]),
                repository=str(e["repository"]),
                dockerfile=root / e["dockerfile"],
                parent=str(e.get("parent", "base")),
                contents=tuple(str(c) for c in e.get("contents") or ()),
                wheel=bool(e.get("wheel", False)),
                host_wheels=tuple(str(w) for w in e.get("host_wheels") or ()),
            )
            for e in data.get("images") or ()
        )
        layer = BaseLayer(str(base["repository"]), str(base["suite"]), root / base["packages"])
    except (OSError, yaml.YAMLError) as e:
        raise BuildError(f"{path}: cannot read the catalog ({e})") from e
    except (KeyError, TypeError) as e:
        raise BuildError(f"{path}: an entry lacks the key {e}") from e
    return Catalog(root=root, base=layer, images=images)


def read_pins(path: Path) -> tuple[dict[str, str], list[str]]:
    """``({normalized name: version}, [lines not pinned with ==])`` of a requirements file."""
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
        else:
            unpinned.append(line)
    return pins, unpinned


def installed_versions() -> dict[str, str]:
    """The hub's environment: {normalized name: version}."""
    return {
        normalize(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }


def check_catalog(root: Path | str, installed: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with the catalog against the Dockerfiles; empty when nothing is.

    Every entry has a Dockerfile and every Dockerfile under images/ an entry; every
    requirement is pinned with ==; minimal's pins equal the hub's installed versions of the
    same packages (an image must run the hub's mlfactory stack); parents exist, without loops.
    """
    root = Path(root).resolve()
    try:
        catalog = load_catalog(root)
    except BuildError as e:
        return [str(e)]
    installed = installed_versions() if installed is None else installed
    problems: list[str] = []
    rel = lambda p: str(p.relative_to(root))  # noqa: E731 - messages name repo paths
    if not catalog.base.packages.is_file():
        problems.append(f"base: {rel(catalog.base.packages)} does not exist")
    elif not catalog.base.package_names():
        problems.append(f"base: {rel(catalog.base.packages)} lists no packages")
    seen: set[str] = set()
    for image in catalog.images:
        if image.slug in seen:
            problems.append(f"{image.slug}: listed twice")
        seen.add(image.slug)
        if not image.dockerfile.is_file():
            problems.append(f"{image.slug}: its Dockerfile {rel(image.dockerfile)} does not exist")
        elif "ARG BASE" not in image.dockerfile.read_text():
            problems.append(f"{image.slug}: {rel(image.dockerfile)} has no 'ARG BASE' for FROM")
        if image.parent != "base" and image.parent not in catalog.slugs:
            problems.append(f"{image.slug}: parent {image.parent!r} is not in the catalog")
        else:
            try:
                catalog.chain(image.slug)
            except BuildError as e:
                problems.append(f"{image.slug}: {e}")
        if image.requirements.is_file():
            _, unpinned = read_pins(image.requirements)
            problems += [
                f"{image.slug}: {rel(image.requirements)}: {line!r} is not pinned with =="
                for line in unpinned
            ]
        for wheel in image.host_wheels:
            if not _PIN.match(wheel):
                problems.append(f"{image.slug}: host wheel {wheel!r} is not pinned with ==")
    listed = {i.dockerfile.resolve() for i in catalog.images}
    for dockerfile in sorted((root / "images").glob("*/Dockerfile")):
        if dockerfile.resolve() not in listed:
            problems.append(f"{rel(dockerfile)} has no entry in images/catalog.yaml")
    if "minimal" in catalog.slugs and catalog.get("minimal").requirements.is_file():
        pins, _ = read_pins(catalog.get("minimal").requirements)
        for name, version in sorted(pins.items()):
            hub = installed.get(name)
            if hub is not None and hub != version:
                problems.append(
                    f"minimal: pins {name}=={version} but the hub runs {name} {hub}; "
                    "the image must match the hub"
                )
    return problems


def find_host_wheel(requirement: str, dirs: Iterable[Path]) -> Path | None:
    """A wheel for ``name==version`` in the find-links folders (local tags like +cpu
    match, as pip's == does)."""
    name, _, version = requirement.partition("==")
    want = normalize(name).replace("-", "_")
    for folder in dirs:
        for whl in sorted(folder.glob("*.whl")):
            parts = whl.name.split("-")
            if len(parts) >= 2 and normalize(parts[0]).replace("-", "_") == want:
                if parts[1] == version or parts[1].startswith(version + "+"):
                    return whl
    return None


def find_links_dirs(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Local folders pip would search (PIP_FIND_LINKS, then ``pip config``)."""
    raw = environ.get("PIP_FIND_LINKS", "")
    if not raw:
        try:
            raw = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            raw = ""
    dirs = [Path(p.removeprefix("file://")) for p in raw.split()]
    return [d for d in dirs if d.is_dir()]


def wheel_fingerprint(wheel: Path) -> str:
    """sha256 over the wheel's file names and contents: the zip's timestamps make the file
    itself differ on every build, its contents do not. RECORD is left out (its order)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.filename.endswith(".dist-info/RECORD") or info.is_dir():
                continue
            h.update(info.filename.encode() + b"\0")
            h.update(hashlib.sha256(zf.read(info)).digest())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Built:
    """What one build produced."""

    slug: str
    image_id: str
    tags: list[str]  # local references, version tag first
    size: int  # bytes, as the engine reports
    seconds: float
    cached: bool  # the digest tag existed: nothing was built
    pushed: list[str] = field(default_factory=list)  # registry references
    digest: str = ""  # the registry's manifest digest (pull by digest)

    @property
    def reference(self) -> str:
        """The registry reference with the digest tag, else the local one."""
        return (self.pushed or self.tags)[-1]


class ImageBuilder:
    """Builds the catalog's images with podman (or docker) and pushes them to ``registry``.

    ``env`` is the engine CLI's environment: for Podman, ``LocalEngine.podman_env`` (runc,
    cgroupfs, ulimits, the loopback registry marked insecure). ``registry`` is a URL
    (``http://127.0.0.1:5055``) or "" to build without pushing.
    """

    def __init__(
        self,
        root: Path | str,
        env: Mapping[str, str] | None = None,
        registry: str = "",
        tool: str | None = None,
        work: Path | str | None = None,
        log=None,
    ) -> None:
        self.catalog = load_catalog(root)
        self.env = dict(env if env is not None else os.environ)
        self.registry = registry.rstrip("/")
        self.tool = tool or shutil.which("podman") or shutil.which("docker")
        if not self.tool:
            raise BuildError("neither podman nor docker is installed (make engine)")
        self.podman = Path(self.tool).name == "podman"
        self.work = Path(work) if work else None  # where base.tar is written
        self.version = mlfactory_version()
        self.log = log or (lambda msg: None)
        self._wheel: Path | None = None
        self._wheel_dir: tempfile.TemporaryDirectory | None = None
        self._built: dict[str, Built] = {}

    # -- the engine CLI ------------------------------------------------------------------
    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.tool, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BuildError(f"`{Path(self.tool).name} {' '.join(args[:3])} ...` failed:\n{tail}")
        return proc

    def exists(self, ref: str) -> bool:
        if self.podman:
            return self.run("image", "exists", ref, check=False).returncode == 0
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def inspect(self, ref: str) -> tuple[str, int]:
        """(image id, size in bytes)."""
        out = self.run("image", "inspect", "--format", "{{.Id}} {{.Size}}", ref).stdout.split()
        return out[0].removeprefix("sha256:"), int(out[1])

    @property
    def registry_location(self) -> str:
        return urllib.parse.urlsplit(self.registry).netloc if self.registry else ""

    # -- the base layer ------------------------------------------------------------------
    def ensure_base(self) -> Built:
        """The Debian base layer, made with mmdebstrap and imported once per package list."""
        base = self.catalog.base
        tag = base.tag
        started = time.monotonic()
        if self.exists(tag):
            image_id, size = self.inspect(tag)
            return Built("base", image_id, [tag], size, time.monotonic() - started, True)
        if shutil.which("mmdebstrap") is None:
            raise BuildError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
        self.log(f"base: mmdebstrap {base.suite} with {len(base.package_names())} packages")
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            tar = Path(tmp) / "base.tar"
            proc = subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase"]
                + [f"--include={','.join(base.package_names())}", base.suite, str(tar)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise BuildError(f"mmdebstrap failed:\n{proc.stderr.strip()[-2000:]}")
            quiet = ["--quiet"] if self.podman else []
            self.run("import", *quiet, str(tar), tag)
        image_id, size = self.inspect(tag)
        return Built("base", image_id, [tag], size, time.monotonic() - started, False)

    # -- the mlfactory wheel -------------------------------------------------------------
    def wheel(self) -> Path:
        """The mlfactory wheel of this checkout, built once per builder."""
        if self._wheel is None:
            self._wheel_dir = tempfile.TemporaryDirectory(prefix="mlfactory-wheel-")
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
                + ["-w", self._wheel_dir.name, str(self.catalog.root)],
                capture_output=True,
                text=True,
            )
            wheels = list(Path(self._wheel_dir.name).glob("mlfactory-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise BuildError(f"building the mlfactory wheel failed:\n{proc.stderr[-2000:]}")
            self._wheel = wheels[0]
        return self._wheel

    # -- one image -----------------------------------------------------------------------
    def inputs(self, image: CatalogImage, parent_id: str) -> tuple[str, list[Path]]:
        """(content digest, host wheels): the digest over everything that goes into it."""
        h = hashlib.sha256()
        h.update(f"parent {parent_id}\n".encode())
        for path in sorted(p for p in image.folder.rglob("*") if p.is_file()):
            h.update(f"{path.relative_to(image.folder)}\n".encode() + path.read_bytes())
        if image.wheel:
            h.update(f"wheel {wheel_fingerprint(self.wheel())}\n".encode())
        wheels: list[Path] = []
        dirs = find_links_dirs(self.env)
        for requirement in image.host_wheels:
            found = find_host_wheel(requirement, dirs)
            if found is not None:
                wheels.append(found)
                h.update(f"host wheel {found.name} {file_sha256(found)}\n".encode())
            else:
                h.update(f"host wheel {requirement} from the index\n".encode())
        return h.hexdigest()[:12], wheels

    def build(self, slug: str, push: bool = True, must_exist: bool = False) -> Built:
        """Build ``slug`` (its parents first, once each), tag it, push it when asked.
        ``must_exist``: build nothing; BuildError when its digest tag is not built yet."""
        if slug in self._built:
            built = self._built[slug]
        else:
            image = self.catalog.get(slug)
            if image.parent == "base":
                parent = self.ensure_base()
            else:
                parent = self.build(image.parent, push=False, must_exist=must_exist)
            built = self._build_one(image, parent, must_exist)
            self._built[slug] = built
        if push and self.registry and not built.pushed:
            self.push(built)
        return built

    def _build_one(self, image: CatalogImage, parent: Built, must_exist: bool = False) -> Built:
        started = time.monotonic()
        digest, host_wheels = self.inputs(image, parent.image_id)
        tags = [f"{image.repository}:{self.version}", f"{image.repository}:{self.version}-{digest}"]
        cached = self.exists(tags[1])
        if not cached and must_exist:
            raise BuildError(
                f"{image.slug}: {tags[1]} is not built (the checkout changed since, or it "
                f"never was); run `mlfactory images build {image.slug}`"
            )
        if not cached:
            self.log(f"{image.slug}: building {tags[1]} FROM {parent.tags[-1]}")
            with tempfile.TemporaryDirectory(prefix=f"mlfactory-{image.slug}-") as tmp:
                context = Path(tmp)
                self._context(image, context, host_wheels)
                args = ["build", "--network", "host", "--build-arg", f"BASE={parent.tags[-1]}"]
                if CA_BUNDLE.exists():
                    args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
                args += ["-f", str(context / image.dockerfile.relative_to(self.catalog.root))]
                args += ["-t", tags[1], str(context)]
                self.run(*args)
        self.run("tag", tags[1], tags[0])
        image_id, size = self.inspect(tags[1])
        seconds = time.monotonic() - started
        self.log(f"{image.slug}: {'cached' if cached else 'built'} in {seconds:.1f} s")
        return Built(image.slug, image_id, tags, size, seconds, cached)

    def _context(self, image: CatalogImage, context: Path, host_wheels: Sequence[Path]) -> None:
        """A small build context: the image's folder, dist/ with the wheel, wheels/ with
        the host wheels (hard links where the filesystem allows: torch is 190 MB)."""
        target = context / image.folder.relative_to(self.catalog.root)
        shutil.copytree(image.folder, target)
        (context / "dist").mkdir()
        (context / "wheels").mkdir()
        if image.wheel:
            shutil.copy(self.wheel(), context / "dist")
        for whl in host_wheels:
            try:
                os.link(whl, context / "wheels" / whl.name)
            except OSError:
                shutil.copy(whl, context / "wheels" / whl.name)

    def push(self, built: Built) -> None:
        """Tag ``built`` with the registry's location and push both tags; records the
        manifest digest (what a spawn pulls by)."""
        if not self.registry:
            raise BuildError("no registry to push to (give --registry)")
        tls = ["--tls-verify=false"] if self.podman and self.registry.startswith("http://") else []
        for tag in built.tags:
            remote = f"{self.registry_location}/{tag}"
            self.run("tag", tag, remote)
            if self.podman:
                with tempfile.NamedTemporaryFile("r") as digestfile:
                    self.run("push", "--quiet", *tls, "--digestfile", digestfile.name, remote)
                    built.digest = digestfile.read().strip()
            else:
                self.run("push", "--quiet", remote)
                built.digest = self._repo_digest(remote)
            built.pushed.append(remote)
            self.log(f"{built.slug}: pushed {remote} ({built.digest})")

    def _repo_digest(self, remote: str) -> str:
        out = self.run("image", "inspect", "--format", "{{json .RepoDigests}}", remote).stdout
        repo = remote.rsplit(":", 1)[0]
        match = re.search(re.escape(repo) + r"@(sha256:[0-9a-f]{64})", out)
        return match.group(1) if match else ""

    def close(self) -> None:
        if self._wheel_dir is not None:
            self._wheel_dir.cleanup()
            self._wheel_dir = None
            self._wheel = None
