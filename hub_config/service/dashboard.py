"""The cost dashboard page (being written)."""

from __future__ import annotations

from tornado import web

from .handlers import UserHandler


class DashboardHandler(UserHandler):
    login_redirect = True

    @web.authenticated
    async def get(self) -> None:
        self.finish("dashboard")
