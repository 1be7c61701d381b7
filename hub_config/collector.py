"""The hub's garbage collector, told to leave alone what the hub started with.

A full collection walks every object the process holds. In a hub that is everything
JupyterHub, SQLAlchemy, tornado and the platform loaded to start, which lives as long as
the hub does; walking it again in every full collection is wasted. Measured in a storm of
1,000 spawns (``benchmarks/storm.py --users 1000 --rounds 1 --only mlfactory``, alternated):
the hub's collections paused it 2.0 / 1.8 s in all, the worst 280 / 260 ms, against
3.3 / 3.0 s and 493 / 511 ms without this; all ready in 35.2 / 30.2 s against 39.6 / 32.3 s.
The single-user server does the same once its loop runs (``mlfactory.server.app``).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("mlfactory.hub")


def freeze_start_up() -> int:
    """Move what the hub holds now out of the collector's reach (``gc.freeze``: the objects
    are kept, never collected); called once it listens (`hubconfig.when_listening`).
    Returns how many were frozen."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("The hub's garbage collections skip the %d objects it started with", frozen)
    return frozen
