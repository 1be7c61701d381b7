"""``mlfactory images list|build|push|check``: an admin's commands for the workspace images.

``list`` shows the catalog with each image's tags in the registry; ``build`` builds (and
pushes) images with the engine on this machine; ``push`` pushes what was built; ``check``
holds the catalog to the Dockerfiles and their pinned requirements. The registry is
``--registry``, else ``$MLFACTORY_REGISTRY``, else the platform config's
``containers.registry.url``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ..platform_config import engine_dir
from .client import render_table

# The checkout this module lives in: where images/ and the wheel's sources are.
REPO_ROOT = Path(__file__).resolve().parents[2]


def _registry(args: argparse.Namespace) -> tuple[str, str, str]:
    """(url, username, password) of the registry the command works on."""
    url = args.registry or os.environ.get("MLFACTORY_REGISTRY", "")
    username, password_file = args.username or "", args.password_file or ""
    if not url:
        from ..platform_config import ConfigError, load_platform_config

        try:
            reg = load_platform_config(args.config).containers.registry
        except ConfigError as e:
            raise SystemExit(f"no --registry given and the platform config fails: {e}") from e
        url, username = reg.url, username or reg.username
        password_file = password_file or reg.password_file
    password = Path(password_file).read_text().strip() if password_file else ""
    return url, username, password


def _engine_env(args: argparse.Namespace, registry: str) -> dict[str, str]:
    """Podman's environment from mlfactory's engine settings (runc, cgroupfs, ulimits, the
    loopback registry over plain HTTP): without it a RUN step fails on rlimits here."""
    from mlfactory.spawner.engine import LocalEngine, registry_location

    loopback = [registry_location(registry)] if registry else []
    return LocalEngine(_engine_root(args)).podman_env(loopback)


def _engine_root(args: argparse.Namespace) -> Path:
    return Path(args.engine_root) if args.engine_root else engine_dir()


async def _tags(url: str, username: str, password: str, repositories: list[str]):
    from mlfactory.spawner.registry import RegistryClient, RegistryError

    client = RegistryClient(url, username, password)
    out: dict[str, list[str] | str] = {}
    for repo in repositories:
        try:
            out[repo] = sorted(await client.tags(repo))
        except RegistryError as e:
            out[repo] = str(e)
    return out


def _list(args: argparse.Namespace) -> int:
    from mlfactory.spawner.image_build import BuildError, load_catalog

    try:
        catalog = load_catalog(args.root)
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    url, username, password = _registry(args)
    repos = [i.repository for i in catalog.images]
    tags = asyncio.run(_tags(url, username, password, repos)) if url else {}
    rows, problems = [], []
    for image in catalog.images:
        found = tags.get(image.repository, [])
        if isinstance(found, str):
            problems.append(found)
            found = []
        rows.append(
            [image.slug, image.repository, image.parent, ", ".join(found) or "-"]
            + [", ".join(image.contents)]
        )
    print(f"Registry: {url or '(none)'}")
    print(render_table(["SLUG", "REPOSITORY", "PARENT", "TAGS", "CONTENTS"], rows, right=set()))
    for problem in dict.fromkeys(problems):
        print(f"warning: {problem}", file=sys.stderr)
    # A registry that cannot be reached is an error; a repository not pushed yet is not.
    return 1 if any("cannot be reached" in p or "credentials" in p for p in problems) else 0


def _build(args: argparse.Namespace, push_only: bool = False) -> int:
    from mlfactory.spawner.image_build import BuildError, ImageBuilder, load_catalog

    url = "" if getattr(args, "no_push", False) else _registry(args)[0]
    if url:
        from mlfactory.spawner.engine import start_local_registry

        if start_local_registry(url, _engine_root(args)):
            print(f"Started a registry at {url} (storage: {_engine_root(args) / 'registry'})")
    try:
        slugs = args.slugs or load_catalog(args.root).slugs
        builder = ImageBuilder(
            args.root, env=_engine_env(args, url), registry=url, log=lambda m: print(m)
        )
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    rows = []
    try:
        for slug in slugs:
            built = builder.build(slug, push=bool(url), must_exist=push_only)
            rows.append(
                [
                    slug,
                    built.reference,
                    built.digest or "-",
                    f"{built.size / 1e6:.0f} MB",
                    "cached" if built.cached else f"{built.seconds:.0f} s",
                ]
            )
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        builder.close()
    print(render_table(["SLUG", "REFERENCE", "DIGEST", "SIZE", "BUILD"], rows, right={3, 4}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from mlfactory.spawner.image_build import check_catalog

    problems = check_catalog(args.root)
    if problems:
        print(f"images: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{Path(args.root) / 'images'}: OK — catalog, Dockerfiles and pins agree")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    images = sub.add_parser("images", help="build, push, list and check the workspace images")
    verbs = images.add_subparsers(dest="images_command", required=True)

    def common(p: argparse.ArgumentParser, registry: bool = True) -> None:
        p.add_argument("--root", default=str(REPO_ROOT), help="the checkout with images/")
        if registry:
            p.add_argument("--registry", help="registry URL, e.g. http://127.0.0.1:5055")
            p.add_argument("--username", help="registry user (default: the config's)")
            p.add_argument("--password-file", help="file with the registry password or token")
            p.add_argument("--config", help="platform config (default: $MLFACTORY_CONFIG)")

    p = verbs.add_parser("list", help="the catalog with each image's tags in the registry")
    common(p)
    p.set_defaults(func=_list)
    for name, helptext in (
        ("build", "build images (default all) and push them"),
        ("push", "push images built before (their current digest tags)"),
    ):
        p = verbs.add_parser(name, help=helptext)
        common(p)
        p.add_argument("slugs", nargs="*", help="image slugs (default: every catalog image)")
        p.add_argument("--engine-root", help="Podman settings folder ($MLFACTORY_DATA/engine)")
        if name == "build":
            p.add_argument("--no-push", action="store_true", help="build only")
            p.set_defaults(func=_build)
        else:
            p.set_defaults(func=lambda a: _build(a, push_only=True))
    p = verbs.add_parser("check", help="check the catalog against the Dockerfiles and pins")
    common(p, registry=False)
    p.set_defaults(func=_check)
