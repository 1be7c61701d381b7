"""Idle shutdown policy. Pure: (server facts, limits, now) → keep / warn / stop, with why.

What counts as activity (jupyterhub #1498, 2i2c #2232 are the two ways the hub's own
``last_activity`` misleads): a kernel executing, a terminal in use, a file saved, or a
"Keep running" press. An open browser tab polling the server is not. The server extension
reports these; without a fresh report the hub's ``last_activity`` is used (it errs on the
side of keeping). On a server with GPUs the measure is the GPUs themselves: utilisation
under ``gpu_idle_percent`` for the timeout is idle whatever else runs, because an idle GPU
is the expensive waste this exists to stop (the warning's "Keep running" overrides it).
A busy kernel keeps a CPU server until its maximum age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from mlfactory.hub.platform_config import PlatformConfig

Action = Literal["keep", "warn", "stop"]
REPORT_STALE_AFTER = 300  # seconds: three missed reports and we stop trusting the last one


@dataclass(frozen=True)
class Limits:
    idle_timeout: int
    max_age: int  # 0: none
    warn_before: int
    gpu_idle_percent: float
    exempt: bool = False


def limits_for(config: PlatformConfig, user: str, profile: str, groups: Iterable[str]) -> Limits:
    """The profile's limits, else the user's highest-priority group's, else the defaults."""
    c = config.culling
    timeout, max_age = c.idle_timeout, c.max_age
    ranked = sorted(
        (g for g in config.groups if g.name in set(groups) and g.name in c.groups),
        key=lambda g: g.priority,
    )
    for override in [c.groups[g.name] for g in ranked] + [c.profiles.get(profile)]:
        if override is None:
            continue
        if override.idle_timeout is not None:
            timeout = override.idle_timeout
        if override.max_age is not None:
            max_age = override.max_age
    return Limits(timeout, max_age, c.warn_before, c.gpu_idle_percent, user in c.exempt_users)


@dataclass(frozen=True)
class Report:
    """What a server's extension last reported (times are epoch seconds)."""

    at: float
    busy_kernels: int = 0
    last_kernel_activity: float | None = None
    last_terminal_activity: float | None = None
    last_save: float | None = None
    gpu_util: tuple[float, ...] | None = None  # None: no GPUs visible to the server
    gpu_busy_at: float | None = None  # last report with a GPU at or above the threshold


@dataclass(frozen=True)
class Facts:
    started: float
    hub_last_activity: float | None = None
    report: Report | None = None
    keepalive_at: float | None = None
    warned_at: float | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    idle_for: float = 0.0
    deadline: float | None = None  # when a warned server will be stopped
    warned_at: float | None = None  # the warning in effect (a new one is ``now``)
    cause: Literal["idle", "max_age", "none"] = "none"  # a max-age stop cannot be put off


def decide(facts: Facts, limits: Limits, now: float, watching_since: float, grace: int) -> Decision:
    """Keep, warn (``limits.warn_before`` ahead) or stop one running server."""
    age = now - facts.started
    if limits.max_age and age >= limits.max_age - limits.warn_before:
        deadline = facts.started + limits.max_age
        reason = f"it reached the maximum age of {duration(limits.max_age)}"
        d = _warn_or_stop(facts, now, deadline, reason, idle_for=0.0, warn=limits.warn_before)
        return replace(d, cause="max_age")
    if now - watching_since < grace:
        return Decision("keep", f"judging nothing for {duration(grace)} after a restart or outage")
    if limits.exempt:
        return Decision("keep", "exempt from idle shutdown")
    report = facts.report if facts.report and now - facts.report.at <= REPORT_STALE_AFTER else None
    if report is not None and report.gpu_util is not None:
        busy = any(u >= limits.gpu_idle_percent for u in report.gpu_util)
        if busy:
            return Decision("keep", "its GPUs are busy")
        since = _latest(facts.started, report.gpu_busy_at, facts.keepalive_at)
        what = f"its GPUs were below {limits.gpu_idle_percent:g}% for"
    elif report is not None:
        if report.busy_kernels:
            return Decision("keep", "a kernel is busy")
        since = _latest(
            facts.started,
            report.last_kernel_activity,
            report.last_terminal_activity,
            report.last_save,
            facts.keepalive_at,
        )
        what = "it was idle for"
    else:
        since = _latest(facts.started, facts.hub_last_activity, facts.keepalive_at)
        what = "it was idle for"
    idle = max(0.0, now - since)
    if idle < limits.idle_timeout - limits.warn_before:
        return Decision("keep", "recently active", idle_for=idle)
    if facts.warned_at is not None and facts.warned_at < since:
        facts = Facts(facts.started, facts.hub_last_activity, facts.report, facts.keepalive_at)
    deadline = since + limits.idle_timeout
    reason = f"{what} {duration(limits.idle_timeout)}"
    d = _warn_or_stop(facts, now, deadline, reason, idle_for=idle, warn=limits.warn_before)
    return replace(d, cause="idle")


def _warn_or_stop(
    facts: Facts, now: float, deadline: float, reason: str, idle_for: float, warn: int
) -> Decision:
    # A user always gets the full warning, even when it comes late (a restart, an outage).
    if facts.warned_at is None:
        return Decision("warn", reason, idle_for, max(deadline, now + warn), warned_at=now)
    deadline = max(deadline, facts.warned_at + warn)
    action: Action = "stop" if now >= deadline else "warn"
    return Decision(action, reason, idle_for, deadline, warned_at=facts.warned_at)


def _latest(*times: float | None) -> float:
    return max(t for t in times if t is not None)


def duration(seconds: float) -> str:
    """``5400`` → ``'1h 30m'``; under a minute → ``'45s'``."""
    seconds = int(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else ""]
    text = " ".join(p for p in parts if p)
    return text or f"{s}s"


def hours_not_run(stopped_at: float, next_start: float | None, now: float, cap: float) -> float:
    """Money saved by a stop is its price times the hours it did not run: until the user
    started it again, else until now, at most ``cap`` seconds (a server is not assumed to
    have run forever)."""
    end = next_start if next_start is not None else now
    return max(0.0, min(end - stopped_at, cap)) / 3600


StopOutcome = Literal["stopped", "stopping", "gone", "failed"]


def stop_outcome(code: int) -> StopOutcome:
    """What the hub's answer to ``DELETE /users/<user>/server[s/<name>]`` says of the stop.

    JupyterHub answers 204 once the spawner has stopped (and for a server not running), 202
    when the stop outlasts its ``slow_stop_timeout`` and goes on after the answer, 404 for a
    user or named server it no longer has and 400 where there is nothing it may stop: someone
    else stopped or removed it. Anything else (5xx, a refused token, no answer) did not stop
    it: the server may still run, so nothing is recorded and the next pass asks again.
    """
    if code == 204:
        return "stopped"
    if code == 202:
        return "stopping"
    if code in (400, 404):
        return "gone"
    return "failed"
