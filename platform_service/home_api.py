"""What the hub's home page shows a user: their running servers with cost so far, their
budgets, budget notices and idle-shutdown warnings and stops, in one answer. The hub asks on
behalf of the user it has signed in, with the shared service secret (as the spawner does), so
the page needs no token of the user's (issue 21: a token per visit filled the Token page)."""

from __future__ import annotations

from typing import Any

from .base import SecretHandler


class HomeHandler(SecretHandler):
    async def post(self) -> None:
        user, groups = self.user_and_groups()
        out: dict[str, Any] = await self.accountant.me(user, groups)
        out["timezone"] = self.accountant.tz.key
        # idle shutdown may be switched off in this service: then there is nothing to say
        culler = self.settings.get("culler")
        out["culling"] = await culler.status(user, None) if culler is not None else None
        self.write_json(out)


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/home", HomeHandler),
]
