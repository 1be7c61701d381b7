"""``GET /mlfactory/api/data/connections``: the owner's data connections (managed stores
their groups are granted, with the grant) for JupyterLab's Data panel, each with a snippet.

The server asks the platform service on the owner's behalf with its own hub token, as the
budget route does; no credentials pass through here (a kernel's ``mlfactory.data.connect``
asks for those itself).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from . import service_client
from .handlers import MLFactoryAPIHandler
from .service_client import Target

WORDING = service_client.Wording(
    endpoint="data connections",
    unreachable="your data connections cannot be listed",
    not_configured="data connections are not shown here",
)


def snippet(conn: dict[str, Any]) -> str:
    """The notebook code that opens ``conn`` (pure; names are repr-quoted)."""
    name = repr(str(conn.get("name", "")))
    if conn.get("kind") == "s3":
        prefixes = conn.get("prefixes") or []
        bucket, _, prefix = (prefixes[0] if prefixes else "bucket/").partition("/")
        return (
            "import mlfactory.data\n\n"
            f"s3 = mlfactory.data.connect({name})\n"
            f"s3.list_objects_v2(Bucket={bucket!r}, Prefix={prefix!r})"
        )
    if conn.get("kind") == "postgresql":
        return (
            "import mlfactory.data\nimport pandas as pd\n\n"
            f"engine = mlfactory.data.connect({name})\n"
            'pd.read_sql("SELECT 1", engine)'
        )
    return f"import mlfactory.data\n\nclient = mlfactory.data.connect({name})"


class DataConnectionsHandler(MLFactoryAPIHandler):
    auth_resource = "mlfactory:data"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        # the grants are the owner's (the token is theirs): not for people it is shared with
        self.require_owner()
        target = service_client.target_from_env()
        if isinstance(target, Target):
            url = service_client.api_url(target.service_url, "data/connections")
            answer = await service_client.call(
                url, target.token, WORDING, passthrough=frozenset({404})
            )
        else:
            answer = service_client.not_configured(target, WORDING)
        body = answer.body
        if answer.ok and isinstance(body, dict):
            body = {
                "connections": [{**c, "snippet": snippet(c)} for c in body.get("connections") or []]
            }
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [(r"/mlfactory/api/data/connections", DataConnectionsHandler)]
