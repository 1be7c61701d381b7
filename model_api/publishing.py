"""Publish a model from the kernel to the platform's model registry: run a test prediction,
package the model (``ModelRepository`` layout, in a temporary folder), and upload the package
as a tar to the platform service, which stores it as the model's next immutable version.

    from mlfactory.model_api import Model, publish
    published = publish(Model(clf, task="classification", name="churn"), test_input=X[:5])
    published["version"], published["urls"]["predict"]

The registry is ``$MLFACTORY_SERVICE_URL`` and the token the server's ``$JUPYTERHUB_API_TOKEN``
(both set in every mlfactory server); pass ``registry=`` and ``token=`` elsewhere. Blocking
on purpose: this runs in the kernel, like any other cell.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .errors import PublishRefused
from .package import CARD, ModelRepository
from .wrapper import Model

REGISTRY_ENV = "MLFACTORY_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 - a variable name, not a secret


def package(model: Model, folder: Path, *, notebook_path: str | None = None) -> Path:
    """Write ``model`` as a package under ``folder``; returns a tar of it (two plain files)."""
    repo = ModelRepository(folder / "repo")
    before = model.version
    version = repo.publish(model, source_notebook=notebook_path)
    model.version = before  # the registry numbers the version, not this scratch folder
    src = repo.root / model.name / str(version)
    card = yaml_card(src)
    archive = folder / "package.tar"
    with tarfile.open(archive, "w") as tf:
        for name in (CARD, card):
            tf.add(src / name, arcname=name, recursive=False)
    return archive


def yaml_card(src: Path) -> str:
    """The artefact's file name from the package folder (the one file that is not the card)."""
    (artifact,) = [p.name for p in src.iterdir() if p.name != CARD]
    return artifact


def test_prediction(model: Model, test_input: Any) -> Any:
    try:
        return model.predict(test_input)
    except Exception as e:
        raise PublishRefused(
            f"not published: the test prediction failed ({type(e).__name__}: {e}); fix the "
            "model or test_input and publish again",
            {"stage": "test_prediction"},
        ) from e


def publish(
    model: Model,
    *,
    test_input: Any,
    registry: str | None = None,
    token: str | None = None,
    notebook_path: str | None = None,
    history_version: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Test, package and upload ``model`` as the next version of ``model.name``; returns the
    registry's answer (version number, provenance, the URLs it is served at). PublishRefused
    says why nothing was published."""
    registry = (registry or os.environ.get(REGISTRY_ENV, "")).rstrip("/")
    token = token or os.environ.get(TOKEN_ENV, "")
    if not registry or not token:
        raise PublishRefused(
            f"no model registry configured: set ${REGISTRY_ENV} and ${TOKEN_ENV} (an "
            "mlfactory server has both), or pass registry= and token="
        )
    test_prediction(model, test_input)
    query = {
        k: v
        for k, v in {"notebook_path": notebook_path, "history_version": history_version}.items()
        if v
    }
    url = f"{registry}/api/models/{quote(model.name, safe='')}/versions"
    if query:
        url += "?" + urlencode(query)
    with tempfile.TemporaryDirectory(prefix="mlfactory-publish-") as tmp:
        archive = package(model, Path(tmp), notebook_path=notebook_path)
        return upload(url, archive, token, timeout)


def upload(url: str, archive: Path, token: str, timeout: float) -> dict[str, Any]:
    """POST the archive in chunks. The registry may answer before the body is sent (not the
    owner, too large): its answer is still read when it closes the connection mid-upload."""
    h = hashlib.sha256()
    with archive.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    u = urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    where = f"{u.scheme}://{u.netloc}"
    conn = cls(u.netloc, timeout=timeout)
    try:
        try:
            conn.putrequest("POST", u.path + (f"?{u.query}" if u.query else ""))
            for k, v in {
                "Authorization": f"token {token}",
                "Content-Type": "application/x-tar",
                "Content-Length": str(archive.stat().st_size),
                "X-Package-SHA256": h.hexdigest(),
            }.items():
                conn.putheader(k, v)
            conn.endheaders()
        except OSError as e:
            raise PublishRefused(
                f"the model registry at {where} cannot be reached: {e}; try again, and tell "
                "your hub admin if it lasts"
            ) from None
        try:
            with archive.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    conn.send(chunk)
        except OSError:
            pass  # it answered early and closed; the answer says why
        try:
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise PublishRefused(
                f"the model registry at {where} closed the connection during the upload ({e}); "
                "the package may be over the registry's size limit (models.max_upload_bytes)"
            ) from None
    finally:
        conn.close()
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    if resp.status != 201:
        message = data.get("error") if isinstance(data, dict) else None
        raise PublishRefused(
            f"the model registry refused the package ({resp.status}): {message or resp.reason}",
            {"status": resp.status},
        )
    return data
