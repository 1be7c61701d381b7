"""The spawn page's progress messages, for both backends (``Spawner.progress``): each step
of a start is reported once, and a stream follows the current spawn only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class ProgressMixin:
    """Progress events of the current spawn; mixed into the mlfactory spawners."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[dict] = []
        self._events_changed = asyncio.Event()

    def _restart_progress(self) -> None:
        """A new spawn (or a stop): streams follow it from its first event."""
        self._events = []
        self._events_changed.set()

    def _emit(self, progress: int, message: str) -> None:
        self._events.append({"progress": progress, "message": message})
        self._events_changed.set()

    async def progress(self) -> AsyncIterator[dict]:
        events, sent = self._events, 0
        while True:
            if self._events is not events:  # a new spawn began: follow its events
                events, sent = self._events, 0
            if sent < len(events):
                yield events[sent]
                sent += 1
                continue  # re-check: the list may have been replaced while we yielded
            # No await between the checks above and clear(): nothing can slip in between.
            self._events_changed.clear()
            await self._events_changed.wait()
